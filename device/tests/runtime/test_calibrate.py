"""The device chooses its model where it runs: timed here, verified here, cached per environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from edge_lstm_device.runtime import calibrate
from edge_lstm_device.runtime.calibrate import CalibrationError, speed_order
from edge_lstm_device.runtime.judge import ModelVerdict
from edge_lstm_device.runtime.model import SentimentModel, recalibrate
from support import copy_reference, edit_manifest, edit_reference_scores, invert_scores

WRONG_ORDER = ["int8_tflite", "int8_dynamic_tflite", "int8_loop_tflite"]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGE_LSTM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGE_LSTM_NO_CALIBRATE", raising=False)
    return tmp_path / "cache"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_lstm_device", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.process
def test_a_wrong_order_is_corrected_by_what_this_cpu_measures(tmp_path: Path) -> None:
    """The manifest ranks the models in an order made wrong on purpose; calibration runs the
    fastest model that passes here, and never keeps the first when another is >= 10% faster."""
    bundle = copy_reference(tmp_path / "b")
    edit_manifest(bundle, lambda m: m.update(device_order=WRONG_ORDER))
    model = SentimentModel.load(bundle)
    result = model.choice.calibration
    assert result is not None and set(result.relative_time) == set(WRONG_ORDER)
    assert result.verdicts[model.name]["passed"] and model.choice.reason.startswith("calibrated on this CPU")
    failed = {n for n, v in result.verdicts.items() if not v["passed"]}
    fastest_passing = min(set(WRONG_ORDER) - failed, key=result.relative_time.get)
    first = result.relative_time[WRONG_ORDER[0]]
    if first >= 1.1 * result.relative_time[fastest_passing]:
        assert model.name == fastest_passing != WRONG_ORDER[0] and "faster here than int8_tflite" in model.choice.reason
    assert result.relative_time[model.name] <= first  # never slower than the export's first
    for name in set(WRONG_ORDER) - {model.name} - failed:
        assert model.choice.skipped[name].startswith("slower here")


def test_speed_order_keeps_the_manifests_first_within_the_noise() -> None:
    assert speed_order({"a": 1.0, "b": 0.97, "c": 2.0}, "a") == ["a", "b", "c"]
    assert speed_order({"a": 1.0, "b": 0.9, "c": 2.0}, "a") == ["b", "a", "c"]
    assert speed_order({"a": 3.0, "b": 1.0}, "a") == ["b", "a"]


@pytest.mark.heavy
def test_the_fastest_model_that_fails_verify_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibrate, "relative_times", lambda models, texts: {
        "int8_loop_tflite": 1.0, "int8_dynamic_tflite": 2.0, "int8_tflite": 5.0})
    real = calibrate.judge_scorer

    def fails_the_loop(scorer, name, *args, **kwargs) -> ModelVerdict:
        verdict = real(scorer, name, *args, **kwargs)
        if name == "int8_loop_tflite":
            verdict.failures.append("short: label agreement 98.00% < 99.50%")
        return verdict

    monkeypatch.setattr(calibrate, "judge_scorer", fails_the_loop)
    model = recalibrate()
    assert model.name == "int8_dynamic_tflite"
    assert model.choice.skipped["int8_loop_tflite"] == "fails verify on this CPU: short: label agreement 98.00% < 99.50%"
    assert model.choice.skipped["int8_tflite"].startswith("slower here (2.50× the time of int8_dynamic_tflite)")
    assert set(model.choice.calibration.verdicts) == {"int8_loop_tflite", "int8_dynamic_tflite"}


@pytest.mark.heavy
def test_the_choice_is_cached_per_environment(fresh_cache: Path) -> None:
    first = SentimentModel.load()
    assert first.choice.calibration is not None and not first.choice.calibration.cached
    again = SentimentModel.load()
    assert again.name == first.name and again.choice.calibration.cached and again.choice.reason.endswith("cached)")
    other = SentimentModel.load(threads=2)  # another environment: measured again
    assert not other.choice.calibration.cached
    for path in (fresh_cache / "calibration").iterdir():
        path.write_text("{not json")
    assert not SentimentModel.load().choice.calibration.cached  # an unreadable record: measured again


def test_an_explicit_model_and_no_calibrate_keep_their_word(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = SentimentModel.load(model="int8_dynamic_tflite")
    assert asked.name == "int8_dynamic_tflite" and asked.choice.reason == "asked for"
    monkeypatch.setenv("EDGE_LSTM_NO_CALIBRATE", "1")
    plain = SentimentModel.load()
    assert plain.name == "int8_loop_tflite" and plain.choice.calibration is None
    assert plain.choice.reason == "the fastest model in the export's measurements"


@pytest.mark.process
def test_no_model_that_passes_no_model_served(tmp_path: Path) -> None:
    bundle = copy_reference(tmp_path / "b")

    def inverted_and_short(document: dict) -> None:  # every model fails on every text; each of the
        invert_scores(document)  # four calibrations below verifies them all, so 20 texts a set
        for text_set in document["sets"]:
            del text_set["items"][20:]

    edit_reference_scores(bundle, inverted_and_short)
    with pytest.raises(CalibrationError, match="no model of the bundle meets the parity thresholds on this CPU"):
        SentimentModel.load(bundle)
    for verb, code in (("predict", 1), ("serve", 1), ("calibrate", 3)):
        args = [verb, "--bundle", str(bundle), *(["great film"] if verb == "predict" else []),
                *(["--port", "0"] if verb == "serve" else [])]
        result = _cli(*args)
        assert result.returncode == code and result.stderr.count("\n") == 1, (verb, result.stderr)
        assert "meets the parity thresholds" in result.stderr
    asked = _cli("predict", "--bundle", str(bundle), "--model", "int8_loop_tflite", "great film")
    assert asked.returncode == 0, asked.stderr  # the user's explicit choice still runs


@pytest.mark.process
def test_cli_calibrate_and_info_say_why() -> None:
    measured = _cli("calibrate", "--json")
    assert measured.returncode == 0, measured.stderr
    record = json.loads(measured.stdout)
    assert record["chosen"] in record["relative_time"] and record["environment"]["cpu"]["machine"]
    assert min(record["relative_time"].values()) == 1.0 and record["verdicts"][record["chosen"]]["passed"]
    info = json.loads(_cli("info", "--json").stdout)
    assert info["model"] == record["chosen"] and info["why"].endswith("(measured before, cached)")
    table = _cli("calibrate").stdout
    assert "CHOSEN" in table and "CPU: " in table
