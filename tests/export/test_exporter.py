"""The export stage: four artifacts, a trustworthy manifest, and nothing half-written."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from edge_lstm_device.bundle.tokenizer import Tokenizer
from edge_lstm_device.runtime.scoring import TFLiteScorer

from edge_lstm import bundle, termination
from edge_lstm.export import exporter, lstm_loop, quantize
from edge_lstm.export.exporter import ExportError, ExportOptions, export_bundle
from edge_lstm.samples import TEST_SAMPLE, read_sample
from tests.support.fixtures import BUNDLE

pytestmark = pytest.mark.tensorflow
ARTIFACTS = {"float_tflite", "float_loop_tflite", "int8_loop_tflite", "int8_tflite", "int8_dynamic_tflite", "float_onnx", "int8_onnx"}


def _manifest(b: Path) -> dict:
    return json.loads((b / "manifest.json").read_text())


def _hashes(b: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(b.iterdir()) if p.is_file()}


def test_manifest_describes_and_fingerprints_every_file(small_bundle: Path) -> None:
    m = _manifest(small_bundle)
    assert m["format_version"] == 1 and set(m["artifacts"]) == ARTIFACTS
    for name, entry in m["artifacts"].items():
        data = (small_bundle / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
        assert entry["inputs"][0]["dtype"] == "int32" and entry["inputs"][0]["shape"][-1] == 200
        assert entry["operators"] and entry["tools"]["tensorflow"].startswith("2.21")
    assert m["tokenizer"]["sha256"] == hashlib.sha256((small_bundle / "tokenizer.json").read_bytes()).hexdigest()
    assert m["tokenizer"]["settings"]["num_words"] == 10_000
    assert m["source_model"]["sha256"] == hashlib.sha256((small_bundle / "model.h5").read_bytes()).hexdigest()


def test_tflite_uses_the_fused_lstm_and_builtin_ops_only(small_bundle: Path) -> None:
    arts = _manifest(small_bundle)["artifacts"]
    for name in ("float_tflite", "int8_tflite", "int8_dynamic_tflite"):
        ops = arts[name]["operators"]
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops and "WHILE" not in ops
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)
        assert arts[name]["inputs"][0]["shape"] == [1, 200]
    out = arts["int8_tflite"]["outputs"][0]
    assert out["dtype"] == "int8" and out["quantization"]["scale"] > 0
    assert arts["int8_tflite"]["quantization"] == "full-integer"
    assert arts["int8_dynamic_tflite"]["quantization"] == "dynamic-range"


@pytest.mark.parametrize("name", ["int8_loop_tflite", "float_loop_tflite"])
def test_loop_form_is_a_stateless_length_aware_while_loop_of_builtin_ops(small_bundle: Path, name: str) -> None:
    entry = _manifest(small_bundle)["artifacts"][name]
    assert entry["lstm"] == "loop" and not entry["stateful"]
    assert entry["quantization"] == ("dynamic-range" if name.startswith("int8") else "none")
    assert "WHILE" in entry["operators"] and "UNIDIRECTIONAL_SEQUENCE_LSTM" not in entry["operators"]
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in entry["operators"])
    assert entry["inputs"][0]["shape"] == [1, 200] and entry["outputs"][0]["dtype"] == "float32"
    loop = entry["loop"]  # how the form runs, and how its pad-state table was made
    assert loop["length_aware"] and "any" in loop["batch"] and not loop["masked"]
    assert loop["pad_state_table"]["rows"] > 1 and loop["pad_state_table"]["last_change"] < loop["pad_state_table"]["tolerance"]


def test_device_order_ranks_every_tflite_artifact_by_the_reports_latency(small_bundle: Path) -> None:
    manifest = _manifest(small_bundle)
    report = json.loads((small_bundle / exporter.REPORT_FILE).read_text())["artifacts"]
    tflite = {n for n, e in manifest["artifacts"].items() if e["format"] == "tflite"}
    order = manifest["device_order"]
    assert set(order) == tflite and manifest["device_default"] == order[0]
    medians = [report[name]["latency_ms"]["median"] for name in order]
    assert medians == sorted(medians)
    for name in tflite:
        assert manifest["artifacts"][name]["verified_in"][0]["interpreter"] == "ai-edge-litert"


def test_onnx_has_an_lstm_node_dynamic_batch_and_passes_the_checker(small_bundle: Path) -> None:
    import onnx

    arts = _manifest(small_bundle)["artifacts"]
    assert "LSTM" in arts["float_onnx"]["operators"] and arts["float_onnx"]["opset"]["ai.onnx"] >= 17
    assert "com.microsoft.DynamicQuantizeLSTM" in arts["int8_onnx"]["operators"]
    assert not isinstance(arts["float_onnx"]["inputs"][0]["shape"][0], int)
    for name in ("float_onnx", "int8_onnx"):
        onnx.checker.check_model(str(small_bundle / arts[name]["file"]), full_check=True)


def test_int8_artifacts_are_at_most_26_percent_of_float(small_bundle: Path) -> None:
    """int8 weights; the loop forms both hold the float pad-state table (h and c per row), counted apart."""
    manifest = _manifest(small_bundle)
    arts = manifest["artifacts"]
    table = arts["int8_loop_tflite"]["loop"]["pad_state_table"]["rows"] * manifest["model"]["units"] * 2 * 4
    for name, twin, shared in (("int8_loop_tflite", "float_loop_tflite", table), ("int8_tflite", "float_tflite", 0),
                               ("int8_dynamic_tflite", "float_tflite", 0), ("int8_onnx", "float_onnx", 0)):
        assert arts[name]["bytes"] - shared <= 0.26 * (arts[twin]["bytes"] - shared), name
        assert arts[name]["size_ratio_to_float"] == round(arts[name]["bytes"] / arts[twin]["bytes"], 4)


def test_export_validated_every_artifact_and_reports_it_beside_the_manifest(small_bundle: Path) -> None:
    report = json.loads((small_bundle / exporter.REPORT_FILE).read_text())["artifacts"]
    assert set(report) == ARTIFACTS | {"numpy_weights"}  # the numpy engine's weights are checked like an artifact
    for measured in report.values():
        assert measured["selfcheck"]["reviews"] == exporter.SELFCHECK_REVIEWS
    float_check = report["float_tflite"]["selfcheck"]
    assert float_check["max_abs_diff"] < 1e-4 and float_check["label_agreement"] == 1.0
    assert "selfcheck" not in _manifest(small_bundle)["artifacts"]["float_tflite"]  # machine-dependent


def test_scores_do_not_depend_on_the_review_before(small_bundle: Path) -> None:
    texts = read_sample(TEST_SAMPLE).texts
    rows = Tokenizer.load(small_bundle / "tokenizer.json").encode_batch([texts[0], texts[1]])
    for file in ("model_float.tflite", "model_int8.tflite", "model_int8_loop.tflite"):
        scorer = TFLiteScorer((small_bundle / file).read_bytes())
        b_alone = scorer.score(rows[1:])[0]
        a_then_b = scorer.score(rows)
        assert a_then_b[1] == b_alone, file


def test_without_reset_the_state_leaks() -> None:
    """Proof that the reset matters, on the trained reference model: without it scores change."""
    texts = read_sample(TEST_SAMPLE).texts[:60]
    rows = Tokenizer.load(BUNDLE / "tokenizer.json").encode_batch(texts)
    scorer = TFLiteScorer((BUNDLE / "model_int8.tflite").read_bytes())
    alone = scorer.score(rows)
    it, leaked = scorer.interpreter, []
    for row in rows:  # no reset_all_variables()
        it.set_tensor(it.get_input_details()[0]["index"], row[None, :])
        it.invoke()
        leaked.append(scorer._probabilities(it.get_tensor(it.get_output_details()[0]["index"]))[0])
    assert np.max(np.abs(np.array(leaked) - alone)) > 0.05


@pytest.fixture()
def bundle_copy(small_bundle: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "b"
    shutil.copytree(small_bundle, dest)
    return dest


def test_failed_export_leaves_previous_files_untouched(bundle_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _hashes(bundle_copy)

    def broken(*args: object) -> None:
        raise quantize.ConversionError("simulated failure")

    monkeypatch.setattr(lstm_loop, "to_tflite_loop", broken)  # (an ONNX file that fails is left out instead)
    with pytest.raises(ExportError, match="simulated"):
        export_bundle(bundle_copy, ExportOptions(calibration_reviews=20), log=lambda _: None)
    assert _hashes(bundle_copy) == before
    assert not list(bundle_copy.glob(exporter.STAGING_PREFIX + "*"))


def test_interrupted_export_leaves_previous_files_untouched(bundle_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _hashes(bundle_copy)

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(quantize, "to_tflite_int8", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_bundle(bundle_copy, ExportOptions(calibration_reviews=20), log=lambda _: None)
    assert _hashes(bundle_copy) == before


def test_float_only_export_drops_int8_files(bundle_copy: Path) -> None:
    export_bundle(bundle_copy, ExportOptions(int8=False), log=lambda _: None)
    assert set(_manifest(bundle_copy)["artifacts"]) == {"float_tflite", "float_onnx", "float_loop_tflite"}
    assert not (bundle_copy / "model_int8.tflite").exists()
    assert "numpy_weights" not in _manifest(bundle_copy) and not (bundle_copy / "model_numpy.npz").exists()


def test_export_removes_only_its_own_files_whatever_the_old_manifest_says(bundle_copy: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    manifest = _manifest(bundle_copy)
    for i, name in enumerate([str(victim), "../victim.txt", "model.h5", "tokenizer.json", "metrics.json"]):
        manifest["artifacts"][f"evil_{i}"] = {"file": name, "format": "tflite"}
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    (bundle_copy / "notes.txt").write_text("mine")
    export_bundle(bundle_copy, ExportOptions(int8=False), log=lambda _: None)
    assert victim.read_text() == "keep me" and (bundle_copy / "notes.txt").read_text() == "mine"
    for name in ("model.h5", "tokenizer.json", "metrics.json"):
        assert (bundle_copy / name).exists(), name
    assert not (bundle_copy / "model_int8_loop.tflite").exists()  # an export's own stale file


def test_tokenizer_that_does_not_match_the_model(bundle_copy: Path) -> None:
    tok = Tokenizer.load(bundle_copy / "tokenizer.json")
    Tokenizer(tok.words[:100], num_words=500, max_len=200).save(bundle_copy / "tokenizer.json")
    with pytest.raises(ExportError, match="vocabulary has 10000 ids but the tokenizer's has 500"):
        export_bundle(bundle_copy, log=lambda _: None)


def test_tokenizer_with_another_length(bundle_copy: Path) -> None:
    tok = Tokenizer.load(bundle_copy / "tokenizer.json")
    Tokenizer(tok.words, num_words=tok.num_words, max_len=100).save(bundle_copy / "tokenizer.json")
    with pytest.raises(ExportError, match="reads 200 tokens"):
        export_bundle(bundle_copy, log=lambda _: None)


def test_model_of_another_architecture(bundle_copy: Path) -> None:
    import tf_keras as keras

    model = keras.Sequential([keras.layers.Embedding(10_000, 4, input_length=200), keras.layers.GlobalAveragePooling1D(),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.build((None, 200))
    model.save(bundle_copy / bundle.MODEL_FILE)
    with pytest.raises((ExportError, bundle.BundleError), match="Embedding -> GlobalAveragePooling1D -> Dense; supported"):
        export_bundle(bundle_copy, log=lambda _: None)


def test_missing_model(bundle_copy: Path) -> None:
    (bundle_copy / bundle.MODEL_FILE).unlink()
    with pytest.raises(bundle.BundleError, match="no model"):
        export_bundle(bundle_copy, log=lambda _: None)


def test_calibration_never_uses_random_ids(small_bundle: Path) -> None:
    tok = Tokenizer.load(small_bundle / "tokenizer.json")
    rows, origin = exporter.calibration_rows(ExportOptions(calibration_reviews=50), tok)
    assert rows.shape == (50, 200) and "train_reviews" in origin
    sample = read_sample(exporter.TRAIN_SAMPLE)
    assert np.array_equal(rows[0], tok.encode(sample.balanced(50, 0).texts[0]))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_export_leaves_previous_files_and_no_staging(bundle_copy: Path, sig: signal.Signals) -> None:
    """SIGTERM unwinds and removes the staging folder; after SIGKILL the next export removes it."""
    before = _hashes(bundle_copy)
    proc = subprocess.Popen([sys.executable, "-m", "edge_lstm.cli", "export", "--int8", "--bundle", str(bundle_copy)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(bundle_copy.glob(exporter.STAGING_PREFIX + "*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert _hashes(bundle_copy) == before
    leftovers = list(bundle_copy.glob(exporter.STAGING_PREFIX + "*"))
    if sig == signal.SIGTERM:
        assert not leftovers
    else:
        export_bundle(bundle_copy, ExportOptions(int8=False), log=lambda _: None)
        assert not list(bundle_copy.glob(exporter.STAGING_PREFIX + "*"))


def test_a_sigterm_that_a_converter_swallows_still_stops_the_export(bundle_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tf2onnx has bare ``except:`` clauses: a SIGTERM caught there still ends the export before
    it commits anything, with the handler's exit status."""
    before = _hashes(bundle_copy)
    real = exporter.convert.to_onnx_float

    def swallowing(*args: object) -> object:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except BaseException:  # noqa: BLE001 (what a bare except in a converter does)
            pass
        return real(*args)

    monkeypatch.setattr(exporter.convert, "to_onnx_float", swallowing)
    monkeypatch.setattr(termination, "_received", None)
    previous = signal.getsignal(signal.SIGTERM)
    termination.install()
    try:
        with pytest.raises(SystemExit) as stopped:
            export_bundle(bundle_copy, ExportOptions(int8=False), log=lambda _: None)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert _hashes(bundle_copy) == before
    assert not list(bundle_copy.glob(exporter.STAGING_PREFIX + "*"))


def test_an_onnx_file_that_fails_is_left_out_and_named(bundle_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX where the converter manages: a failure leaves the ONNX files out, with the reason."""
    def broken(*args: object) -> None:
        raise quantize.ConversionError("simulated tf2onnx failure")

    monkeypatch.setattr(exporter.convert, "to_onnx_float", broken)
    export_bundle(bundle_copy, ExportOptions(calibration_reviews=20), log=lambda _: None)
    manifest = _manifest(bundle_copy)
    assert not {"float_onnx", "int8_onnx"} & set(manifest["artifacts"])
    assert "simulated tf2onnx failure" in manifest["not_exported"]["float_onnx"]
    assert not (bundle_copy / "model_float.onnx").exists() and "int8_loop_tflite" in manifest["artifacts"]
