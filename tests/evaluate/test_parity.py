"""The parity harness passes the shipped bundle and fails loudly on broken artifacts."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from edge_lstm_device.bundle.tokenizer import Tokenizer
from edge_lstm_device.runtime.scoring import TFLiteScorer

from edge_lstm.cli import main
from edge_lstm.evaluate.backends import TFLiteBackend
from edge_lstm.evaluate.parity import Thresholds, run_parity
from edge_lstm.samples import TEST_SAMPLE, read_sample

pytestmark = pytest.mark.tensorflow


def _parity(bundle: Path, *extra: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["parity", "--bundle", str(bundle), "--json", *extra], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout[result.stdout.index("{"):])


def test_shipped_bundle_passes_on_the_sample(exported_reference: Path) -> None:
    code, report = _parity(exported_reference)
    assert code == 0 and report["passed"] and report["reviews"] == 300
    names = {b["name"] for b in report["backends"]}
    assert {"float_tflite", "int8_tflite", "float_onnx", "int8_onnx"} <= names
    by_name = {b["name"]: b for b in report["backends"]}
    assert by_name["float_tflite"]["max_abs_diff"] <= 1e-4 and by_name["int8_tflite"]["label_agreement"] >= 0.995
    assert by_name["int8_onnx"]["batch_dependent"] and by_name["int8_onnx"]["batch_dependence_expected"]
    assert not by_name["float_onnx"]["batch_dependent"] and not by_name["float_tflite"]["order_dependent"]
    assert (exported_reference / "parity_report.md").read_text().startswith("# Parity report")
    assert (exported_reference / "parity_scores.png").read_bytes()[:4] == b"\x89PNG"


def test_perturbed_weights_fail_with_the_threshold_exit_code(exported_reference: Path, tmp_path: Path) -> None:
    import tf_keras as keras

    from edge_lstm.export.convert import to_tflite_float

    broken = tmp_path / "broken"
    shutil.copytree(exported_reference, broken)
    model = keras.models.load_model(broken / "model.h5", compile=False)
    lstm = model.layers[1]
    kernel, recurrent, bias = lstm.get_weights()
    lstm.set_weights([kernel + np.random.default_rng(0).normal(0, 0.05, kernel.shape).astype(np.float32), recurrent, bias])
    data = to_tflite_float(model, 200)
    (broken / "model_float.tflite").write_bytes(data)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["artifacts"]["float_tflite"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    (broken / "manifest.json").write_text(json.dumps(manifest))
    code, report = _parity(broken, "--only", "float_tflite", "--no-report")
    assert code == 3 and not report["passed"]
    assert any("max |Δp|" in f for f in report["backends"][0]["failures"])


def test_tampered_artifact_is_an_error_not_a_verdict(exported_reference: Path, tmp_path: Path) -> None:
    broken = tmp_path / "tampered"
    shutil.copytree(exported_reference, broken)
    (broken / "model_int8.onnx").write_bytes(b"junk")
    result = CliRunner().invoke(main, ["parity", "--bundle", str(broken)])
    assert result.exit_code == 1 and "does not match the manifest" in result.output


class _NoReset(TFLiteScorer):
    """A runtime that forgets to reset the LSTM state between reviews."""

    def score(self, rows: np.ndarray) -> np.ndarray:
        it, out = self.interpreter, []
        for row in rows:
            it.set_tensor(it.get_input_details()[0]["index"], row[None, :])
            it.invoke()
            out.append(self._probabilities(it.get_tensor(it.get_output_details()[0]["index"]))[0])
        return np.array(out, np.float32)


def test_state_not_reset_makes_the_harness_fail(exported_reference: Path) -> None:
    sample = read_sample(TEST_SAMPLE)
    rows = Tokenizer.load(exported_reference / "tokenizer.json").encode_batch(sample.texts)
    good = TFLiteBackend(TFLiteScorer((exported_reference / "model_float.tflite").read_bytes()), "float_tflite")
    reference = good.score(rows)
    leaky = TFLiteBackend(_NoReset((exported_reference / "model_float.tflite").read_bytes()), "leaky_tflite")
    report = run_parity(sample, rows, reference, [(good, "float32", False), (leaky, "float32", False)],
                        Thresholds(), "sample", log=lambda _: None)
    assert report.backends[0].passed
    assert not report.backends[1].passed and report.backends[1].order_dependent
    assert not report.passed


def test_unknown_artifact_is_a_usage_error(exported_reference: Path) -> None:
    result = CliRunner().invoke(main, ["parity", "--bundle", str(exported_reference), "--only", "nope"])
    assert result.exit_code == 2
