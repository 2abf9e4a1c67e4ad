"""The parity harness: every exported artifact against the float Keras model.

Per backend: accuracy, its change against the reference, label agreement, |Δp| (max, mean), the
reviews that differ most, and whether scores depend on review order or batch composition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from edge_lstm.evaluate.backends import Backend
from edge_lstm.train.data import Reviews

DEPENDENCE_TOLERANCE = 1e-6
ORDER_PROBE = 200  # reviews re-scored in reverse order
BATCH_PROBE = 64  # reviews re-scored one per batch (batched backends only)


@dataclass(frozen=True)
class Thresholds:
    float_min_agreement: float = 1.0
    float_max_abs_diff: float = 1e-5
    int8_min_agreement: float = 0.995
    int8_max_accuracy_change: float = 0.005


@dataclass
class BackendResult:
    name: str
    precision: str
    accuracy: float
    accuracy_change: float
    label_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    order_dependent: bool
    batch_dependent: bool
    batch_dependence_expected: bool
    most_different: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if len(a) else 0.0


def order_dependent(backend: Backend, rows: np.ndarray, scores: np.ndarray) -> bool:
    """Scores of the first reviews, re-scored in reverse order, must not change."""
    n = min(ORDER_PROBE, len(rows))
    again = backend.score(rows[:n][::-1])[::-1]
    return _max_diff(again, scores[:n]) > DEPENDENCE_TOLERANCE


def batch_dependent(backend: Backend, rows: np.ndarray, scores: np.ndarray) -> bool:
    """For batched backends: scoring reviews one per batch must give the same scores."""
    if not backend.batched:
        return False  # one review per call: its batch is always 1
    n = min(BATCH_PROBE, len(rows))
    alone = np.concatenate([backend.score(rows[i : i + 1]) for i in range(n)])
    return _max_diff(alone, scores[:n]) > DEPENDENCE_TOLERANCE


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((scores >= 0.5) == labels))


def _most_different(reviews: Reviews, reference: np.ndarray, scores: np.ndarray, diff: np.ndarray,
                    top: int) -> list[dict]:
    order = np.argsort(-diff, kind="stable")[:top]
    return [{"id": reviews.ids[i], "label": int(reviews.labels[i]), "reference": round(float(reference[i]), 6),
             "score": round(float(scores[i]), 6), "abs_diff": float(f"{diff[i]:.3g}")} for i in order]


def evaluate(
    backend: Backend, precision: str, dynamic_scheme: bool, rows: np.ndarray, reviews: Reviews,
    reference: np.ndarray, thresholds: Thresholds, top: int = 5,
) -> tuple[BackendResult, np.ndarray]:
    """Score ``rows`` with ``backend`` and judge it against ``reference`` scores."""
    scores = backend.score(rows)
    acc = accuracy(scores, reviews.labels)
    diff = np.abs(scores.astype(np.float64) - reference)
    result = BackendResult(
        backend.name, precision, acc, acc - accuracy(reference, reviews.labels), accuracy(scores, reference >= 0.5),
        float(diff.max()), float(diff.mean()), order_dependent(backend, rows, scores),
        batch_dependent(backend, rows, scores), dynamic_scheme, _most_different(reviews, reference, scores, diff, top),
    )
    result.failures = judge(result, thresholds)
    return result, scores


def judge(r: BackendResult, t: Thresholds) -> list[str]:
    """The thresholds ``r`` misses, in words."""
    failures = []
    if r.precision == "int8":
        if r.label_agreement < t.int8_min_agreement:
            failures.append(f"label agreement {r.label_agreement:.2%} < {t.int8_min_agreement:.2%}")
        if abs(r.accuracy_change) > t.int8_max_accuracy_change:
            failures.append(f"|Δaccuracy| {abs(r.accuracy_change) * 100:.2f} points > {t.int8_max_accuracy_change * 100:.2f}")
    else:
        if r.label_agreement < t.float_min_agreement:
            failures.append(f"label agreement {r.label_agreement:.2%} < {t.float_min_agreement:.2%}")
        if r.max_abs_diff > t.float_max_abs_diff:
            failures.append(f"max |Δp| {r.max_abs_diff:.3g} > {t.float_max_abs_diff:.3g}")
    expected = r.batch_dependent and r.batch_dependence_expected  # reordering changes batch mates too
    if r.order_dependent and not expected:
        failures.append("scores depend on review order (LSTM state not reset?)")
    if r.batch_dependent and not expected:
        failures.append("scores depend on batch composition")
    return failures


@dataclass
class ParityReport:
    reviews: int
    source: str
    reference_accuracy: float
    thresholds: Thresholds
    backends: list[BackendResult]
    scores: dict[str, np.ndarray]
    reference_name: str = "keras_float"

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.backends)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reviews": self.reviews, "source": self.source,
                "reference": {"name": self.reference_name, "accuracy": round(self.reference_accuracy, 5)},
                "thresholds": asdict(self.thresholds),
                "backends": [{**asdict(b), "passed": b.passed} for b in self.backends]}


def run_parity(
    reviews: Reviews, rows: np.ndarray, reference: np.ndarray,
    backends: list[tuple[Backend, str, bool]], thresholds: Thresholds, source: str,
    log: Callable[[str], None] = print, reference_name: str = "keras_float",
) -> ParityReport:
    """Judge each ``(backend, precision, dynamic_scheme)`` against the reference scores."""
    results, scores = [], {reference_name: reference}
    for backend, precision, dynamic in backends:
        log(f"scoring {len(rows)} reviews with {backend.name}")
        result, scores[backend.name] = evaluate(backend, precision, dynamic, rows, reviews, reference, thresholds)
        results.append(result)
    return ParityReport(len(rows), source, accuracy(reference, reviews.labels), thresholds, results, scores,
                        reference_name)
