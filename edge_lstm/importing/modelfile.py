"""Read a Keras model file as data, never as code.

``tf_keras.models.load_model`` rebuilds whatever a file describes, and a ``Lambda`` layer in a
``.h5`` runs its bytecode. This module parses the architecture JSON itself (the ``model_config``
attribute of an HDF5 file, or ``config.json`` of a ``.keras`` zip), accepts only the lecture's
network and its close kin, ``[InputLayer ->] Embedding (mask_zero or not) -> LSTM or GRU ->
Dense(1, sigmoid)``, reads the weight arrays with h5py, checks every shape, and rebuilds the model
in code (tf-keras) with ``set_weights``.

Formats: tf-keras / Keras 2 ``.h5``, Keras 3 ``.h5`` (``model_weights/<layer>/...`` with
``weight_names``) and ``.keras`` (``model.weights.h5`` holding ``layers/<kind>/vars/<i>``, or
``_layer_checkpoint_dependencies/<kind>/...`` in early writers). Every failure is one
``ModelFileError`` with a one-line message. Only :func:`build_model` imports TensorFlow.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

MAX_FILE_BYTES = 512 * 2**20
MAX_CONFIG_BYTES = 2**20
MAX_PARAMETERS = MAX_FILE_BYTES // 4  # float32 values
MAX_LEN_LIMIT = 100_000
MAX_UNITS = 4096
SUPPORTED_ARCHITECTURE = "[InputLayer ->] Embedding -> LSTM or GRU -> Dense(1, sigmoid)"
RECURRENT_KINDS = ("LSTM", "GRU")
SUPPORTED_FORMATS = "Keras 3 .keras, Keras 3 .h5 or tf-keras .h5"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_KERAS_ZIP_CONFIG, _KERAS_ZIP_WEIGHTS, _KERAS_ZIP_METADATA = "config.json", "model.weights.h5", "metadata.json"
_ZIP_WEIGHT_ROOTS = ("layers", "_layer_checkpoint_dependencies")
_CODE_CLASSES = {"Lambda", "__lambda__", "function", "TFOpLambda", "SlicingOpLambda"}
_SUBMODEL_CLASSES = {"Sequential", "Functional", "Model"}
# weight names per layer kind, in set_weights order (the .keras layout stores them by position)
_WEIGHT_NAMES = {
    "Embedding": ("embeddings",),
    "LSTM": ("kernel", "recurrent_kernel", "bias"),
    "GRU": ("kernel", "recurrent_kernel", "bias"),
    "Dense": ("kernel", "bias"),
}


class ModelFileError(ValueError):
    """A model file is unreadable, too large, or not the supported architecture."""


@dataclass(frozen=True)
class ModelSpec:
    """What a model file holds: its format and the network's description, which every stage
    reads (the rebuild, the exporters, parity)."""

    format: str  # "h5" or "keras"
    keras_version: str  # the writer's, "" when the file does not say
    num_words: int  # Embedding input_dim (vocabulary, ids 0..num_words-1)
    embedding_dim: int
    units: int  # the recurrent layer's units
    max_len: int  # tokens per review
    max_len_from: str  # "model" (fixed by the file) or "caller"
    layer_names: tuple[str, str, str]  # Embedding, recurrent, Dense names in the file
    cell: str = "LSTM"  # the recurrent layer: "LSTM" or "GRU"
    reset_after: bool = True  # GRU: the reset gate after the recurrent product (Keras' default)
    mask_zero: bool = False  # Embedding(mask_zero=True): pad ids are skipped

    @property
    def gates(self) -> int:
        return 4 if self.cell == "LSTM" else 3

    @property
    def description(self) -> str:
        """``Keras 3 .keras``, ``tf-keras .h5`` ... (for messages and records)."""
        major = self.keras_version.split(".", 1)[0]
        writer = "Keras 3" if major == "3" else f"tf-keras (Keras {self.keras_version or '2'})"
        return f"{writer} .{self.format}"

    def to_dict(self) -> dict:
        return {**asdict(self), "layer_names": list(self.layer_names), "description": self.description}


@dataclass(frozen=True)
class ModelFile:
    """A checked architecture and its weights, in tf-keras ``set_weights`` order:
    embeddings, LSTM kernel, recurrent kernel, bias, Dense kernel, bias."""

    spec: ModelSpec
    weights: tuple[np.ndarray, ...]


# ---------------------------------------------------------------- public functions


def read_model_file(path: Path, max_len: int | None = None) -> ModelFile:
    """Parse, check and read ``path`` without running any code from it (no TensorFlow).

    ``max_len`` is needed only when the model does not fix its input length; if both do, they
    must agree."""
    path = Path(path)
    kind = _sniff(path)
    with _open(path, kind) as (config, keras_version, weights_root):
        spec = check_config(config, kind, keras_version, max_len)
        weights = _read_weights(weights_root, kind, spec)
    return ModelFile(spec, weights)


def check_config(config: dict, kind: str, keras_version: str, max_len: int | None) -> ModelSpec:
    """Accept only the supported architecture; return its dimensions (``kind``: h5 or keras)."""
    layers = _checked_layers(config)
    embedding, recurrent, dense = (layer["config"] for layer in layers[-3:])
    cell = layers[-2]["class_name"]
    names = tuple(_name(c) for c in (embedding, recurrent, dense))
    if len(set(names)) != len(names):
        raise ModelFileError(f"the layers' names are not unique: {', '.join(names)}")
    fixed = _fixed_length(config, layers)
    spec = ModelSpec(
        format=kind, keras_version=keras_version,
        num_words=_int(embedding, "input_dim", "Embedding", 4, MAX_PARAMETERS),
        embedding_dim=_int(embedding, "output_dim", "Embedding", 1, MAX_UNITS),
        units=_int(recurrent, "units", cell, 1, MAX_UNITS),
        max_len=_resolve_length(fixed, max_len), max_len_from="model" if fixed else "caller",
        layer_names=names, cell=cell, reset_after=recurrent.get("reset_after", True) if cell == "GRU" else True,
        mask_zero=embedding.get("mask_zero", False),
    )
    if _parameter_count(spec) > MAX_PARAMETERS:
        raise ModelFileError(f"the model has {_parameter_count(spec):,} parameters; at most {MAX_PARAMETERS:,} are read")
    return spec


def build_model(model_file: ModelFile) -> Any:
    """A fresh tf-keras ``Sequential`` of the checked architecture holding the file's weights."""
    from edge_lstm.tf_setup import quiet_tensorflow

    quiet_tensorflow()
    import tf_keras as keras

    spec = model_file.spec
    recurrent = (keras.layers.GRU(spec.units, reset_after=spec.reset_after, name="gru") if spec.cell == "GRU"
                 else keras.layers.LSTM(spec.units, name="lstm"))
    model = keras.Sequential(
        [
            keras.layers.Embedding(spec.num_words, spec.embedding_dim, input_length=spec.max_len,
                                   mask_zero=spec.mask_zero, name="embedding"),
            recurrent,
            keras.layers.Dense(1, activation="sigmoid", name="dense"),
        ],
        name=f"imdb_{spec.cell.lower()}",
    )
    model.build((None, spec.max_len))
    model.set_weights(list(model_file.weights))
    return model


