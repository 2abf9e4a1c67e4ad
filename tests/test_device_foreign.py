"""The device package where it will run: isolated environments with only numpy and one TFLite
interpreter (tflite-runtime 2.14 + numpy < 2, or ai-edge-litert), on x86-64 and on aarch64 under
qemu user emulation. In each, TensorFlow is not importable and the scores equal the host's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_lstm.samples import TEST_SAMPLE, read_sample
from edge_lstm_device.model import SentimentModel
from tests.conftest import ROOT
from tests.support.foreign import ForeignEnvUnavailable, ForeignPython, arm_python, check_no_tensorflow, isolated_venv

CACHE = Path(os.environ.get("EDGE_LSTM_TEST_CACHE", Path.home() / ".cache" / "edge-lstm-tests"))
DIST = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}
DYNAMIC_RANGE_ATOL = 2.5e-3  # measured: 1.6e-3 tflite-runtime 2.14 x86, 7.2e-5 / 9e-6 on aarch64
ARM_REVIEWS = 40  # emulation is slow; x86 environments score the whole sample


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    texts = [" ".join(t.split()) for t in read_sample(TEST_SAMPLE).texts]
    path = tmp_path_factory.mktemp("sample") / "reviews.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path, texts


@pytest.fixture(scope="module")
def host_scores(sample_file: tuple[Path, list[str]]) -> dict[str, np.ndarray]:
    _, texts = sample_file
    return {name: np.array([p.probability for p in SentimentModel.load(model=name).predict_batch(texts)])
            for name in ("int8_loop_tflite", "int8_tflite", "int8_dynamic_tflite")}


def _device_scores(py: ForeignPython, flavour: str, model: str, file: Path, limit: int | None) -> np.ndarray:
    if limit:
        short = file.with_name(f"first{limit}.txt")
        short.write_text("".join(file.read_text(encoding="utf-8").splitlines(keepends=True)[:limit]), encoding="utf-8")
        file = short
    proc = py.run(["-m", "edge_lstm_device", "predict", "--json", "--interpreter", DIST[flavour], "--model", model,
                   "--file", str(file)], pythonpath=[ROOT / "device"], timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.array([json.loads(line)["probability"] for line in proc.stdout.splitlines()])


def _environment(where: str, flavour: str) -> ForeignPython:
    try:
        return isolated_venv(flavour, CACHE) if where == "x86" else arm_python(CACHE, flavour)
    except ForeignEnvUnavailable as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))


@pytest.mark.venv
@pytest.mark.parametrize("where", ["x86", pytest.param("arm", marks=pytest.mark.arm)])
@pytest.mark.parametrize("flavour", ["tflite-runtime", "litert"])
@pytest.mark.parametrize("model", ["int8_loop_tflite", "int8_tflite", "int8_dynamic_tflite"])
def test_device_scores_equal_the_host(where: str, flavour: str, model: str, sample_file, host_scores) -> None:
    py = _environment(where, flavour)
    check_no_tensorflow(py)
    limit = ARM_REVIEWS if where == "arm" else None
    scores = _device_scores(py, flavour, model, sample_file[0], limit)
    expected = host_scores[model][: len(scores)]
    assert len(scores) == (limit or len(host_scores[model]))
    if model == "int8_tflite":  # integer arithmetic: bit-exact on every platform and interpreter
        np.testing.assert_array_equal(scores, expected, err_msg=py.description)
    else:  # float activations: kernels differ (AVX vs NEON, TFLite 2.14 vs LiteRT 2.3) in the last digits
        np.testing.assert_allclose(scores, expected, atol=DYNAMIC_RANGE_ATOL, rtol=0, err_msg=py.description)
        assert np.array_equal(scores >= 0.5, expected >= 0.5), py.description


@pytest.mark.venv
def test_pip_install_device_alone_then_predict(tmp_path: Path) -> None:
    """``pip install ./device`` into a fresh venv: the CLI answers with no other file."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(ROOT / "device")], check=True, capture_output=True)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(["edge-lstm-device", "predict", "--json", "What a wonderful film"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    record = json.loads(out.stdout)
    assert record["label"] == "positive" and record["model"] == "int8_loop_tflite"
    tf = subprocess.run([str(venv / "bin" / "python"), "-c", "import tensorflow"], capture_output=True)
    assert tf.returncode != 0


@pytest.mark.venv
@pytest.mark.parametrize("flavour", ["tflite-runtime", "litert"])
def test_device_tests_pass_with_only_the_device_package(flavour: str) -> None:
    """``device/tests`` (what a Pi can run) in a venv with numpy, one interpreter and pytest."""
    try:
        py = isolated_venv(flavour, CACHE, extra=("pytest",))
    except ForeignEnvUnavailable as err:
        pytest.skip(str(err))
    check_no_tensorflow(py)
    proc = py.run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "device" / "tests")],
                  pythonpath=[ROOT / "device"], timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
