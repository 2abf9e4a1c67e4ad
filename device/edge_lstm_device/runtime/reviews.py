"""Reviews one by one inside a batch: each becomes ids, or the reason it cannot be scored (over the
length limits, or no word at all), and the batch's predictions keep their places. Every front
end (``predict``, ``serve``, the Python API) asks the model for these; none tokenizes itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

from edge_lstm_device.bundle.text import ReviewTooLongError
from edge_lstm_device.bundle.tokenizer_file import TokenizerFile

Scored = TypeVar("Scored")
EMPTY = "empty"  # a review without any word: a score of it would mean nothing
TOO_LONG = "too_long"  # over the review length limits


@dataclass(frozen=True)
class ReviewError:
    """Why one review of a batch has no prediction (the others are scored all the same)."""

    kind: str  # EMPTY or TOO_LONG
    message: str

    def to_dict(self) -> dict:
        return {"error": self.message}


def encode_each(tokenizer: TokenizerFile, texts: Sequence[str]) -> list[list[int] | ReviewError]:
    """Each review's unpadded ids, or the :class:`ReviewError` that keeps it from being scored."""
    encoded: list[list[int] | ReviewError] = []
    for text in texts:
        try:
            ids = tokenizer.ids(text)
        except ReviewTooLongError as err:
            encoded.append(ReviewError(TOO_LONG, str(err)))
            continue
        encoded.append(ids if tokenizer.word_count(ids) else ReviewError(EMPTY, "empty review (no words)"))
    return encoded


def score_each(encoded: Sequence[list[int] | ReviewError],
               score_ids: Callable[[list[list[int]]], list[Scored]]) -> list[Scored | ReviewError]:
    """``score_ids`` of the reviews that have ids, in one call, each back in its place."""
    rows = [item for item in encoded if not isinstance(item, ReviewError)]
    scored = iter(score_ids(rows) if rows else [])
    return [item if isinstance(item, ReviewError) else next(scored) for item in encoded]