def load_model(path: Path, max_len: int | None = None) -> Any:
    """:func:`read_model_file` then :func:`build_model`: the safe ``load_model``."""
    return build_model(read_model_file(path, max_len))


# ---------------------------------------------------------------- opening the file


def load_with_its_keras(path: Path, spec: ModelSpec) -> tuple[Any, str]:
    """The original model loaded by the Keras that wrote it (Keras 3 or tf-keras, ``safe_mode``),
    and a description of the loader. Call it only on a file ``read_model_file`` accepted: the
    architecture check has then refused every layer that could hold code."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if spec.keras_version.startswith("3."):
                import keras

                model = keras.saving.load_model(path, compile=False, safe_mode=True)
                return model, f"Keras {keras.__version__} keras.saving.load_model(safe_mode=True)"
            import tf_keras

            model = tf_keras.models.load_model(path, compile=False, safe_mode=True)
            return model, f"tf-keras {tf_keras.__version__} tf_keras.models.load_model(safe_mode=True)"
        except (ValueError, TypeError, KeyError, OSError, AttributeError) as err:
            raise ModelFileError(f"{path.name}: Keras could not load it to compare outputs: "
                                 f"{' '.join(str(err).split())[:300]}") from err


def _sniff(path: Path) -> str:
    """``h5`` or ``keras`` from the file's first bytes (never from its name)."""
    if path.is_dir():
        raise ModelFileError(f"{path.name} is a directory (a TensorFlow SavedModel?); supported: {SUPPORTED_FORMATS}")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as err:
        raise ModelFileError(f"cannot read {path.name}: {err.strerror or err}") from err
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path.name} is {_size(size)}; model files over {_size(MAX_FILE_BYTES)} are refused")
    if head.startswith(_HDF5_MAGIC):
        return "h5"
    if head.startswith(_ZIP_MAGIC):
        return "keras"
    raise ModelFileError(f"{path.name} is neither an HDF5 (.h5) nor a zip (.keras) file; supported: {SUPPORTED_FORMATS}")


