"""The shipped reference bundle is consistent: what the manifest pins is what is committed."""

from __future__ import annotations

import json
from dataclasses import asdict

from edge_lstm_device.bundle.files import file_sha256

from edge_lstm.train.training import TrainConfig
from tests.support.fixtures import BUNDLE


def test_manifest_pins_the_shipped_model_and_tokenizer() -> None:
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    assert manifest["source_model"]["sha256"] == file_sha256(BUNDLE / "model.h5")
    assert manifest["tokenizer"]["sha256"] == file_sha256(BUNDLE / "tokenizer.json")
    for name in ("int8_loop_tflite", "int8_tflite", "int8_dynamic_tflite"):
        assert manifest["artifacts"][name]["sha256"] == file_sha256(BUNDLE / manifest["artifacts"][name]["file"])
    assert manifest["device_order"][0] == manifest["device_default"] == "int8_loop_tflite"


def test_reference_was_trained_with_the_defaults_on_all_reviews() -> None:
    metrics = json.loads((BUNDLE / "metrics.json").read_text())
    assert metrics["config"] == asdict(TrainConfig())  # `edge-lstm train` with no options reproduces it
    lecture = {"num_words": 10_000, "max_len": 200, "embedding_dim": 128, "lstm_units": 128, "epochs": 3,
               "batch_size": 64, "validation_split": 0.2}
    assert {key: metrics["config"][key] for key in lecture} == lecture
    assert metrics["n_train"] + metrics["n_validation"] == 25_000 and metrics["n_test"] == 25_000
    assert len(metrics["epochs"]) == 3 and metrics["test_accuracy"] >= 0.870
