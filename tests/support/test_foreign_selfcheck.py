"""Self-check of tests.support.foreign: a tiny float TFLite model gives the host's output everywhere."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.support.foreign import (
    ForeignEnvUnavailable,
    ForeignPython,
    arm_python,
    check_no_tensorflow,
    isolated_venv,
)

CACHE = Path(os.environ.get("EDGE_LSTM_TEST_CACHE", Path.home() / ".cache" / "edge-lstm-tests"))
TOKENS = [(i * 37) % 50 for i in range(200)]
RUN_MODEL = """
import importlib, json, sys
import numpy as np
Interpreter = importlib.import_module(sys.argv[1]).Interpreter
interp = Interpreter(model_path=sys.argv[2])
interp.allocate_tensors()
inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
interp.set_tensor(inp["index"], np.array([json.loads(sys.stdin.read())], dtype=np.int32))
interp.invoke()
print(json.dumps(interp.get_tensor(out["index"]).astype(float).ravel().tolist()))
"""


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    """An int32 [1,200] -> float [1,1] gather/sum/sigmoid model and the host interpreter's output."""
    tf = pytest.importorskip("tensorflow")
    table = tf.constant(np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    weights = tf.constant(np.linspace(-1.0, 1.0, 4, dtype=np.float32)[:, None])

    @tf.function(input_signature=[tf.TensorSpec([1, 200], tf.int32)])
    def model(tokens: object) -> object:
        pooled = tf.reduce_mean(tf.gather(table, tokens), axis=1)
        return tf.sigmoid(tf.matmul(pooled, weights))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    path = tmp_path_factory.mktemp("tiny") / "tiny.tflite"
    path.write_bytes(converter.convert())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter's deprecation notice
        interp = tf.lite.Interpreter(model_path=str(path))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], np.array([TOKENS], dtype=np.int32))
    interp.invoke()
    return path, interp.get_tensor(interp.get_output_details()[0]["index"]).ravel().tolist()


def _check_env(py: ForeignPython, tiny_model: tuple[Path, list[float]]) -> None:
    path, expected = tiny_model
    check_no_tensorflow(py)
    proc = py.run(["-c", RUN_MODEL, py.interpreter_module, str(path)], input=json.dumps(TOKENS))
    assert proc.returncode == 0, f"{py.description}: {proc.stderr[-2000:]}"
    np.testing.assert_allclose(json.loads(proc.stdout), expected, rtol=1e-5, err_msg=py.description)


@pytest.mark.venv
@pytest.mark.parametrize("kind", ["tflite-runtime", "litert"])
def test_x86_venv(kind: str, tiny_model: tuple[Path, list[float]]) -> None:
    _check_env(isolated_venv(kind, CACHE), tiny_model)


@pytest.mark.arm
@pytest.mark.parametrize("flavour", ["tflite-runtime", "litert"])
def test_arm_qemu(flavour: str, tiny_model: tuple[Path, list[float]]) -> None:
    try:
        py = arm_python(CACHE, flavour)
    except ForeignEnvUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    assert py.description.startswith("aarch64 Python 3.11")
    _check_env(py, tiny_model)
