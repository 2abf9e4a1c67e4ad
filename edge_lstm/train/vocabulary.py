"""The training set's vocabulary: the words a tokenizer knows, ranked by frequency (host only)."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from edge_lstm_device.bundle.text import split_words
from edge_lstm_device.bundle.tokenizer import FIRST_WORD_ID, Tokenizer


def fit_tokenizer(texts: Iterable[str], num_words: int = 10_000, max_len: int = 200) -> Tokenizer:
    """Rank the words of ``texts`` by frequency (ties: alphabetical) and keep the top ones, as
    Keras' IMDB word index does (ids from ``FIRST_WORD_ID``)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(split_words(text))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    keep = num_words - FIRST_WORD_ID
    return Tokenizer(tuple(word for word, _ in ranked[:keep]), num_words, max_len)
