"""The numpy engine's weights file (``model_numpy.npz``, format in
``edge_lstm_device/bundle/numpy_weights.py``), written from the loop form's model: the same constants the
loop form's graph holds (the hoisted projection's kernel and bias, the GRU's two recurrent
kernels, the pad-state table), int8 where the dynamic-range converter quantizes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edge_lstm_device.bundle import numpy_weights as fmt
from edge_lstm_device.runtime.numpy_engine.engine import ARITHMETIC

from edge_lstm.export.cells import Cell, GruCell
from edge_lstm.export.loop_model import LoopForm, LoopModel, pad_state_table, steps_per_iteration, whole_blocks

PRECISIONS = ("int8", "float32")


def _constants(cell: Cell) -> dict[str, np.ndarray]:
    """A cell's constants as the loop form's graph holds them (``kernel`` and ``bias`` hoisted)."""
    kernel, bias = cell.projection()
    if not isinstance(cell, GruCell):
        return {"kernel": kernel, "bias": bias, "recurrent": cell.recurrent}
    u = cell.units
    out = {"kernel": kernel, "bias": bias, "gates": cell.recurrent[:, : 2 * u], "candidate": cell.recurrent[:, 2 * u :]}
    if cell.reset_after:
        out["candidate_bias"] = cell.bias[1][2 * u :]
    return out


def _stored(name: str, values: np.ndarray, precision: str) -> dict[str, np.ndarray]:
    """``name`` as stored: int8 + scale where the converter quantizes (kernels and the embedding of
    at least ``QUANTIZED_MIN_ELEMENTS`` elements), else float32."""
    values = np.asarray(values, np.float32)
    quantizable = name == "embedding" or name.rsplit(".", 1)[-1] in ("kernel", "recurrent", "gates", "candidate")
    if precision == "float32" or not quantizable or values.size < fmt.QUANTIZED_MIN_ELEMENTS:
        return {name: values}
    q, scale = fmt.quantize(values)
    return {name: q, name + ".scale": np.asarray(scale, np.float32)}


def weights_arrays(m: LoopModel, max_len: int, form: LoopForm = LoopForm()) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, structure)`` in float32: the network, and the pad-state table of one forward layer."""
    block = steps_per_iteration(m, form)
    arrays = {"embedding": m.embedding}
    layers = []
    for i, layer in enumerate(m.layers):
        for d, cell in enumerate(layer.cells):
            arrays.update({f"layers.{i}.{d}.{k}": v for k, v in _constants(cell).items()})
        cells = [{"kind": c.kind, **({"reset_after": c.reset_after} if isinstance(c, GruCell) else {})} for c in layer.cells]
        layers.append({"cells": cells, "merge_mode": layer.merge_mode, "return_sequences": layer.return_sequences})
    for i, dense in enumerate(m.dense):
        arrays.update({f"dense.{i}.kernel": dense.kernel, f"dense.{i}.bias": dense.bias})
    if m.single and not m.masked:
        table = pad_state_table(m, whole_blocks(max_len, block))
        arrays.update({f"table.{j}": states for j, states in enumerate(table.states)})
    structure = {"format": fmt.FORMAT, "max_len": max_len, "block": block, "masked": m.masked, "layers": layers,
                 "dense": [d.activation for d in m.dense]}
    return arrays, structure


def to_weights_file(m: LoopModel, max_len: int, precision: str = "int8", form: LoopForm = LoopForm()) -> bytes:
    """The bytes of ``model_numpy.npz`` for ``m`` at ``precision`` (``int8`` or ``float32``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}")
    arrays, structure = weights_arrays(m, max_len, form)
    stored = {}
    for name, values in arrays.items():
        stored.update(_stored(name, values, precision))
    return fmt.write(stored, {**structure, "precision": precision})


def manifest_entry(path: Path, precision: str = "int8") -> dict:
    """The manifest's ``numpy_weights`` record of the file at ``path`` (pinned like every exported file)."""
    from edge_lstm.export.manifest import file_entry

    return {**file_entry(path), "format": "npz", "weights_format": fmt.FORMAT, "precision": precision,
            "arithmetic": ARITHMETIC,
            "quantization": "int8 per tensor as model_int8_loop.tflite holds it" if precision == "int8" else "none"}
