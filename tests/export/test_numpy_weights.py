"""The numpy engine against Keras and the loop form's TFLite files: the weights file the host writes
(``edge_lstm/export/numpy_weights.py``) and the device's engine (``edge_lstm_device/runtime/numpy_engine/engine.py``).

Tolerances: float weights within 1e-5 of Keras; int8 weights run with int8 arithmetic within
1e-3 of the int8 loop TFLite model (measured 1.3e-4 on the shipped reviews: both quantize each row
of activations, the transcendental functions differ in the last bits); labels of either int8
arithmetic agree with the float model on >= 99.5% of the shipped reviews."""

from __future__ import annotations

import numpy as np
import pytest
from edge_lstm_device.bundle.numpy_weights import read
from edge_lstm_device.runtime.numpy_engine.engine import NumpyScorer
from edge_lstm_device.runtime.scoring import TFLiteScorer

from edge_lstm.export import lstm_loop
from edge_lstm.export.lstm_loop import LoopModel
from edge_lstm.export.numpy_weights import to_weights_file
from edge_lstm.samples.models import CELLS, HEADS, STACKS, stacked_model, tiny_model
from tests.support.fixtures import BUNDLE
from tests.export.test_lstm_loop import FLOAT_EXACT, _rows

pytestmark = pytest.mark.tensorflow

INT8_TO_TFLITE = 1e-3
LABEL_AGREEMENT = 0.995


def _engine(model, max_len: int, precision: str = "float32", arithmetic: str = "float", **kw) -> NumpyScorer:
    return NumpyScorer(to_weights_file(LoopModel.from_model(model), max_len, precision), arithmetic=arithmetic, **kw)


@pytest.fixture(scope="module")
def shipped() -> dict:
    """The shipped model, its rows (the 300 shipped test reviews and 300 sentences cut from them),
    Keras' scores and the int8 loop TFLite model's."""
    from edge_lstm import bundle
    from edge_lstm.evaluate.sidebyside import short_reviews
    from edge_lstm.samples import TEST_SAMPLE, read_sample

    model, tokenizer = bundle.load_model(BUNDLE), bundle.load_tokenizer(BUNDLE)
    texts = read_sample(TEST_SAMPLE).texts
    rows = tokenizer.encode_batch(texts + short_reviews(texts, 300))
    tflite = TFLiteScorer((BUNDLE / "model_int8_loop.tflite").read_bytes())
    return {"model": model, "rows": rows, "keras": model.predict(rows, verbose=0).reshape(-1),
            "tflite": tflite.score(rows), "reviews": len(texts)}


def test_int8_weights_are_the_int8_loop_models_own(shipped: dict) -> None:
    """Embedding, input and recurrent kernel: the same int8 values and scales as the TFLite file."""
    from tensorflow.lite.tools import flatbuffer_utils

    _, tensors = read(to_weights_file(LoopModel.from_model(shipped["model"]), 200, "int8"))
    tflite = flatbuffer_utils.read_model_from_bytearray(bytearray((BUNDLE / "model_int8_loop.tflite").read_bytes()))
    found = {}
    for graph in tflite.subgraphs:
        for tensor in graph.tensors:
            data = tflite.buffers[tensor.buffer].data
            if tensor.type == 9 and data is not None:  # INT8 constants
                values = np.frombuffer(bytes(data), np.int8).reshape(tensor.shape)
                found[(values.tobytes(), float(np.float32(tensor.quantization.scale[0])))] = tensor.name
    for name in ("embedding", "layers.0.0.kernel", "layers.0.0.recurrent"):
        mine = tensors[name]
        values = mine.values if name == "embedding" else mine.values.T  # FULLY_CONNECTED holds (out, in)
        assert (np.ascontiguousarray(values).tobytes(), mine.scale) in found, name


def test_float_engine_equals_keras_on_the_shipped_model(shipped: dict) -> None:
    scores = _engine(shipped["model"], 200).score(shipped["rows"])
    assert np.abs(scores - shipped["keras"]).max() <= FLOAT_EXACT


@pytest.mark.parametrize("arithmetic", ["int8", "float"])
def test_int8_engine_scores_like_the_int8_loop_model(shipped: dict, arithmetic: str) -> None:
    scores = _engine(shipped["model"], 200, "int8", arithmetic).score(shipped["rows"])
    if arithmetic == "int8":
        assert np.abs(scores - shipped["tflite"]).max() <= INT8_TO_TFLITE
    reviews = slice(0, shipped["reviews"])
    agree = np.mean((scores[reviews] >= 0.5) == (shipped["keras"][reviews] >= 0.5))
    assert agree >= LABEL_AGREEMENT
    assert np.mean((scores >= 0.5) == (shipped["keras"] >= 0.5)) >= LABEL_AGREEMENT


