"""Every kind of tokenizer a bundle's ``tokenizer.json`` may hold, behind one reader: the file's
``"kind"`` (none: ``imdb``) picks the class that checks and builds it."""

from __future__ import annotations

from pathlib import Path

from edge_lstm_device.bundle.tokenizer import KIND, Tokenizer
from edge_lstm_device.bundle.tokenizer_file import TokenizerError, TokenizerFile, parse_json, read_file, short_value
from edge_lstm_device.bundle.vectorizer import VectorizerTokenizer

KINDS: dict[str, type[TokenizerFile]] = {Tokenizer.kind: Tokenizer, VectorizerTokenizer.kind: VectorizerTokenizer}


def from_dict(data: object) -> TokenizerFile:
    """The tokenizer ``data`` describes, of whatever kind; raises only ``TokenizerError``."""
    if not isinstance(data, dict):
        raise TokenizerError(f"malformed tokenizer: expected a JSON object, got {type(data).__name__}")
    kind = data.get("kind", KIND)
    if not isinstance(kind, str) or kind not in KINDS:
        raise TokenizerError(f"unknown tokenizer kind {short_value(kind)}")
    return KINDS[kind].from_dict(data)


def from_json(raw: bytes | str, source: str = "tokenizer") -> TokenizerFile:
    """Tokenizer JSON (UTF-8) of any kind; any fault is a one-line ``TokenizerError``."""
    return from_dict(parse_json(raw, source))


def load(path: Path) -> TokenizerFile:
    """A tokenizer file of any kind (at most ``MAX_TOKENIZER_BYTES``)."""
    return from_json(read_file(Path(path)), f"tokenizer {path}")
