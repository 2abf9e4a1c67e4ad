"""The export writes the float model's scores of real texts into every bundle (device verify)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from edge_lstm_device.bundle.files import file_sha256
from edge_lstm_device.bundle.manifest import read_manifest
from edge_lstm_device.bundle.reference_scores import read_reference_scores

from edge_lstm.export.reference_scores import sentences, short_texts
from edge_lstm.samples import TEST_SAMPLE, read_sample


def test_sentences_are_cut_at_their_ends_and_kept_by_length() -> None:
    text = "Great.<br /><br />I loved every minute of this film! Was it too long? No, not at all for me. " + "word " * 40
    assert sentences(text) == ["I loved every minute of this film!", "Was it too long?"]
    assert sentences("Short. Tiny. Too.") == []


def test_short_texts_are_named_after_their_review() -> None:
    ids, texts = short_texts(read_sample(TEST_SAMPLE))
    assert len(ids) == len(texts) >= 300 and ids[0].split("#s")[0] == read_sample(TEST_SAMPLE).ids[0]
    assert all(4 <= len(t.split()) <= 30 for t in texts)


def test_export_writes_and_pins_the_float_models_scores(small_bundle: Path) -> None:
    from edge_lstm.bundle import load_model, load_tokenizer
    from edge_lstm.evaluate.backends import KerasBackend

    manifest = read_manifest(small_bundle)
    entry = manifest["reference_scores"]
    assert entry["sha256"] == file_sha256(small_bundle / "reference_scores.json") and entry["sets"]["reviews"] == 300
    reference = read_reference_scores(small_bundle, manifest)
    reviews = reference.sets[0]
    keras = KerasBackend(load_model(small_bundle)).score(load_tokenizer(small_bundle).encode_batch(reviews.texts[:20]))
    np.testing.assert_allclose(reviews.scores[:20], keras, atol=1e-6)
    assert json.loads((small_bundle / "reference_scores.json").read_text())["sets"][1]["name"] == "short"
