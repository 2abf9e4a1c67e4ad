"""Load an exported bundle (checked against its manifest) and turn review text into sentiment."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from edge_lstm_device.files import MANIFEST_FILE, bytes_sha256
from edge_lstm_device.runtime import TFLiteScorer
from edge_lstm_device.tokenizer import Tokenizer, TokenizerError

REFERENCE_BUNDLE = Path(__file__).resolve().parent / "reference"
MANIFEST_FORMAT = 1


class BundleError(ValueError):
    """A bundle is missing, tampered with, truncated or inconsistent."""


@dataclass(frozen=True)
class Prediction:
    """The sentiment of one review."""

    label: str  # "positive" or "negative"
    probability: float  # of the positive class
    confidence: float  # probability of the chosen label
    words: int  # words in the review
    truncated: bool  # longer than the model's window: only the end was read

    def to_dict(self) -> dict:
        return asdict(self)


def read_manifest(bundle_dir: Path) -> dict:
    path = Path(bundle_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise BundleError(f"no {MANIFEST_FILE} in {bundle_dir}: not an exported bundle") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"cannot read {path}: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format_version") != MANIFEST_FORMAT:
        raise BundleError(f"{path}: unsupported manifest format")
    return manifest


def read_verified(bundle_dir: Path, entry: dict) -> bytes:
    """The bytes of a manifest entry's file, refused unless size and sha256 match."""
    path = Path(bundle_dir) / entry["file"]
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BundleError(f"cannot read {path}: {err.strerror or err}") from err
    if len(data) != entry["bytes"] or bytes_sha256(data) != entry["sha256"]:
        raise BundleError(
            f"{path} does not match the manifest (expected {entry['bytes']} bytes, sha256 "
            f"{entry['sha256'][:12]}…; got {len(data)} bytes): tampered, truncated or from another export"
        )
    return data


def tflite_models(manifest: dict, bundle_dir: Path | None = None) -> list[str]:
    """Names of the bundle's TFLite artifacts (only those present, when ``bundle_dir`` is given)."""
    return [
        name
        for name, entry in manifest.get("artifacts", {}).items()
        if entry.get("format") == "tflite" and (bundle_dir is None or (Path(bundle_dir) / entry["file"]).exists())
    ]


class SentimentModel:
    """Review text in, :class:`Prediction` out. Thread-safe; the LSTM state is reset per review."""

    def __init__(self, tokenizer: Tokenizer, scorer: TFLiteScorer, name: str, manifest: dict) -> None:
        self.tokenizer, self.scorer, self.name, self.manifest = tokenizer, scorer, name, manifest

    @classmethod
    def load(
        cls,
        bundle_dir: Path | None = None,
        model: str | None = None,
        threads: int = 1,
        interpreter: str | None = None,
    ) -> SentimentModel:
        """Load ``model`` (a TFLite artifact name from the manifest) of a bundle; default: the
        bundle's device default, from the reference bundle shipped with this package."""
        bundle_dir = Path(bundle_dir) if bundle_dir else REFERENCE_BUNDLE
        manifest = read_manifest(bundle_dir)
        name = model or manifest.get("device_default") or "int8_tflite"
        available = tflite_models(manifest, bundle_dir)
        if name not in available:
            raise BundleError(f"no TFLite model {name!r} in {bundle_dir} (available: {', '.join(available) or 'none'})")
        tokenizer = _load_tokenizer(bundle_dir, manifest)
        try:
            scorer = TFLiteScorer(read_verified(bundle_dir, manifest["artifacts"][name]), threads, interpreter)
        except ValueError as err:  # ModelShapeError, or the interpreter refusing the file
            raise BundleError(f"{name}: cannot load: {err}") from err
        if scorer.max_len != tokenizer.max_len:
            raise BundleError(f"{name} reads {scorer.max_len} tokens but the tokenizer writes {tokenizer.max_len}")
        return cls(tokenizer, scorer, name, manifest)

    def predict(self, text: str) -> Prediction:
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        ids = [self.tokenizer.ids(text) for text in texts]
        probabilities = self.scorer.score(self.tokenizer.pad(ids))
        return [self._prediction(len(row), float(p)) for row, p in zip(ids, probabilities)]

    def _prediction(self, n_ids: int, p: float) -> Prediction:
        label = "positive" if p >= 0.5 else "negative"
        truncated = n_ids > self.tokenizer.max_len
        return Prediction(label, round(p, 6), round(max(p, 1 - p), 6), n_ids - 1, truncated)


def _load_tokenizer(bundle_dir: Path, manifest: dict) -> Tokenizer:
    entry = manifest["tokenizer"]
    try:
        tokenizer = Tokenizer.from_dict(json.loads(read_verified(bundle_dir, entry)))
    except (TokenizerError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"bad tokenizer in {bundle_dir}: {err}") from err
    if tokenizer.num_words != manifest["model"]["num_words"]:
        raise BundleError(
            f"tokenizer has {tokenizer.num_words} words but the model was built for {manifest['model']['num_words']}"
        )
    return tokenizer
