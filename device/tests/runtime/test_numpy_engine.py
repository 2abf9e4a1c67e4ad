"""The numpy engine with the device package alone: weights files made here from random arrays
(``numpy_weights.write``), checked against a float64 LSTM written out below, and for what must
hold whatever the weights: pads, batches, hostile files. ``tests/export/test_numpy_weights.py``
checks it against Keras and the TFLite files for every architecture."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from edge_lstm_device.bundle.manifest import NUMPY_WEIGHTS, BundleError, read_manifest, read_verified
from edge_lstm_device.bundle.numpy_weights import QUANTIZED_MIN_ELEMENTS, WeightsError, quantize, write
from edge_lstm_device.bundle.tokenizer import Tokenizer
from edge_lstm_device.runtime.interpreters import NoInterpreterError
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE
from edge_lstm_device.runtime.numpy_engine.engine import NumpyScorer
from edge_lstm_device.runtime.scoring import ModelRunError, ModelShapeError, TFLiteScorer

VOCAB, WIDTH, UNITS, MAX_LEN = 300, 16, 16, 23


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lstm64(arrays: dict, ids: np.ndarray, state: tuple | None = None) -> tuple:
    """Keras' LSTM in float64 over every id of one row (gates i, f, c, o)."""
    kernel, recurrent, bias = (arrays[f"layers.0.0.{k}"].astype(np.float64) for k in ("kernel", "recurrent", "bias"))
    h, c = state or (np.zeros(UNITS), np.zeros(UNITS))
    for i in ids:
        z = arrays["embedding"][i].astype(np.float64) @ kernel + h @ recurrent + bias
        zi, zf, zc, zo = np.split(z, 4)
        c = _sigmoid(zf) * c + _sigmoid(zi) * np.tanh(zc)
        h = _sigmoid(zo) * np.tanh(c)
    return h, c


def _lstm_network(seed: int = 0, masked: bool = False, block: int = 4) -> tuple[dict, dict]:
    """Embedding -> LSTM -> Dense(1, sigmoid), random float32, and its pad-state table."""
    rng = np.random.default_rng(seed)
    arrays = {"embedding": rng.normal(0, 0.5, (VOCAB, WIDTH)), "layers.0.0.kernel": rng.normal(0, 0.3, (WIDTH, 4 * UNITS)),
              "layers.0.0.recurrent": rng.normal(0, 0.3, (UNITS, 4 * UNITS)), "layers.0.0.bias": rng.normal(0, 0.3, 4 * UNITS),
              "dense.0.kernel": rng.normal(0, 0.5, (UNITS, 1)), "dense.0.bias": rng.normal(0, 0.1, 1)}
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    if not masked:
        states = [(np.zeros(UNITS), np.zeros(UNITS))]
        for _ in range(MAX_LEN + block - 1):  # (the loop form: up to max_len rounded up to whole blocks)
            states.append(_lstm64(arrays, [0], states[-1]))
        arrays.update({f"table.{j}": np.array([s[j] for s in states], np.float32) for j in range(2)})
    structure = {"format": 1, "max_len": MAX_LEN, "block": block, "masked": masked, "precision": "float32",
                 "layers": [{"cells": [{"kind": "lstm"}], "merge_mode": "concat", "return_sequences": False}],
                 "dense": ["sigmoid"]}
    return arrays, structure


def _expected(arrays: dict, rows: np.ndarray, masked: bool) -> np.ndarray:
    """The float64 model on each row: every step from the zero state (masked: pads skipped)."""
    out = []
    for row in rows:
        h, _ = _lstm64(arrays, [i for i in row if i] if masked else row)
        out.append(_sigmoid(h @ arrays["dense.0.kernel"][:, 0].astype(np.float64) + arrays["dense.0.bias"][0]))
    return np.array(out)


