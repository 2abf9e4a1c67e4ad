"""The export's self-check: every artifact is loaded, run, and compared with the float model on
a few shipped reviews (gross disagreement only; ``edge-lstm parity`` holds the strict thresholds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from edge_lstm_device.runtime.scoring import top_labels

from edge_lstm.evaluate.backends import Backend


class SelfCheckError(Exception):
    """An artifact could not run, or disagrees grossly with the float model."""


@dataclass(frozen=True)
class Tolerance:
    """How far an artifact may stray from the float model on the self-check reviews."""

    max_abs_diff: float
    mean_abs_diff: float


# Gross disagreement only: labels near 0.5 may flip; the parity harness holds the strict thresholds.
FLOAT_TOLERANCE = Tolerance(max_abs_diff=1e-3, mean_abs_diff=1e-4)
INT8_TOLERANCE = Tolerance(max_abs_diff=0.25, mean_abs_diff=0.05)


@dataclass(frozen=True)
class Comparison:
    name: str
    n: int
    label_agreement: float
    max_abs_diff: float
    mean_abs_diff: float

    def to_dict(self) -> dict:
        return {"reviews": self.n, "label_agreement": round(self.label_agreement, 5),
                "max_abs_diff": float(f"{self.max_abs_diff:.3g}"), "mean_abs_diff": float(f"{self.mean_abs_diff:.3g}")}


def compare(name: str, reference: np.ndarray, scores: np.ndarray) -> Comparison:
    diff = np.abs(np.asarray(scores, np.float64) - np.asarray(reference, np.float64))
    agree = float(np.mean(top_labels(scores) == top_labels(reference)))
    return Comparison(name, len(reference), agree, float(diff.max()), float(diff.mean()))


def check(backend: Backend, rows: np.ndarray, reference: np.ndarray, tolerance: Tolerance) -> Comparison:
    """Run ``backend`` on ``rows``; raise :class:`SelfCheckError` beyond ``tolerance``."""
    scores = backend.score(rows)
    if scores.shape != reference.shape or not np.all(np.isfinite(scores)):
        raise SelfCheckError(f"{backend.name}: bad output (shape {scores.shape}, finite={np.isfinite(scores).all()})")
    result = compare(backend.name, reference, scores)
    if result.max_abs_diff > tolerance.max_abs_diff or result.mean_abs_diff > tolerance.mean_abs_diff:
        raise SelfCheckError(
            f"{backend.name} disagrees with the float model: max |Δp| {result.max_abs_diff:.3g}, "
            f"mean |Δp| {result.mean_abs_diff:.3g} (allowed: {tolerance.max_abs_diff}, {tolerance.mean_abs_diff})"
        )
    return result
