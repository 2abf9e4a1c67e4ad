"""The command lines: help for every verb, clean errors for user mistakes, light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from edge_lstm_device.cli import main as device_main

from edge_lstm.cli import COMMANDS, main


@pytest.mark.parametrize("verb", sorted(COMMANDS))
def test_every_verb_has_help_with_an_example(verb: str) -> None:
    result = CliRunner().invoke(main, [verb, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"edge-lstm {verb}" in result.output


def test_group_help_lists_every_verb() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert all(verb in result.output for verb in COMMANDS)


@pytest.mark.parametrize("verb", ["predict", "info", "bench"])
def test_device_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        device_main([verb, "--help"])
    assert exit_info.value.code == 0
    assert "--bundle" in capsys.readouterr().out


@pytest.mark.process
def test_importing_packages_does_not_import_tensorflow() -> None:
    code = ("import sys, edge_lstm.cli, edge_lstm.train.data, edge_lstm.bundle, edge_lstm.export.exporter, edge_lstm.evaluate.parity, "
            "edge_lstm_device.cli, edge_lstm_device.runtime.model; "
            "bad = [m for m in ('tensorflow', 'tf_keras', 'keras', 'onnx', 'onnxruntime', 'tf2onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_lstm.cli", *args], capture_output=True, text=True)


@pytest.mark.process
def test_train_missing_data_is_one_clean_line(tmp_path: Path) -> None:
    result = _run("train", "--data", str(tmp_path / "nope.tar.gz"), "--out", str(tmp_path / "b"))
    assert result.returncode == 1
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.process
def test_train_corrupt_archive(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    result = _run("train", "--data", str(bad), "--out", str(tmp_path / "b"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "corrupt or truncated archive" in result.stderr or "not a readable IMDB archive" in result.stderr
    assert not (tmp_path / "b").exists()  # a failed run leaves no empty folder


@pytest.mark.process
def test_train_unwritable_out(tmp_path: Path, tiny_tarball: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _run("train", "--data", str(tiny_tarball), "--out", str(blocker / "sub"))
    assert result.returncode == 1 and "cannot write" in result.stderr and "Traceback" not in result.stderr


def test_bad_flag_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["train", "--epochs", "0"])
    assert result.exit_code == 2


def test_refit_needs_the_kept_checkpoint(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["train", "--refit", "--keep-last-epoch", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--keep-best-epoch" in result.output


@pytest.mark.process
def test_export_missing_bundle(tmp_path: Path) -> None:
    result = _run("export", "--bundle", str(tmp_path / "missing" / "bundle"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no bundle at" in result.stderr and not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    result = _run("export", "--bundle", str(tmp_path / "empty"))
    assert result.returncode == 1 and "tokenizer file not found" in result.stderr


@pytest.mark.tensorflow  # (in the child: parity runs Keras)
@pytest.mark.process
def test_host_commands_hide_native_start_up_lines() -> None:
    args = ("parity", "--only", "int8_loop_tflite", "--limit", "4", "--no-report")
    quiet, verbose = _run(*args), _run("--verbose", *args)
    assert quiet.returncode == verbose.returncode == 0
    noise = ("absl", "oneDNN", "cuda", "XNNPACK")
    assert not [line for line in quiet.stderr.splitlines() if any(n in line for n in noise)], quiet.stderr
    assert any("absl" in line or "XNNPACK" in line for line in verbose.stderr.splitlines()), verbose.stderr


def test_export_scheme_needs_int8(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["export", "--bundle", str(tmp_path), "--tflite-scheme", "full-integer"])
    assert result.exit_code == 2 and "--int8" in result.output


@pytest.mark.process
def test_export_unwritable_bundle(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _run("export", "--int8", "--bundle", str(blocker / "bundle"))
    assert result.returncode == 1 and "no bundle at" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.process
def test_parity_on_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    result = _run("parity", "--bundle", str(tmp_path))
    assert result.returncode == 1 and "not an exported bundle" in result.stderr
