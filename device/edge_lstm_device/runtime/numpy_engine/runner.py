"""Run a ``numpy_network.Network`` over token rows as the loop form does
(``edge_lstm/export/lstm_loop.py``, docs/decisions/length-aware-loop.md):

* one forward unmasked layer: a row starts at its first real id rounded down to the loop's block
  (as the loop form's graph does), from the pad-state table's state after that many pad steps; it
  runs its real ids only. Rows are sorted by start, so the rows running at a step are a prefix of
  the batch: no step is computed for a row before its start, and none is held;
* masked (``Embedding(mask_zero=True)``): pad steps hold the state, wherever they are; the
  window is the batch's real ids';
* otherwise (stacked or Bidirectional, unmasked): every step runs from the zero state, as in Keras.

Each direction's input projection is one product over its window before the loop.
"""

from __future__ import annotations

import numpy as np

from edge_lstm_device.runtime.numpy_engine.cells import State
from edge_lstm_device.runtime.numpy_engine.network import Cell, Network

PAD_ID = 0


def run_from_starts(cell: Cell, projected: np.ndarray, state: State, running: np.ndarray) -> State:
    """``projected`` (steps, n, gates): ``running[t]`` rows (a prefix) take step ``t``; the others hold."""
    n = projected.shape[1]
    advance = cell.stepper(n)  # every row: the state in place
    for t, k in enumerate(running.tolist()):
        if k == n:
            advance(projected[t], state)
        elif k:
            for whole, part in zip(state, cell.step(projected[t, :k], tuple(s[:k] for s in state))):
                whole[:k] = part
    return state


def run_held(cell: Cell, projected: np.ndarray, state: State, keep: np.ndarray | None, reverse: bool,
             collect: bool) -> tuple[State, np.ndarray | None]:
    """One direction over ``projected`` (steps, n, gates): its last state, and its outputs in time order
    when ``collect``; a row's state is held where ``keep`` (steps, n, 1) is false."""
    steps = range(len(projected) - 1, -1, -1) if reverse else range(len(projected))
    outputs = np.empty((len(projected), *state[0].shape), np.float32) if collect else None
    advance = cell.stepper(len(state[0])) if keep is None else None  # nothing held: the state in place
    for t in steps:
        if advance is not None:
            advance(projected[t], state)
        else:
            following = cell.step(projected[t], state)
            state = tuple(np.where(keep[t], a, b) for a, b in zip(following, state))
        if outputs is not None:
            outputs[t] = state[0]
    return state, outputs


def _project(cell: Cell, x: np.ndarray) -> np.ndarray:
    """The input projection of every step: ``x`` (steps, n, width) -> (steps, n, gates)."""
    steps, n, width = x.shape
    return cell.project(x.reshape(steps * n, width)).reshape(steps, n, -1)


def _zero(cell: Cell, n: int) -> State:
    return tuple(np.zeros((n, cell.units), np.float32) for _ in range(cell.states))


def score_single(network: Network, ids: np.ndarray) -> np.ndarray:
    """One forward layer, unmasked: each row from the pad-state table at its start (see the module)."""
    n, max_len = ids.shape
    lead = -max_len % network.block  # pads the loop form's graph adds in front to fill whole blocks
    real = ids != PAD_ID
    start = np.where(real.any(axis=1), real.argmax(axis=1), max_len) + lead
    begin = np.maximum(start // network.block * network.block, lead) - lead  # the first step a row runs
    order = np.argsort(begin, kind="stable")
    begin = begin[order]
    first = int(begin[0])
    cell = network.layers[0].cells[0]
    rows = np.minimum(begin, len(network.table[0]) - 1)
    state = tuple(column[rows] for column in network.table)
    if first < max_len:
        window = np.ascontiguousarray(ids[order, first:].T)  # (steps, n)
        running = np.searchsorted(begin - first, np.arange(max_len - first), side="right")
        state = run_from_starts(cell, _project(cell, network.embed(window)), state, running)
    out = np.empty((n, network.classes), np.float32)
    out[order] = network.head(state[0])
    return out


def score_stacked(network: Network, ids: np.ndarray) -> np.ndarray:
    """Masked models (pads held) and unmasked stacked or Bidirectional ones (every step runs)."""
    n = len(ids)
    keep = None
    if network.masked:
        real = (ids != PAD_ID).any(axis=0)
        if not real.any():  # no real id in the batch: every state stays zero
            return network.head(np.zeros((n, network.layers[-1].width), np.float32))
        low, high = int(real.argmax()), len(real) - int(real[::-1].argmax())
        ids = ids[:, low:high]
        keep = (ids != PAD_ID).T[:, :, None]
    x = network.embed(np.ascontiguousarray(ids.T))  # (steps, n, embedding_dim)
    for layer in network.layers:
        results = [run_held(cell, _project(cell, x), _zero(cell, n), keep, bool(d), layer.return_sequences)
                   for d, cell in enumerate(layer.cells)]
        if layer.return_sequences:
            x = results[0][1] if len(results) == 1 else layer.merge(results[0][1], results[1][1])
    finals = [state[0] for state, _ in results]
    return network.head(finals[0] if len(finals) == 1 else network.layers[-1].merge(*finals))


def score(network: Network, ids: np.ndarray) -> np.ndarray:
    """``(n, classes)`` probabilities for ``(n, max_len)`` int32 ids (n ≥ 1)."""
    return score_single(network, ids) if network.single else score_stacked(network, ids)
