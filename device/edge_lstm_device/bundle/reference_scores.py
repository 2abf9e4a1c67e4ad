"""The bundle's reference scores: real texts with the float model's outputs, so that a device
with no TensorFlow can check its own models on its own CPU (``verify``, ``calibrate``).

``reference_scores.json`` (docs/bundle-format.md) holds sets of texts: whole IMDB test reviews
with their known labels, and short texts cut from them (short texts flip more). The manifest pins
the file like every other, so a signature covers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_lstm_device.bundle.manifest import REFERENCE_SCORES_FILE, BundleError, class_names, parse_json, read_verified

MAX_SET_TEXTS = 10_000
FORMAT_VERSION = 1


class NoReferenceScores(BundleError):
    """The bundle was exported before reference scores existed: it cannot be verified."""


@dataclass(frozen=True)
class TextSet:
    """Texts and the float model's scores for them: ``(n,)``, or ``(n, k)`` class probabilities."""

    name: str
    description: str
    ids: list[str]
    texts: list[str]
    scores: np.ndarray
    labels: np.ndarray | None  # 0/1 where the texts' sentiment is known (whole reviews)


@dataclass(frozen=True)
class ReferenceScores:
    reference: str  # the model that gave the scores
    sets: list[TextSet]

    def first(self, limit: int | None) -> ReferenceScores:
        """The first ``limit`` texts of each set (all with ``None``): a slow CPU's quicker check."""
        if limit is None:
            return self
        return ReferenceScores(self.reference, [_first(s, limit) for s in self.sets])


def _first(text_set: TextSet, limit: int) -> TextSet:
    labels = None if text_set.labels is None else text_set.labels[:limit]
    return TextSet(text_set.name, text_set.description, text_set.ids[:limit], text_set.texts[:limit],
                   text_set.scores[:limit], labels)


def read_reference_scores(bundle_dir: Path, manifest: dict) -> ReferenceScores:
    """The bundle's reference scores, verified against the manifest and checked for shape;
    ``NoReferenceScores`` when the manifest has none."""
    entry = manifest.get("reference_scores")
    if entry is None:
        raise NoReferenceScores(f"the bundle in {bundle_dir} has no reference scores: export it again "
                                "(edge-lstm export) to verify it on a device")
    document = parse_json(read_verified(bundle_dir, entry), REFERENCE_SCORES_FILE)
    if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{REFERENCE_SCORES_FILE}: unsupported format (expected format_version {FORMAT_VERSION})")
    classes = len(class_names(manifest))
    sets = document.get("sets")
    if not isinstance(sets, list) or not sets:
        raise BundleError(f"{REFERENCE_SCORES_FILE}: 'sets' is not a non-empty list")
    return ReferenceScores(str(document.get("reference", "")), [_text_set(s, classes) for s in sets])


def _text_set(raw: object, classes: int) -> TextSet:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("items"), list):
        raise BundleError(f"{REFERENCE_SCORES_FILE}: a set has no 'name' or 'items'")
    items = raw["items"]
    if not 0 < len(items) <= MAX_SET_TEXTS or not all(isinstance(i, dict) for i in items):
        raise BundleError(f"{REFERENCE_SCORES_FILE}: set {raw['name'][:40]!r} has no items or more than {MAX_SET_TEXTS:,}")
    texts = [i.get("text") for i in items]
    if not all(isinstance(t, str) for t in texts):
        raise BundleError(f"{REFERENCE_SCORES_FILE}: set {raw['name'][:40]!r} has an item without a text")
    return TextSet(raw["name"], str(raw.get("description", "")), [str(i.get("id", n)) for n, i in enumerate(items)],
                   texts, _scores(items, classes, raw["name"]), _labels(items))


def _scores(items: list[dict], classes: int, name: str) -> np.ndarray:
    try:
        scores = np.array([i.get("score") for i in items], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BundleError(f"{REFERENCE_SCORES_FILE}: set {name[:40]!r} has a score that is not a number") from err
    shape = (len(items),) if classes == 0 else (len(items), classes)
    if scores.shape != shape or not ((scores >= 0) & (scores <= 1)).all():
        raise BundleError(f"{REFERENCE_SCORES_FILE}: set {name[:40]!r} needs scores of shape {shape} in [0, 1]")
    return scores


def _labels(items: list[dict]) -> np.ndarray | None:
    labels = [i.get("label") for i in items]
    if any(label is None for label in labels):
        return None
    if not all(label in (0, 1) and type(label) is int for label in labels):
        raise BundleError(f"{REFERENCE_SCORES_FILE}: a label is not 0 or 1")
    return np.array(labels, dtype=np.int64)
