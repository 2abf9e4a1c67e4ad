"""Load an exported bundle (checked against its manifest) and turn review text into sentiment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from edge_lstm_device.bundle import tokenizers
from edge_lstm_device.bundle.manifest import (
    NUMPY_WEIGHTS,
    REFERENCE_BUNDLE,
    TOKENIZER_FILE,
    BundleError,
    class_names,
    device_order,
    read_manifest,
    read_verified,
    tflite_models,
)
from edge_lstm_device.bundle.rollback import RollbackGuard
from edge_lstm_device.bundle.signing import Trust, read_trusted_manifest, resolve_trust
from edge_lstm_device.bundle.tokenizer_file import TokenizerError, TokenizerFile
from edge_lstm_device.runtime.numpy_engine import engine as numpy_engine
from edge_lstm_device.runtime.reviews import ReviewError, encode_each, score_each
from edge_lstm_device.runtime.scoring import TFLiteScorer

if TYPE_CHECKING:
    from edge_lstm_device.runtime.calibrate import Calibration

MODEL_ENV = "EDGE_LSTM_MODEL"  # the model the CLI runs when --model is not given
NO_CALIBRATE_ENV = "EDGE_LSTM_NO_CALIBRATE"  # set (not "" or "0"): the manifest's order, no calibration
__all__ = ["BundleError", "ModelChoice", "Prediction", "REFERENCE_BUNDLE", "ReviewError", "SentimentModel", "device_order",
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
    """Which model runs and why; ``skipped`` says why faster ones do not; ``calibration``: what
    this CPU measured, when the choice was made here (``calibrate``)."""

    name: str
    reason: str
    skipped: dict[str, str]
    calibration: Calibration | None = None

    @property
    def fallbacks(self) -> dict[str, str]:
        """The skipped models that would have run but could not (refused, or failed verify here)."""
        from edge_lstm_device.runtime.calibrate import SLOWER

        return {name: why for name, why in self.skipped.items() if not why.startswith(SLOWER)}


class SentimentModel:
    """Review text in, :class:`Prediction` out. Thread-safe; the LSTM state is reset per review."""

    def __init__(self, tokenizer: TokenizerFile, scorer: TFLiteScorer, name: str, manifest: dict,
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
        calibrate: bool | None = None,
        guard: RollbackGuard | None = None,
    ) -> SentimentModel:
        """Load ``model`` (a TFLite artifact name from the manifest) of a bundle (default: the
        reference bundle shipped with this package). Without ``model``: the model calibration
        chose on this CPU (``calibrate``: the fastest that passes verify here, measured once per
        environment; ``calibrate=False`` or ``$EDGE_LSTM_NO_CALIBRATE``: the first of the
        manifest's ``device_order`` that the installed interpreter can load). With ``trust`` (an
        ed25519 public key file, or a loaded ``signing.TrustedKey``), the bundle must carry a valid
        ``manifest.sig`` by that key (``SignatureError`` otherwise). ``CalibrationError`` when no
        model meets the parity thresholds on this CPU. Where no TFLite interpreter is installed (or
        with ``interpreter="numpy"``), the numpy engine runs the bundle's weights. With ``trust`` and
        ``guard``, a bundle older than the last one run under that key is refused (``DowngradeError``)
        before any model is loaded; recording it once it runs is the caller's (``guard.remember``)."""
        loader = _Loader.open(Path(bundle_dir) if bundle_dir else REFERENCE_BUNDLE, threads, interpreter, trust, guard)
        if numpy_engine.chosen(interpreter, model):
            return loader.numpy_engine(asked=interpreter is not None or model is not None)
        if model is not None:
            return loader.asked_for(model)
        if calibration_disabled() if calibrate is None else not calibrate:
            return loader.first_loadable()
        return loader.calibrated()

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

    def encode_each(self, texts: Sequence[str]) -> list[list[int] | ReviewError]:
        """Each review's ids, or why it cannot be scored (too long, no words)."""
        return encode_each(self.tokenizer, texts)

    def predict_each(self, texts: Sequence[str]) -> list[Prediction | ReviewError]:
        """A prediction for each review, or why it has none; one bad review spoils no other."""
        return score_each(self.encode_each(texts), self.predict_ids)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """The model's probabilities for ``texts``, unrounded: ``(n,)``, or ``(n, k)`` for k classes."""
        return self.scorer.score(self.tokenizer.pad([self.tokenizer.ids(text) for text in texts]))

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


