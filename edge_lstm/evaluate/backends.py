"""One small interface over every way to score token rows: Keras, TFLite, ONNX.

``score(rows)`` takes ``(n, max_len)`` int32 token ids and returns ``n`` positive-class
probabilities, or ``(n, k)`` class probabilities for a softmax head of ``k`` classes. TFLite goes
through the device runtime's own code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from edge_lstm_device.runtime.model import read_verified
from edge_lstm_device.runtime.scoring import TFLiteScorer, as_scores


class Backend(Protocol):
    name: str
    batched: bool  # scores several reviews per call


    def score(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass
class KerasBackend:
    model: Any
    name: str = "keras_float"
    batch_size: int = 256
    batched: bool = True
    unpadded: bool = False  # give the model each review without its leading pads (an input length None)

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities; a logit head's outputs through the sigmoid, as every exported form gives them."""
        if self.unpadded:
            scores = as_scores(predict_unpadded(self.model, rows, self.batch_size))
        else:
            parts = [as_scores(np.asarray(self.model.predict_on_batch(rows[i : i + self.batch_size])))
                     for i in range(0, len(rows), self.batch_size)]
            scores = np.concatenate(parts) if parts else np.empty(0, np.float32)
        return (1 / (1 + np.exp(-scores.astype(np.float64)))).astype(np.float32) if head_is_logits(self.model) else scores


def predict_unpadded(model: Any, rows: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """A Keras model's outputs for pre-padded ``rows``, each given without its leading pad ids (as
    a model with input length None reads a review alone); rows with as many pads go together."""
    starts = np.minimum(np.argmax(rows != 0, axis=1) + (rows == 0).all(axis=1) * rows.shape[1], rows.shape[1] - 1)
    outputs: np.ndarray | None = None
    for start in np.unique(starts):
        group = np.flatnonzero(starts == start)
        for i in range(0, len(group), batch_size):
            part = group[i : i + batch_size]
            answer = np.asarray(model.predict_on_batch(rows[part, start:]))
            if outputs is None:
                outputs = np.empty((len(rows), *answer.shape[1:]), answer.dtype)
            outputs[part] = answer
    return outputs if outputs is not None else np.empty((0, 1), np.float32)


def head_is_logits(model: Any) -> bool:
    """Whether a Keras model's last layer gives logits (Dense without activation)."""
    return model.layers[-1].get_config().get("activation") == "linear"


@dataclass
class TFLiteBackend:
    scorer: TFLiteScorer
    name: str

    @classmethod
    def from_bytes(cls, content: bytes, name: str, threads: int = 1) -> TFLiteBackend:
        return cls(TFLiteScorer(content, threads), name)

    @property
    def batched(self) -> bool:
        return self.scorer.max_batch > 1

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.scorer.score(rows)


@dataclass
class NumpyBackend:
    """The device's numpy engine on a bundle's weights file (``numpy_weights``)."""

    scorer: Any  # edge_lstm_device.runtime.numpy_engine.engine.NumpyScorer
    name: str
    batched = True

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.scorer.score(rows)


@dataclass
class OnnxBackend:
    session: Any
    name: str
    batch_size: int = 64
    batched: bool = True

    @classmethod
    def from_bytes(cls, content: bytes, name: str, threads: int = 1, batch_size: int = 64) -> OnnxBackend:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        return cls(session, name, batch_size)

    def score(self, rows: np.ndarray) -> np.ndarray:
        feed = self.session.get_inputs()[0].name
        parts = [
            as_scores(self.session.run(None, {feed: rows[i : i + self.batch_size]})[0])
            for i in range(0, len(rows), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty(0, np.float32)


def open_artifact(bundle_dir: Path, name: str, entry: dict, threads: int = 1, batch_size: int = 64) -> Backend:
    """A backend for one manifest artifact, its file checked against the entry's sha256 when the
    entry has one (TFLite runs through the device runtime)."""
    content = read_verified(bundle_dir, entry) if "sha256" in entry else (Path(bundle_dir) / entry["file"]).read_bytes()
    if entry["format"] == "tflite":
        return TFLiteBackend.from_bytes(content, name, threads)
    return OnnxBackend.from_bytes(content, name, threads, batch_size)
