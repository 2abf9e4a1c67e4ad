"""The parity harness on class probabilities ((n, k) scores) and on labels tied within the float tolerance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_lstm.evaluate import report as report_files
from edge_lstm.evaluate.parity import Thresholds, run_parity
from edge_lstm.train.data import Reviews

CLASSES = ("low", "mid", "high")


@dataclass
class _Fixed:
    """A backend giving fixed scores per row (row i's scores are ``table[i]``, whatever its batch)."""

    name: str
    table: np.ndarray
    batched: bool = True
    leak: float = 0.0  # added to every score of a batch of more than one row: batch-dependent

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.table[rows[:, 0]] + (self.leak if len(rows) > 1 else 0.0)


def _reviews(n: int) -> tuple[Reviews, np.ndarray]:
    rows = np.arange(n, dtype=np.int32)[:, None].repeat(4, axis=1)
    return Reviews([f"review {i}" for i in range(n)], np.arange(n) % 2, [f"test/pos/{i}_8" for i in range(n)]), rows


def _probabilities(n: int, seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, len(CLASSES)))
    return (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)


def test_class_probabilities_are_judged_on_top_labels_and_every_class() -> None:
    reviews, rows = _reviews(200)
    reference = _probabilities(200, 0)
    int8 = reference.copy()
    int8[0] = int8[0][::-1]  # one review's top label moves
    result = run_parity(reviews, rows, reference, [(_Fixed("float", reference), "float32", False),
                                                   (_Fixed("int8", int8), "int8", False),
                                                   (_Fixed("leaky", reference, leak=1e-3), "float32", False)],
                        Thresholds(), "test", log=lambda _: None, classes=CLASSES)
    by_name = {b.name: b for b in result.backends}
    assert result.reference_accuracy is None and by_name["int8"].accuracy is None
    assert by_name["float"].passed and by_name["float"].label_agreement == 1.0
    assert by_name["int8"].label_agreement == 0.995 and by_name["int8"].passed
    assert set(by_name["int8"].max_abs_diff_per_class) == set(CLASSES)
    assert by_name["leaky"].batch_dependent and "scores depend on batch composition" in by_name["leaky"].failures
    assert result.to_dict()["classes"] == list(CLASSES)
    assert "top-label agreement" in report_files.table(result)
    assert any(f"({name})" in report_files.markdown(result) for name in CLASSES)  # the class whose |Δp| is shown


def test_a_float_label_flip_within_the_tolerance_is_a_tie() -> None:
    """A float form may swap classes the reference holds within 2 × max |Δp| of each other; beyond, it fails."""
    reviews, rows = _reviews(4)
    reference = np.float32([[0.5, 0.5 - 4e-6, 4e-6], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    tied = reference.copy()
    tied[0] = [0.5 - 4e-6, 0.5, 4e-6]
    swapped = reference.copy()
    swapped[1] = [0.2, 0.7, 0.1]
    binary_reference = np.float32([0.5 + 3e-6, 0.9, 0.1, 0.2])
    binary = np.float32([0.5 - 3e-6, 0.9, 0.1, 0.2])
    result = run_parity(reviews, rows, reference, [(_Fixed("tied", tied), "float32", False),
                                                   (_Fixed("swapped", swapped), "float32", False)],
                        Thresholds(), "test", log=lambda _: None, classes=CLASSES)
    tied_result, swapped_result = result.backends
    assert tied_result.tied_flips == 1 and tied_result.passed and tied_result.label_agreement == 0.75
    assert swapped_result.tied_flips == 0 and any("label agreement" in f for f in swapped_result.failures)
    binary_result = run_parity(reviews, rows, binary_reference, [(_Fixed("binary", binary), "float32", False)],
                               Thresholds(), "test", log=lambda _: None).backends[0]
    assert binary_result.tied_flips == 1 and binary_result.passed
