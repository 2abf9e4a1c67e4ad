"""The network a weights file describes (``numpy_weights``), checked and made ready for the
engine: Embedding -> recurrent layers (``numpy_cells``) -> Dense layers, the last the head."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

from edge_lstm_device.bundle.numpy_weights import ACTIVATIONS, CELL_KINDS, MERGE_MODES, Tensor, WeightsError, get
from edge_lstm_device.runtime.numpy_engine.cells import GruCell, LstmCell, Product

Cell = Union[LstmCell, GruCell]  # (not X | Y: the device runs on Python 3.9)
MAX_UNITS = 4096


@dataclass(frozen=True)
class Layer:
    cells: tuple[Cell, ...]  # (forward,) or (forward, backward)
    merge_mode: str
    return_sequences: bool

    @property
    def width(self) -> int:
        """The width of this layer's output."""
        units = self.cells[0].units
        return units * len(self.cells) if self.merge_mode == "concat" else units

    def merge(self, forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
        """A Bidirectional layer's two outputs, as Keras merges them."""
        if self.merge_mode == "concat":
            return np.concatenate([forward, backward], axis=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "ave":
            return (forward + backward) / np.float32(2.0)
        return forward * backward


@dataclass(frozen=True)
class Dense:
    product: Product
    bias: np.ndarray
    activation: str


@dataclass(frozen=True)
class Network:
    embedding: Tensor  # (num_words, embedding_dim), int8 or float32
    layers: tuple[Layer, ...]
    dense: tuple[Dense, ...]
    masked: bool  # Embedding(mask_zero=True): pad steps leave the state as it is
    max_len: int
    block: int  # the loop form's steps per iteration: a row starts at a whole block
    table: tuple[np.ndarray, ...]  # one forward unmasked layer: its state after k pad steps (rows, units)

    @property
    def single(self) -> bool:
        """One forward layer, unmasked: the pad-state table skips the pads before a review."""
        return not self.masked and len(self.layers) == 1 and len(self.layers[0].cells) == 1

    @property
    def classes(self) -> int:
        return int(self.dense[-1].bias.shape[0])

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """The embedding rows of ``ids`` (any shape), float32."""
        rows = self.embedding.values[ids]
        return rows if self.embedding.scale is None else rows.astype(np.float32) * np.float32(self.embedding.scale)

    def head(self, x: np.ndarray) -> np.ndarray:
        """The Dense layers on the last recurrent output: ``(n, classes)`` probabilities (a logit's sigmoid)."""
        for dense in self.dense:
            x = _ACTIVATIONS[dense.activation](dense.product(x) + dense.bias)
        return _sigmoid(x) if self.dense[-1].activation == "linear" else x


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-x))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


_erf = np.frompyfunc(math.erf, 1, 1)  # (numpy has no erf; the head's arrays are small)
_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0), "tanh": np.tanh, "linear": lambda x: x, "sigmoid": _sigmoid,
    "softmax": _softmax,
    "gelu": lambda x: (x * 0.5 * (1.0 + _erf(x.astype(np.float64) / math.sqrt(2.0)).astype(np.float64))).astype(np.float32),
}


ARITHMETICS = ("int8", "float")