@contextmanager
def _open(path: Path, kind: str) -> Iterator[tuple[dict, str, h5py.Group]]:
    """(architecture config, Keras version, HDF5 group holding the weights)."""
    try:
        if kind == "h5":
            with h5py.File(path, "r") as handle:
                config, version = _h5_config(handle)
                yield config, version, _child(handle, "model_weights", "the weights")
        else:
            with zipfile.ZipFile(path) as archive:
                config, version, weights = _zip_parts(archive)
            with h5py.File(io.BytesIO(weights), "r") as handle:
                yield config, version, handle
    except (OSError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError,
            NotImplementedError, RuntimeError) as err:
        raise ModelFileError(f"cannot read {path.name} (truncated or damaged?): {_one_line(err)}") from err


def _h5_config(handle: h5py.File) -> tuple[dict, str]:
    if "model_config" not in handle.attrs:
        if "layer_names" in handle.attrs:
            raise ModelFileError("the file holds only weights (model.save_weights); save the whole model with model.save")
        raise ModelFileError(f"no Keras model in this HDF5 file (no model_config); supported: {SUPPORTED_FORMATS}")
    attr_id = handle.attrs.get_id("model_config")
    if attr_id.get_storage_size() > MAX_CONFIG_BYTES:
        raise ModelFileError(f"the model config is over {_size(MAX_CONFIG_BYTES)}; refused")
    return _parse_json(handle.attrs["model_config"], "model_config"), _text(handle.attrs.get("keras_version", b""))


def _zip_parts(archive: zipfile.ZipFile) -> tuple[dict, str, bytes]:
    """config.json, metadata.json's Keras version and model.weights.h5 of a .keras zip."""
    names = set(archive.namelist())
    if _KERAS_ZIP_CONFIG not in names:
        raise ModelFileError(f"a zip without {_KERAS_ZIP_CONFIG} is not a .keras model; supported: {SUPPORTED_FORMATS}")
    if _KERAS_ZIP_WEIGHTS not in names:
        found = sorted(n for n in names if n.startswith("model.weights"))
        raise ModelFileError(f"no {_KERAS_ZIP_WEIGHTS} in the .keras zip (found {', '.join(found) or 'no weights'}); "
                             "only HDF5 weights are read")
    config = _parse_json(_zip_member(archive, _KERAS_ZIP_CONFIG, MAX_CONFIG_BYTES), _KERAS_ZIP_CONFIG)
    version = ""
    if _KERAS_ZIP_METADATA in names:
        metadata = _parse_json(_zip_member(archive, _KERAS_ZIP_METADATA, MAX_CONFIG_BYTES), _KERAS_ZIP_METADATA)
        version = str(metadata.get("keras_version", ""))
    return config, version, _zip_member(archive, _KERAS_ZIP_WEIGHTS, MAX_FILE_BYTES)


