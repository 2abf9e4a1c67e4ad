"""The numpy engine: a bundle's recurrent model scored with numpy alone, for the boards and systems
no TFLite interpreter wheel reaches (armv6, 32-bit Trixie, riscv64). Same interface as
``runtime.TFLiteScorer``: ``score(rows)`` gives ``(n,)`` positive-class probabilities, or
``(n, k)`` for a softmax head.

The weights come from the bundle's ``model_numpy.npz`` (``numpy_weights``): int8 as the loop
form's dynamic-range file holds them, or float32. ``arithmetic="int8"`` quantizes activations as
the dynamic-range kernels do and scores like ``model_int8_loop.tflite`` (within 1.3e-4 on the
shipped reviews); the default, ``"float"``, runs the dequantized weights with float activations:
the same agreement with the float model in 0.6 of the time (docs/decisions/numpy-engine.md).
Rows are grouped by length, ``max_batch`` per call; a row's score does not depend on its batch
mates (its start, steps and the quantization of its activations are its own).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_lstm_device.bundle.manifest import NUMPY_WEIGHTS, BundleError, read_verified
from edge_lstm_device.bundle.numpy_weights import WeightsError, read
from edge_lstm_device.runtime.numpy_engine import runner as numpy_runner
from edge_lstm_device.runtime.numpy_engine.network import Network, build
from edge_lstm_device.runtime.scoring import ModelRunError, ModelShapeError, as_scores

ENGINE = "numpy"
ARITHMETIC = "float"  # int8 weights dequantized: as close to the float model as int8 arithmetic, 0.6x its time (docs/decisions/numpy-engine.md)
MAX_BATCH = 64  # rows per call: numpy's per-step overhead is per call, its products grow with the rows


class NumpyScorer:
    """Probabilities from a numpy weights file (``WeightsError`` when the file is not one).
    ``threads`` is kept for ``TFLiteScorer``'s interface: numpy's BLAS takes its threads from the
    environment (``OPENBLAS_NUM_THREADS``)."""

    interpreter_dist = ENGINE

    def __init__(self, model_content: bytes, threads: int = 1, max_batch: int = MAX_BATCH,
                 arithmetic: str = ARITHMETIC) -> None:
        self.model_content, self.threads, self.max_batch = model_content, threads, max_batch
        structure, tensors = read(model_content)
        self.network: Network = build(structure, tensors, arithmetic)
        self.precision = str(structure.get("precision", "unknown"))
        self.arithmetic = arithmetic
        self.max_len = self.network.max_len
        self.classes = self.network.classes

    def _call(self, rows: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # exp of a large negative logit: the probability is 0 or 1 either way
            values = as_scores(numpy_runner.score(self.network, rows))
        bad = ~((values >= 0.0) & (values <= 1.0))  # also NaN
        if bad.any():
            raise ModelRunError(f"the model's output {values[bad][0]:.4g} is not a probability")
        return values

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities for ``(n, max_len)`` int32 rows, ``max_batch`` per call, rows of similar length together."""
        rows = np.asarray(rows, dtype=np.int32)
        if rows.ndim != 2 or rows.shape[1] != self.max_len:
            raise ModelShapeError(f"expected rows of {self.max_len} ids, got shape {rows.shape}")
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self.network.embedding.values)):
            raise ModelRunError(f"token ids must be in [0, {len(self.network.embedding.values)})")
        shape = (len(rows),) if self.classes == 1 else (len(rows), self.classes)
        out = np.empty(shape, np.float32)
        order = np.argsort(np.count_nonzero(rows, axis=1), kind="stable")
        for first in range(0, len(rows), self.max_batch):
            chunk = order[first : first + self.max_batch]
            out[chunk] = self._call(rows[chunk])
        return out


def load_scorer(bundle_dir: Path, manifest: dict, threads: int = 1) -> NumpyScorer:
    """The engine on a bundle's weights file, read as its manifest pins it (``BundleError`` if the
    bundle has none, or a file the engine cannot run)."""
    if NUMPY_WEIGHTS not in manifest:
        raise BundleError(f"{bundle_dir} has no numpy weights (export it again with edge-lstm export --int8)")
    try:
        return NumpyScorer(read_verified(bundle_dir, manifest[NUMPY_WEIGHTS]), threads)
    except WeightsError as err:
        raise BundleError(f"{manifest[NUMPY_WEIGHTS]['file']}: {err}") from err


def chosen(interpreter: str | None, model: str | None = None) -> bool:
    """Whether the numpy engine runs: asked for (``--interpreter numpy``, or its weights as the
    model), or no model asked for and no TFLite interpreter installed."""
    from edge_lstm_device.runtime.interpreters import installed

    return interpreter == ENGINE or model == NUMPY_WEIGHTS or (interpreter is None and model is None and not installed())


def why(asked: bool) -> str:
    """Why the numpy engine runs (``info``'s reason)."""
    if asked:
        return "asked for (--interpreter numpy)"
    return "no TFLite interpreter is installed (ai-edge-litert or tflite-runtime): numpy runs the bundle's int8 weights"


def version() -> str:
    """``numpy X.Y.Z``: what runs the model (``info``, ``bench``)."""
    return f"{ENGINE} {np.__version__}"
