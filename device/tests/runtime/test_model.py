"""The device runtime and CLI on the shipped reference bundle: text in, sentiment out."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, BundleError, SentimentModel, device_order
from support import sample_reviews

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ("model_int8_loop.tflite", "model_int8.tflite", "model_int8_dynamic.tflite", "tokenizer.json",
           "reference_scores.json", "manifest.json")


def test_device_code_imports_no_heavy_library() -> None:
    pattern = re.compile(r"^\s*(import|from)\s+(tensorflow|tf_keras|keras|onnx|onnxruntime|tf2onnx)\b", re.M)
    for path in (ROOT / "device" / "edge_lstm_device").rglob("*.py"):
        assert not pattern.search(path.read_text()), path


def test_predictions_are_sensible(model: SentimentModel) -> None:
    good, bad = model.predict_batch(["A wonderful, moving film with a brilliant cast. I loved it.",
                                     "The worst movie I have ever seen. Boring, stupid and a waste of time."])
    assert good.label == "positive" and good.probability > 0.5
    assert bad.label == "negative" and bad.probability < 0.5
    assert 0.5 <= good.confidence <= 1 and good.words == 11 and not good.truncated


@pytest.mark.heavy
def test_accuracy_on_the_shipped_sample(model: SentimentModel) -> None:
    texts, labels = sample_reviews()
    predictions = model.predict_batch(texts)
    accuracy = np.mean([(p.label == "positive") == bool(y) for p, y in zip(predictions, labels)])
    assert accuracy > 0.8


def test_scores_do_not_depend_on_what_came_before(model: SentimentModel) -> None:
    texts = sample_reviews()[0][:20]
    forward = [p.probability for p in model.predict_batch(texts)]
    backward = [p.probability for p in model.predict_batch(texts[::-1])][::-1]
    assert forward == backward


def test_thread_safe(model: SentimentModel) -> None:
    texts = sample_reviews()[0][:24]
    expected = [model.predict(t).probability for t in texts]  # as the threads call it (batch sizes round apart)
    results: dict[int, list[float]] = {}

    def work(k: int) -> None:
        results[k] = [model.predict(t).probability for t in texts]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r == expected for r in results.values())


@pytest.fixture()
def bundle_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "bundle"
    dest.mkdir()
    for name in SHIPPED:
        shutil.copy(REFERENCE_BUNDLE / name, dest / name)
    return dest


def test_tampered_model_is_refused(bundle_copy: Path) -> None:
    data = bytearray((bundle_copy / "model_int8_loop.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle_copy / "model_int8_loop.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match the manifest"):
        SentimentModel.load(bundle_copy)


def test_truncated_model_is_refused(bundle_copy: Path) -> None:
    path = bundle_copy / "model_int8_loop.tflite"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(BundleError, match="does not match the manifest"):
        SentimentModel.load(bundle_copy)


def test_tampered_tokenizer_is_refused(bundle_copy: Path) -> None:
    path = bundle_copy / "tokenizer.json"
    path.write_text(path.read_text().replace('"the"', '"teh"'))
    with pytest.raises(BundleError, match="tokenizer.json does not match"):
        SentimentModel.load(bundle_copy)


def test_tokenizer_for_another_model_is_refused(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["model"]["num_words"] = 20_000
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="built for 20000"):
        SentimentModel.load(bundle_copy)


def test_unknown_model_name(bundle_copy: Path) -> None:
    with pytest.raises(BundleError, match="available: "):
        SentimentModel.load(bundle_copy, model="float_tflite")


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "edge_lstm_device", *args], input=stdin, capture_output=True)


@pytest.mark.process
def test_cli_predict_human_output() -> None:
    result = _cli("predict", "What a wonderful film")
    assert result.returncode == 0
    assert re.match(rb"positive\s+0\.\d{3}\s+What a wonderful film", result.stdout)


@pytest.mark.process
def test_cli_json_and_bad_lines_never_kill_the_batch(tmp_path: Path) -> None:
    lines = [b"A great film.", b"", b"   \t ", b"bad \xff\xfe utf-8", b"nul\x00inside a great film",
             "emoji 🙂🎬 and Ελληνικά and 映画".encode(), ("word " * 15_000).encode(), b"\x07\x1b[31m control",
             "\u200b\u200b \u200d".encode(), ("a " * 30_000).encode(), b"x" * 200_000]
    file = tmp_path / "reviews.txt"
    file.write_bytes(b"\n".join(lines) + b"\n")
    result = _cli("predict", "--json", "--file", str(file))
    assert result.returncode == 3  # some lines could not be scored; the others were
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == [f"{file} line {i}" for i in range(1, len(lines) + 1)]
    errors = {i: r["error"] for i, r in enumerate(records) if "error" in r}
    assert errors == {1: "empty review", 2: "empty review", 3: "invalid UTF-8 at byte 4", 8: "empty review",
                      9: "review has 30,000 words; the limit is 20,000 (set EDGE_LSTM_MAX_REVIEW_WORDS to raise it)",
                      10: "review is 200,000 characters long; the limit is 100,000 "
                          "(set EDGE_LSTM_MAX_REVIEW_CHARS to raise it)"}
    for r in records:
        if "error" not in r:
            assert r["label"] in ("positive", "negative") and 0 <= r["probability"] <= 1
    assert records[6]["truncated"] is True and records[6]["words"] == 15_000


@pytest.mark.process
def test_cli_stdin_and_missing_bundle(tmp_path: Path) -> None:
    assert _cli("predict", "--json", stdin=b"great\nawful\n").stdout.count(b"\n") == 2
    result = _cli("predict", "--bundle", str(tmp_path), "x")
    assert result.returncode == 1 and b"not an exported bundle" in result.stderr and b"Traceback" not in result.stderr


@pytest.mark.process
def test_cli_info_json() -> None:
    info = json.loads(_cli("info", "--json").stdout)
    assert info["model"] in info["device_order"] and info["why"].startswith("calibrated on this CPU")
    assert info["device_order"][0] == "int8_loop_tflite" and info["cpu"].startswith(info["cpu"].split(":")[0] + ":")
    assert set(info["measured_here"]) == set(info["device_order"])  # every model timed here
    unchanged = json.loads(_cli("info", "--json", "--no-calibrate").stdout)
    assert unchanged["model"] == "int8_loop_tflite" and unchanged["quantization"] == "dynamic-range"
    assert unchanged["lstm"] == "loop" and unchanged["skipped"] == {} and "measured_here" not in unchanged


@pytest.mark.process
def test_default_is_the_fastest_model_that_loads(bundle_copy: Path, monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """An interpreter that refuses the loop form (as an old one refuses a newer op version)
    falls back to the next model of the manifest's order, and says why."""
    from edge_lstm_device.runtime import model as model_module

    monkeypatch.setenv("EDGE_LSTM_CACHE", str(tmp_path / "cache"))  # a choice made under a refusal stays here

    real = model_module.TFLiteScorer

    def refuse_loops(content: bytes, threads: int = 1, prefer: str | None = None):
        if content == (bundle_copy / "model_int8_loop.tflite").read_bytes():
            raise ValueError("Didn't find op for builtin opcode 'WHILE' version '99'")
        return real(content, threads, prefer)

    monkeypatch.setattr(model_module, "TFLiteScorer", refuse_loops)
    loaded = SentimentModel.load(bundle_copy, calibrate=False)
    order = device_order(json.loads((bundle_copy / "manifest.json").read_text()), bundle_copy)  # the files present
    assert loaded.name == order[1] and "WHILE" in loaded.choice.skipped["int8_loop_tflite"]
    assert loaded.choice.reason == "the fastest model this interpreter can load"
    calibrated = SentimentModel.load(bundle_copy)  # calibration skips it too, and says why
    assert calibrated.name != "int8_loop_tflite" and "WHILE" in calibrated.choice.skipped["int8_loop_tflite"]
    with pytest.raises(BundleError, match="int8_loop_tflite: cannot load"):
        SentimentModel.load(bundle_copy, model="int8_loop_tflite")


