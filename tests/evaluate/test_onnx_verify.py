"""``python -m edge_lstm.evaluate.onnx_verify``: a bundle's ONNX files judged like its TFLite models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_lstm.evaluate.onnx_verify import main


def test_only_and_limit_judge_the_first_texts_of_each_set(exported_reference: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(exported_reference), "--only", "int8_onnx", "--limit", "7", "--json"]) == 0
    (verdict,) = json.loads(capsys.readouterr().out)["models"]
    assert verdict["name"] == "int8_onnx" and verdict["runs_in"].startswith("onnxruntime ")
    assert {name: s["texts"] for name, s in verdict["sets"].items()} == {"reviews": 7, "short": 7}


def test_a_limit_below_one_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path), "--limit", "0"])
    assert stopped.value.code == 2 and "--limit must be at least 1" in capsys.readouterr().err
