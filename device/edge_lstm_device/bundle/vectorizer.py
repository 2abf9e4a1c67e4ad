"""A Keras ``TextVectorization`` layer as a tokenizer, standard library and numpy only: the ids the
layer gives for any text.

The layer's steps, as Keras 3 runs them (``keras/src/layers/preprocessing/text_vectorization.py``):
``tf.strings.lower`` (ASCII letters only), then the removal of ASCII punctuation
(``[!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~']``), then ``tf.strings.split`` on runs of ASCII whitespace;
ids from the vocabulary: 0 padding, 1 ``[UNK]``, words from 2. Rows are post-padded and keep the
first ``max_len`` ids (``output_sequence_length``).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from itertools import repeat
from typing import Sequence

import numpy as np

from edge_lstm_device.bundle.text import words_within_limits
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

PAD_ID, OOV_ID, FIRST_WORD_ID = 0, 1, 2
STANDARDIZE = ("lower_and_strip_punctuation", "lower", None)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_PUNCTUATION = str.maketrans("", "", "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'")
_ASCII_WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")


@dataclass(frozen=True)
class VectorizerTokenizer(TokenizerFile):
    """Text to the ids of a Keras ``TextVectorization(split="whitespace", output_mode="int")``."""

    words: tuple[str, ...]  # the vocabulary from id 2 on
    max_len: int
    standardize: str | None = "lower_and_strip_punctuation"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    kind = "text_vectorization"

    def __post_init__(self) -> None:
        if self.standardize not in STANDARDIZE:
            raise TokenizerError(f"unsupported standardize {short_value(self.standardize)}")
        if self.max_len < 1:
            raise TokenizerError(f"max_len must be >= 1, got {self.max_len}")
        if len(set(self.words)) != len(self.words):
            raise TokenizerError("vocabulary has duplicate words")
        object.__setattr__(self, "_index", {w: i + FIRST_WORD_ID for i, w in enumerate(self.words)})

    @property
    def num_words(self) -> int:
        return len(self.words) + FIRST_WORD_ID

    def tokens(self, text: str) -> list[str]:
        """The layer's tokens of ``text``, within the review limits (``ReviewTooLongError``)."""
        return words_within_limits(text, self._split)

    def _split(self, text: str) -> list[str]:
        if self.standardize is not None:
            text = text.translate(_ASCII_LOWER)
        if self.standardize == "lower_and_strip_punctuation":
            text = text.translate(_PUNCTUATION)
        return [t for t in _ASCII_WHITESPACE.split(text) if t]

    def ids(self, text: str) -> list[int]:
        return list(map(self._index.get, self.tokens(text), repeat(OOV_ID)))

    def pad(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Post-padded rows keeping the first ``max_len`` ids, as the layer pads and cuts them."""
        out = np.zeros((len(ids), self.max_len), dtype=np.int32)
        for i, row in enumerate(ids):
            kept = row[: self.max_len]
            out[i, : len(kept)] = kept
        return out

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "kind": self.kind, "num_words": self.num_words,
                "max_len": self.max_len, "pad_id": PAD_ID, "oov_id": OOV_ID, "first_word_id": FIRST_WORD_ID,
                "standardize": self.standardize, "split": "whitespace", "padding": "post", "truncating": "post",
                "words": list(self.words)}

    @classmethod
    def from_dict(cls, data: dict) -> VectorizerTokenizer:
        """Check every field; raises only ``TokenizerError``."""
        if data.get("format_version") != FORMAT_VERSION or type(data.get("format_version")) is not int:
            raise TokenizerError(f"unsupported tokenizer format {short_value(data.get('format_version'))}")
        num_words = int_field(data, "num_words", FIRST_WORD_ID, MAX_NUM_WORDS)
        max_len = int_field(data, "max_len", 1, MAX_MAX_LEN)
        words = words_field(data, num_words - FIRST_WORD_ID)
        if len(words) != num_words - FIRST_WORD_ID:
            raise TokenizerError("malformed tokenizer: num_words does not match the vocabulary")
        if data.get("split", "whitespace") != "whitespace":
            raise TokenizerError(f"unsupported split {short_value(data.get('split'))}")
        return cls(words, max_len, data.get("standardize"))