def build(structure: dict, tensors: dict[str, Tensor], arithmetic: str = "int8") -> Network:
    """The network of a weights file, every shape checked against the structure (``WeightsError``).
    ``arithmetic``: ``int8`` runs int8 weights as the dynamic-range kernels do (activations
    quantized per row); ``float`` runs them dequantized, with float activations."""
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown arithmetic {arithmetic!r} (expected one of {', '.join(ARITHMETICS)})")
    embedding = get(tensors, "embedding", (None, None))  # (a gather: dequantized row by row in either arithmetic)
    if arithmetic == "float":
        tensors = {name: tensor if name == "embedding" else Tensor(tensor.dequantized()) for name, tensor in tensors.items()}
    width = embedding.values.shape[1]
    layers = []
    for i, record in enumerate(_list(structure, "layers", 1, 16)):
        layer = _layer(record, f"layers.{i}", width, tensors)
        layers.append(layer)
        width = layer.width
    if not layers or layers[-1].return_sequences or any(not layer.return_sequences for layer in layers[:-1]):
        raise WeightsError("every recurrent layer but the last returns sequences")
    dense = []
    for i, activation in enumerate(_list(structure, "dense", 1, 16)):
        if activation not in ACTIVATIONS:
            raise WeightsError(f"unknown activation {str(activation)[:20]!r}")
        kernel = get(tensors, f"dense.{i}.kernel", (width, None))
        width = kernel.values.shape[1]
        dense.append(Dense(Product.of(kernel), get(tensors, f"dense.{i}.bias", (width,), True).values, activation))
    masked, max_len, block = (_field(structure, k, t) for k, t in (("masked", bool), ("max_len", int), ("block", int)))
    if not (1 <= max_len <= 1 << 20 and 1 <= block <= 64):
        raise WeightsError("max_len or block out of range")
    network = Network(embedding, tuple(layers), tuple(dense), masked, max_len, block, ())
    if not network.single:
        return network
    cell = layers[0].cells[0]
    table = tuple(get(tensors, f"table.{j}", (None, cell.units), True).values for j in range(cell.states))
    if not 1 <= len(table[0]) == len(table[-1]) <= max_len + block:
        raise WeightsError("the pad-state table's rows do not fit the model")
    return Network(embedding, tuple(layers), tuple(dense), masked, max_len, block, table)


def _field(record: Any, key: str, kind: type) -> Any:
    value = record.get(key) if isinstance(record, dict) else None
    if type(value) is not kind:
        raise WeightsError(f"structure: {key!r} is not a {kind.__name__}")
    return value


def _list(record: dict, key: str, least: int, most: int) -> list:
    value = _field(record, key, list)
    if not least <= len(value) <= most:
        raise WeightsError(f"structure: {key!r} has {len(value)} entries ({least} to {most} expected)")
    return value


def _layer(record: Any, prefix: str, width: int, tensors: dict[str, Tensor]) -> Layer:
    merge_mode = _field(record, "merge_mode", str)
    if merge_mode not in MERGE_MODES:
        raise WeightsError(f"{prefix}: unknown merge mode")
    cells = tuple(_cell(c, f"{prefix}.{d}", width, tensors) for d, c in enumerate(_list(record, "cells", 1, 2)))
    if len({(type(c), c.units) for c in cells}) != 1:
        raise WeightsError(f"{prefix}: the two directions differ")
    return Layer(cells, merge_mode, _field(record, "return_sequences", bool))


def _cell(record: Any, prefix: str, width: int, tensors: dict[str, Tensor]) -> Cell:
    kind = _field(record, "kind", str)
    if kind not in CELL_KINDS:
        raise WeightsError(f"{prefix}: unknown cell {kind[:20]!r}")
    units = get(tensors, f"{prefix}.kernel", (width, None)).values.shape[1] // (4 if kind == "lstm" else 3)
    if not 1 <= units <= MAX_UNITS:
        raise WeightsError(f"{prefix}: {units} units")
    gates = 4 if kind == "lstm" else 3
    kernel = get(tensors, f"{prefix}.kernel", (width, gates * units))
    bias = get(tensors, f"{prefix}.bias", (gates * units,), True)
    if kind == "lstm":
        return LstmCell.of(kernel, get(tensors, f"{prefix}.recurrent", (units, 4 * units)), bias)
    after = _field(record, "reset_after", bool)
    return GruCell.of(kernel, bias, get(tensors, f"{prefix}.gates", (units, 2 * units)),
                      get(tensors, f"{prefix}.candidate", (units, units)),
                      get(tensors, f"{prefix}.candidate_bias", (units,), True) if after else None)
