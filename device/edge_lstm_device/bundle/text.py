"""Review text to words, within the limits on a review's length (``ReviewTooLongError``).

Rules: lowercase; HTML line breaks are spaces; words are runs of letters, digits and
apostrophes. ``$EDGE_LSTM_MAX_REVIEW_CHARS`` / ``$EDGE_LSTM_MAX_REVIEW_WORDS``, read at each call,
raise or lower the limits.
"""

from __future__ import annotations

import re
from typing import Callable

from edge_lstm_device.bundle.limits import env_limit
from edge_lstm_device.bundle.tokenizer_file import TokenizerError

MAX_REVIEW_CHARS = 100_000  # real IMDB reviews are < 14,000 characters
MAX_REVIEW_WORDS = 20_000  # ... and < 2,600 words
MAX_CHARS_ENV = "EDGE_LSTM_MAX_REVIEW_CHARS"
MAX_WORDS_ENV = "EDGE_LSTM_MAX_REVIEW_WORDS"

_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# A word is a run of letters, digits and apostrophes, i.e. ``(?:[^\W_]|')+``. Underscores are
# made spaces first so one character class does: the regex engine then needs O(1) memory per
# match instead of ~125 bytes per character (a 10 MB one-word review took 1.25 GB).
_WORD = re.compile(r"[\w']+")
_ASCII_WORD = re.compile(r"[\w']+", re.ASCII)  # the same words in ASCII text, found ~30% faster


class ReviewTooLongError(ValueError):
    """A review is over the length limits (``$EDGE_LSTM_MAX_REVIEW_CHARS``/``_WORDS``)."""


def _prepare(text: str) -> str:
    return _LINE_BREAK.sub(" ", text).lower().replace("_", " ")


def split_words(text: str) -> list[str]:
    """Split raw review text into lowercase words (never raises for a ``str``; no length limit)."""
    prepared = _prepare(text)
    return (_ASCII_WORD if prepared.isascii() else _WORD).findall(prepared)


def has_words(text: str) -> bool:
    """Whether ``text`` holds any word at all (``bool(split_words(text))``, without the list)."""
    return _WORD.search(_prepare(text)) is not None


def _env_limit(name: str, default: int) -> int:
    try:
        return env_limit(name, default)
    except ValueError as err:
        raise TokenizerError(str(err)) from err


def review_limits() -> tuple[int, int]:
    """``(max characters, max words)`` of one review, from the environment or the defaults."""
    return _env_limit(MAX_CHARS_ENV, MAX_REVIEW_CHARS), _env_limit(MAX_WORDS_ENV, MAX_REVIEW_WORDS)


def words_within_limits(text: str, split: Callable[[str], list[str]]) -> list[str]:
    """``split(text)`` within the review limits, else ``ReviewTooLongError`` (the characters are
    counted before splitting, the words after)."""
    max_chars, max_words = review_limits()
    if len(text) > max_chars:
        raise ReviewTooLongError(
            f"review is {len(text):,} characters long; the limit is {max_chars:,} "
            f"(set {MAX_CHARS_ENV} to raise it)"
        )
    words = split(text)
    if len(words) > max_words:
        raise ReviewTooLongError(
            f"review has {len(words):,} words; the limit is {max_words:,} (set {MAX_WORDS_ENV} to raise it)"
        )
    return words


def review_words(text: str) -> list[str]:
    """``split_words`` within the review limits, else ``ReviewTooLongError``."""
    return words_within_limits(text, split_words)
