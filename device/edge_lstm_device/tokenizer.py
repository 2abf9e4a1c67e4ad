"""The one tokenizer: raw review text to a fixed-length row of Keras-IMDB word ids.

Pure Python + numpy. Training (host) and inference (device) both use this module.

Rules: lowercase; HTML line breaks are spaces; words are runs of letters, digits and
apostrophes. Ids follow the Keras IMDB convention: 0 pad, 1 start, 2 out-of-vocabulary,
words from 3 on, ranked by training-set frequency (ties by the word itself). Rows are
pre-padded and pre-truncated (the end of a long review is kept), as ``pad_sequences`` did.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge_lstm_device.files import atomic_write_bytes, bytes_sha256

PAD_ID = 0
START_ID = 1
OOV_ID = 2
FIRST_WORD_ID = 3
FORMAT_VERSION = 1

_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"(?:[^\W_]|')+")


class TokenizerError(ValueError):
    """A tokenizer file is missing, malformed or inconsistent."""


def split_words(text: str) -> list[str]:
    """Split raw review text into lowercase words (never raises for a ``str``)."""
    text = _LINE_BREAK.sub(" ", text).lower()
    return _WORD.findall(text)


@dataclass(frozen=True)
class Tokenizer:
    """Maps words to ids with a frozen, frequency-ranked vocabulary."""

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

    @classmethod
    def fit(cls, texts: Iterable[str], num_words: int = 10_000, max_len: int = 200) -> Tokenizer:
        """Rank the words of ``texts`` by frequency (ties: alphabetical) and keep the top ones."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(split_words(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        keep = num_words - FIRST_WORD_ID
        return cls(tuple(word for word, _ in ranked[:keep]), num_words, max_len)

    def ids(self, text: str) -> list[int]:
        """Unpadded ids of one review, starting with the start id."""
        get = self._index.get
        return [START_ID] + [get(w, OOV_ID) for w in split_words(text)]

    def pad(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Id lists as a ``(len(ids), max_len)`` int32 array, pre-padded and pre-truncated."""
        out = np.zeros((len(ids), self.max_len), dtype=np.int32)
        for i, row in enumerate(ids):
            kept = row[-self.max_len :]
            out[i, self.max_len - len(kept) :] = kept
        return out

    def encode(self, text: str) -> np.ndarray:
        """One review as ``max_len`` int32 ids."""
        return self.pad([self.ids(text)])[0]

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Reviews as a ``(len(texts), max_len)`` int32 array."""
        return self.pad([self.ids(text) for text in texts])

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

    def settings(self) -> dict:
        """Everything but the word list (for manifests and cache keys)."""
        return {k: v for k, v in self.to_dict().items() if k != "words"}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"

    def fingerprint(self) -> str:
        return bytes_sha256(self.to_json().encode("utf-8"))

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, then rename)."""
        atomic_write_bytes(Path(path), self.to_json().encode("utf-8"))

    @classmethod
    def from_dict(cls, data: dict) -> Tokenizer:
        try:
            if data["format_version"] != FORMAT_VERSION:
                raise TokenizerError(f"unsupported tokenizer format {data['format_version']!r}")
            return cls(tuple(data["words"]), int(data["num_words"]), int(data["max_len"]))
        except (KeyError, TypeError) as err:
            raise TokenizerError(f"malformed tokenizer: {err!r}") from err

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise TokenizerError(f"tokenizer file not found: {path}") from err
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise TokenizerError(f"cannot read tokenizer {path}: {err}") from err
        if not isinstance(data, dict):
            raise TokenizerError(f"malformed tokenizer {path}: not a JSON object")
        return cls.from_dict(data)