def _zip_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise ModelFileError(f"{name} in the .keras zip is {_size(info.file_size)}; at most {_size(limit)} is read")
    with archive.open(info) as member:
        return member.read(limit + 1)


def _parse_json(raw: Any, what: str) -> dict:
    text = _text(raw)
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{what} is over {_size(MAX_CONFIG_BYTES)}; refused")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ModelFileError(f"{what} is not valid JSON: {_one_line(err)}") from err
    if not isinstance(data, dict):
        raise ModelFileError(f"{what} is not a JSON object")
    return data


def _text(raw: Any) -> str:
    if isinstance(raw, np.ndarray) and raw.shape == ():
        raw = raw[()]
    if isinstance(raw, (bytes, np.bytes_)):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError as err:
            raise ModelFileError("the model config is not UTF-8 text") from err
    if isinstance(raw, str):
        return raw
    raise ModelFileError(f"unexpected model metadata of type {type(raw).__name__}")


# ---------------------------------------------------------------- the architecture


def _model_layers(config: dict) -> list[dict]:
    name = config.get("class_name")
    if name != "Sequential" or not _keras_module(config.get("module")) or config.get("registered_name") not in (None, name):
        raise ModelFileError(f"the model is a {_show(name)}, not a Keras Sequential; supported: {SUPPORTED_ARCHITECTURE}")
    inner = config.get("config")
    layers = inner if isinstance(inner, list) else inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ModelFileError("the Sequential config has no list of layers")
    for layer in layers:
        if not isinstance(layer.get("config"), dict):
            raise ModelFileError(f"layer {_layer_label(layer)} has no config")
    return layers


def _check_builtin(layer: dict) -> None:
    name, module = layer.get("class_name"), layer.get("module")
    if not _keras_module(module) or layer.get("registered_name") not in (None, name):
        raise ModelFileError(f"the {name} layer is a custom class {_show(layer.get('registered_name') or name)} "
                             f"from module {_show(module)}; only built-in Keras layers are supported")


def _checked_layers(config: dict) -> list[dict]:
    """The Sequential's layers, [InputLayer,] Embedding, LSTM or GRU, Dense, each built-in and plain."""
    layers = _model_layers(config)
    body = layers[1:] if layers and layers[0].get("class_name") == "InputLayer" else layers
    kinds = [layer.get("class_name") for layer in body]
    if len(kinds) != 3 or kinds[0] != "Embedding" or kinds[1] not in RECURRENT_KINDS or kinds[2] != "Dense":
        raise ModelFileError(_wrong_layers(layers))
    for layer in layers:
        _check_builtin(layer)
        _scan_objects(layer["config"], f"the {layer['class_name']} layer")
    _check_embedding(body[0]["config"])
    _check_recurrent(body[1]["config"], kinds[1])
    _check_dense(body[2]["config"])
    return layers


def _scan_objects(node: Any, where: str) -> None:
    """Refuse code (lambdas, functions) and any class from outside Keras, anywhere in a layer."""
    if isinstance(node, list):
        for item in node:
            _scan_objects(item, where)
        return
    if not isinstance(node, dict):
        return
    if "class_name" in node:
        name, module = node.get("class_name"), node.get("module")
        if name in _CODE_CLASSES:
            raise ModelFileError(f"{where} holds code ({_show(name)}), which is never run from a model file; "
                                 f"supported: {SUPPORTED_ARCHITECTURE}")
        if not _keras_module(module) or node.get("registered_name") not in (None, name):
            raise ModelFileError(f"{where} uses the custom object {_show(node.get('registered_name') or name)} "
                                 f"from module {_show(module)}; only built-in Keras objects are supported")
        if name in _SUBMODEL_CLASSES:
            raise ModelFileError(f"{where} nests a {name} model; supported: {SUPPORTED_ARCHITECTURE}")
    for value in node.values():
        _scan_objects(value, where)


