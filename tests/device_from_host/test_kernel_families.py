"""Every kernel family in the tests: the device calibrates and verifies itself on this CPU, on
other x86-64 CPUs (qemu-x86_64 -cpu Nehalem, Haswell) and on Raspberry Pi cores (qemu-aarch64
-cpu cortex-a72, cortex-a76; qemu-arm -cpu cortex-a7), with onnxruntime's int8 file where it runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.families import FAMILIES, check_family, is_this_cpu, python_for
from tests.support.foreign import ForeignEnvUnavailable

CACHE = Path(os.environ.get("EDGE_LSTM_TEST_CACHE", Path.home() / ".cache" / "edge-lstm-tests"))
MIN_REVIEWS = {"host": 300, "x86": 300, "arm64": 100, "armhf": 100}
# onnxruntime's int8 file under emulation: the first 300 texts of each reference set (all 300 reviews, 300 of the
# 580 short texts). Its scan runs all 200 steps of every text, pads too: the whole sets cost 50-60 s of emulation
# a family. scripts/kernel_families.py (docs/parity_report.md) judges the whole sets.
EMULATED_ONNX_TEXTS = 300


def _marks(family) -> list:
    return [pytest.mark.qemu, *([pytest.mark.arm] if family.where in ("arm64", "armhf") else [])]


@pytest.mark.minutes
@pytest.mark.parametrize("family", [pytest.param(f, id=f.key, marks=_marks(f)) for f in FAMILIES])
def test_the_device_verifies_its_chosen_model_in_every_family(family, exported_reference: Path) -> None:
    try:
        py = python_for(family, CACHE)
    except ForeignEnvUnavailable as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    if is_this_cpu(family, py):
        pytest.skip(f"this CPU is the {family.key} family (the same kernel-picking features): the native run covers it")
    result = check_family(family, py, exported_reference, None if family.where == "host" else EMULATED_ONNX_TEXTS)
    chosen, verify = result["chosen"], result["verify"]
    assert chosen and verify["passed"], f"{py.description}: {verify}"
    assert [m["name"] for m in verify["models"]] == [chosen] and verify["models"][0]["passed"]
    sets = verify["models"][0]["sets"]
    assert sets["reviews"]["texts"] >= MIN_REVIEWS[family.where] and sets["short"]["texts"] >= 300
    if family.onnx:
        onnx = result["onnx"]["models"]
        assert [m["name"] for m in onnx] == ["int8_onnx"] and onnx[0]["passed"], f"{py.description}: {onnx}"
        assert onnx[0]["runs_in"].startswith("onnxruntime ")
        assert onnx[0]["sets"]["reviews"]["texts"] >= 300 and onnx[0]["sets"]["short"]["texts"] >= 300