def calibration_disabled() -> bool:
    """Whether ``$EDGE_LSTM_NO_CALIBRATE`` asks for the manifest's order."""
    return os.environ.get(NO_CALIBRATE_ENV, "") not in ("", "0")


def recalibrate(bundle_dir: Path | None = None, threads: int = 1, interpreter: str | None = None, *,
                trust: Trust = None) -> SentimentModel:
    """Calibrate again on this CPU, whatever was measured before; the model chosen, loaded
    (``CalibrationError`` when none passes, ``NoReferenceScores`` for a bundle that has none)."""
    from edge_lstm_device.bundle.reference_scores import read_reference_scores

    loader = _Loader.open(Path(bundle_dir) if bundle_dir else REFERENCE_BUNDLE, threads, interpreter, trust)
    read_reference_scores(loader.bundle_dir, loader.manifest)  # no reference scores: say so, do not fall back
    return loader.calibrated(again=True)


class ModelLoadError(ValueError):
    """The interpreter refused a model file that matches its manifest (e.g. an op version it
    does not know): another model of the bundle may still load."""


@dataclass
class _Loader:
    """One bundle's manifest and tokenizer, and its models loaded by name."""

    bundle_dir: Path
    manifest: dict
    tokenizer: TokenizerFile
    threads: int
    interpreter: str | None

    @classmethod
    def open(cls, bundle_dir: Path, threads: int, interpreter: str | None, trust: Trust,
             guard: RollbackGuard | None = None) -> _Loader:
        trusted = resolve_trust(trust)
        manifest = read_trusted_manifest(bundle_dir, trusted)
        if guard is not None and trusted is not None:  # a version proves nothing without a signature
            guard.check(manifest, trusted.key_id, bundle_dir)
        return cls(bundle_dir, manifest, load_tokenizer(bundle_dir, manifest), threads, interpreter)

    def load(self, name: str, choice: ModelChoice) -> SentimentModel:
        """``name`` in this interpreter; ``ModelLoadError`` if the interpreter refuses it."""
        scorer = _load_scorer(self.bundle_dir, self.manifest, name, self.threads, self.interpreter)
        if scorer.max_len != self.tokenizer.max_len:
            raise BundleError(f"{name} reads {scorer.max_len} tokens but the tokenizer writes {self.tokenizer.max_len}")
        if scorer.classes != max(len(class_names(self.manifest)), 1):
            raise BundleError(f"{name} gives {scorer.classes} outputs but the manifest names "
                              f"{len(class_names(self.manifest))} classes")
        return SentimentModel(self.tokenizer, scorer, name, self.manifest, choice)

    def numpy_engine(self, asked: bool) -> SentimentModel:
        """The numpy engine on the bundle's weights file."""
        choice = ModelChoice(NUMPY_WEIGHTS, numpy_engine.why(asked), {})
        scorer = numpy_engine.load_scorer(self.bundle_dir, self.manifest, self.threads)
        return SentimentModel(self.tokenizer, scorer, NUMPY_WEIGHTS, self.manifest, choice)

    def asked_for(self, name: str) -> SentimentModel:
        available = tflite_models(self.manifest, self.bundle_dir)
        if name not in available:
            raise BundleError(f"no TFLite model {name!r} in {self.bundle_dir} (available: {', '.join(available) or 'none'})")
        try:
            return self.load(name, ModelChoice(name, "asked for", {}))
        except ModelLoadError as err:
            raise BundleError(f"{name}: cannot load: {err}") from err

    def first_loadable(self, note: str = "") -> SentimentModel:
        """The first model of the manifest's order that this interpreter loads."""
        skipped: dict[str, str] = {}
        for name in device_order(self.manifest, self.bundle_dir):
            reason = ("the fastest model in the export's measurements" if not skipped else
                      "the fastest model this interpreter can load") + note
            try:
                return self.load(name, ModelChoice(name, reason, skipped))
            except ModelLoadError as err:
                skipped[name] = str(err)
        details = "; ".join(f"{n}: {why}" for n, why in skipped.items()) or "the bundle has no TFLite model"
        raise BundleError(f"no model of {self.bundle_dir} loads in this interpreter ({details})")

    def calibrated(self, again: bool = False) -> SentimentModel:
        """The model calibration chose for this environment (cached, else measured now; ``again``:
        measured now, whatever the cache holds)."""
        from edge_lstm_device.bundle.reference_scores import read_reference_scores
        from edge_lstm_device.runtime import calibrate as calibration
        from edge_lstm_device.runtime.cpu import detect
        from edge_lstm_device.runtime.interpreters import interpreter_class, interpreter_version

        if "reference_scores" not in self.manifest:
            return self.first_loadable(" (not calibrated: the bundle has no reference scores)")
        dist = interpreter_class(self.interpreter)[1]
        env = calibration.environment(self.manifest, f"{dist} {interpreter_version(dist)}", self.threads, detect())
        order = device_order(self.manifest, self.bundle_dir)
        hit = None if again else calibration.cached(env, order)
        if hit is not None:
            try:
                return self.load(hit.chosen, ModelChoice(hit.chosen, hit.reason + " (measured before, cached)",
                                                         hit.skipped, hit))
            except ModelLoadError:
                pass  # the interpreter changed its mind: measure again
        models, refused = self._load_all(order)
        reference = read_reference_scores(self.bundle_dir, self.manifest)  # (only now: ~2 MB of memory)
        result = calibration.choose(models, order[0], reference, env)
        result.skipped.update(refused)
        calibration.remember(result)
        chosen = models[result.chosen]
        chosen.choice = ModelChoice(result.chosen, result.reason, result.skipped, result)
        return chosen

    def _load_all(self, order: list[str]) -> tuple[dict[str, SentimentModel], dict[str, str]]:
        models, refused = {}, {}
        for name in order:
            try:
                models[name] = self.load(name, ModelChoice(name, "calibrating", {}))
            except ModelLoadError as err:
                refused[name] = f"this interpreter cannot load it: {err}"
        if not models:
            details = "; ".join(f"{n}: {why}" for n, why in refused.items()) or "the bundle has no TFLite model"
            raise BundleError(f"no model of {self.bundle_dir} loads in this interpreter ({details})")
        return models, refused


