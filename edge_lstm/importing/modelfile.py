"""Read a Keras model file as data, never as code.

``tf_keras.models.load_model`` rebuilds whatever a file describes, and a ``Lambda`` layer in a
``.h5`` runs its bytecode. This module parses the architecture JSON itself (the ``model_config``
attribute of an HDF5 file, or ``config.json`` of a ``.keras`` zip), accepts only the
architectures of ``architecture.py``, reads the weight arrays with h5py, checks every shape, and
rebuilds the model in code (tf-keras) with ``set_weights``.

Formats: tf-keras / Keras 2 ``.h5``, Keras 3 ``.h5`` (``model_weights/<layer>/...`` with
``weight_names``) and ``.keras`` (``model.weights.h5`` holding ``layers/<kind>/vars/<i>``, or
``_layer_checkpoint_dependencies/<kind>/...`` in early writers). Every failure is one
``ModelFileError`` with a one-line message. Only :func:`build_model` imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from edge_lstm.importing.architecture import check_config
from edge_lstm.importing.chain import chain_layers
from edge_lstm.importing.spec import (  # noqa: F401 (the description's names, re-exported)
    ModelFileError,
    ModelSpec,
    RecurrentSpec,
    check_class_names,
    weight_shapes,
)
from edge_lstm.importing.weights import _child, _one_line, _read_weights, _size, _text

MAX_FILE_BYTES = 512 * 2**20
MAX_CONFIG_BYTES = 2**20
SUPPORTED_FORMATS = "Keras 3 .keras, Keras 3 .h5 or tf-keras .h5"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_KERAS_ZIP_CONFIG, _KERAS_ZIP_WEIGHTS, _KERAS_ZIP_METADATA = "config.json", "model.weights.h5", "metadata.json"
CLASS_NAMES_ATTR = "edge_lstm_class_names"  # a bundle's model.h5: its softmax head's class names (JSON list)
WHOLE_REVIEWS_ATTR = "edge_lstm_whole_reviews"  # a bundle's model.h5: its mask_zero stands for reading reviews unpadded


@dataclass(frozen=True)
class ModelFile:
    """A checked architecture and its weights, in tf-keras ``set_weights`` order; the vocabulary
    (from id 2 on) of a TextVectorization layer first."""

    spec: ModelSpec
    weights: tuple[np.ndarray, ...]
    vocabulary: tuple[str, ...] | None = None


_VOCABULARY_ASSET = "assets/layers/text_vectorization/vocabulary.txt"
_SPECIAL_TOKENS = ("", "[UNK]")  # TextVectorization's ids 0 and 1


# ---------------------------------------------------------------- public functions


def read_model_file(path: Path, max_len: int | None = None) -> ModelFile:
    """Parse, check and read ``path`` without running any code from it (no TensorFlow).

    ``max_len`` is needed only when the model does not fix its input length; if both do, they
    must agree."""
    path = Path(path)
    kind = _sniff(path)
    with _open(path, kind) as (config, keras_version, weights_root):
        layers = chain_layers(config)
        spec = check_config(config, kind, keras_version, max_len, layers)
        spec = dataclasses.replace(spec, class_names=_class_names(weights_root.file, spec))
        if weights_root.file.attrs.get(WHOLE_REVIEWS_ATTR, False):  # the mask is the bundle's, not the user's
            spec = dataclasses.replace(spec, whole_reviews=True, mask_zero=False, max_len_from="whole reviews")
        weights = _read_weights(weights_root, kind, spec, layers)
    vocabulary = _vocabulary(path, kind, spec) if spec.vectorizer else None
    if vocabulary is not None and len(vocabulary) + len(_SPECIAL_TOKENS) != spec.num_words:
        raise ModelFileError(f"TextVectorization has {len(vocabulary) + 2} ids but the Embedding reads {spec.num_words}")
    return ModelFile(spec, weights, vocabulary)


def _vocabulary(path: Path, kind: str, spec: ModelSpec) -> tuple[str, ...]:
    """The TextVectorization's words from id 2 on: from its config, or the .keras zip's asset."""
    words = spec.vectorizer.vocabulary
    if words is None:
        if kind != "keras":
            raise ModelFileError("the TextVectorization's vocabulary is saved only in .keras files; save the model "
                                 "with model.save('model.keras')")
        try:
            with zipfile.ZipFile(path) as archive:
                if _VOCABULARY_ASSET not in archive.namelist():
                    raise ModelFileError(f"no {_VOCABULARY_ASSET} in the .keras zip (an adapted TextVectorization writes it)")
                raw = _zip_member(archive, _VOCABULARY_ASSET, MAX_CONFIG_BYTES * 16)
        except (OSError, zipfile.BadZipFile, zlib.error) as err:
            raise ModelFileError(f"cannot read the vocabulary of {path.name}: {_one_line(err)}") from err
        try:
            words = tuple(raw.decode("utf-8").split("\n"))
        except UnicodeDecodeError as err:
            raise ModelFileError("the TextVectorization vocabulary is not UTF-8 text") from err
        words = words[:-1] if words and words[-1] == "" and len(words) > 2 else words  # the file's last newline
    if tuple(words[:2]) == _SPECIAL_TOKENS:
        words = words[2:]
    if any(w in _SPECIAL_TOKENS for w in words) or len(set(words)) != len(words):
        raise ModelFileError("the TextVectorization vocabulary has empty, [UNK] or repeated words")
    return tuple(words)


def _class_names(handle: h5py.File, spec: ModelSpec) -> tuple[str, ...]:
    """The class names a bundle's model.h5 holds for its softmax head (none in users' files)."""
    if CLASS_NAMES_ATTR not in handle.attrs:
        return ()
    if spec.head != "softmax":
        raise ModelFileError(f"the file names classes ({CLASS_NAMES_ATTR}) but its head is Dense(1, {spec.head})")
    if handle.attrs.get_id(CLASS_NAMES_ATTR).get_storage_size() > MAX_CONFIG_BYTES:
        raise ModelFileError(f"the class names are over {_size(MAX_CONFIG_BYTES)}; refused")
    return check_class_names(_parse_json_value(handle.attrs[CLASS_NAMES_ATTR], CLASS_NAMES_ATTR), spec.classes)


def write_bundle_attrs(path: Path, spec: ModelSpec) -> None:
    """Record in a bundle's model.h5 what its Keras config cannot say: a softmax head's class names,
    and that its ``mask_zero`` reads whole reviews unpadded (the user's model has no mask)."""
    with h5py.File(path, "a") as handle:
        if spec.labels:
            handle.attrs[CLASS_NAMES_ATTR] = json.dumps(list(spec.labels), ensure_ascii=False)
        if spec.whole_reviews:
            handle.attrs[WHOLE_REVIEWS_ATTR] = True


def build_model(model_file: ModelFile) -> Any:
    """A fresh tf-keras ``Sequential`` of the checked architecture holding the file's weights. A
    model that reads whole reviews gets ``mask_zero``: the leading pads then leave the zero state
    as it is, so a padded review scores as the user's model scores it unpadded."""
    from edge_lstm.tf_setup import quiet_tensorflow

    quiet_tensorflow()
    import tf_keras as keras

    spec = model_file.spec
    model = keras.Sequential(
        [keras.layers.Embedding(spec.num_words, spec.embedding_dim, input_length=spec.max_len, mask_zero=spec.skips_pads,
                                name="embedding"),
         *(_recurrent_layer(keras, r, f"recurrent_{i}") for i, r in enumerate(spec.recurrent)),
         *(keras.layers.Dense(d.units, activation=d.activation, name=f"dense_{i}") for i, d in enumerate(spec.dense))],
        name="imdb_" + "_".join(r.cell.lower() for r in spec.recurrent),
    )
    model.build((None, spec.max_len))
    model.set_weights(list(model_file.weights))
    return model


def _recurrent_layer(keras: Any, r: RecurrentSpec, name: str) -> Any:
    options = {"units": r.units, "return_sequences": r.return_sequences}
    layer = keras.layers.GRU(reset_after=r.reset_after, **options) if r.cell == "GRU" else keras.layers.LSTM(**options)
    return keras.layers.Bidirectional(layer, merge_mode=r.merge_mode, name=name) if r.bidirectional else layer


def load_model(path: Path, max_len: int | None = None) -> Any:
    """:func:`read_model_file` then :func:`build_model`: the safe ``load_model``."""
    return build_model(read_model_file(path, max_len))


# ---------------------------------------------------------------- opening the file


def load_with_its_keras(path: Path, spec: ModelSpec, vocabulary: tuple[str, ...] | None = None) -> tuple[Any, str]:
    """The original model loaded by the Keras that wrote it (Keras 3 or tf-keras, ``safe_mode``),
    and a description of the loader. Call it only on a file ``read_model_file`` accepted: the
    architecture check has then refused every layer that could hold code."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if spec.vectorizer is not None:
                return _keras3_with_vocabulary(path, vocabulary)
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


def _keras3_with_vocabulary(path: Path, vocabulary: tuple[str, ...] | None) -> tuple[Any, str]:
    """A model with a TextVectorization layer, built by Keras 3 from the file's config with the
    vocabulary set in it, and the file's weights: Keras 3.15's own load_model refuses an adapted
    TextVectorization it saved ("repeated term ''")."""
    import tempfile

    import keras

    with zipfile.ZipFile(path) as archive:
        config = _parse_json(_zip_member(archive, _KERAS_ZIP_CONFIG, MAX_CONFIG_BYTES), _KERAS_ZIP_CONFIG)
        weights = _zip_member(archive, _KERAS_ZIP_WEIGHTS, MAX_FILE_BYTES)
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "TextVectorization" and vocabulary is not None:
            layer["config"]["vocabulary"] = list(vocabulary)
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    with tempfile.TemporaryDirectory() as folder:
        weights_path = Path(folder) / "model.weights.h5"
        weights_path.write_bytes(weights)
        model.load_weights(weights_path)
    return model, (f"Keras {keras.__version__} from the file's config (vocabulary set) and weights, "
                   "deserialize_keras_object(safe_mode=True)")


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
    data = _parse_json_value(raw, what)
    if not isinstance(data, dict):
        raise ModelFileError(f"{what} is not a JSON object")
    return data


def _parse_json_value(raw: Any, what: str) -> Any:
    text = _text(raw)
    if len(text) > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{what} is over {_size(MAX_CONFIG_BYTES)}; refused")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ModelFileError(f"{what} is not valid JSON: {_one_line(err)}") from err