def _rows(seed: int, count: int = 60) -> np.ndarray:
    """Pre-padded rows of every length, and rows with pads anywhere."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((count, MAX_LEN), np.int32)
    for r in range(count):
        n = r % (MAX_LEN + 1)
        rows[r, MAX_LEN - n :] = rng.integers(1, VOCAB, n)
        if r % 3 == 0:
            rows[r] = rng.integers(0, VOCAB, MAX_LEN) * (rng.random(MAX_LEN) < 0.7)
    return rows


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("block", [1, 4, 10])
def test_float_engine_equals_the_lstm_written_out(masked: bool, block: int) -> None:
    """Unmasked: each row starts from the pad-state table at its first real id (rounded down to
    the block) and equals running every pad; masked: pads anywhere are skipped."""
    arrays, structure = _lstm_network(masked=masked, block=block)
    rows = _rows(1)
    engine = NumpyScorer(write(arrays, structure), arithmetic="float", max_batch=7)
    assert engine.max_len == MAX_LEN and engine.classes == 1
    assert np.abs(engine.score(rows) - _expected(arrays, rows, masked)).max() <= 1e-5


def _int8(arrays: dict) -> dict:
    """Kernels and the embedding as int8 where the converter would quantize them."""
    out = {}
    for name, values in arrays.items():
        if name.split(".")[-1] in ("kernel", "recurrent", "embedding") and values.size >= QUANTIZED_MIN_ELEMENTS:
            out[name], out[name + ".scale"] = quantize(values)
        else:
            out[name] = values
    return out


@pytest.mark.parametrize("arithmetic", ["int8", "float"])
def test_int8_weights_score_close_to_float_and_alone_as_in_a_batch(arithmetic: str) -> None:
    arrays, structure = _lstm_network(seed=2)
    rows = _rows(3, count=90)
    engine = NumpyScorer(write(_int8(arrays), {**structure, "precision": "int8"}), arithmetic=arithmetic)
    assert engine.network.layers[0].cells[0].recurrent.scale == (None if arithmetic == "float" else pytest.approx(
        np.abs(arrays["layers.0.0.recurrent"]).max() / 127))
    scores = engine.score(rows)
    assert np.abs(scores - _expected(arrays, rows, False)).max() <= 0.05  # int8 weights: close, not equal
    alone = np.concatenate([engine.score(row[None]) for row in rows])
    assert np.abs(alone - scores).max() <= 2e-7  # a row's score is its own (BLAS order: the last bit)


def _stacked(masked: bool, seed: int = 4) -> bytes:
    """Embedding -> Bidirectional(GRU, sequences) -> Bidirectional(LSTM, ave) -> Dense(3, softmax)."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.normal(0, 0.4, shape).astype(np.float32)  # noqa: E731
    arrays = {"embedding": f32(VOCAB, WIDTH), "dense.0.kernel": f32(8, 3), "dense.0.bias": f32(3)}
    for d in (0, 1):
        arrays.update({f"layers.0.{d}.kernel": f32(WIDTH, 3 * UNITS), f"layers.0.{d}.bias": f32(3 * UNITS),
                       f"layers.0.{d}.gates": f32(UNITS, 2 * UNITS), f"layers.0.{d}.candidate": f32(UNITS, UNITS),
                       f"layers.0.{d}.candidate_bias": f32(UNITS), f"layers.1.{d}.kernel": f32(2 * UNITS, 32),
                       f"layers.1.{d}.recurrent": f32(8, 32), f"layers.1.{d}.bias": f32(32)})
    gru, lstm = {"kind": "gru", "reset_after": True}, {"kind": "lstm"}
    structure = {"format": 1, "max_len": MAX_LEN, "block": 10, "masked": masked, "dense": ["softmax"],
                 "layers": [{"cells": [gru, gru], "merge_mode": "concat", "return_sequences": True},
                            {"cells": [lstm, lstm], "merge_mode": "ave", "return_sequences": False}]}
    return write(_int8(arrays), structure)


