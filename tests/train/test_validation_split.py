"""The validation split: held-out movies (the default) or a Keras-style random share."""

from __future__ import annotations

import numpy as np
import pytest

from edge_lstm.train.data import Reviews
from edge_lstm.train.training import split_validation


def _reviews(n_per_class: int = 50) -> Reviews:
    ids, labels = [], []
    for label, folder in ((0, "neg"), (1, "pos")):
        numbers = np.random.default_rng(label).permutation(n_per_class)  # folder order is not numeric
        ids += [f"train/{folder}/{k}_{8 if label else 2}" for k in numbers]
        labels += [label] * n_per_class
    return Reviews([f"review {i}" for i in ids], np.array(labels), ids)


def _number(review_id: str) -> int:
    return int(review_id.rsplit("/", 1)[1].split("_")[0])


def test_movies_holds_out_the_highest_numbers_of_each_class() -> None:
    fit, held = split_validation(_reviews(), 0.2, "movies", seed=0)
    assert len(held) == 20 and len(fit) == 80 and sorted(held.labels.tolist()) == [0] * 10 + [1] * 10
    for label in (0, 1):
        held_numbers = {_number(i) for i, y in zip(held.ids, held.labels) if y == label}
        fit_numbers = {_number(i) for i, y in zip(fit.ids, fit.labels) if y == label}
        assert held_numbers == set(range(40, 50)) and fit_numbers == set(range(40))


@pytest.mark.parametrize("mode", ["movies", "shuffled"])
def test_split_is_a_seeded_partition(mode: str) -> None:
    reviews = _reviews()
    fit, held = split_validation(reviews, 0.2, mode, seed=3)
    assert sorted(fit.ids + held.ids) == sorted(reviews.ids) and len(held) == 20
    assert split_validation(reviews, 0.2, mode, seed=3)[0].ids == fit.ids
    assert fit.labels.tolist() != sorted(fit.labels.tolist())  # the fitted part is shuffled


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="validation mode"):
        split_validation(_reviews(), 0.2, "by-date", seed=0)


@pytest.mark.parametrize("mode", ["movies", "shuffled"])
def test_a_tiny_split_still_holds_out_reviews(mode: str) -> None:
    fit, held = split_validation(_reviews(5), 0.01, mode, seed=0)
    assert len(held) >= 1 and len(fit) + len(held) == 10
