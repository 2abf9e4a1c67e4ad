"""Build and train the IMDB LSTM of the reference lecture (tf-keras, Keras 2 API).

tf-keras, not Keras 3: only its LSTM converts to TFLite's fused LSTM op (docs/decisions/tf-keras-fixed-batch.md).
TensorFlow is imported inside the functions, never at package import time.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_lstm import bundle
from edge_lstm.train.data import Reviews
from edge_lstm.train.vocabulary import fit_tokenizer


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
    dropout: float = 0.5  # dropout on the LSTM's inputs while training (inference is unchanged)
    validation: str = "movies"  # "movies": held-out movies, like the test split; "shuffled": Keras-style
    refit: bool = False  # then retrain on all reviews up to the kept checkpoint's position


def build_model(cfg: TrainConfig) -> Any:
    """Embedding -> LSTM -> Dense(1, sigmoid), compiled with adam and binary cross-entropy."""
    import tf_keras as keras

    model = keras.Sequential(
        [
            keras.layers.Embedding(cfg.num_words, cfg.embedding_dim, input_length=cfg.max_len),
            keras.layers.LSTM(cfg.lstm_units, dropout=cfg.dropout),
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


VALIDATION_MODES = ("movies", "shuffled")
TRAINED, MOVING_AVERAGE = "trained", "moving average"  # the kinds of weights a checkpoint keeps


def _review_number(review_id: str) -> int:
    """``train/pos/123_9`` -> 123 (the review's number within its class folder)."""
    stem = review_id.rsplit("/", 1)[-1].split("_", 1)[0]
    return int(stem) if stem.isdigit() else -1


def split_validation(reviews: Reviews, fraction: float, mode: str, seed: int) -> tuple[Reviews, Reviews]:
    """Split off ``fraction`` of the reviews for validation; return (fit, validation), fit shuffled.

    aclImdb numbers the reviews of one movie consecutively (up to 30 per movie), and its test
    split has other movies than its train split. ``movies`` holds out the highest-numbered
    ``fraction`` of each class, so validation reviews are (nearly all) of movies never trained on,
    as in the test split. ``shuffled`` holds out a random ``fraction``, which shares movies with
    the fitted part and so rewards memorising them.
    """
    if mode not in VALIDATION_MODES:
        raise ValueError(f"validation mode must be one of {VALIDATION_MODES}, not {mode!r}")
    rng = np.random.default_rng(seed)
    if mode == "shuffled":
        order = rng.permutation(len(reviews))
        n_val = max(1, int(round(len(reviews) * fraction)))
        fit, held = order[:-n_val], order[-n_val:]
    else:
        fit_parts, held_parts = [], []
        for label in (0, 1):
            members = np.flatnonzero(reviews.labels == label)
            members = members[np.argsort([_review_number(reviews.ids[i]) for i in members], kind="stable")]
            n_val = max(1, int(round(len(members) * fraction)))
            fit_parts.append(members[: len(members) - n_val])
            held_parts.append(members[len(members) - n_val:])
        fit = rng.permutation(np.concatenate(fit_parts))
        held = np.sort(np.concatenate(held_parts))
    return reviews.subset(fit), reviews.subset(held)


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

    fit_reviews, val_reviews = split_validation(train_reviews, cfg.validation_split, cfg.validation, cfg.seed)
    tokenizer = fit_tokenizer(fit_reviews.texts + val_reviews.texts, cfg.num_words, cfg.max_len)
    x_fit, x_val = tokenizer.encode_batch(fit_reviews.texts), tokenizer.encode_batch(val_reviews.texts)
    x_test = tokenizer.encode_batch(test_reviews.texts)
    log(f"tokenized {len(x_fit) + len(x_val)} training and {len(x_test)} test reviews")

    model, history, best = _fit_keeping_best(cfg, (x_fit, fit_reviews.labels), (x_val, val_reviews.labels),
                                             verbose, log)
    refit = None
    if cfg.refit and cfg.keep_best_epoch:
        x_all = np.concatenate([x_fit, x_val])
        y_all = np.concatenate([fit_reviews.labels, val_reviews.labels])
        order = np.random.default_rng(cfg.seed).permutation(len(x_all))
        model, refit = _refit(cfg, x_all[order], y_all[order], best.kept, best.kind, verbose, log)
    test_loss, test_acc = model.evaluate(x_test, test_reviews.labels, batch_size=256, verbose=0)
    metrics = _metrics(cfg, history, best, refit, (test_loss, test_acc), (len(x_fit), len(x_val), len(x_test)),
                       data_sha256, started)
    bundle.write_trained(out_dir, model, tokenizer, metrics)
    return metrics


def _metrics(cfg: TrainConfig, history: Any, best: Any, refit: dict | None, test: tuple[float, float],
             counts: tuple[int, int, int], data_sha256: str, started: float) -> dict:
    """metrics.json: the config, every epoch and validation check, the kept weights, the test
    split's ``(loss, accuracy)``, the ``(fit, validation, test)`` review counts, the data's hash."""
    test_loss, test_acc = test
    return {
        "config": asdict(cfg),
        "epochs": _per_epoch(history.history),
        "validation_checks": best.checks,
        "kept_epoch": best.kept,
        "kept_weights": best.kind,
        "kept_val_accuracy": round(best.best_acc, 5),
        "selection": (f"highest val_accuracy among {cfg.checks_per_epoch} checks per epoch of the trained weights"
                      f" and their moving average (momentum {cfg.ema_momentum})"
                      if cfg.keep_best_epoch else "weights after the last epoch"),
        "refit": refit,
        "test_accuracy": round(float(test_acc), 5),
        "test_loss": round(float(test_loss), 5),
        "n_train": counts[0],
        "n_validation": counts[1],
        "n_test": counts[2],
        "data_sha256": data_sha256,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "seed": cfg.seed,
        "versions": library_versions(),
    }


def _fit_keeping_best(cfg: TrainConfig, fit: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                      verbose: int, log: Callable[[str], None]) -> tuple[Any, Any, Any]:
    """Train on ``fit``, validate on ``val`` and return the model with the weights of its best
    validation check."""
    (x_fit, y_fit), (x_val, y_val) = fit, val
    model = build_model(cfg)
    steps = -(-len(x_fit) // cfg.batch_size)
    best = _best_checkpoint_callback(x_val, y_val, cfg.checks_per_epoch if cfg.keep_best_epoch else 1, steps,
                                     cfg.ema_momentum if cfg.keep_best_epoch else 0.0, log)
    history = model.fit(x_fit, y_fit, epochs=cfg.epochs, batch_size=cfg.batch_size, validation_data=(x_val, y_val),
                        shuffle=True, callbacks=[best], verbose=verbose)
    if cfg.keep_best_epoch:
        best.restore(model)
    return model, history, best


def _refit(cfg: TrainConfig, x: np.ndarray, y: np.ndarray, epochs: float, kind: str, verbose: int,
           log: Callable[[str], None]) -> tuple[Any, dict]:
    """Retrain from scratch on all of ``x`` for ``epochs`` (fractions allowed) and return the model
    with the kind of weights the validation chose (trained, or their moving average)."""
    import tf_keras as keras

    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg)
    steps = round(epochs * -(-len(x) // cfg.batch_size))
    momentum = cfg.ema_momentum if kind == MOVING_AVERAGE else 0.0
    log(f"refitting on all {len(x)} reviews for {epochs} epochs ({steps} steps)")
    stopper = _stop_after_callback(steps, momentum, log)
    history = model.fit(x, y, epochs=math.ceil(epochs), batch_size=cfg.batch_size, shuffle=True,
                        callbacks=[stopper], verbose=verbose)
    if stopper.ema is not None:
        model.set_weights(stopper.ema)
    return model, {"reviews": len(x), "epochs": epochs, "steps": steps, "weights": kind,
                   "epoch_log": _per_epoch(history.history)}


def _moving_average(ema: list[np.ndarray] | None, weights: list[np.ndarray], momentum: float) -> list[np.ndarray]:
    if ema is None:
        return weights
    return [momentum * e + (1 - momentum) * w for e, w in zip(ema, weights)]


def _stop_after_callback(steps: int, ema_momentum: float, log: Callable[[str], None]) -> Any:
    """A tf-keras callback that stops training after ``steps`` batches, keeping (with
    ``ema_momentum``) the moving average of the weights as ``.ema``."""
    import tf_keras as keras

    class StopAfter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.done, self.ema = 0, None

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.done += 1
            if ema_momentum:
                self.ema = _moving_average(self.ema, self.model.get_weights(), ema_momentum)
            if self.done >= steps:
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            log(f"refit epoch {epoch + 1}: " + " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items())))

    return StopAfter()


def _per_epoch(history: dict[str, list[float]]) -> list[dict]:
    keys = sorted(history)
    n = len(history[keys[0]]) if keys else 0
    return [{"epoch": i + 1, **{k: round(float(history[k][i]), 5) for k in keys}} for i in range(n)]


class _KeptWeights:
    """The best validation check so far and every check made: the state and bookkeeping of the
    tf-keras callback :func:`_best_checkpoint_callback` makes (a mixin: tf-keras is imported
    there). ``accuracy(model)`` measures a check; ``log`` takes one line."""

    def _start(self, accuracy: Callable[[Any], float], log: Callable[[str], None]) -> None:
        self.best_acc, self.kept, self.kind, self.weights = -1.0, 0.0, TRAINED, None
        self.checks: list[dict] = []
        self._epoch = 0
        self._ema: list[np.ndarray] | None = None
        self._accuracy, self._log = accuracy, log

    def _check(self, position: float, acc: float) -> None:
        check = {"epoch": round(position, 3), "val_accuracy": round(acc, 5)}
        raw = self.model.get_weights()
        self._consider(acc, position, TRAINED, raw)
        if self._ema is not None:
            self.model.set_weights(self._ema)
            check["ema_val_accuracy"] = round(ema_acc := self._accuracy(self.model), 5)
            self.model.set_weights(raw)
            self._consider(ema_acc, position, MOVING_AVERAGE, self._ema)
        self.checks.append(check)

    def _consider(self, acc: float, position: float, kind: str, weights: list[np.ndarray]) -> None:
        if acc > self.best_acc:
            self.best_acc, self.kept, self.kind = acc, round(position, 3), kind
            self.weights = [w.copy() for w in weights]

    def restore(self, model: Any) -> None:
        model.set_weights(self.weights)
        self._log(f"kept the {self.kind} weights of epoch {self.kept} (val_accuracy {self.best_acc:.4f})")


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

    class BestCheckpoint(_KeptWeights, keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._start(accuracy, log)

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if ema_momentum:
                self._ema = _moving_average(self._ema, self.model.get_weights(), ema_momentum)
            if batch + 1 in marks:
                self._check(self._epoch + (batch + 1) / steps, accuracy(self.model))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            log(f"epoch {epoch + 1}: " + " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items())))
            self._check(float(epoch + 1), float(logs.get("val_accuracy", -1.0)))

    return BestCheckpoint()