@pytest.mark.parametrize("arithmetic", ["int8", "float"])
def test_masked_stack_skips_pads_wherever_they_are(arithmetic: str) -> None:
    """A masked model's pads hold every direction's state: a row with pads inside scores as its
    real ids pre-padded; class probabilities sum to 1; a row scores alike in any batch."""
    engine = NumpyScorer(_stacked(True), arithmetic=arithmetic, max_batch=5)
    rows = _rows(5)
    compact = np.zeros_like(rows)
    for r, row in enumerate(rows):
        real = row[row != 0]
        compact[r, MAX_LEN - len(real) :] = real
    scores = engine.score(rows)
    assert scores.shape == (len(rows), 3) and np.allclose(scores.sum(axis=1), 1, atol=1e-6)
    assert np.abs(scores - engine.score(compact)).max() <= 2e-7
    assert np.abs(scores - np.concatenate([engine.score(r[None]) for r in rows])).max() <= 2e-7


def test_unmasked_stack_reads_its_pads() -> None:
    """Unmasked stacked layers run every step, as Keras does: pads change the score."""
    engine = NumpyScorer(_stacked(False))
    row = _rows(6)[10:11]
    moved = np.roll(row, -3, axis=1)  # the same ids, 3 pads after them instead of before
    assert np.abs(engine.score(row) - engine.score(moved)).max() > 1e-4


def test_bad_rows_are_refused() -> None:
    engine = NumpyScorer(write(*_lstm_network()))
    with pytest.raises(ModelShapeError):
        engine.score(np.zeros((2, MAX_LEN + 1), np.int32))
    with pytest.raises(ModelRunError):
        engine.score(np.full((1, MAX_LEN), VOCAB, np.int32))
    assert engine.score(np.zeros((0, MAX_LEN), np.int32)).shape == (0,)
    assert 0 <= engine.score(np.zeros((1, MAX_LEN), np.int32))[0] <= 1  # all pads: the table's last state


def _rewritten(data: bytes, change) -> bytes:
    """The file with each member's (name, bytes) passed through ``change`` (None drops it)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            member = change(info.filename, source.read(info))
            if member:
                target.writestr(member[0], member[1], member[2] if len(member) > 2 else zipfile.ZIP_STORED)
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


HOSTILE = {
    "compressed": lambda n, b: (n, b, zipfile.ZIP_DEFLATED),
    "pickled": lambda n, b: (n, _npy(np.array([{"a": 1}], dtype=object)) if n == "dense.0.bias.npy" else b),
    "missing": lambda n, b: None if n == "layers.0.0.recurrent.npy" else (n, b),
    "wrong shape": lambda n, b: (n, _npy(np.zeros((3, 3), np.float32))) if n == "dense.0.kernel.npy" else (n, b),
    "nan": lambda n, b: (n, _npy(np.full(1, np.nan, np.float32))) if n == "dense.0.bias.npy" else (n, b),
    "int bias": lambda n, b: (n, _npy(np.zeros(4 * UNITS, np.int64))) if n == "layers.0.0.bias.npy" else (n, b),
    "no structure": lambda n, b: None if n.startswith("structure") else (n, b),
    "bad structure": lambda n, b: (n, _npy(np.frombuffer(b'{"format": 1, "layers": 3}', np.uint8)))
    if n.startswith("structure") else (n, b),
    "not npy": lambda n, b: (n, b"\x93NUMPY garbage"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_weights_files_are_refused(case: str) -> None:
    with pytest.raises(WeightsError):
        NumpyScorer(_rewritten(write(*_lstm_network()), HOSTILE[case]))


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(WeightsError):
        NumpyScorer(b"PK\x03\x04 not really")


@pytest.fixture(scope="module")
def shipped() -> dict:
    """The reference bundle's weights file (read as pinned by its manifest), and the shipped reviews."""
    from support import sample_reviews

    manifest = read_manifest(REFERENCE_BUNDLE)
    texts, labels = sample_reviews()
    rows = Tokenizer.load(REFERENCE_BUNDLE / "tokenizer.json").encode_batch(texts)
    return {"manifest": manifest, "weights": read_verified(REFERENCE_BUNDLE, manifest[NUMPY_WEIGHTS]),
            "rows": rows, "labels": np.asarray(labels)}


