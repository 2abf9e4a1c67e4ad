"""What the loop form computes, as data: the model's layers and cells (:class:`LoopModel`), how the
loop is written (:class:`LoopForm`), and the pad-state table of a single forward layer (the state
after k pad steps from the zero state, the same for every review). No TensorFlow here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_lstm.export.cells import Cell, cell_of

STEPS_PER_ITERATION = 4
COLLECTING_STEPS_PER_ITERATION = 10  # a stacked model whose layers pass their outputs on (see LoopForm)
PAD_ID = 0
TABLE_TOLERANCE = 1e-7  # the pad-state table stops once a step changes the state by less than this


@dataclass(frozen=True)
class RecurrentLayer:
    """One recurrent layer: its forward cell, and a backward one when Bidirectional."""

    cells: tuple[Cell, ...]  # (forward,) or (forward, backward)
    merge_mode: str = "concat"  # Bidirectional: concat, sum, ave or mul
    return_sequences: bool = False


@dataclass(frozen=True)
class DenseLayer:
    kernel: np.ndarray
    bias: np.ndarray
    activation: str  # relu, tanh, gelu, linear, sigmoid or softmax


@dataclass(frozen=True)
class LoopModel:
    """What the loop form computes: Embedding -> recurrent layers -> Dense layers (the last is the head)."""

    embedding: np.ndarray  # (num_words, embedding_dim)
    layers: tuple[RecurrentLayer, ...]
    dense: tuple[DenseLayer, ...]
    masked: bool = False  # Embedding(mask_zero=True): pad steps leave the state as it is

    @classmethod
    def from_model(cls, model: Any) -> LoopModel:
        """From a tf-keras model rebuilt by the importer (dropout layers are no-ops at inference)."""
        embedding, *rest = model.layers
        layers, dense = [], []
        for layer in rest:
            kind = type(layer).__name__
            if kind == "Bidirectional":
                cells = (cell_of(layer.forward_layer), cell_of(layer.backward_layer))
                layers.append(RecurrentLayer(cells, layer.merge_mode, bool(layer.return_sequences)))
            elif kind in ("LSTM", "GRU"):
                layers.append(RecurrentLayer((cell_of(layer),), "concat", bool(layer.return_sequences)))
            elif kind == "Dense":
                dense.append(DenseLayer(*layer.get_weights(), layer.get_config()["activation"]))
        return cls(embedding.get_weights()[0], tuple(layers), tuple(dense), bool(getattr(embedding, "mask_zero", False)))

    @property
    def cell(self) -> Cell:
        """The first layer's forward cell."""
        return self.layers[0].cells[0]

    def step_macs(self) -> int:
        """Multiply-adds of one step through every layer and direction (input projection and
        recurrent product)."""
        total, width = 0, self.embedding.shape[1]
        for layer in self.layers:
            total += sum(c.gates * c.units * (width + c.units) for c in layer.cells)
            units = layer.cells[0].units
            width = units * len(layer.cells) if layer.merge_mode == "concat" else units
        return total

    @property
    def single(self) -> bool:
        """One forward layer: the pad-state table covers the pads before a review."""
        return len(self.layers) == 1 and len(self.layers[0].cells) == 1


@dataclass(frozen=True)
class LoopForm:
    """How many steps each loop iteration runs (the defaults are the shipped form). The loop is
    always length-aware, its input projection hoisted and its blocks taken apart with ``UNPACK``;
    ``scripts/loop_variants.py`` builds the forms it compares these with itself."""

    steps_per_iteration: int = STEPS_PER_ITERATION
    # where a layer's outputs are kept for the next, every iteration copies them all (the loop's
    # DYNAMIC_UPDATE_SLICE): fewer, longer iterations (keras.io bundle: 0.87x the time of 4 steps)
    collecting_steps_per_iteration: int = COLLECTING_STEPS_PER_ITERATION

    def describe(self) -> dict:
        return {"steps_per_iteration": self.steps_per_iteration, "length_aware": True,
                "batch": "any (input resizable to (B, max_len); converted as 1)"}


@dataclass(frozen=True)
class PadTable:
    """``states[j][k]``: the cell's state ``j`` (h, and c for an LSTM) after ``k`` pad steps from
    the zero state; beyond the last row the state changes by less than ``tolerance`` per step."""

    states: tuple[np.ndarray, ...]  # each (rows, units) float32
    tolerance: float
    last_change: float  # max |Δ| of any state in the last step computed

    @property
    def rows(self) -> int:
        return len(self.states[0])

    def describe(self) -> dict:
        return {"computed": "float64 from the model's weights, from the zero state", "rows": self.rows,
                "tolerance": self.tolerance, "last_change": float(f"{self.last_change:.3g}")}


def pad_state_table(m: LoopModel, max_len: int, tolerance: float = TABLE_TOLERANCE) -> PadTable:
    """The state after 0, 1, ... pad steps, in float64, until it stops changing (or ``max_len``).
    A masked model's pad steps change nothing: the table is the zero state."""
    state = tuple(np.zeros(m.cell.units) for _ in range(m.cell.states))
    rows, change = [state], 0.0
    if not m.masked:
        kernel, bias = m.cell.projection()
        x = m.embedding[PAD_ID].astype(np.float64) @ kernel.astype(np.float64) + bias
        for _ in range(max_len):
            following = m.cell.step64(x, state)
            change = float(max(np.abs(a - b).max() for a, b in zip(following, state)))
            state = following
            rows.append(state)
            if change < tolerance:
                break
    return PadTable(tuple(np.array(column, np.float32) for column in zip(*rows)), tolerance, change)


def steps_per_iteration(m: LoopModel, form: LoopForm) -> int:
    """The steps each loop iteration of ``m`` runs under ``form``."""
    collecting = any(layer.return_sequences for layer in m.layers)
    return form.collecting_steps_per_iteration if collecting else form.steps_per_iteration


def whole_blocks(max_len: int, block: int) -> int:
    """``max_len`` rounded up to whole blocks of steps."""
    return -(-max_len // block) * block
