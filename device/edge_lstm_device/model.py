"""Load an exported bundle (checked against its manifest) and turn review text into sentiment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_lstm_device import numpy_engine
from edge_lstm_device.bundle import (NUMPY_WEIGHTS, TOKENIZER_FILE, BundleError, class_names, device_order, read_manifest,
                                    read_verified, tflite_models)
from edge_lstm_device.runtime import TFLiteScorer
from edge_lstm_device.signing import Trust, read_trusted_manifest
from edge_lstm_device.tokenizer import Tokenizer, TokenizerError
from edge_lstm_device.vectorizer import VectorizerTokenizer

REFERENCE_BUNDLE = Path(__file__).resolve().parent / "reference"
MODEL_ENV = "EDGE_LSTM_MODEL"  # the model the CLI runs when --model is not given
__all__ = ["BundleError", "ModelChoice", "Prediction", "REFERENCE_BUNDLE", "SentimentModel", "device_order",
           "read_manifest", "read_verified", "tflite_models"]


@dataclass(frozen=True)
class Prediction:
    """The sentiment of one review (a multi-class bundle: its top class, and every class's probability)."""

    label: str  # "positive" or "negative"; a multi-class bundle's top class name
    probability: float  # of the positive class; a multi-class bundle's: of the top class
    confidence: float  # probability of the chosen label
    words: int  # words in the review
    truncated: bool  # longer than the model's window: only part was read (the end; the start for TextVectorization)
    probabilities: dict[str, float] | None = None  # multi-class only: {class name: probability}, in output order

    def to_dict(self) -> dict:
        out = dict(vars(self))  # (dataclasses.asdict deep-copies: ~25 times slower, and serve calls this per review)
        if self.probabilities is None:  # a binary bundle's answer is unchanged
            del out["probabilities"]
        return out


@dataclass(frozen=True)
class ModelChoice:
    """Which model runs and why; ``skipped`` says why faster ones do not."""

    name: str
    reason: str
    skipped: dict[str, str]


class SentimentModel:
    """Review text in, :class:`Prediction` out. Thread-safe; the LSTM state is reset per review."""

    def __init__(self, tokenizer: Tokenizer | VectorizerTokenizer, scorer: TFLiteScorer, name: str, manifest: dict,
                 choice: ModelChoice | None = None) -> None:
        self.tokenizer, self.scorer, self.name, self.manifest = tokenizer, scorer, name, manifest
        self.choice = choice or ModelChoice(name, "asked for", {})
        self.labels = class_names(manifest)  # a softmax head's classes; empty for positive/negative

    @classmethod
    def load(
        cls,
        bundle_dir: Path | None = None,
        model: str | None = None,
        threads: int = 1,
        interpreter: str | None = None,
        *,
        trust: Trust = None,
    ) -> SentimentModel:
        """Load ``model`` (a TFLite artifact name from the manifest) of a bundle (default: the
        reference bundle shipped with this package). Without ``model``: the fastest model of the
        manifest's ``device_order`` that the installed interpreter can load. With ``trust`` (an
        ed25519 public key file, or a loaded ``signing.TrustedKey``), the bundle must carry a valid
        ``manifest.sig`` by that key (``SignatureError`` otherwise)."""
        bundle_dir = Path(bundle_dir) if bundle_dir else REFERENCE_BUNDLE
        manifest = read_trusted_manifest(bundle_dir, trust)
        tokenizer = _load_tokenizer(bundle_dir, manifest)
        if numpy_engine.chosen(interpreter, model):
            choice = ModelChoice(NUMPY_WEIGHTS, numpy_engine.why(interpreter is not None or model is not None), {})
            return cls(tokenizer, numpy_engine.load_scorer(bundle_dir, manifest, threads), NUMPY_WEIGHTS, manifest, choice)
        available = tflite_models(manifest, bundle_dir)
        if model is not None and model not in available:
            raise BundleError(f"no TFLite model {model!r} in {bundle_dir} (available: {', '.join(available) or 'none'})")
        candidates = [model] if model else device_order(manifest, bundle_dir)
        skipped: dict[str, str] = {}
        for name in candidates:
            try:
                scorer = _load_scorer(bundle_dir, manifest, name, threads, interpreter)
            except ModelLoadError as err:
                if model:
                    raise BundleError(f"{name}: cannot load: {err}") from err
                skipped[name] = str(err)
                continue
            if scorer.max_len != tokenizer.max_len:
                raise BundleError(f"{name} reads {scorer.max_len} tokens but the tokenizer writes {tokenizer.max_len}")
            if scorer.classes != max(len(class_names(manifest)), 1):
                raise BundleError(f"{name} gives {scorer.classes} outputs but the manifest names "
                                  f"{len(class_names(manifest))} classes")
            reason = "asked for" if model else (
                "the fastest model in the export's measurements" if not skipped else
                "the fastest model this interpreter can load")
            return cls(tokenizer, scorer, name, manifest, ModelChoice(name, reason, skipped))
        details = "; ".join(f"{n}: {why}" for n, why in skipped.items()) or "the bundle has no TFLite model"
        raise BundleError(f"no model of {bundle_dir} loads in this interpreter ({details})")

    def replica(self) -> SentimentModel:
        """The same model in a new interpreter (for scoring in parallel threads)."""
        if isinstance(self.scorer, numpy_engine.NumpyScorer):  # stateless: threads share it
            return self
        scorer = TFLiteScorer(self.scorer.model_content, self.scorer.threads, self.scorer.interpreter_dist)
        return SentimentModel(self.tokenizer, scorer, self.name, self.manifest, self.choice)

    def predict(self, text: str) -> Prediction:
        return self.predict_batch([text])[0]

    def predict_batch(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions in order; ``ReviewTooLongError`` if a review is over the length limits."""
        return self.predict_ids([self.tokenizer.ids(text) for text in texts])

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> list[Prediction]:
        """Predictions for reviews already turned into ids by ``self.tokenizer.ids``."""
        probabilities = self.scorer.score(self.tokenizer.pad(ids))
        if self.scorer.classes > 1:
            return [self._class_prediction(row, p) for row, p in zip(ids, probabilities)]
        return [self._prediction(row, float(p)) for row, p in zip(ids, probabilities)]

    def _prediction(self, ids: Sequence[int], p: float) -> Prediction:
        label = "positive" if p >= 0.5 else "negative"
        truncated = len(ids) > self.tokenizer.max_len
        return Prediction(label, round(p, 6), round(max(p, 1 - p), 6), self.tokenizer.word_count(ids), truncated)

    def _class_prediction(self, ids: Sequence[int], p: Sequence[float]) -> Prediction:
        """The top class (the first of equals) and every class's probability."""
        probabilities = {name: round(float(v), 6) for name, v in zip(self.labels, p)}
        label = self.labels[int(np.argmax(p))]  # the first of equals, as parity's top label
        top = probabilities[label]
        truncated = len(ids) > self.tokenizer.max_len
        return Prediction(label, top, top, self.tokenizer.word_count(ids), truncated, probabilities)


class ModelLoadError(ValueError):
    """The interpreter refused a model file that matches its manifest (e.g. an op version it
    does not know): another model of the bundle may still load."""


def _load_scorer(bundle_dir: Path, manifest: dict, name: str, threads: int, interpreter: str | None) -> TFLiteScorer:
    """The model's interpreter; a file of a bundle other than the shipped reference is first
    loaded in a child process (``probe``), so a file that crashes the interpreter cannot crash us."""
    entry = manifest["artifacts"][name]
    content = read_verified(bundle_dir, entry)
    try:
        if Path(bundle_dir).resolve() != REFERENCE_BUNDLE:
            from edge_lstm_device.probe import probe  # (subprocess: imported only when needed)

            probe(Path(bundle_dir) / entry["file"], entry["sha256"], interpreter)
        return TFLiteScorer(content, threads, interpreter)
    except (ValueError, RuntimeError) as err:  # ModelShapeError, ProbeRefused, the interpreter refusing the file
        if isinstance(err, BundleError):
            raise
        raise ModelLoadError(" ".join(str(err).split())[:300]) from err


def _load_tokenizer(bundle_dir: Path, manifest: dict) -> Tokenizer | VectorizerTokenizer:
    entry = manifest["tokenizer"]
    try:
        tokenizer = Tokenizer.from_json(read_verified(bundle_dir, entry), TOKENIZER_FILE)
    except TokenizerError as err:
        raise BundleError(f"bad tokenizer in {bundle_dir}: {err}") from err
    if tokenizer.num_words != manifest["model"]["num_words"]:
        raise BundleError(
            f"tokenizer has {tokenizer.num_words} words but the model was built for {manifest['model']['num_words']}"
        )
    return tokenizer
