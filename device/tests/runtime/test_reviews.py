"""Reviews one by one in a batch: ids or the reason there are none, and predictions that keep
their places; the same answers through the model, the pool and both front ends."""

from __future__ import annotations

import pytest
from edge_lstm_device.bundle import tokenizers
from edge_lstm_device.bundle.text import MAX_WORDS_ENV
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE
from edge_lstm_device.runtime.reviews import EMPTY, TOO_LONG, ReviewError, encode_each, score_each

TOKENIZER = tokenizers.load(REFERENCE_BUNDLE / "tokenizer.json")


def test_each_review_has_ids_or_the_reason_it_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_WORDS_ENV, "5")
    good, empty, long, punctuation = encode_each(TOKENIZER, ["a fine film", "", "one two three four five six", "?!"])
    assert good == TOKENIZER.ids("a fine film")
    assert empty == ReviewError(EMPTY, "empty review (no words)") and punctuation.kind == EMPTY
    assert long.kind == TOO_LONG and "limit is 5" in long.message


def test_scores_keep_their_places_and_errors_are_not_scored() -> None:
    calls = []

    def score(rows: list[list[int]]) -> list[int]:
        calls.append(rows)
        return [len(row) for row in rows]

    error = ReviewError(EMPTY, "empty review (no words)")
    assert score_each([[1, 2], error, [3]], score) == [2, error, 1]
    assert calls == [[[1, 2], [3]]]  # one call for the whole batch
    assert score_each([error], score) == [error] and len(calls) == 1  # nothing to score: no call


def test_the_model_predicts_each_review_or_says_why_not(model) -> None:
    outcomes = model.predict_each(["What a wonderful film", "   ", "Dull and badly acted"])
    assert [getattr(o, "label", None) for o in outcomes] == ["positive", None, "negative"]
    assert outcomes[1] == ReviewError(EMPTY, "empty review (no words)")
    assert outcomes[0] == model.predict("What a wonderful film")
