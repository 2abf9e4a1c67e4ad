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
    checks_per_epoch: int = 4  # validation checks per epoch when keeping the best weights
    ema_momentum: float = 0.99  # also check a moving average of the weights (0: off)


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

    model, history, best = _fit_keeping_best(cfg, x_train, train_reviews.labels, verbose, log)
    test_loss, test_acc = model.evaluate(x_test, test_reviews.labels, batch_size=256, verbose=0)
    metrics = {
        "config": asdict(cfg),
        "epochs": _per_epoch(history.history),
        "validation_checks": best.checks,
        "kept_epoch": best.kept,
        "kept_weights": best.kind,
        "kept_val_accuracy": round(best.best_acc, 5),
        "selection": (f"highest val_accuracy among {cfg.checks_per_epoch} checks per epoch of the trained weights"
                      f" and their moving average (momentum {cfg.ema_momentum})"
                      if cfg.keep_best_epoch else "weights after the last epoch"),
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


def _fit_keeping_best(cfg: TrainConfig, x: np.ndarray, y: np.ndarray, verbose: int,
                      log: Callable[[str], None]) -> tuple[Any, Any, Any]:
    """Train on the first part, validate on the last ``validation_split`` (as Keras does) and
    return the model with the weights of its best validation check."""
    n_val = int(round(len(x) * cfg.validation_split))
    x_fit, y_fit, x_val, y_val = x[:-n_val], y[:-n_val], x[-n_val:], y[-n_val:]
    model = build_model(cfg)
    steps = -(-len(x_fit) // cfg.batch_size)
    best = _best_checkpoint_callback(x_val, y_val, cfg.checks_per_epoch if cfg.keep_best_epoch else 1, steps,
                                     cfg.ema_momentum if cfg.keep_best_epoch else 0.0, log)
    history = model.fit(x_fit, y_fit, epochs=cfg.epochs, batch_size=cfg.batch_size, validation_data=(x_val, y_val),
                        shuffle=True, callbacks=[best], verbose=verbose)
    if cfg.keep_best_epoch:
        best.restore(model)
    return model, history, best


def _per_epoch(history: dict[str, list[float]]) -> list[dict]:
    keys = sorted(history)
    n = len(history[keys[0]]) if keys else 0
    return [{"epoch": i + 1, **{k: round(float(history[k][i]), 5) for k in keys}} for i in range(n)]


def _best_checkpoint_callback(x_val: np.ndarray, y_val: np.ndarray, checks_per_epoch: int, steps: int,
                              ema_momentum: float, log: Callable[[str], None]) -> Any:
    """A tf-keras callback that measures validation accuracy ``checks_per_epoch`` times per epoch
    (the last at the epoch's end), logs one line per epoch, and keeps the best weights: the
    trained ones or, with ``ema_momentum``, their exponential moving average over batches."""
    import tf_keras as keras

    marks = {round(steps * k / checks_per_epoch) for k in range(1, checks_per_epoch)}

    def accuracy(model: Any) -> float:
        scores = model.predict(x_val, batch_size=512, verbose=0).reshape(-1)
        return float(np.mean((scores >= 0.5) == y_val))

    class BestCheckpoint(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best_acc, self.kept, self.kind, self.weights = -1.0, 0.0, "trained", None
            self.checks: list[dict] = []
            self._epoch = 0
            self._ema: list[np.ndarray] | None = None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if ema_momentum:
                weights = self.model.get_weights()
                self._ema = weights if self._ema is None else [
                    ema_momentum * e + (1 - ema_momentum) * w for e, w in zip(self._ema, weights)]
            if batch + 1 in marks:
                self._check(self._epoch + (batch + 1) / steps, accuracy(self.model))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            log(f"epoch {epoch + 1}: " + " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items())))
            self._check(float(epoch + 1), float(logs.get("val_accuracy", -1.0)))

        def _check(self, position: float, acc: float) -> None:
            check = {"epoch": round(position, 3), "val_accuracy": round(acc, 5)}
            self._consider(acc, position, "trained", self.model.get_weights())
            if self._ema is not None:
                raw = self.model.get_weights()
                self.model.set_weights(self._ema)
                check["ema_val_accuracy"] = round(ema_acc := accuracy(self.model), 5)
                self.model.set_weights(raw)
                self._consider(ema_acc, position, "moving average", self._ema)
            self.checks.append(check)

        def _consider(self, acc: float, position: float, kind: str, weights: list[np.ndarray]) -> None:
            if acc > self.best_acc:
                self.best_acc, self.kept, self.kind = acc, round(position, 3), kind
                self.weights = [w.copy() for w in weights]

        def restore(self, model: Any) -> None:
            model.set_weights(self.weights)
            log(f"kept the {self.kind} weights of epoch {self.kept} (val_accuracy {self.best_acc:.4f})")

    return BestCheckpoint()
