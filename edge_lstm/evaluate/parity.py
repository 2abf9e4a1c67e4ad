"""The parity harness: every exported artifact against the float Keras model.

Per backend: accuracy, its change against the reference, label agreement, |Δp| (max, mean), the
reviews that differ most, and whether scores depend on review order or batch composition.

A multi-class bundle (a softmax head) is judged on its top label and on every class's
probability: label agreement is top-label agreement, max |Δp| is over every class (and given per
class); the reviews' positive/negative labels are no truth for its classes, so it has no accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
from edge_lstm_device.runtime.agreement import Agreement, Thresholds, accuracy, label_agreement, tied_flips
from edge_lstm_device.runtime.agreement import failures as agreement_failures

from edge_lstm.evaluate.backends import Backend
from edge_lstm.train.data import Reviews

DEPENDENCE_TOLERANCE = 1e-6
ORDER_PROBE = 200  # reviews re-scored in reverse order
BATCH_PROBE = 64  # reviews re-scored one per batch (batched backends only)


@dataclass
class BackendResult:
    name: str
    precision: str
    accuracy: float | None  # None for a multi-class bundle
    accuracy_change: float | None
    label_agreement: float  # top-label agreement for a multi-class bundle
    max_abs_diff: float  # over every class for a multi-class bundle
    mean_abs_diff: float
    order_dependent: bool
    batch_dependent: bool
    batch_dependence_expected: bool
    most_different: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    max_abs_diff_per_class: dict[str, float] = field(default_factory=dict)  # multi-class only
    tied_flips: int = 0  # labels that differ where the reference's top two are within 2 × float max |Δp|
    reviews: int = 0

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


def _most_different(reviews: Reviews, reference: np.ndarray, scores: np.ndarray, diff: np.ndarray,
                    top: int, classes: tuple[str, ...]) -> list[dict]:
    """The reviews whose |Δp| is largest; for class probabilities, those of the reference's top class."""
    per_review = diff.max(axis=1) if diff.ndim == 2 else diff
    order = np.argsort(-per_review, kind="stable")[:top]
    out = []
    for i in order:
        shown = {}
        if diff.ndim == 2:
            c = int(reference[i].argmax())
            shown = {"class": classes[c] if c < len(classes) else str(c)}
            reference_p, score_p = reference[i, c], scores[i, c]
        else:
            reference_p, score_p = reference[i], scores[i]
        out.append({"id": reviews.ids[i], "label": int(reviews.labels[i]), **shown,
                    "reference": round(float(reference_p), 6), "score": round(float(score_p), 6),
                    "abs_diff": float(f"{per_review[i]:.3g}")})
    return out


def _per_class(diff: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    if diff.ndim != 2 or not len(diff):
        return {}
    names = classes if len(classes) == diff.shape[1] else tuple(str(c) for c in range(diff.shape[1]))
    return {name: float(f"{d:.3g}") for name, d in zip(names, diff.max(axis=0))}


def evaluate(
    backend: Backend, precision: str, dynamic_scheme: bool, rows: np.ndarray, reviews: Reviews,
    reference: np.ndarray, thresholds: Thresholds, top: int = 5, classes: tuple[str, ...] = (),
) -> tuple[BackendResult, np.ndarray]:
    """Score ``rows`` with ``backend`` and judge it against ``reference`` scores (``(n,)``, or
    ``(n, k)`` class probabilities named by ``classes``)."""
    scores = backend.score(rows)
    if scores.shape != reference.shape:
        raise ValueError(f"{backend.name} gives scores of shape {scores.shape}, the reference {reference.shape}")
    acc, reference_acc = accuracy(scores, reviews.labels), accuracy(reference, reviews.labels)
    diff = np.abs(scores.astype(np.float64) - reference)
    result = BackendResult(
        backend.name, precision, acc, None if acc is None else acc - reference_acc, label_agreement(scores, reference),
        float(diff.max()), float(diff.mean()), order_dependent(backend, rows, scores),
        batch_dependent(backend, rows, scores), dynamic_scheme,
        _most_different(reviews, reference, scores, diff, top, classes), max_abs_diff_per_class=_per_class(diff, classes),
        tied_flips=tied_flips(scores, reference, thresholds.float_max_abs_diff), reviews=len(scores),
    )
    result.failures = judge(result, thresholds)
    return result, scores


def judge(r: BackendResult, t: Thresholds) -> list[str]:
    """The thresholds ``r`` misses, in words."""
    measured = Agreement(r.reviews, r.label_agreement, r.max_abs_diff, r.mean_abs_diff, r.tied_flips, r.accuracy,
                         r.accuracy_change)
    failures = agreement_failures(measured, r.precision, t)
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
    reference_accuracy: float | None
    thresholds: Thresholds
    backends: list[BackendResult]
    scores: dict[str, np.ndarray]
    reference_name: str = "keras_float"
    classes: tuple[str, ...] = ()  # a multi-class bundle's class names

    @property
    def judged_on(self) -> str:
        """What label agreement and |Δp| mean here, in words."""
        if not self.classes:
            return "labels: positive when p >= 0.5; |Δp|: the positive class's probability"
        return (f"{len(self.classes)} classes ({', '.join(self.classes)}): labels agree = top-label agreement; "
                "max |Δp| over every class's probability; no accuracy (the reviews' labels are positive/negative)")

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.backends)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reviews": self.reviews, "source": self.source,
                "reference": {"name": self.reference_name,
                              "accuracy": None if self.reference_accuracy is None else round(self.reference_accuracy, 5)},
                **({"classes": list(self.classes)} if self.classes else {}), "judged_on": self.judged_on,
                "thresholds": asdict(self.thresholds),
                "backends": [{**asdict(b), "passed": b.passed} for b in self.backends]}


def run_parity(
    reviews: Reviews, rows: np.ndarray, reference: np.ndarray,
    backends: list[tuple[Backend, str, bool]], thresholds: Thresholds, source: str,
    log: Callable[[str], None] = print, reference_name: str = "keras_float", classes: tuple[str, ...] = (),
) -> ParityReport:
    """Judge each ``(backend, precision, dynamic_scheme)`` against the reference scores (``classes``:
    the class names of ``(n, k)`` class probabilities)."""
    results, scores = [], {reference_name: reference}
    for backend, precision, dynamic in backends:
        log(f"scoring {len(rows)} reviews with {backend.name}")
        result, scores[backend.name] = evaluate(backend, precision, dynamic, rows, reviews, reference, thresholds,
                                                classes=classes)
        results.append(result)
    return ParityReport(len(rows), source, accuracy(reference, reviews.labels), thresholds, results, scores,
                        reference_name, classes if np.ndim(reference) == 2 else ())