def _load_scorer(bundle_dir: Path, manifest: dict, name: str, threads: int, interpreter: str | None) -> TFLiteScorer:
    """The model's interpreter; a file of a bundle other than the shipped reference is first
    loaded in a child process (``probe``), so a file that crashes the interpreter cannot crash us."""
    entry = manifest["artifacts"][name]
    content = read_verified(bundle_dir, entry)
    try:
        if Path(bundle_dir).resolve() != REFERENCE_BUNDLE:
            from edge_lstm_device.runtime.probe import probe  # (subprocess: imported only when needed)

            probe(Path(bundle_dir) / entry["file"], entry["sha256"], interpreter)
        return TFLiteScorer(content, threads, interpreter)
    except (ValueError, RuntimeError) as err:  # ModelShapeError, ProbeRefused, the interpreter refusing the file
        if isinstance(err, BundleError):
            raise
        raise ModelLoadError(" ".join(str(err).split())[:300]) from err


def load_tokenizer(bundle_dir: Path, manifest: dict) -> TokenizerFile:
    entry = manifest["tokenizer"]
    try:
        tokenizer = tokenizers.from_json(read_verified(bundle_dir, entry), TOKENIZER_FILE)
    except TokenizerError as err:
        raise BundleError(f"bad tokenizer in {bundle_dir}: {err}") from err
    if tokenizer.num_words != manifest["model"]["num_words"]:
        raise BundleError(
            f"tokenizer has {tokenizer.num_words} words but the model was built for {manifest['model']['num_words']}"
        )
    return tokenizer
