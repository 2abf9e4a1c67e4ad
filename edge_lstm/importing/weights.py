"""A model file's weights, read as data from its HDF5 groups (tf-keras .h5, Keras 3 .h5, or the
weights file inside a Keras 3 .keras archive): each checked for its place, dtype and shape."""

from __future__ import annotations

import re
from typing import Any

import h5py
import numpy as np

from edge_lstm.importing.architecture import RECURRENT_KINDS
from edge_lstm.importing.chain import layer_name
from edge_lstm.importing.spec import ModelFileError, ModelSpec, weight_shapes
from edge_lstm.importing.spec import show_value as _show

_ZIP_WEIGHT_ROOTS = ("layers", "_layer_checkpoint_dependencies")
_CELL_WEIGHTS = ("kernel", "recurrent_kernel", "bias")  # an LSTM's or GRU's, in set_weights order


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


def _read_weights(root: h5py.Group, kind: str, spec: ModelSpec, layers: list[dict]) -> tuple[np.ndarray, ...]:
    """Every array in ``set_weights`` order, each checked against the shape the architecture needs."""
    kinds = {layer_name(layer): layer["class_name"] for layer in layers}
    groups = _zip_groups(layers)
    arrays: list[np.ndarray] = []
    for name, weights in weight_shapes(spec):
        kind_of_layer = kinds[name]
        found = _h5_layer(root, name, kind_of_layer) if kind == "h5" else _zip_layer(root, groups[name], kind_of_layer)
        missing = [w for w, _ in weights if w not in found]
        if missing:
            raise ModelFileError(f"{kind_of_layer} {name!r} is missing its {', '.join(missing)} weights")
        if len(found) != len(weights):
            raise ModelFileError(f"{kind_of_layer} {name!r} has unexpected weights {', '.join(sorted(set(found) - {w for w, _ in weights}))}")
        arrays += [_array(found[w], f"{kind_of_layer} {name!r} {w}", shape) for w, shape in weights]
    return tuple(arrays)


def _h5_layer(root: h5py.Group, name: str, layer: str) -> dict[str, h5py.Dataset]:
    """``model_weights/<name>`` with its ``weight_names`` (``<name>/<name>/kernel:0`` style); a
    Bidirectional layer's are ``forward/kernel``, ``backward/kernel``... by their path."""
    group = _child(root, name, f"the weights of {layer} {name!r}")
    names = [_text(n) for n in np.atleast_1d(group.attrs.get("weight_names", np.array([])))]
    found = {}
    for weight_name in names:
        parts = weight_name.split(":", 1)[0].split("/")
        direction = next((p.split("_", 1)[0] + "/" for p in parts if p.startswith(("forward_", "backward_"))), "")
        key = (direction if layer == "Bidirectional" else "") + parts[-1]
        if key in found:
            raise ModelFileError(f"{layer} {name!r} has an unexpected weight {_show(weight_name)}")
        found[key] = _path(group, weight_name, f"{layer} weight {weight_name!r}")
    return found


def _zip_groups(layers: list[dict]) -> dict[str, str]:
    """The ``model.weights.h5`` group of each layer: its class in snake case, numbered from the
    second layer of a class on (``dense``, ``dense_1``), as Keras 3 names them."""
    seen: dict[str, int] = {}
    groups = {}
    for layer in layers:
        snake = re.sub(r"(?<!^)(?=[A-Z][a-z])|(?<=[a-z0-9])(?=[A-Z])", "_", layer["class_name"]).lower()
        count = seen.get(snake, 0)
        groups[layer_name(layer)] = snake if count == 0 else f"{snake}_{count}"
        seen[snake] = count + 1
    return groups


def _zip_layer(root: h5py.Group, group_name: str, layer: str) -> dict[str, h5py.Dataset]:
    """``layers/<group>/vars/<i>`` (``.../cell/vars/<i>`` for an LSTM or GRU, under
    ``forward_layer`` and ``backward_layer`` for a Bidirectional one), by position."""
    base = next((root[r] for r in _ZIP_WEIGHT_ROOTS if _is_hard(root, r)), None)
    if base is None:
        raise ModelFileError(f"no layer weights in model.weights.h5 (expected a group {' or '.join(_ZIP_WEIGHT_ROOTS)})")
    group = _child(base, group_name, f"the {layer} weights")
    if layer == "Bidirectional":
        return {f"{d}/{w}": v for d in ("forward", "backward")
                for w, v in _zip_layer_cell(_child(group, f"{d}_layer", f"the {d} layer's weights"), layer).items()}
    if layer in RECURRENT_KINDS:
        return _zip_layer_cell(group, layer)
    values = _vars(group, f"{layer} vars")
    expected = ("embeddings",) if layer == "Embedding" else ("kernel", "bias")
    if len(values) != len(expected):
        raise ModelFileError(f"the {layer} has {len(values)} weight arrays, expected {len(expected)} ({', '.join(expected)})")
    return dict(zip(expected, values))


def _zip_layer_cell(group: h5py.Group, layer: str) -> dict[str, h5py.Dataset]:
    if _vars(group, f"{layer} vars"):
        raise ModelFileError(f"the {layer} has weights outside its cell; a plain {layer} is supported")
    values = _vars(_child(group, "cell", f"the {layer} cell weights"), f"{layer} cell vars")
    if len(values) != len(_CELL_WEIGHTS):
        raise ModelFileError(f"the {layer} cell has {len(values)} weight arrays, expected {len(_CELL_WEIGHTS)}")
    return dict(zip(_CELL_WEIGHTS, values))


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


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__