def test_a_rows_score_does_not_depend_on_its_batch_mates(shipped: dict) -> None:
    """Bit for bit in int8 arithmetic (integer sums; a row's quantization is its own); within the
    last bit of BLAS's summation order in float."""
    rows = shipped["rows"][::10]
    for arithmetic, bound in (("int8", 2e-7), ("float", 1e-6)):
        engine = _engine(shipped["model"], 200, "int8", arithmetic)
        together = engine.score(rows)
        alone = np.concatenate([engine.score(row[None]) for row in rows])
        assert np.abs(together - alone).max() <= bound, arithmetic


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("mask_zero", [False, True])
def test_float_engine_equals_keras_for_any_padding(mask_zero: bool, cell: str) -> None:
    model = tiny_model(mask_zero, cell=cell)
    rows = _rows(13, seed=1)
    scores = _engine(model, 13, max_batch=7).score(rows)
    assert np.abs(scores - model.predict(rows, verbose=0).reshape(-1)).max() <= FLOAT_EXACT


@pytest.mark.parametrize("mask_zero", [False, True])
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_stacked_and_bidirectional_float_engine_equals_keras(stack: str, mask_zero: bool) -> None:
    """Every stack masked and not; the heads in turn (each stack meets two of them: 10 models, not 30)."""
    head = HEADS[(sorted(STACKS).index(stack) + mask_zero) % len(HEADS)]
    model = stacked_model(stack, mask_zero, head)
    rows = _rows(13, seed=2)
    expected = model.predict(rows, verbose=0)
    if head == "logits":
        expected = 1 / (1 + np.exp(-expected.astype(np.float64)))
    engine = _engine(model, 13, max_batch=9)
    scores = engine.score(rows)
    assert engine.classes == expected.shape[1] and scores.shape == (len(rows), *expected.shape[1:][: engine.classes > 1])
    assert np.abs(scores - expected.reshape(scores.shape)).max() <= FLOAT_EXACT


def _quantized_stack(mask_zero: bool):
    """Layers wide enough (>= 1024 weights) for the converter to quantize them: a Bidirectional
    GRU returning sequences, then an LSTM; trained on nothing (random weights)."""
    import tf_keras as keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.layers.Embedding(200, 32, mask_zero=mask_zero, input_length=24),
        keras.layers.Bidirectional(keras.layers.GRU(16, return_sequences=True)),
        keras.layers.LSTM(16), keras.layers.Dense(40, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    model.build((None, 24))
    return model


@pytest.mark.parametrize("mask_zero", [False, True])
def test_int8_stacked_engine_scores_like_its_int8_loop_model(mask_zero: bool) -> None:
    model = _quantized_stack(mask_zero)
    rng = np.random.default_rng(3)
    rows = np.array([np.concatenate([np.zeros(24 - n, np.int32), rng.integers(1, 200, n)]) for n in rng.integers(0, 25, 40)],
                    np.int32)
    tflite = TFLiteScorer(lstm_loop.to_tflite_loop(model, 24, "dynamic-range", lambda: iter(())), max_batch=8)
    engine = _engine(model, 24, "int8", "int8")
    assert engine.network.layers[0].cells[0].kernel.scale is not None  # quantized, as in the TFLite file
    assert np.abs(engine.score(rows) - tflite.score(rows)).max() <= INT8_TO_TFLITE


def test_export_pins_the_weights_file_and_the_engine_scores_it(small_bundle) -> None:
    """``export --int8`` writes ``model_numpy.npz``, pinned in the manifest like an artifact (not among
    the artifacts: older devices read the bundle as before), checked by the engine against Keras."""
    import json

    from edge_lstm_device.bundle.manifest import read_manifest, read_verified

    manifest = read_manifest(small_bundle)
    entry = manifest["numpy_weights"]
    assert entry["file"] == "model_numpy.npz" and entry["precision"] == "int8" and "numpy_weights" not in manifest["artifacts"]
    report = json.loads((small_bundle / "export_report.json").read_text())["artifacts"]["numpy_weights"]
    assert report["selfcheck"]["label_agreement"] >= 0.95
    engine = NumpyScorer(read_verified(small_bundle, entry), arithmetic="int8")
    rows = np.array([[0] * 190 + list(range(5, 15)), list(range(3, 203))], np.int32)
    loop = TFLiteScorer(read_verified(small_bundle, manifest["artifacts"]["int8_loop_tflite"]))
    assert np.abs(engine.score(rows) - loop.score(rows)).max() <= INT8_TO_TFLITE


def test_parity_judges_the_numpy_engine_as_an_int8_form() -> None:
    from edge_lstm.evaluate.subjects import load_subjects

    _, _, backends = load_subjects(BUNDLE, ("numpy_weights",), 1)
    (backend, precision, dynamic), = backends
    assert backend.name == "numpy_weights" and precision == "int8" and not dynamic and backend.batched


def test_the_reference_and_the_device_ship_the_weights_the_manifest_pins() -> None:
    import json

    from edge_lstm_device.bundle.files import file_sha256
    from edge_lstm_device.runtime.model import REFERENCE_BUNDLE

    from edge_lstm import bundle
    from edge_lstm.export.reference import device_files

    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    assert "model_numpy.npz" in device_files(manifest)
    for folder in (BUNDLE, REFERENCE_BUNDLE):
        assert file_sha256(folder / "model_numpy.npz") == manifest["numpy_weights"]["sha256"]
    again = to_weights_file(LoopModel.from_model(bundle.load_model(BUNDLE)), 200)
    assert again == (BUNDLE / "model_numpy.npz").read_bytes()  # a re-export writes the same bytes
