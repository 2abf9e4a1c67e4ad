"""Recurrent cells: one step each, as Keras splits its own recurrent code (``LSTMCell``,
``GRUCell``): the loop form (``lstm_loop``) runs any cell, and the pad-state table runs the same
step in float64. Every cell's input projection ``x·W + b`` is hoisted out of the step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

State = tuple[Any, ...]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class LstmCell:
    """Keras' LSTM step, gates in Keras order (i, f, c, o); state (h, c)."""

    kernel: np.ndarray  # (inputs, 4 units)
    recurrent: np.ndarray  # (units, 4 units)
    bias: np.ndarray  # (4 units,)
    kind = "lstm"
    gates = 4
    states = 2

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def projection(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` of the hoisted input projection."""
        return self.kernel, self.bias

    def step64(self, projected: np.ndarray, state: State) -> State:
        h, c = state
        z_i, z_f, z_c, z_o = np.split(projected + h @ self.recurrent.astype(np.float64), 4, axis=-1)
        c = _sigmoid(z_f) * c + _sigmoid(z_i) * np.tanh(z_c)
        return _sigmoid(z_o) * np.tanh(c), c

    def tf_step(self) -> Any:
        """``step(projected, state) -> state`` in TensorFlow ops (constants made once)."""
        import tensorflow as tf

        recurrent = tf.constant(self.recurrent)

        def step(projected: Any, state: State) -> State:
            h, c = state
            z = projected + tf.matmul(h, recurrent)
            z_i, z_f, z_c, z_o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(z_f) * c + tf.sigmoid(z_i) * tf.tanh(z_c)
            return tf.sigmoid(z_o) * tf.tanh(c), c

        return step


@dataclass(frozen=True)
class GruCell:
    """Keras' GRU step, gates in Keras order (z, r, h); state (h,). ``reset_after`` (Keras'
    default) applies the reset gate after the recurrent product and has a recurrent bias."""

    kernel: np.ndarray  # (inputs, 3 units)
    recurrent: np.ndarray  # (units, 3 units)
    bias: np.ndarray  # (2, 3 units) with reset_after (input, recurrent), else (3 units,)
    reset_after: bool = True
    kind = "gru"
    gates = 3
    states = 1

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]

    def projection(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` of the hoisted input projection; with ``reset_after`` the recurrent bias of the
        update and reset gates is added there too (it is outside the reset gate: one add less a step)."""
        if not self.reset_after:
            return self.kernel, self.bias
        u = self.units
        return self.kernel, self.bias[0] + np.concatenate([self.bias[1][: 2 * u], np.zeros(u, self.bias.dtype)])

    def step64(self, projected: np.ndarray, state: State) -> State:
        (h,) = state
        u = self.units
        recurrent = self.recurrent.astype(np.float64)
        if self.reset_after:  # (the gates' recurrent bias is in ``projected``)
            rec = h @ recurrent
            z = _sigmoid(projected[..., :u] + rec[..., :u])
            r = _sigmoid(projected[..., u : 2 * u] + rec[..., u : 2 * u])
            candidate = np.tanh(projected[..., 2 * u :] + r * (rec[..., 2 * u :] + self.bias[1][2 * u :]))
        else:
            zr = _sigmoid(projected[..., : 2 * u] + h @ recurrent[:, : 2 * u])
            z, r = zr[..., :u], zr[..., u:]
            candidate = np.tanh(projected[..., 2 * u :] + (r * h) @ recurrent[:, 2 * u :])
        return (z * h + (1 - z) * candidate,)

    def tf_step(self) -> Any:
        import tensorflow as tf

        u = self.units
        gates_kernel, candidate_kernel = tf.constant(self.recurrent[:, : 2 * u]), tf.constant(self.recurrent[:, 2 * u :])
        if self.reset_after:
            candidate_bias = tf.constant(self.bias[1][2 * u :])

        def step(projected: Any, state: State) -> State:
            (h,) = state
            x_zr, x_h = tf.split(projected, [2 * u, u], axis=1)
            z, r = tf.split(tf.sigmoid(x_zr + tf.matmul(h, gates_kernel)), 2, axis=1)
            if self.reset_after:
                candidate = tf.tanh(x_h + r * (tf.matmul(h, candidate_kernel) + candidate_bias))
            else:
                candidate = tf.tanh(x_h + tf.matmul(r * h, candidate_kernel))
            return (candidate + z * (h - candidate),)

        return step


Cell = LstmCell | GruCell


def cell_of(layer: Any) -> Cell:
    """The cell of a tf-keras ``LSTM`` or ``GRU`` layer."""
    kernel, recurrent, bias = layer.get_weights()
    if type(layer).__name__ == "GRU":
        return GruCell(kernel, recurrent, bias, bool(layer.reset_after))
    return LstmCell(kernel, recurrent, bias)
