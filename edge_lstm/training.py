"""Build and train the IMDB LSTM of the reference lecture (tf-keras, Keras 2 API).

tf-keras, not Keras 3: only its LSTM converts to TFLite's fused LSTM op (DEVELOPERS.md).
TensorFlow is imported inside the functions, never at package import time.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_lstm import bundle
from edge_lstm.data import Reviews
from edge_lstm_device.tokenizer import Tokenizer


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults are the lecture's."""

    num_words: int = 10_000
    max_len: int = 200
    embedding_dim: int = 128
    lstm_units: int = 128
    epochs: int = 3
    batch_size: int = 64
    validation_split: float = 0.2
    seed: int = 42
    keep_best_epoch: bool = True
    refit: bool = True  # after choosing the epoch count on validation, retrain on all training reviews


def build_model(cfg: TrainConfig) -> Any:
    """Embedding -> LSTM -> Dense(1, sigmoid), compiled with adam and binary cross-entropy."""
    import tf_keras as keras

    model = keras.Sequential(
        [
            keras.layers.Embedding(cfg.num_words, cfg.embedding_dim, input_length=cfg.max_len),
            keras.layers.LSTM(cfg.lstm_units),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="imdb_lstm",
    )
    model.build((None, cfg.max_len))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def library_versions() -> dict[str, str]:
    import tensorflow as tf
    import tf_keras

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
    }


def _shuffled(reviews: Reviews, seed: int) -> Reviews:
    """Keras takes the validation split from the end: shuffle so it holds both classes."""
    return reviews.subset(np.random.default_rng(seed).permutation(len(reviews)))


def train(
    train_reviews: Reviews,
    test_reviews: Reviews,
    cfg: TrainConfig,
    out_dir: Path,
    data_sha256: str,
    verbose: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Fit the tokenizer and the model, evaluate on the test split, write the bundle."""
    import tensorflow as tf
    import tf_keras as keras

    started = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()

    train_reviews = _shuffled(train_reviews, cfg.seed)
    tokenizer = Tokenizer.fit(train_reviews.texts, cfg.num_words, cfg.max_len)
    x_train = tokenizer.encode_batch(train_reviews.texts)
    x_test = tokenizer.encode_batch(test_reviews.texts)
    log(f"tokenized {len(x_train)} training and {len(x_test)} test reviews")

    model, history, kept_epoch = _fit_selecting_epoch(cfg, x_train, train_reviews.labels, verbose, log)
    selection_test_acc = None
    if cfg.refit:
        selection_test_acc = model.evaluate(x_test, test_reviews.labels, batch_size=256, verbose=0)[1]
        log(f"refitting on all {len(x_train)} training reviews for {kept_epoch} epoch(s)")
        model = _refit(cfg, x_train, train_reviews.labels, kept_epoch, verbose, log)
    test_loss, test_acc = model.evaluate(x_test, test_reviews.labels, batch_size=256, verbose=0)
    metrics = {
        "config": asdict(cfg),
        "epochs": _per_epoch(history.history),
        "kept_epoch": kept_epoch,
        "epoch_selection": "highest val_accuracy" if cfg.keep_best_epoch else "last epoch",
        "refit_on_all_training_reviews": cfg.refit,
        "test_accuracy_before_refit": None if selection_test_acc is None else round(float(selection_test_acc), 5),
        "test_accuracy": round(float(test_acc), 5),
        "test_loss": round(float(test_loss), 5),
        "n_train": int(round(len(x_train) * (1 - cfg.validation_split))),
        "n_validation": len(x_train) - int(round(len(x_train) * (1 - cfg.validation_split))),
        "n_test": len(x_test),
        "data_sha256": data_sha256,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "seed": cfg.seed,
        "versions": library_versions(),
    }
    bundle.write_trained(out_dir, model, tokenizer, metrics)
    return metrics


def _fit_selecting_epoch(cfg: TrainConfig, x: np.ndarray, y: np.ndarray, verbose: int,
                         log: Callable[[str], None]) -> tuple[Any, Any, int]:
    """Train with a validation split; return the model at its best (or last) epoch."""
    model = build_model(cfg)
    best = _epoch_callback(cfg.keep_best_epoch, log)
    history = model.fit(x, y, epochs=cfg.epochs, batch_size=cfg.batch_size, validation_split=cfg.validation_split,
                        shuffle=True, callbacks=[best], verbose=verbose)
    best.restore(model)
    return model, history, best.epoch


def _refit(cfg: TrainConfig, x: np.ndarray, y: np.ndarray, epochs: int, verbose: int,
           log: Callable[[str], None]) -> Any:
    """Train a fresh model on every training review (validation included) for ``epochs``."""
    import tf_keras as keras

    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg)
    logger = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: log(f"refit epoch {e + 1}: " + " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()))))
    model.fit(x, y, epochs=epochs, batch_size=cfg.batch_size, shuffle=True, callbacks=[logger], verbose=verbose)
    return model


def _per_epoch(history: dict[str, list[float]]) -> list[dict]:
    keys = sorted(history)
    n = len(history[keys[0]]) if keys else 0
    return [{"epoch": i + 1, **{k: round(float(history[k][i]), 5) for k in keys}} for i in range(n)]


def _epoch_callback(keep_best: bool, log: Callable[[str], None]) -> Any:
    """A tf-keras callback that logs one line per epoch and keeps the best epoch's weights."""
    import tf_keras as keras

    class BestEpoch(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best_acc = -1.0
            self.epoch: int | None = None
            self.weights: list | None = None

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            log(f"epoch {epoch + 1}: " + " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items())))
            acc = float(logs.get("val_accuracy", -1.0))
            if not keep_best or acc > self.best_acc:
                self.best_acc, self.epoch = acc, epoch + 1
                self.weights = self.model.get_weights()

        def restore(self, model: Any) -> None:
            if self.weights is not None:
                model.set_weights(self.weights)

    return BestEpoch()
