"""The bundle's reference scores: read bounded, pinned and checked for shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from edge_lstm_device.bundle.manifest import BundleError, read_manifest
from edge_lstm_device.bundle.reference_scores import read_reference_scores
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE
from support import copy_reference, edit_reference_scores


def test_the_shipped_bundle_has_reviews_and_short_texts() -> None:
    reference = read_reference_scores(REFERENCE_BUNDLE, read_manifest(REFERENCE_BUNDLE))
    reviews, short = reference.sets
    assert (reviews.name, short.name) == ("reviews", "short") and len(reviews.texts) == 300
    assert reviews.labels is not None and short.labels is None and len(short.texts) >= 300
    assert all(4 <= len(text.split()) <= 30 for text in short.texts)
    assert reviews.scores.shape == (300,) and ((reviews.scores >= 0) & (reviews.scores <= 1)).all()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format_version=2), "unsupported format"),
    (lambda d: d.update(sets=[]), "'sets' is not a non-empty list"),
    (lambda d: d["sets"][0]["items"][0].update(score=1.5), "scores of shape"),
    (lambda d: d["sets"][0]["items"][0].update(score=[0.1, 0.9]), "not a number"),
    (lambda d: d["sets"][0]["items"][0].update(score="high"), "not a number"),
    (lambda d: d["sets"][0]["items"][0].update(text=None), "an item without a text"),
    (lambda d: d["sets"][0]["items"][0].update(label=2), "a label is not 0 or 1"),
])
def test_malformed_reference_scores_are_refused(tmp_path: Path, change, message: str) -> None:
    bundle = copy_reference(tmp_path / "b")
    edit_reference_scores(bundle, change)
    with pytest.raises(BundleError, match=message):
        read_reference_scores(bundle, read_manifest(bundle))