def _keras_module(module: Any) -> bool:
    return module is None or (isinstance(module, str) and (module == "keras" or module.startswith("keras.")))


def _wrong_layers(layers: list[dict]) -> str:
    found = " -> ".join(_layer_label(layer) for layer in layers) or "no layers"
    if any(layer.get("class_name") in _CODE_CLASSES for layer in layers):
        return (f"unsupported model: {found}; a Lambda layer holds code, which is never run from a model file; "
                f"supported: {SUPPORTED_ARCHITECTURE}")
    return f"unsupported model: {found}; supported: {SUPPORTED_ARCHITECTURE}"


def _layer_label(layer: dict) -> str:
    name = layer.get("class_name")
    label = _show(name).strip("'") if isinstance(name, str) else _show(name)
    module = layer.get("module")
    return label if _keras_module(module) else f"{label} (module {_show(module)})"


def _check_embedding(cfg: dict) -> None:
    _check_dtype(cfg, "Embedding")
    _expect_bool(cfg, "Embedding", "mask_zero", False)
    _expect_absent(cfg, "Embedding", "lora_rank", "quantization_config")


def _check_recurrent(cfg: dict, kind: str) -> None:
    """An LSTM or GRU as Keras builds it by default, returning its last state only."""
    _check_dtype(cfg, kind)
    _expect(cfg, kind, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
            return_sequences=False, return_state=False, go_backwards=False, stateful=False, time_major=False)
    if kind == "GRU":
        _expect_bool(cfg, kind, "reset_after", True)
    for key in ("dropout", "recurrent_dropout"):  # training only: inference ignores them
        value = cfg.get(key, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise ModelFileError(f"{kind} {key} must be a number in [0, 1), found {_show(value)}")


def _expect_bool(cfg: dict, layer: str, key: str, default: bool) -> None:
    """An option that may be either True or False (absent = ``default``)."""
    if type(cfg.get(key, default)) is not bool:
        raise ModelFileError(f"{layer} has {key}={_show(cfg[key])}; supported: True or False")


def _check_dense(cfg: dict) -> None:
    _check_dtype(cfg, "Dense")
    units = cfg.get("units")
    if units != 1:
        raise ModelFileError(f"the Dense head has units={_show(units)}; supported: Dense(1, sigmoid), one probability")
    activation = cfg.get("activation")
    if activation != "sigmoid":
        raise ModelFileError(f"the Dense head has activation {_show(activation)}; supported: sigmoid "
                             "(the device reads the output as a probability)")
    _expect(cfg, "Dense", use_bias=True)
    _expect_absent(cfg, "Dense", "lora_rank", "quantization_config")


def _expect(cfg: dict, layer: str, **wanted: Any) -> None:
    """Options that change the computation must have the supported value (absent = default)."""
    for key, value in wanted.items():
        found = cfg.get(key, value)
        if found != value or type(found) is not type(value):
            raise ModelFileError(f"{layer} has {key}={_show(found)}; supported: {key}={value!r} "
                                 f"({SUPPORTED_ARCHITECTURE})")


def _expect_absent(cfg: dict, layer: str, *keys: str) -> None:
    for key in keys:
        if cfg.get(key) not in (None, 0):
            raise ModelFileError(f"{layer} has {key}={_show(cfg[key])}; only plain float layers are supported")


def _check_dtype(cfg: dict, layer: str) -> None:
    dtype = cfg.get("dtype", "float32")
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy / tf-keras Policy
        dtype = (dtype.get("config") or {}).get("name")
    if dtype not in (None, "float32"):
        raise ModelFileError(f"{layer} computes in {_show(dtype)}; supported: float32")


def _int(cfg: dict, key: str, layer: str, low: int, high: int) -> int:
    value = cfg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ModelFileError(f"{layer} {key} must be an integer in [{low}, {high}], found {_show(value)}")
    return value


def _name(cfg: dict) -> str:
    name = cfg.get("name")
    if not isinstance(name, str) or not name or "/" in name or len(name) > 200:
        raise ModelFileError(f"unusable layer name {_show(name)}")
    return name


def _fixed_length(config: dict, layers: list[dict]) -> int | None:
    """The input length the file fixes (Input shape, input_length, build shape), if any."""
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    shapes = [inner.get("build_input_shape"), (config.get("build_config") or {}).get("input_shape")]
    for layer in layers:
        if layer.get("class_name") not in ("InputLayer", "Embedding"):
            continue
        cfg = layer["config"]
        shapes += [cfg.get("batch_shape"), cfg.get("batch_input_shape"), (layer.get("build_config") or {}).get("input_shape")]
        if cfg.get("input_length") is not None:
            shapes.append([None, cfg["input_length"]])
    lengths = {_length_of(shape) for shape in shapes if shape is not None} - {None}
    if len(lengths) > 1:
        raise ModelFileError(f"the model's input lengths disagree: {sorted(lengths)}")
    return lengths.pop() if lengths else None


def _length_of(shape: Any) -> int | None:
    if not isinstance(shape, list) or len(shape) != 2:
        raise ModelFileError(f"the model's input shape is {_show(shape)}; supported: (batch, tokens)")
    length = shape[1]
    if length is None:
        return None
    if not isinstance(length, int) or isinstance(length, bool) or not 1 <= length <= MAX_LEN_LIMIT:
        raise ModelFileError(f"the model's input length {_show(length)} is not in [1, {MAX_LEN_LIMIT}]")
    return length


def _resolve_length(fixed: int | None, given: int | None) -> int:
    if fixed is not None and given is not None and fixed != given:
        raise ModelFileError(f"the model reads {fixed} tokens per review, not {given}")
    if fixed is None and given is None:
        raise ModelFileError("the model does not fix its input length; pass it (--max-len; the lecture used 200)")
    return fixed if fixed is not None else given


def _parameter_count(spec: ModelSpec) -> int:
    return sum(int(np.prod(shape)) for shapes in _shapes(spec).values() for shape in shapes.values())


def _shapes(spec: ModelSpec) -> dict[str, dict[str, tuple[int, ...]]]:
    e, u, g = spec.embedding_dim, spec.units, spec.gates
    two_biases = spec.cell == "GRU" and spec.reset_after  # input and recurrent bias
    return {
        "Embedding": {"embeddings": (spec.num_words, e)},
        spec.cell: {"kernel": (e, g * u), "recurrent_kernel": (u, g * u), "bias": (2, g * u) if two_biases else (g * u,)},
        "Dense": {"kernel": (u, 1), "bias": (1,)},
    }


# ---------------------------------------------------------------- the weights


def _read_weights(root: h5py.Group, kind: str, spec: ModelSpec) -> tuple[np.ndarray, ...]:
    arrays: list[np.ndarray] = []
    for layer, name in zip(("Embedding", spec.cell, "Dense"), spec.layer_names):
        found = _h5_layer(root, name, layer) if kind == "h5" else _zip_layer(root, layer)
        for weight, shape in _shapes(spec)[layer].items():
            arrays.append(_array(found[weight], f"{layer} {weight}", shape))
    return tuple(arrays)


def _h5_layer(root: h5py.Group, name: str, layer: str) -> dict[str, h5py.Dataset]:
    """``model_weights/<name>`` with its ``weight_names`` (``<name>/<name>/kernel:0`` style)."""
    group = _child(root, name, f"the weights of {layer} {name!r}")
    names = [_text(n) for n in np.atleast_1d(group.attrs.get("weight_names", np.array([])))]
    found = {}
    for weight_name in names:
        short = weight_name.rsplit("/", 1)[-1].split(":", 1)[0]
        if short not in _WEIGHT_NAMES[layer] or short in found:
            raise ModelFileError(f"{layer} {name!r} has an unexpected weight {_show(weight_name)}")
        found[short] = _path(group, weight_name, f"{layer} weight {weight_name!r}")
    missing = [w for w in _WEIGHT_NAMES[layer] if w not in found]
    if missing:
        raise ModelFileError(f"{layer} {name!r} is missing its {', '.join(missing)} weights")
    return found


def _zip_layer(root: h5py.Group, layer: str) -> dict[str, h5py.Dataset]:
    """``layers/<kind>/vars/<i>`` (and ``.../cell/vars/<i>`` for an LSTM or GRU), by position."""
    base = next((root[r] for r in _ZIP_WEIGHT_ROOTS if _is_hard(root, r)), None)
    if base is None:
        raise ModelFileError(f"no layer weights in model.weights.h5 (expected a group {' or '.join(_ZIP_WEIGHT_ROOTS)})")
    group = _child(base, layer.lower(), f"the {layer} weights")
    values = _vars(group, f"{layer} vars")
    if layer in RECURRENT_KINDS:
        if values:
            raise ModelFileError(f"the {layer} has weights outside its cell; a plain {layer} is supported")
        values = _vars(_child(group, "cell", f"the {layer} cell weights"), f"{layer} cell vars")
    expected = _WEIGHT_NAMES[layer]
    if len(values) != len(expected):
        raise ModelFileError(f"the {layer} has {len(values)} weight arrays, expected {len(expected)} ({', '.join(expected)})")
    return dict(zip(expected, values))


def _vars(group: h5py.Group, what: str) -> list[h5py.Dataset]:
    if group.get("vars", getlink=True) is None:
        return []
    holder = _child(group, "vars", what)
    keys = list(holder.keys())
    if sorted(keys) != sorted(str(i) for i in range(len(keys))):
        raise ModelFileError(f"{what} are not numbered 0..{len(keys) - 1}")
    return [_child(holder, str(i), f"{what}/{i}") for i in range(len(keys))]


def _array(dataset: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(dataset, h5py.Dataset):
        raise ModelFileError(f"{what} is not an array")
    if dataset.shape != shape:
        raise ModelFileError(f"{what} has shape {dataset.shape}, the architecture needs {shape}")
    if dataset.dtype.kind != "f" or dataset.dtype.itemsize != 4:
        raise ModelFileError(f"{what} is {dataset.dtype}, supported: float32")
    if dataset.is_virtual or dataset.external:
        raise ModelFileError(f"{what} points to data outside the file; refused")
    values = np.asarray(dataset[()], dtype=np.float32)
    if not np.isfinite(values).all():
        raise ModelFileError(f"{what} holds NaN or infinite values")
    return values


def _child(group: h5py.Group, name: str, what: str) -> Any:
    """One plain member of ``group``: soft and external links (other files) are refused."""
    link = group.get(name, getlink=True)  # the link itself: nothing is followed yet
    if link is None:
        raise ModelFileError(f"{what} are missing (no {name!r} in the file)")
    if not isinstance(link, h5py.HardLink):
        raise ModelFileError(f"{what}: {name!r} is a link; only plain HDF5 members are read")
    return group[name]


def _path(group: h5py.Group, path: str, what: str) -> Any:
    node = group
    for part in path.split("/"):
        if not part:
            raise ModelFileError(f"{what}: malformed path")
        if not isinstance(node, h5py.Group):
            raise ModelFileError(f"{what} is missing")
        node = _child(node, part, what)
    return node


def _is_hard(group: h5py.Group, name: str) -> bool:
    return isinstance(group.get(name, getlink=True), h5py.HardLink)


def _show(value: Any, limit: int = 60) -> str:
    """A value for a one-line message: printable, short."""
    scalar = isinstance(value, (bool, int, float, type(None)))
    text = value if isinstance(value, str) else repr(value) if scalar else json.dumps(value, default=str)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return repr(text[:limit] + ("..." if len(text) > limit else "")) if isinstance(value, str) else text[:limit]


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__
