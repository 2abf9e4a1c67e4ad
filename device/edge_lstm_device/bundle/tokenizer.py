"""The one tokenizer: raw review text to a fixed-length row of Keras-IMDB word ids.

Pure Python + numpy. Training (host) and inference (device) both use this module.

Rules: lowercase; HTML line breaks are spaces; words are runs of letters, digits and
apostrophes. Ids follow the Keras IMDB convention: 0 pad, 1 start, 2 out-of-vocabulary,
words from 3 on, ranked by training-set frequency (ties by the word itself). Rows are
pre-padded and pre-truncated (the end of a long review is kept), as ``pad_sequences`` did.

Hostile input is bounded: ``Tokenizer.ids`` (and so ``encode``/``encode_batch``) refuses a
review longer than ``MAX_REVIEW_CHARS`` characters or ``MAX_REVIEW_WORDS`` words with a
``ReviewTooLongError``; ``$EDGE_LSTM_MAX_REVIEW_CHARS`` / ``$EDGE_LSTM_MAX_REVIEW_WORDS``,
read at each call, raise or lower the limits. ``Tokenizer.load`` refuses a file over
``MAX_TOKENIZER_BYTES``; ``from_dict`` checks every field's type and range.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from edge_lstm_device.bundle.files import atomic_write_bytes, bytes_sha256
from edge_lstm_device.bundle.limits import env_limit

PAD_ID = 0
START_ID = 1
OOV_ID = 2
FIRST_WORD_ID = 3
FORMAT_VERSION = 1
KIND = "imdb"  # a tokenizer.json without "kind" is this one

MAX_REVIEW_CHARS = 100_000  # real IMDB reviews are < 14,000 characters
MAX_REVIEW_WORDS = 20_000  # ... and < 2,600 words
MAX_CHARS_ENV = "EDGE_LSTM_MAX_REVIEW_CHARS"
MAX_WORDS_ENV = "EDGE_LSTM_MAX_REVIEW_WORDS"
MAX_TOKENIZER_BYTES = 16 << 20  # a 10,000-word tokenizer.json is ~100 kB
MAX_NUM_WORDS = 10_000_000
MAX_MAX_LEN = 10_000

_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# A word is a run of letters, digits and apostrophes, i.e. ``(?:[^\W_]|')+``. Underscores are
# made spaces first so one character class does: the regex engine then needs O(1) memory per
# match instead of ~125 bytes per character (a 10 MB one-word review took 1.25 GB).
_WORD = re.compile(r"[\w']+")
_ASCII_WORD = re.compile(r"[\w']+", re.ASCII)  # the same words in ASCII text, found ~30% faster


class TokenizerError(ValueError):
    """A tokenizer file is missing, malformed or inconsistent."""


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


class TokenizerFile:
    """What every tokenizer kind shares: encoding into padded rows, and its JSON file."""

    max_len: int
    leading_ids = 0  # ids before the words (the start id)

    def ids(self, text: str) -> list[int]:
        raise NotImplementedError

    def pad(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def word_count(self, ids: Sequence[int]) -> int:
        """Words of a review from its unpadded ids."""
        return len(ids) - self.leading_ids

    def encode(self, text: str) -> np.ndarray:
        """One review as ``max_len`` int32 ids."""
        return self.pad([self.ids(text)])[0]

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Reviews as a ``(len(texts), max_len)`` int32 array."""
        return self.pad([self.ids(text) for text in texts])

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


@dataclass(frozen=True)
class Tokenizer(TokenizerFile):
    """Maps words to ids with a frozen, frequency-ranked vocabulary (the Keras IMDB convention)."""

    leading_ids = 1  # the start id

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
        """Check every field; raises only ``TokenizerError``, whatever ``data`` holds. A file of
        another kind (``"kind": "text_vectorization"``) gives that kind's tokenizer."""
        if not isinstance(data, dict):
            raise TokenizerError(f"malformed tokenizer: expected a JSON object, got {type(data).__name__}")
        if data.get("kind", KIND) != KIND:
            from edge_lstm_device.bundle.vectorizer import VectorizerTokenizer  # (the other kind)

            if data.get("kind") != VectorizerTokenizer.kind:
                raise TokenizerError(f"unknown tokenizer kind {_short(data.get('kind'))}")
            return VectorizerTokenizer.from_dict(data)
        version = data.get("format_version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise TokenizerError(f"unsupported tokenizer format {_short(version)}")
        num_words = _int_field(data, "num_words", FIRST_WORD_ID + 1, MAX_NUM_WORDS)
        max_len = _int_field(data, "max_len", 1, MAX_MAX_LEN)
        return cls(_words_field(data, num_words - FIRST_WORD_ID), num_words, max_len)

    @classmethod
    def from_json(cls, raw: bytes | str, source: str = "tokenizer") -> Tokenizer:
        """Parse tokenizer JSON (UTF-8); any fault is a one-line ``TokenizerError``."""
        try:
            data = json.loads(raw)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an integer of > 4,300 digits
            raise TokenizerError(f"cannot read {source}: {err}") from err
        except RecursionError as err:
            raise TokenizerError(f"cannot read {source}: JSON nested too deeply") from err
        if not isinstance(data, dict):
            raise TokenizerError(f"malformed {source}: not a JSON object")
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        """Read a tokenizer file (at most ``MAX_TOKENIZER_BYTES``)."""
        path = Path(path)
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_TOKENIZER_BYTES + 1)
        except FileNotFoundError as err:
            raise TokenizerError(f"tokenizer file not found: {path}") from err
        except OSError as err:
            raise TokenizerError(f"cannot read tokenizer {path}: {err.strerror or err}") from err
        if len(raw) > MAX_TOKENIZER_BYTES:
            raise TokenizerError(f"tokenizer {path} is larger than {MAX_TOKENIZER_BYTES:,} bytes")
        return cls.from_json(raw, f"tokenizer {path}")


def _short(value: object) -> str:
    """A short description of a JSON value for a message (never raises)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length():,}-bit integer"
    if value is None or isinstance(value, (bool, int, float, str)):
        text = repr(value[:40] if isinstance(value, str) else value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(value).__name__}"


def _int_field(data: dict, key: str, low: int, high: int) -> int:
    value = data.get(key)
    if type(value) is not int:
        raise TokenizerError(f"malformed tokenizer: {key} must be an integer, got {_short(value)}")
    if not low <= value <= high:
        raise TokenizerError(f"malformed tokenizer: {key} must be in [{low:,}, {high:,}], got {_short(value)}")
    return value


def _words_field(data: dict, most: int) -> tuple[str, ...]:
    words = data.get("words")
    if not isinstance(words, list):
        raise TokenizerError(f"malformed tokenizer: words must be a list, got {type(words).__name__}")
    if len(words) > most:
        raise TokenizerError("vocabulary holds more words than num_words allows")
    if not all(type(word) is str for word in words):
        raise TokenizerError("malformed tokenizer: every word must be a string")
    return tuple(words)
