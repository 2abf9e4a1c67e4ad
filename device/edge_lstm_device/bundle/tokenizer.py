"""The Keras-IMDB tokenizer (kind ``imdb``): raw review text to a fixed-length row of word ids.

Pure Python + numpy. Training (host) and inference (device) both use this module.

Ids follow the Keras IMDB convention: 0 pad, 1 start, 2 out-of-vocabulary, words from 3 on,
ranked by training-set frequency (ties by the word itself; the host's ``fit_tokenizer``). Rows are
pre-padded and pre-truncated (the end of a long review is kept), as ``pad_sequences`` did. Words
are :func:`~edge_lstm_device.bundle.text.review_words`: a review over the length limits is a
``ReviewTooLongError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Sequence

import numpy as np

from edge_lstm_device.bundle.text import review_words
from edge_lstm_device.bundle.tokenizer_file import (
    FORMAT_VERSION,
    MAX_MAX_LEN,
    MAX_NUM_WORDS,
    TokenizerError,
    TokenizerFile,
    int_field,
    short_value,
    words_field,
)

PAD_ID = 0
START_ID = 1
OOV_ID = 2
FIRST_WORD_ID = 3
KIND = "imdb"  # a tokenizer.json without "kind" is this one


@dataclass(frozen=True)
class Tokenizer(TokenizerFile):
    """Maps words to ids with a frozen, frequency-ranked vocabulary (the Keras IMDB convention)."""

    leading_ids = 1  # the start id
    kind = KIND

    words: tuple[str, ...]
    num_words: int = 10_000
    max_len: int = 200
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_words <= FIRST_WORD_ID:
            raise TokenizerError(f"num_words must be > {FIRST_WORD_ID}, got {self.num_words}")
        if self.max_len < 1:
            raise TokenizerError(f"max_len must be >= 1, got {self.max_len}")
        if len(self.words) > self.num_words - FIRST_WORD_ID:
            raise TokenizerError("vocabulary holds more words than num_words allows")
        if len(set(self.words)) != len(self.words):
            raise TokenizerError("vocabulary has duplicate words")
        index = {w: i + FIRST_WORD_ID for i, w in enumerate(self.words)}
        object.__setattr__(self, "_index", index)

    def ids(self, text: str) -> list[int]:
        """Unpadded ids of one review, starting with the start id (``ReviewTooLongError`` if too long)."""
        return [START_ID, *map(self._index.get, review_words(text), repeat(OOV_ID))]

    def pad(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Id lists as a ``(len(ids), max_len)`` int32 array, pre-padded and pre-truncated."""
        out = np.zeros((len(ids), self.max_len), dtype=np.int32)
        for i, row in enumerate(ids):
            kept = row[-self.max_len :]
            out[i, self.max_len - len(kept) :] = kept
        return out

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "num_words": self.num_words,
            "max_len": self.max_len,
            "pad_id": PAD_ID,
            "start_id": START_ID,
            "oov_id": OOV_ID,
            "first_word_id": FIRST_WORD_ID,
            "padding": "pre",
            "truncating": "pre",
            "words": list(self.words),
        }

    @classmethod
    def from_dict(cls, data: object) -> Tokenizer:
        """Check every field; raises only ``TokenizerError``, whatever ``data`` holds."""
        if not isinstance(data, dict):
            raise TokenizerError(f"malformed tokenizer: expected a JSON object, got {type(data).__name__}")
        if data.get("kind", KIND) != KIND:  # any kind: edge_lstm_device.bundle.tokenizers
            raise TokenizerError(f"tokenizer kind {short_value(data.get('kind'))} is not {KIND!r}")
        version = data.get("format_version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise TokenizerError(f"unsupported tokenizer format {short_value(version)}")
        num_words = int_field(data, "num_words", FIRST_WORD_ID + 1, MAX_NUM_WORDS)
        max_len = int_field(data, "max_len", 1, MAX_MAX_LEN)
        return cls(words_field(data, num_words - FIRST_WORD_ID), num_words, max_len)
