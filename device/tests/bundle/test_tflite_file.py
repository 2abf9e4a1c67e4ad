"""A TFLite file's structure, checked before an interpreter trusts its offsets."""

from __future__ import annotations

import struct

import pytest
from edge_lstm_device.bundle.tflite_file import TFLiteFileError, verify_tflite
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE
from support import mutated_copies

LOOP = REFERENCE_BUNDLE / "model_int8_loop.tflite"


@pytest.mark.parametrize("name", sorted(p.name for p in REFERENCE_BUNDLE.glob("*.tflite")))
def test_the_shipped_models_are_well_formed(name: str) -> None:
    verify_tflite((REFERENCE_BUNDLE / name).read_bytes())


def test_a_quantization_table_outside_the_file_is_refused() -> None:
    """The 9th mutated file: the interpreter read its quantization 10 MB past the file, and crashed
    the caller in about 2% of loads (tflite-runtime 2.14, after the probe's child had passed)."""
    with pytest.raises(TFLiteFileError, match="QuantizationParameters table at byte 11,419,508 lies outside"):
        verify_tflite(mutated_copies(LOOP, 9)[8])


def test_vector_lengths_past_the_end_are_refused() -> None:
    """Files the interpreters loaded and scored, reading past the end of the file to do it."""
    for data in mutated_copies(LOOP, 25)[22:]:
        with pytest.raises(TFLiteFileError, match="Tensor vector"):
            verify_tflite(data)


@pytest.mark.parametrize("cut", [0, 7, 100, 100_000])
def test_a_truncated_file_is_refused(cut: int) -> None:
    with pytest.raises(TFLiteFileError, match="not a"):
        verify_tflite(LOOP.read_bytes()[:cut])


def test_a_root_offset_outside_the_file_is_refused() -> None:
    data = bytearray(LOOP.read_bytes())
    struct.pack_into("<I", data, 0, len(data) + 8)
    with pytest.raises(TFLiteFileError, match="Model table"):
        verify_tflite(bytes(data))
