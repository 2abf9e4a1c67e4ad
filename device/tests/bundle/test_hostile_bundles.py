"""Crafted bundles and careless input on the device: one-line errors, nothing read outside the
bundle, no crash of the caller. Needs only the device package (numpy + a TFLite interpreter)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from edge_lstm_device.bundle.files import bytes_sha256
from edge_lstm_device.bundle.manifest import BundleError, read_manifest
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, SentimentModel
from edge_lstm_device.runtime.scoring import ModelRunError, TFLiteScorer
from support import edit_manifest, mutated_copies

LOOP = "model_int8_loop.tflite"


@pytest.fixture()
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGE_LSTM_CACHE", str(tmp_path / "cache"))  # probe every file afresh
    dest = tmp_path / "bundle"
    shutil.copytree(REFERENCE_BUNDLE, dest)
    return dest


def _cli(*args: str, **kwargs) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "edge_lstm_device", *args], capture_output=True, **kwargs)


@pytest.mark.parametrize("name", ["../secret.tflite", "/etc/passwd", "sub/model.tflite", ".hidden", "a\\b", "", 7])
def test_manifest_file_names_must_be_plain_names_inside_the_bundle(bundle: Path, name: object) -> None:
    edit_manifest(bundle, lambda m: m["artifacts"]["int8_loop_tflite"].update(file=name))
    with pytest.raises(BundleError, match="plain file name"):
        read_manifest(bundle)


def test_symlinks_and_devices_are_not_read(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.tflite"
    shutil.copy(bundle / LOOP, outside)
    (bundle / LOOP).unlink()
    (bundle / LOOP).symlink_to(outside)
    with pytest.raises(BundleError, match="cannot read|not a regular file"):
        SentimentModel.load(bundle, model="int8_loop_tflite")
    (bundle / LOOP).unlink()
    (bundle / LOOP).symlink_to("/dev/zero")
    with pytest.raises(BundleError):
        SentimentModel.load(bundle, model="int8_loop_tflite")


@pytest.mark.process
@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("artifacts"), "'artifacts' is not an object"),
    (lambda m: m.update(format_version="1"), "unsupported manifest format"),
    (lambda m: m["artifacts"]["int8_loop_tflite"].update(bytes="big"), "no valid 'bytes'"),
    (lambda m: m["artifacts"]["int8_loop_tflite"].update(bytes=10**12), "no valid 'bytes'"),
    (lambda m: m["artifacts"]["int8_loop_tflite"].update(sha256=None), "no valid 'sha256'"),
    (lambda m: m["artifacts"]["int8_loop_tflite"].update(format="exe"), "unknown format"),
    (lambda m: m.update(tokenizer=[]), "tokenizer is not an object"),
    (lambda m: m.pop("model"), "'model' has no 'num_words'"),
    (lambda m: m.update(device_order="int8_tflite"), "'device_order' is not a list"),
])
def test_malformed_manifest_is_a_one_line_error(bundle: Path, edit, message: str) -> None:
    edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=message):
        SentimentModel.load(bundle)
    result = _cli("predict", "--bundle", str(bundle), "a fine film")
    assert result.returncode == 1 and b"Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_deeply_nested_or_huge_manifest(bundle: Path) -> None:
    (bundle / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="nested too deeply|cannot read"):
        read_manifest(bundle)
    (bundle / "manifest.json").write_bytes(b" " * (2 << 20))
    with pytest.raises(BundleError, match="limit"):
        read_manifest(bundle)


def test_malformed_tokenizer_with_a_matching_hash(bundle: Path) -> None:
    bad = json.dumps({"format_version": 1, "num_words": "many", "max_len": 200, "words": []}).encode()
    (bundle / "tokenizer.json").write_bytes(bad)
    edit_manifest(bundle, lambda m: m["tokenizer"].update(bytes=len(bad), sha256=bytes_sha256(bad)))
    with pytest.raises(BundleError, match="tokenizer"):
        SentimentModel.load(bundle)


@pytest.mark.process
def test_mutated_models_with_updated_hashes_never_crash_the_caller(bundle: Path) -> None:
    """Byte-mutated loop models whose manifest hash was updated, each loaded by a fresh caller
    (``predict``): every load ends in scores or a one-line refusal (exit 0 or 1); a file that
    crashes the interpreter crashes only the probe's child. (One process per file: in
    tflite-runtime 2.14 a file can pass the probe and still crash a process whose heap other
    corrupt files have already disturbed; a device loads one bundle.)"""
    outcomes = {"scored": 0, "refused": 0}
    for data in mutated_copies(bundle / LOOP, 25):
        (bundle / LOOP).write_bytes(data)
        edit_manifest(bundle, lambda m: m["artifacts"]["int8_loop_tflite"].update(sha256=bytes_sha256(data)))
        done = _cli("predict", "--bundle", str(bundle), "--model", "int8_loop_tflite", "a fine film", timeout=120)
        assert done.returncode in (0, 1), done.stderr.decode()[-500:]
        assert done.returncode == 0 or len(done.stderr.decode().strip().splitlines()) == 1
        outcomes["scored" if done.returncode == 0 else "refused"] += 1
    assert outcomes["refused"] > 0 and sum(outcomes.values()) == 25


def test_a_model_whose_output_is_not_a_probability_is_refused() -> None:
    scorer = TFLiteScorer((REFERENCE_BUNDLE / "model_int8.tflite").read_bytes())
    scorer._scale, scorer._zero_point = 10.0, -128  # as a linear head would: values far outside [0, 1]
    with pytest.raises(ModelRunError, match="not a probability"):
        scorer.score([[1] * 200])


@pytest.mark.process
@pytest.mark.parametrize("args, message", [
    (("predict", "--threads", "50000", "x"), b"--threads must be between 1 and 64"),
    (("predict", "--threads", "2147483648", "x"), b"--threads must be between 1 and 64"),
    (("predict", "--workers", "0", "x"), b"--workers must be between 1 and 64"),
    (("bench", "--reviews", "0"), b"--reviews must be between 1"),
])
def test_out_of_range_flags_are_usage_errors(args: tuple[str, ...], message: bytes) -> None:
    result = _cli(*args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr) < 500


@pytest.mark.process
def test_bench_on_a_bad_bundle(tmp_path: Path) -> None:
    result = _cli("bench", "--bundle", str(tmp_path))
    assert result.returncode == 1 and result.stderr.startswith(b"error: no manifest.json")


@pytest.mark.process
def test_closed_or_empty_stdin_and_full_disk() -> None:
    closed = _cli("predict", stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert closed.returncode == 1 and b"stdin" in closed.stderr and b"Traceback" not in closed.stderr
    empty = _cli("predict", input=b"")
    assert empty.returncode == 1 and b"no reviews to score" in empty.stderr
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "edge_lstm_device", "info"], stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 1 and result.stderr == b"error: cannot write output: No space left on device\n"


@pytest.mark.process
def test_a_reader_that_stops_reading_is_no_error() -> None:
    reviews = b"\n".join([b"a fine film with a great cast"] * 3000) + b"\n"
    pipeline = subprocess.run(f"{sys.executable} -m edge_lstm_device predict --workers 1 | head -1",
                              shell=True, input=reviews, capture_output=True)
    assert pipeline.stdout.count(b"\n") == 1 and pipeline.stderr == b""


@pytest.mark.process
def test_zero_width_only_reviews_are_empty() -> None:
    result = _cli("predict", "--json", "\u200b\u200c\u200d", "a fine film")
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 3 and records[0]["error"] == "empty review" and "label" in records[1]


def test_a_probe_passed_in_one_interpreter_does_not_vouch_for_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mutated file that ai-edge-litert loads can crash tflite-runtime 2.14: the probe's record
    of a file that passed names the interpreter and version that loaded it."""
    from edge_lstm_device.runtime import probe

    digest = "ab" * 32
    monkeypatch.setattr(probe, "interpreter_version", lambda dist: "2.3.0")
    first = probe._marker(digest, None)
    monkeypatch.setattr(probe, "interpreter_version", lambda dist: "2.14.0")
    assert probe._marker(digest, None) != first and digest in first.name
