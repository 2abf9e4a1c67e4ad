"""``verify``: the bundle's models against the float model's reference scores, on this CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from edge_lstm_device.bundle.manifest import BundleError
from edge_lstm_device.bundle.reference_scores import NoReferenceScores
from edge_lstm_device.runtime.agreement import Thresholds
from edge_lstm_device.runtime.verify import table, verify_bundle
from support import copy_reference, edit_manifest, edit_reference_scores, invert_scores


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_lstm_device", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.heavy
def test_the_shipped_models_meet_the_thresholds_on_this_cpu() -> None:
    """What the target asks on every CPU: parity's thresholds on whole reviews and short texts."""
    result = verify_bundle()
    assert result.passed and {v.name for v in result.verdicts} | set(result.refused) <= {
        "int8_loop_tflite", "int8_tflite", "int8_dynamic_tflite", "numpy_weights"}
    assert "numpy_weights" in {v.name for v in result.verdicts}  # the numpy engine runs everywhere
    for verdict in result.verdicts:
        assert set(verdict.sets) == {"reviews", "short"}
        assert verdict.sets["reviews"].texts >= 300 and verdict.sets["short"].texts >= 300
        assert verdict.sets["reviews"].accuracy_change is not None and verdict.sets["short"].accuracy_change is None
        assert all(a.label_agreement >= Thresholds().int8_min_agreement for a in verdict.sets.values())
    text = table(result)
    assert "every model meets the thresholds on this CPU" in text and f"CPU: {result.cpu}" in text


@pytest.mark.process
def test_inverted_reference_fails_every_model(tmp_path: Path) -> None:
    bundle = copy_reference(tmp_path / "b")
    edit_reference_scores(bundle, invert_scores)
    result = verify_bundle(bundle, ["int8_loop_tflite"])
    assert not result.passed and [v.name for v in result.verdicts] == ["int8_loop_tflite"]
    assert any(f.startswith("reviews: label agreement") for f in result.verdicts[0].failures)
    assert "FAIL" in table(result) and "a threshold failed on this CPU" in table(result)


def test_reference_scores_are_pinned_by_the_manifest(tmp_path: Path) -> None:
    bundle = copy_reference(tmp_path / "b")
    (bundle / "reference_scores.json").write_text((bundle / "reference_scores.json").read_text().replace("0.", "0.9", 1))
    with pytest.raises(BundleError, match="does not match the manifest"):
        verify_bundle(bundle)


def test_a_bundle_without_reference_scores_says_so(tmp_path: Path) -> None:
    bundle = copy_reference(tmp_path / "b")
    edit_manifest(bundle, lambda m: m.pop("reference_scores"))
    with pytest.raises(NoReferenceScores, match="export it again"):
        verify_bundle(bundle)


def test_unknown_model_is_an_error() -> None:
    with pytest.raises(BundleError, match="no model nope"):
        verify_bundle(models=["nope"])


@pytest.mark.process
def test_cli_verify_json_and_exit_codes(tmp_path: Path) -> None:
    passed = _cli("verify", "--json", "--only", "int8_loop_tflite")
    assert passed.returncode == 0, passed.stderr
    report = json.loads(passed.stdout)
    assert report["passed"] and report["cpu"]["machine"] and report["thresholds"]["int8_min_agreement"] == 0.995
    assert report["models"][0]["sets"]["short"]["label_agreement"] >= 0.995
    bundle = copy_reference(tmp_path / "b")
    edit_reference_scores(bundle, invert_scores)
    failed = _cli("verify", "--bundle", str(bundle), "--only", "int8_loop_tflite")
    assert failed.returncode == 3 and "FAIL" in failed.stdout, failed.stderr
    edit_manifest(bundle, lambda m: m.pop("reference_scores"))
    missing = _cli("verify", "--bundle", str(bundle))
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "no reference scores" in missing.stderr


@pytest.mark.process
def test_cli_verify_limit_judges_the_first_texts_of_each_set() -> None:
    """``--limit N`` (a slow CPU's quicker check): the first N texts of each set, same thresholds."""
    quick = _cli("verify", "--json", "--interpreter", "numpy", "--limit", "20")
    assert quick.returncode == 0, quick.stderr
    sets = json.loads(quick.stdout)["models"][0]["sets"]
    assert {name: s["texts"] for name, s in sets.items()} == {"reviews": 20, "short": 20}
    refused = _cli("verify", "--limit", "0")
    assert refused.returncode == 2 and "--limit must be between 1" in refused.stderr
