"""Score token rows with a TFLite model: B reviews per ``invoke()`` where the model's batch is
resizable (the loop form), else one at a time; state reset before each call.

The fused TFLite LSTM keeps its hidden and cell state in variable tensors that survive
``invoke()``: without ``reset_all_variables()`` a review's score depends on the reviews scored
before it (docs/decisions/lstm-state-reset.md). A batched model scores each row on its own (its score does not
depend on its batch mates), so rows are grouped by length: rows of one call then run nearly the
same steps. Interpreters are not thread-safe, so each model holds a lock.

Scores are ``(n,)`` positive-class probabilities for a binary model, ``(n, k)`` class
probabilities for a model with a softmax head of ``k`` classes.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edge_lstm_device.bundle.tflite_file import verify_tflite
from edge_lstm_device.runtime.interpreters import interpreter_class

MAX_BATCH = 16  # reviews per invoke(); larger batches were no faster per review (docs/loop_variants.md)


class ModelShapeError(ValueError):
    """The TFLite model does not take (1, max_len) int32 token ids."""


class ModelRunError(ValueError):
    """The interpreter failed while scoring a review."""


def top_labels(scores: np.ndarray) -> np.ndarray:
    """Each review's label: 1 (positive) when p >= 0.5 for ``(n,)`` scores; the top class's
    index for ``(n, k)`` class probabilities."""
    scores = np.asarray(scores)
    return scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(np.int64)


def as_scores(raw: np.ndarray) -> np.ndarray:
    """A model's ``(n, units)`` outputs as scores: ``(n,)`` for one unit, ``(n, k)`` for k."""
    values = np.asarray(raw).reshape(len(raw), -1)
    return values[:, 0] if values.shape[1] == 1 else values


class TFLiteScorer:
    """Positive-class probabilities (or class probabilities) from a TFLite model of the IMDB LSTM."""

    def __init__(self, model_content: bytes, threads: int = 1, prefer: str | None = None,
                 max_batch: int = MAX_BATCH) -> None:
        cls, self.interpreter_dist = interpreter_class(prefer)
        self.model_content, self.threads = model_content, threads
        verify_tflite(model_content)  # the interpreters trust every offset in the file
        self.interpreter: Any = cls(model_content=model_content, num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        shape = tuple(int(d) for d in self._input["shape"])
        if len(shape) != 2 or shape[0] != 1 or self._input["dtype"] != np.int32:
            raise ModelShapeError(f"expected int32 input of shape (1, N), got {shape} {self._input['dtype']}")
        self.max_len = shape[1]
        signature = self._input.get("shape_signature", self._input["shape"])
        self.max_batch = max_batch if int(signature[0]) == -1 else 1  # a fixed (1, N) input: one per call
        self._batch = 1  # the input's current batch size
        self._scale, self._zero_point = self._output["quantization"]
        self.classes = int(self._output["shape"][-1]) if len(self._output["shape"]) == 2 else 1  # k of a softmax head
        self._lock = threading.Lock()

    def _probabilities(self, raw: np.ndarray) -> np.ndarray:
        """A call's outputs as probabilities (dequantized if the output is int8): ``(n,)``, or ``(n, k)``."""
        values = as_scores(raw).astype(np.float32)
        if self._scale:  # quantized output: dequantize
            values = (values - self._zero_point) * np.float32(self._scale)
        bad = ~((values >= 0.0) & (values <= 1.0))  # also NaN: the model's last layer is not a sigmoid
        if bad.any():
            raise ModelRunError(f"the model's output {values[bad][0]:.4g} is not a probability (expected a sigmoid or softmax output)")
        return values

    def _invoke(self, rows: np.ndarray) -> np.ndarray:
        """Raw outputs of one call on ``rows`` (at most ``max_batch``); the caller holds the lock."""
        if len(rows) != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [len(rows), self.max_len])
            self.interpreter.allocate_tensors()
            self._batch = len(rows)
        self.interpreter.reset_all_variables()
        self.interpreter.set_tensor(self._input["index"], rows)
        try:
            self.interpreter.invoke()
        except RuntimeError as err:
            raise ModelRunError(f"the model failed on a review: {' '.join(str(err).split())[:200]}") from err
        return self.interpreter.get_tensor(self._output["index"])

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities for ``(n, max_len)`` int32 rows, ``max_batch`` per call, rows of similar
        length together; the LSTM state is reset before every call."""
        rows = np.asarray(rows, dtype=np.int32)
        if rows.ndim != 2 or rows.shape[1] != self.max_len:
            raise ModelShapeError(f"expected rows of {self.max_len} ids, got shape {rows.shape}")
        shape = (len(rows),) if self.classes == 1 else (len(rows), self.classes)
        if len(rows) <= 1:  # one call, nothing to group
            with self._lock:
                return self._probabilities(self._invoke(rows)) if len(rows) else np.empty(shape, np.float32)
        out = np.empty(shape, dtype=np.float32)
        order = np.argsort(np.count_nonzero(rows, axis=1), kind="stable") if self.max_batch > 1 else np.arange(len(rows))
        with self._lock:
            for first in range(0, len(rows), self.max_batch):
                chunk = order[first : first + self.max_batch]
                out[chunk] = self._probabilities(self._invoke(rows[chunk]))
        return out
