"""What every tokenizer kind shares: encoding into padded rows, its JSON file (bounded reads,
every field checked), and the checks of the fields kinds have in common."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_lstm_device.bundle.files import atomic_write_bytes, bytes_sha256

FORMAT_VERSION = 1
MAX_TOKENIZER_BYTES = 16 << 20  # a 10,000-word tokenizer.json is ~100 kB
MAX_NUM_WORDS = 10_000_000
MAX_MAX_LEN = 10_000


class TokenizerError(ValueError):
    """A tokenizer file is missing, malformed or inconsistent."""


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

    @classmethod
    def from_dict(cls, data: object) -> TokenizerFile:
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

    @classmethod
    def from_json(cls, raw: bytes | str, source: str = "tokenizer") -> TokenizerFile:
        """Parse tokenizer JSON (UTF-8) of this kind; any fault is a one-line ``TokenizerError``."""
        return cls.from_dict(parse_json(raw, source))

    @classmethod
    def load(cls, path: Path) -> TokenizerFile:
        """Read a tokenizer file of this kind (at most ``MAX_TOKENIZER_BYTES``)."""
        return cls.from_json(read_file(Path(path)), f"tokenizer {path}")


def parse_json(raw: bytes | str, source: str) -> dict:
    """The JSON object in ``raw``; any fault is a one-line ``TokenizerError``."""
    try:
        data = json.loads(raw)
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an integer of > 4,300 digits
        raise TokenizerError(f"cannot read {source}: {err}") from err
    except RecursionError as err:
        raise TokenizerError(f"cannot read {source}: JSON nested too deeply") from err
    if not isinstance(data, dict):
        raise TokenizerError(f"malformed {source}: not a JSON object")
    return data


def read_file(path: Path) -> bytes:
    """A tokenizer file's bytes, read no further than ``MAX_TOKENIZER_BYTES`` (``/dev/zero`` ends)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TOKENIZER_BYTES + 1)
    except FileNotFoundError as err:
        raise TokenizerError(f"tokenizer file not found: {path}") from err
    except OSError as err:
        raise TokenizerError(f"cannot read tokenizer {path}: {err.strerror or err}") from err
    if len(raw) > MAX_TOKENIZER_BYTES:
        raise TokenizerError(f"tokenizer {path} is larger than {MAX_TOKENIZER_BYTES:,} bytes")
    return raw


def short_value(value: object) -> str:
    """A short description of a JSON value for a message (never raises)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length():,}-bit integer"
    if value is None or isinstance(value, (bool, int, float, str)):
        text = repr(value[:40] if isinstance(value, str) else value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a {type(value).__name__}"


def int_field(data: dict, key: str, low: int, high: int) -> int:
    value = data.get(key)
    if type(value) is not int:
        raise TokenizerError(f"malformed tokenizer: {key} must be an integer, got {short_value(value)}")
    if not low <= value <= high:
        raise TokenizerError(f"malformed tokenizer: {key} must be in [{low:,}, {high:,}], got {short_value(value)}")
    return value


def words_field(data: dict, most: int) -> tuple[str, ...]:
    words = data.get("words")
    if not isinstance(words, list):
        raise TokenizerError(f"malformed tokenizer: words must be a list, got {type(words).__name__}")
    if len(words) > most:
        raise TokenizerError("vocabulary holds more words than num_words allows")
    if not all(type(word) is str for word in words):
        raise TokenizerError("malformed tokenizer: every word must be a string")
    return tuple(words)
