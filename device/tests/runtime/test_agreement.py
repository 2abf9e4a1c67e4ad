"""The parity thresholds and measures shared by the host's parity and the device's verify."""

from __future__ import annotations

import numpy as np
from edge_lstm_device.runtime.agreement import Thresholds, failures, measure


def test_int8_agreement_threshold_and_accuracy_change() -> None:
    one_flip = measure(np.array([0.9] * 299 + [0.4]), np.array([0.9] * 299 + [0.6]), np.ones(300, np.int64))
    assert round(one_flip.label_agreement, 4) == 0.9967 and failures(one_flip, "int8", Thresholds()) == []
    reference = np.array([0.9] * 199 + [0.6])
    two_flips = np.array([0.9] * 198 + [0.4, 0.4])
    missed = failures(measure(two_flips, reference, np.ones(200, np.int64)), "int8", Thresholds())
    assert missed == ["label agreement 99.00% < 99.50%", "|Δaccuracy| 1.00 points > 0.50"]


def test_float_counts_a_tie_within_its_tolerance_as_agreeing() -> None:
    reference = np.array([0.500004, 0.9])
    tied = measure(np.array([0.499998, 0.9]), reference)
    assert tied.tied_flips == 1 and failures(tied, "float32", Thresholds()) == []
    moved = measure(np.array([0.4, 0.9]), np.array([0.6, 0.9]))
    assert moved.tied_flips == 0 and len(failures(moved, "float32", Thresholds())) == 2


def test_class_probabilities_have_no_accuracy() -> None:
    reference = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    result = measure(reference.copy(), reference, np.array([1, 0]))
    assert result.accuracy is None and result.label_agreement == 1.0 and result.max_abs_diff == 0.0
