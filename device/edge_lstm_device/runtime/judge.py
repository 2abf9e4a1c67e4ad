"""One model judged against the float model's reference scores with parity's thresholds: the
verdict ``verify`` prints and ``calibrate`` chooses by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from edge_lstm_device.bundle.reference_scores import ReferenceScores
from edge_lstm_device.runtime.agreement import Agreement, Thresholds, failures, measure


class TextScorer(Protocol):
    def scores(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class ModelVerdict:
    """One model's agreement with the float model on every set, and the thresholds it misses."""

    name: str
    precision: str  # "int8" or "float32"
    runs_in: str  # the interpreter (or onnxruntime) and its version
    sets: dict[str, Agreement]
    failures: list[str] = field(default_factory=list)  # "short: label agreement 99.00% < 99.50%"

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """Labels agree per set, in words."""
        return ", ".join(f"{a.label_agreement:.2%} of {a.texts} {name}" for name, a in self.sets.items())

    def to_dict(self) -> dict:
        return {"name": self.name, "precision": self.precision, "runs_in": self.runs_in, "passed": self.passed,
                "failures": self.failures, "sets": {name: a.to_dict() for name, a in self.sets.items()}}


def judge_scorer(scorer: TextScorer, name: str, precision: str, runs_in: str, reference: ReferenceScores,
                 thresholds: Thresholds = Thresholds()) -> ModelVerdict:
    """Score every reference set with ``scorer`` and judge it."""
    verdict = ModelVerdict(name, precision, runs_in, {})
    for text_set in reference.sets:
        result = measure(scorer.scores(text_set.texts), text_set.scores, text_set.labels, thresholds)
        verdict.sets[text_set.name] = result
        verdict.failures += [f"{text_set.name}: {why}" for why in failures(result, precision, thresholds)]
    return verdict
