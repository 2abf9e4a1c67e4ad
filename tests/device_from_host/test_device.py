"""The device package ships the reference bundle's files as exported."""

from __future__ import annotations

from edge_lstm_device.runtime.model import REFERENCE_BUNDLE

from tests.support.fixtures import BUNDLE

SHIPPED = ("model_int8_loop.tflite", "model_int8.tflite", "model_int8_dynamic.tflite", "tokenizer.json",
           "reference_scores.json", "manifest.json")


def test_device_ships_the_exported_reference_files() -> None:
    for name in SHIPPED:
        assert (REFERENCE_BUNDLE / name).read_bytes() == (BUNDLE / name).read_bytes(), name
