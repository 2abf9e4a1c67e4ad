"""Score token rows with a TFLite model, one review at a time, state reset before each.

The fused TFLite LSTM keeps its hidden and cell state in variable tensors that survive
``invoke()``: without ``reset_all_variables()`` a review's score depends on the reviews scored
before it (DEVELOPERS.md). Interpreters are not thread-safe, so each model holds a lock.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edge_lstm_device.interpreter import interpreter_class


class ModelShapeError(ValueError):
    """The TFLite model does not take (1, max_len) int32 token ids."""


class ModelRunError(ValueError):
    """The interpreter failed while scoring a review."""


class TFLiteScorer:
    """Positive-class probabilities from a TFLite model of the IMDB LSTM."""

    def __init__(self, model_content: bytes, threads: int = 1, prefer: str | None = None) -> None:
        cls, self.interpreter_dist = interpreter_class(prefer)
        self.model_content, self.threads = model_content, threads
        self.interpreter: Any = cls(model_content=model_content, num_threads=threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        shape = tuple(int(d) for d in self._input["shape"])
        if len(shape) != 2 or shape[0] != 1 or self._input["dtype"] != np.int32:
            raise ModelShapeError(f"expected int32 input of shape (1, N), got {shape} {self._input['dtype']}")
        self.max_len = shape[1]
        self._scale, self._zero_point = self._output["quantization"]
        self._lock = threading.Lock()

    def _probability(self, raw: np.ndarray) -> float:
        value = float(raw.reshape(-1)[0])
        if self._scale:  # quantized output: dequantize
            value = (value - self._zero_point) * self._scale
        if not 0.0 <= value <= 1.0:  # also NaN: the model's last layer is not a sigmoid
            raise ModelRunError(f"the model's output {value:.4g} is not a probability (expected a sigmoid output)")
        return value

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities for ``(n, max_len)`` int32 rows; the LSTM state is reset per row."""
        rows = np.asarray(rows, dtype=np.int32)
        if rows.ndim != 2 or rows.shape[1] != self.max_len:
            raise ModelShapeError(f"expected rows of {self.max_len} ids, got shape {rows.shape}")
        out = np.empty(len(rows), dtype=np.float32)
        with self._lock:
            for i, row in enumerate(rows):
                self.interpreter.reset_all_variables()
                self.interpreter.set_tensor(self._input["index"], row[None, :])
                try:
                    self.interpreter.invoke()
                except RuntimeError as err:
                    raise ModelRunError(f"the model failed on a review: {' '.join(str(err).split())[:200]}") from err
                out[i] = self._probability(self.interpreter.get_tensor(self._output["index"]))
        return out