@pytest.mark.heavy  # minutes emulated: under qemu the engine's scores are held to the host's instead (1e-5)
@pytest.mark.parametrize("arithmetic", ["int8", "float"])
def test_reference_weights_score_like_the_int8_loop_model(shipped: dict, arithmetic: str) -> None:
    """Labels as the int8 loop model's on >= 99.5% of the shipped reviews (int8 arithmetic: every
    probability within 2.5e-3, as the interpreters' kernels differ), and the accuracy of the float model on them."""
    engine = NumpyScorer(shipped["weights"], arithmetic=arithmetic)
    scores = engine.score(shipped["rows"])
    assert np.mean((scores >= 0.5) == shipped["labels"]) >= 0.80  # (the TFLite models: 84%)
    entry = shipped["manifest"]["artifacts"]["int8_loop_tflite"]
    try:
        loop = TFLiteScorer(read_verified(REFERENCE_BUNDLE, entry)).score(shipped["rows"])
    except NoInterpreterError:  # a board without a TFLite wheel
        pytest.skip("no TFLite interpreter to compare with")
    assert np.mean((scores >= 0.5) == (loop >= 0.5)) >= 0.995
    if arithmetic == "int8":  # the interpreters' kernels differ too: tflite-runtime 2.14's from LiteRT's by 1.6e-3
        assert np.abs(scores - loop).max() <= 2.5e-3


def test_without_an_interpreter_the_numpy_engine_runs_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_lstm_device.runtime import interpreters as interpreter
    from edge_lstm_device.runtime.model import SentimentModel

    monkeypatch.setattr(interpreter, "CANDIDATES", ())  # as on a Pi Zero: no TFLite wheel
    model = SentimentModel.load()
    assert model.name == NUMPY_WEIGHTS and "no TFLite interpreter" in model.choice.reason
    good, bad = model.predict_batch(["A wonderful, moving film with a brilliant cast. I loved it.",
                                     "The worst movie I have ever seen. Boring, stupid and a waste of time."])
    assert good.label == "positive" and bad.label == "negative"
    assert model.replica() is model  # stateless: parallel threads share it


def test_interpreter_numpy_is_asked_for_and_a_bundle_without_weights_is_refused(tmp_path) -> None:
    import json
    import shutil

    from edge_lstm_device.runtime.model import SentimentModel

    assert SentimentModel.load(interpreter="numpy").choice.reason.startswith("asked for")
    for name in ("tokenizer.json", "model_int8_loop.tflite"):
        shutil.copy(REFERENCE_BUNDLE / name, tmp_path / name)
    manifest = read_manifest(REFERENCE_BUNDLE)
    del manifest[NUMPY_WEIGHTS]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="no numpy weights"):
        SentimentModel.load(tmp_path, interpreter="numpy")


def test_info_and_serves_info_name_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import json

    from edge_lstm_device.cli import main
    from edge_lstm_device.runtime.model import SentimentModel
    from edge_lstm_device.runtime.pool import ModelPool
    from edge_lstm_device.serving.app import Limits, info_payload

    assert main(["info", "--interpreter", "numpy", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == NUMPY_WEIGHTS and info["file"] == "model_numpy.npz" and info["why"].startswith("asked for")
    assert info["interpreter"] == f"numpy {np.__version__}"
    with ModelPool([SentimentModel.load(interpreter="numpy")]) as pool:
        args = argparse.Namespace(bundle=None, threads=1, max_batch=16, max_connections=8, batch_window_ms=1.0)
        assert info_payload(pool, args, Limits())["file"] == "model_numpy.npz"
