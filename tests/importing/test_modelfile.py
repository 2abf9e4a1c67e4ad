"""The safe model reader: model files are data, never code."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from edge_lstm import bundle
from edge_lstm.importing import modelfile
from edge_lstm.importing.modelfile import ModelFileError, read_model_file

pytestmark = pytest.mark.tensorflow

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "export" / "model.h5"
VOCAB, EMB, UNITS, LEN = 50, 4, 4, 10  # tiny models: fast to build and save


def _rows(n: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).integers(0, VOCAB, (n, LEN), dtype=np.int32)
    rows[: n // 2, : LEN // 2] = 0
    return rows


def _keras3(path: Path, *middle, head=None, with_input: bool = True, mask_zero: bool = False) -> Path:
    """A Keras 3 Sequential: [Input] -> Embedding -> middle (default LSTM) -> head (default Dense sigmoid)."""
    import keras

    keras.utils.set_random_seed(0)
    layers = ([keras.Input((LEN,))] if with_input else []) + [keras.layers.Embedding(VOCAB, EMB, mask_zero=mask_zero)]
    layers += list(middle) or [keras.layers.LSTM(UNITS)]
    layers.append(head or keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers)
    if not with_input:
        model.build((None, None))
    model.save(path)
    return path


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


# ------------------------------------------------------------------ the shipped reference


def test_reference_model_equals_tf_keras_load_model() -> None:
    import tf_keras

    from edge_lstm.samples import TEST_SAMPLE, read_sample

    tokenizer = bundle.load_tokenizer(REFERENCE.parent)
    rows = tokenizer.encode_batch(read_sample(TEST_SAMPLE).texts[:48])
    unsafe = tf_keras.models.load_model(REFERENCE, compile=False)
    safe = bundle.load_model(REFERENCE.parent)
    assert [type(layer).__name__ for layer in safe.layers] == ["Embedding", "LSTM", "Dense"]
    assert safe.input_shape == (None, 200)
    assert np.abs(safe.predict(rows, verbose=0) - unsafe.predict(rows, verbose=0)).max() <= 1e-7
    spec = read_model_file(REFERENCE).spec
    assert (spec.num_words, spec.embedding_dim, spec.units, spec.max_len) == (10_000, 128, 128, 200)
    assert spec.description == "tf-keras (Keras 2.21.0) .h5"


# ------------------------------------------------------------------ code never runs


def _lambda_h5(path: Path, marker: Path) -> Path:
    """A tf-keras .h5 whose Lambda layer touches ``marker`` whenever Keras rebuilds it."""
    import tf_keras as keras

    payload = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    model = keras.Sequential([keras.layers.Embedding(VOCAB, EMB, input_length=LEN), keras.layers.Lambda(payload),
                              keras.layers.LSTM(UNITS), keras.layers.Dense(1, activation="sigmoid")])
    model.build((None, LEN))  # runs the payload once
    model.save(path)
    marker.unlink()
    return path


def test_lambda_h5_is_refused_and_its_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    path = _lambda_h5(tmp_path / "lambda.h5", marker)
    with pytest.raises(ModelFileError, match="Lambda layer holds code") as err:
        read_model_file(path)
    assert "Embedding -> Lambda -> LSTM -> Dense" in _one_line(err)
    (tmp_path / "b").mkdir()
    shutil.copy(path, tmp_path / "b" / bundle.MODEL_FILE)
    with pytest.raises(bundle.BundleError, match="Lambda"):
        bundle.load_model(tmp_path / "b")
    assert not marker.exists()
    import tf_keras  # the control: the payload is real, tf-keras' own loader runs it

    tf_keras.models.load_model(path, compile=False)
    assert marker.exists()


def test_lambda_in_a_keras3_file_is_refused(tmp_path: Path) -> None:
    import keras

    path = _keras3(tmp_path / "lambda.keras", keras.layers.Lambda(lambda x: x * 2), keras.layers.LSTM(UNITS))
    with pytest.raises(ModelFileError, match="Lambda"):
        read_model_file(path)


# ------------------------------------------------------------------ formats


def _recurrent(kind: str):
    import keras

    return {"lstm": lambda: keras.layers.LSTM(UNITS), "gru": lambda: keras.layers.GRU(UNITS),
            "gru_reset_before": lambda: keras.layers.GRU(UNITS, reset_after=False)}[kind]()


@pytest.mark.parametrize("mask_zero", [False, True], ids=["unmasked", "mask_zero"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before"])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras3_files_rebuild_with_equal_outputs(tmp_path: Path, suffix: str, kind: str, mask_zero: bool) -> None:
    import keras

    path = _keras3(tmp_path / f"m{suffix}", _recurrent(kind), mask_zero=mask_zero)
    spec = read_model_file(path).spec
    assert (spec.num_words, spec.embedding_dim, spec.units, spec.max_len, spec.max_len_from) == (
        VOCAB, EMB, UNITS, LEN, "model")
    assert spec.description == f"Keras 3 {suffix}"
    assert (spec.cell, spec.mask_zero, spec.reset_after) == (kind[:3].upper() if kind != "lstm" else "LSTM", mask_zero,
                                                             kind != "gru_reset_before")
    original = keras.saving.load_model(path, compile=False)
    rebuilt = modelfile.load_model(path)
    assert np.abs(rebuilt.predict(_rows(), verbose=0) - original.predict(_rows(), verbose=0)).max() <= 1e-6


def test_early_keras_zip_layout_is_read(tmp_path: Path) -> None:
    """Early .keras writers stored weights under _layer_checkpoint_dependencies/<kind>/..."""
    path = _keras3(tmp_path / "m.keras")
    expected = read_model_file(path).weights
    renamed = _rewrite_zip_weights(path, tmp_path / "early.keras",
                                   lambda f: f.move("layers", "_layer_checkpoint_dependencies"))
    assert all(np.array_equal(a, b) for a, b in zip(read_model_file(renamed).weights, expected))


def test_named_layers_and_tf_keras_zip(tmp_path: Path) -> None:
    import keras
    import tf_keras

    named = keras.Sequential([keras.Input((LEN,)), keras.layers.Embedding(VOCAB, EMB, name="emb"),
                              keras.layers.LSTM(UNITS, name="rnn"), keras.layers.Dense(1, "sigmoid", name="head")])
    for suffix in (".keras", ".h5"):
        named.save(tmp_path / f"named{suffix}")
        assert read_model_file(tmp_path / f"named{suffix}").spec.layer_names == ("emb", "rnn", "head")
    old = tf_keras.Sequential([tf_keras.layers.Embedding(VOCAB, EMB, input_length=LEN), tf_keras.layers.LSTM(UNITS),
                               tf_keras.layers.Dense(1, activation="sigmoid")])
    old.build((None, LEN))
    old.save(tmp_path / "old.keras")
    rebuilt = modelfile.load_model(tmp_path / "old.keras")
    assert np.array_equal(rebuilt.predict(_rows(), verbose=0), old.predict(_rows(), verbose=0))


def test_input_length_from_the_caller_when_the_model_leaves_it_open(tmp_path: Path) -> None:
    """Length None: whole reviews, unpadded, by default (a 2,500-id window); --max-len fixes one."""
    path = _keras3(tmp_path / "open.keras", with_input=False)
    whole = read_model_file(path).spec
    assert (whole.max_len, whole.max_len_from, whole.whole_reviews, whole.skips_pads) == (2500, "whole reviews", True, True)
    given = read_model_file(path, max_len=37).spec
    assert (given.max_len, given.max_len_from, given.whole_reviews, given.skips_pads) == (37, "caller", False, False)
    fixed = _keras3(tmp_path / "fixed.keras")
    with pytest.raises(ModelFileError, match=f"reads {LEN} tokens per review, not 37"):
        read_model_file(fixed, max_len=37)


# ------------------------------------------------------------------ the supported chains


def _chains() -> dict[str, Callable[[Path], Path]]:
    import keras

    L = keras.layers

    def functional(path: Path) -> Path:  # the keras.io example's shape, small: Input(None), stacked Bidirectional
        inputs = keras.Input(shape=(None,), dtype="int32")
        x = L.Embedding(VOCAB, EMB)(inputs)
        x = L.Bidirectional(L.LSTM(UNITS, return_sequences=True))(x)
        x = L.Bidirectional(L.LSTM(UNITS))(x)
        keras.Model(inputs, L.Dense(1, activation="sigmoid")(x)).save(path)
        return path

    return {
        "functional_bidirectional_stack": functional,
        "bidirectional_masked_logits": lambda p: _keras3(p, L.Bidirectional(L.LSTM(UNITS), merge_mode="sum"),
                                                         L.Dense(3, activation="relu"), head=L.Dense(1), mask_zero=True),
        "three_layers_dropout": lambda p: _keras3(p, L.SpatialDropout1D(0.2), L.GRU(UNITS, return_sequences=True),
                                                  L.Dropout(0.3), L.LSTM(UNITS, return_sequences=True),
                                                  L.Bidirectional(L.GRU(UNITS, reset_after=False), merge_mode="mul"),
                                                  L.Dense(3, activation="gelu"), L.Dense(2, activation="tanh")),
    }


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("name", ["functional_bidirectional_stack", "bidirectional_masked_logits", "three_layers_dropout"])
def test_supported_chains_rebuild_with_equal_outputs(tmp_path: Path, name: str, suffix: str) -> None:
    import keras

    path = _chains()[name](tmp_path / f"m{suffix}")
    spec = read_model_file(path, max_len=LEN).spec
    assert spec.functional == name.startswith("functional")
    original = keras.saving.load_model(path, compile=False)
    rebuilt = modelfile.load_model(path, max_len=LEN)
    assert np.abs(rebuilt.predict(_rows(), verbose=0) - original.predict(_rows(), verbose=0)).max() <= 1e-6


@pytest.mark.parametrize("change, message", [
    ({"merge_mode": None}, "merge_mode=None"),
    ({"merge_mode": "first"}, "merge_mode='first'"),
    ({"backward_layer": {"class_name": "GRU", "config": {"units": UNITS, "go_backwards": True}}}, "own backward_layer"),
])
def test_bidirectional_options_are_checked(tmp_path: Path, change: dict, message: str) -> None:
    import keras

    path = _keras3(tmp_path / "m.h5", keras.layers.Bidirectional(keras.layers.LSTM(UNITS)))
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        config["config"]["layers"][2]["config"].update(change)
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelFileError, match=message) as err:
        read_model_file(path)
    _one_line(err)


def test_a_functional_model_that_is_not_a_chain_is_refused(tmp_path: Path) -> None:
    import keras

    L = keras.layers
    inputs = keras.Input(shape=(LEN,), dtype="int32")
    x = L.Embedding(VOCAB, EMB)(inputs)
    merged = L.Concatenate()([L.LSTM(UNITS)(x), L.GRU(UNITS)(x)])
    keras.Model(inputs, L.Dense(1, activation="sigmoid")(merged)).save(tmp_path / "branch.keras")
    with pytest.raises(ModelFileError) as err:
        read_model_file(tmp_path / "branch.keras")
    assert "Concatenate" in _one_line(err) or "only a single chain" in _one_line(err)


# ------------------------------------------------------------------ other architectures


def _variants() -> dict[str, tuple[Callable, str]]:
    import keras

    L = keras.layers
    return {
        "gru_relu": (lambda p: _keras3(p, L.GRU(UNITS, activation="relu")), "GRU has activation='relu'"),
        "gru_backwards": (lambda p: _keras3(p, L.GRU(UNITS, go_backwards=True)), "GRU has go_backwards=True"),
        "sequences": (lambda p: _keras3(p, L.LSTM(UNITS, return_sequences=True), L.GlobalMaxPooling1D()),
                      "GlobalMaxPooling1D"),
        "stacked_without_sequences": (lambda p: _keras3(p, L.LSTM(UNITS), L.RepeatVector(2), L.LSTM(UNITS)),
                                      "RepeatVector"),
        "last_returns_sequences": (lambda p: _keras3(p, L.LSTM(UNITS, return_sequences=True)),
                                   "the last recurrent layer has return_sequences=True"),
        "four_recurrent": (lambda p: _keras3(p, *[L.GRU(UNITS, return_sequences=True) for _ in range(3)], L.GRU(UNITS)),
                           "4 recurrent layers; supported: 1 to 3"),
        "three_hidden": (lambda p: _keras3(p, L.LSTM(UNITS), *[L.Dense(3, activation="relu") for _ in range(3)]),
                         "3 Dense hidden layers; supported: 0 to 2"),
        "hidden_sigmoid": (lambda p: _keras3(p, L.LSTM(UNITS), L.Dense(3, activation="sigmoid")),
                           "hidden layer .dense[_0-9]*. has activation .sigmoid."),
        "softmax": (lambda p: _keras3(p, head=L.Dense(3, activation="sigmoid")), "units=3 and activation 'sigmoid'"),
        "relu": (lambda p: _keras3(p, L.LSTM(UNITS, activation="relu")), "activation='relu'"),
        "no_bias": (lambda p: _keras3(p, head=L.Dense(1, activation="sigmoid", use_bias=False)), "use_bias=False"),
    }


@pytest.mark.parametrize("name", ["gru_relu", "gru_backwards", "sequences", "stacked_without_sequences",
                                  "last_returns_sequences", "four_recurrent", "three_hidden", "hidden_sigmoid",
                                  "softmax", "relu", "no_bias"])
def test_other_architectures_are_refused(tmp_path: Path, name: str) -> None:
    make, message = _variants()[name]
    path = make(tmp_path / f"{name}.h5")
    with pytest.raises(ModelFileError, match=message) as err:
        read_model_file(path)
    _one_line(err)


def _edit_layer(index: int, **changes) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        config["config"]["layers"][index]["config"].update(changes)
    return edit


def _set(key: str, value) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        config[key] = value
    return edit


def _custom_layer(config: dict) -> None:
    config["config"]["layers"][2].update(module="evil.layers", registered_name="evil>LSTM")


def _custom_initializer(config: dict) -> None:
    config["config"]["layers"][2]["config"]["kernel_initializer"] = {
        "module": "os", "class_name": "system", "config": {"command": "touch x"}, "registered_name": "os>system"}


def _lambda_activation(config: dict) -> None:
    config["config"]["layers"][3]["config"]["activation"] = {
        "module": "keras.layers", "class_name": "__lambda__", "config": {"code": "..."}, "registered_name": None}


@pytest.mark.parametrize("edit, message", [
    (_edit_layer(2, recurrent_activation="hard_sigmoid"), "recurrent_activation='hard_sigmoid'"),
    (_edit_layer(2, go_backwards=True), "go_backwards=True"),
    (_edit_layer(2, stateful=True), "stateful=True"),
    (_edit_layer(2, use_bias=False), "use_bias=False"),
    (_edit_layer(1, mask_zero="yes"), "mask_zero='yes'; supported: True or False"),
    (_edit_layer(1, dtype="mixed_float16"), "computes in 'mixed_float16'"),
    (_edit_layer(1, input_dim=49), r"shape \(50, 4\), the architecture needs \(49, 4\)"),
    (_edit_layer(0, batch_shape=[None, 10, 3]), "supported: \\(batch, tokens\\)"),
    (_custom_layer, "custom class 'evil>LSTM' from module 'evil.layers'"),
    (_custom_initializer, "custom object 'os>system' from module 'os'"),
    (_lambda_activation, "holds code"),
    (_set("class_name", "Functional"), "only a single chain of layers is supported"),
    (_set("class_name", "Graph"), "is a 'Graph', not a Keras Sequential or Functional model"),
], ids=["hard_sigmoid", "go_backwards", "stateful", "lstm_no_bias", "mask_zero_not_bool", "mixed", "vocab", "rank3",
        "custom_layer", "custom_initializer", "lambda_activation", "functional", "graph"])
def test_config_edits_are_refused(tmp_path: Path, edit: Callable[[dict], None], message: str) -> None:
    path = _keras3(tmp_path / "m.h5")
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        edit(config)
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelFileError, match=message) as err:
        read_model_file(path)
    _one_line(err)


# ------------------------------------------------------------------ damaged and hostile files


def _rewrite_zip_weights(src: Path, dst: Path, edit: Callable[[h5py.File], None]) -> Path:
    with zipfile.ZipFile(src) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "r+") as handle:
        edit(handle)
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return dst


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _drop_member(name: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            members = {n: archive.read(n) for n in archive.namelist() if n != name}
        with zipfile.ZipFile(path, "w") as archive:
            for n, data in members.items():
                archive.writestr(n, data)
    return edit


def _h5_edit(edit: Callable[[h5py.File], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        with h5py.File(path, "r+") as handle:
            edit(handle)
    return apply


def _layer(handle: h5py.File, index: int) -> h5py.Group:
    """``model_weights/<name>`` of the index-th layer with weights (0 Embedding, 1 LSTM, 2 Dense)."""
    name = handle["model_weights"].attrs["layer_names"][index]
    return handle["model_weights"][name.decode() if isinstance(name, bytes) else name]


def _weight(handle: h5py.File, index: int, short: str) -> tuple[h5py.Group, str]:
    """(group holding the weight, its name there) for e.g. (1, "bias")."""
    group = _layer(handle, index)
    for name in group.attrs["weight_names"]:
        name = name.decode() if isinstance(name, bytes) else name
        if name.rsplit("/", 1)[-1] == short:
            holder, _, leaf = name.rpartition("/")
            return group[holder], leaf
    raise AssertionError(short)


def _external_link(handle: h5py.File) -> None:
    group, leaf = _weight(handle, 2, "bias")
    del group[leaf]
    group[leaf] = h5py.ExternalLink("/etc/passwd", "/x")


def _wrong_shape(handle: h5py.File) -> None:
    group, leaf = _weight(handle, 1, "bias")
    del group[leaf]
    group[leaf] = np.zeros(3, np.float32)


def _nan(handle: h5py.File) -> None:
    group, leaf = _weight(handle, 2, "bias")
    group[leaf][0] = np.nan


def _no_weight_names(handle: h5py.File) -> None:
    _layer(handle, 0).attrs["weight_names"] = []


def _no_layer_group(handle: h5py.File) -> None:
    del handle["model_weights"][_layer(handle, 1).name.rsplit("/", 1)[-1]]


@pytest.mark.parametrize("suffix, damage, message", [
    (".h5", _truncate, "truncated or damaged"),
    (".keras", _truncate, "truncated or damaged"),
    (".keras", _drop_member("config.json"), "without config.json is not a .keras model"),
    (".keras", _drop_member("model.weights.h5"), "no model.weights.h5"),
    (".h5", _h5_edit(lambda h: h.attrs.__delitem__("model_config")), "no Keras model in this HDF5 file"),
    (".h5", _h5_edit(_no_weight_names), "missing its embeddings weights"),
    (".h5", _h5_edit(_no_layer_group), "the weights of LSTM 'lstm.*' are missing"),
    (".h5", _h5_edit(_external_link), "is a link"),
    (".h5", _h5_edit(_wrong_shape), r"LSTM '\w+' bias has shape \(3,\), the architecture needs \(16,\)"),
    (".h5", _h5_edit(_nan), "NaN"),
], ids=["truncated_h5", "truncated_zip", "no_config", "no_weights", "no_model_config", "no_weight_names",
        "no_layer_group", "external_link", "wrong_shape", "nan"])
def test_damaged_files_are_refused(tmp_path: Path, suffix: str, damage: Callable[[Path], None], message: str) -> None:
    path = _keras3(tmp_path / f"m{suffix}")
    damage(path)
    with pytest.raises(ModelFileError, match=message) as err:
        read_model_file(path)
    _one_line(err)


def test_not_a_model_file(tmp_path: Path) -> None:
    for name, data in (("notes.h5", b"just text\n"), ("empty.keras", b"")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelFileError, match="neither an HDF5"):
            read_model_file(tmp_path / name)
    with pytest.raises(ModelFileError, match="is a directory"):
        read_model_file(tmp_path)
    import tf_keras

    weights_only = tf_keras.Sequential([tf_keras.layers.Dense(1)])
    weights_only.build((None, 3))
    weights_only.save_weights(tmp_path / "weights.h5")
    with pytest.raises(ModelFileError, match="only weights"):
        read_model_file(tmp_path / "weights.h5")


def test_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _keras3(tmp_path / "m.keras")
    monkeypatch.setattr(modelfile, "MAX_CONFIG_BYTES", 512)
    with pytest.raises(ModelFileError, match="config.json in the .keras zip is"):
        read_model_file(path)
    monkeypatch.setattr(modelfile, "MAX_FILE_BYTES", 1024)
    with pytest.raises(ModelFileError, match="model files over 1,024 bytes are refused"):
        read_model_file(path)


# ------------------------------------------------------------------ TextVectorization first


def _vectorized(path: Path, length: int | None, mask_zero: bool) -> Path:
    import keras

    encoder = keras.layers.TextVectorization(max_tokens=30, output_sequence_length=length)
    encoder.adapt(["a fine film", "a dull film, badly acted", "what a film!"])
    keras.Sequential([keras.Input(shape=(1,), dtype="string"), encoder,
                      keras.layers.Embedding(len(encoder.get_vocabulary()), EMB, mask_zero=mask_zero),
                      keras.layers.LSTM(UNITS), keras.layers.Dense(1)]).save(path)
    return path


def test_text_vectorization_gives_its_vocabulary_and_window(tmp_path: Path) -> None:
    fixed = read_model_file(_vectorized(tmp_path / "fixed.keras", 12, False))
    assert fixed.spec.max_len == 12 and fixed.spec.vectorizer.standardize == "lower_and_strip_punctuation"
    assert fixed.vocabulary[:2] == ("film", "a") and len(fixed.vocabulary) + 2 == fixed.spec.num_words
    whole = read_model_file(_vectorized(tmp_path / "whole.keras", None, True)).spec
    assert whole.max_len == 2500 and whole.head == "logits"  # masked: whole reviews cost only their words


@pytest.mark.parametrize("suffix, length, mask_zero, message", [
    (".keras", None, False, "output_sequence_length=None and the Embedding no mask_zero"),
    (".h5", 12, False, "vocabulary is saved only in .keras files"),
])
def test_text_vectorization_refusals(tmp_path: Path, suffix: str, length, mask_zero: bool, message: str) -> None:
    with pytest.raises(ModelFileError, match=message) as err:
        read_model_file(_vectorized(tmp_path / f"m{suffix}", length, mask_zero))
    _one_line(err)
