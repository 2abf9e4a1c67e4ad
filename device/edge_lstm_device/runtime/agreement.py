"""How far a model's scores may be from the float model's: the thresholds and measures of
parity, defined once for the host's ``edge-lstm parity`` and the device's ``verify``.

Scores are ``(n,)`` positive-class probabilities or ``(n, k)`` class probabilities; a label is
``runtime.top_labels`` of them (p >= 0.5, or the top class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_lstm_device.runtime.scoring import top_labels


@dataclass(frozen=True)
class Thresholds:
    float_min_agreement: float = 1.0
    float_max_abs_diff: float = 1e-5
    int8_min_agreement: float = 0.995
    int8_max_accuracy_change: float = 0.005


@dataclass(frozen=True)
class Agreement:
    """One model's scores against the reference's on one set of texts."""

    texts: int
    label_agreement: float  # top-label agreement for class probabilities
    max_abs_diff: float  # over every class for class probabilities
    mean_abs_diff: float
    tied_flips: int  # labels that differ where the reference is within 2 × float max |Δp| of a tie
    accuracy: float | None = None  # against the texts' known labels (binary scores only)
    accuracy_change: float | None = None

    def to_dict(self) -> dict:
        return {"texts": self.texts, "label_agreement": round(self.label_agreement, 5),
                "max_abs_diff": float(f"{self.max_abs_diff:.3g}"), "mean_abs_diff": float(f"{self.mean_abs_diff:.3g}"),
                "tied_flips": self.tied_flips,
                **({} if self.accuracy is None else {"accuracy": round(self.accuracy, 5),
                                                     "accuracy_change": round(self.accuracy_change or 0.0, 5)})}


def label_agreement(scores: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean(top_labels(scores) == top_labels(reference))) if len(scores) else 1.0


def accuracy(scores: np.ndarray, labels: np.ndarray | None) -> float | None:
    """Against positive/negative labels; None for class probabilities (no truth for their classes)
    or texts without labels."""
    if labels is None or np.ndim(scores) == 2 or not len(scores):
        return None
    return float(np.mean(top_labels(scores) == labels))


def tied_flips(scores: np.ndarray, reference: np.ndarray, tolerance: float) -> int:
    """Labels that differ where the reference is within ``2 × tolerance`` of a tie between its top
    two labels (binary: p within ``tolerance`` of 0.5): a |Δp| within ``tolerance`` may swap them."""
    reference = np.asarray(reference, np.float64)
    if reference.ndim == 2:
        top_two = np.sort(reference, axis=1)[:, -2:]
        margin = top_two[:, 1] - top_two[:, 0]
    else:
        margin = np.abs(2 * reference - 1)
    return int(np.sum((top_labels(scores) != top_labels(reference)) & (margin <= 2 * tolerance)))


def measure(scores: np.ndarray, reference: np.ndarray, labels: np.ndarray | None = None,
            thresholds: Thresholds = Thresholds()) -> Agreement:
    """``scores`` against ``reference`` (same shape); accuracy where ``labels`` are known."""
    scores, reference = np.asarray(scores), np.asarray(reference, np.float64)
    if scores.shape != reference.shape:
        raise ValueError(f"scores of shape {scores.shape} against a reference of shape {reference.shape}")
    diff = np.abs(scores.astype(np.float64) - reference)
    acc, reference_acc = accuracy(scores, labels), accuracy(reference, labels)
    return Agreement(len(scores), label_agreement(scores, reference), float(diff.max()) if diff.size else 0.0,
                     float(diff.mean()) if diff.size else 0.0, tied_flips(scores, reference, thresholds.float_max_abs_diff),
                     acc, None if acc is None else acc - reference_acc)


def failures(result: Agreement, precision: str, thresholds: Thresholds) -> list[str]:
    """The thresholds ``result`` misses, in words (``precision``: "int8" or "float32")."""
    t, out = thresholds, []
    if precision == "int8":
        if result.label_agreement < t.int8_min_agreement:
            out.append(f"label agreement {result.label_agreement:.2%} < {t.int8_min_agreement:.2%}")
        if result.accuracy_change is not None and abs(result.accuracy_change) > t.int8_max_accuracy_change:
            out.append(f"|Δaccuracy| {abs(result.accuracy_change) * 100:.2f} points > "
                       f"{t.int8_max_accuracy_change * 100:.2f}")
        return out
    agreeing = round(result.label_agreement * result.texts) + result.tied_flips
    untied = agreeing / result.texts if result.texts else result.label_agreement
    if untied < t.float_min_agreement:
        out.append(f"label agreement {result.label_agreement:.3%} < {t.float_min_agreement:.2%}" + (
            f" ({result.tied_flips} labels tied within max |Δp| counted as agreeing)" if result.tied_flips else ""))
    if result.max_abs_diff > t.float_max_abs_diff:
        out.append(f"max |Δp| {result.max_abs_diff:.3g} > {t.float_max_abs_diff:.3g}")
    return out