@pytest.mark.process
def test_env_picks_the_default_model() -> None:
    import os

    env = {**os.environ, "EDGE_LSTM_MODEL": "int8_dynamic_tflite"}
    result = subprocess.run([sys.executable, "-m", "edge_lstm_device", "info", "--json"], capture_output=True, env=env)
    assert json.loads(result.stdout)["model"] == "int8_dynamic_tflite"


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_the_same_predictions_in_input_order(model: SentimentModel, workers: int) -> None:
    from edge_lstm_device.runtime.pool import ModelPool

    texts = sample_reviews()[0][:24]
    with ModelPool([model] + [model.replica() for _ in range(workers - 1)]) as pool:
        assert pool.predict_batch(texts) == model.predict_batch(texts)


@pytest.mark.process
def test_cli_workers_output_equals_one_worker(tmp_path: Path) -> None:
    file = tmp_path / "reviews.txt"
    file.write_text("\n".join(" ".join(t.split()) for t in sample_reviews()[0][:40]) + "\n")
    one = _cli("predict", "--json", "--workers", "1", "--file", str(file))
    three = _cli("predict", "--json", "--workers", "3", "--file", str(file))
    assert one.returncode == three.returncode == 0 and one.stdout == three.stdout and one.stdout.count(b"\n") == 40


class _ThreeClasses:
    """A scorer of a softmax head of three classes (the same probabilities for every review)."""

    classes, max_len = 3, 200

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.tile(np.float32([[0.2, 0.5, 0.3]]), (len(rows), 1))


def test_multiclass_predictions_name_every_class(model: SentimentModel) -> None:
    """A multi-class bundle's label is its top class and probabilities give every class; a binary
    bundle's answer has no probabilities."""
    manifest = {**model.manifest, "model": {**model.manifest["model"], "labels": ["low", "mid", "high"]}}
    multi = SentimentModel(model.tokenizer, _ThreeClasses(), "three", manifest)
    answer = multi.predict("A fine cast, a dull script").to_dict()
    assert answer["label"] == "mid" and answer["probability"] == answer["confidence"] == 0.5
    assert answer["probabilities"] == {"low": 0.2, "mid": 0.5, "high": 0.3}
    assert "probabilities" not in model.predict("A fine cast").to_dict()


@pytest.mark.parametrize("labels", [["only"], ["a", "a"], ["a", ""], "a,b", [1, 2]])
def test_bad_class_names_in_the_manifest_are_refused(bundle_copy: Path, labels: object) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["model"]["labels"] = labels
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="model.labels"):
        SentimentModel.load(bundle_copy)


@pytest.mark.process
def test_class_names_must_match_the_model_outputs(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["model"]["labels"] = ["a", "b", "c"]
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="gives 1 outputs but the manifest names 3 classes"):
        SentimentModel.load(bundle_copy)
