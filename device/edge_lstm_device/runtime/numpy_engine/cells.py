"""The numpy engine's arithmetic: a product with a constant (float, or dynamic-range int8 as
XNNPACK runs it), and one step of each recurrent cell, as Keras' ``LSTMCell`` / ``GRUCell`` and the
loop form's cells (``edge_lstm.export.cells``) compute it.

Dynamic-range int8 (XNNPACK's ``qd8_f32_qc8w`` kernels): each row of the input is quantized on
its own, asymmetrically, to int8 (scale 255 / its range including 0, a rounded zero point), the
weights are int8 with one scale per tensor; the integer sums are exact in float32 (fewer than
2^24 in magnitude: |q - zp| ≤ 255, |w| ≤ 127, up to 518 terms), so a BLAS float product of the
integer values gives XNNPACK's sums, scaled back after. A row's numbers never depend on the
other rows of a call.

Gates are reordered so that the sigmoid gates come first, their columns halved: one ``tanh`` of all
gates then gives σ(x) = (1 + tanh(x/2)) / 2 for them. Halving is exact (a power of two), and in
the int8 product it halves the integer weights, whose sums stay exact.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge_lstm_device.bundle.numpy_weights import Tensor

State = tuple[np.ndarray, ...]
_HALF = np.float32(0.5)
_LEVELS = np.float32(255.0)
_TINY = np.float32(1e-30)
_TINY_FLOAT = float(_TINY)
_FLOAT32 = struct.Struct("f")


def quantize_rows(x: np.ndarray, clamp: bool = True) -> tuple[np.ndarray, np.ndarray | float]:
    """Each row of ``x`` as XNNPACK's dynamic quantization makes it, less its zero point:
    ``(q - zero_point, 1 / scale)`` with scale = 255 / (max(x, 0) - min(x, 0)), the first as
    float32 integers, the second ``(n, 1)`` (a float for one row, unclamped).

    q = rint(x · scale) + zero_point, clamped to int8. The clamp moves a row's extreme value by 1
    where its scaled range rounds to 256 values: often in embedding rows (multiples of one int8
    scale, a tie at ±127.5), rarely in a state. ``clamp=False`` skips it (7 operations, half the
    quantization's time at one row): the recurrent step's choice, measured in
    ``tests/export/test_numpy_weights.py`` against the TFLite model."""
    if len(x) == 1 and not clamp:
        return _quantize_row(x)
    high = x.max(axis=1, keepdims=True)
    np.maximum(high, 0, out=high)
    low = np.minimum(x.min(axis=1, keepdims=True), 0)
    span = high - low
    np.maximum(span, _TINY, out=span)  # an all-zero row (the zero state): q = 0, where XNNPACK takes scale 1
    scale = _LEVELS / span
    q = x * scale
    np.rint(q, out=q)
    if clamp:
        low *= scale
        high *= scale
        zero = np.where(low + high > 1, -128 - low, 127 - high)  # XNNPACK's choice: the smaller error
        np.rint(np.clip(zero, -128, 127, out=zero), out=zero)
        np.clip(q, -128 - zero, 127 - zero, out=q)
    return q, np.reciprocal(scale, out=scale)  # XNNPACK's 1 / scale (span / 255 can differ in the last bit)


def _f32(value: float) -> float:
    """``value`` rounded to float32 (to nearest, as numpy's float32 arithmetic rounds)."""
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def _quantize_row(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``quantize_rows(x, clamp=False)`` of one row with the scale in Python floats: half the
    operations at one row (a step's fixed cost), the same bits (a float32 +, -, / done in float64
    and rounded to float32 is the float32 result: 53 >= 2 · 24 + 2 bits)."""
    span = _f32(max(float(x.max()), 0.0) - min(float(x.min()), 0.0))
    scale = _f32(255.0 / max(span, _TINY_FLOAT))
    q = x * scale
    np.rint(q, out=q)
    return q, _f32(1.0 / scale)


@dataclass(frozen=True)
class Product:
    """``x · W`` for a constant ``W`` (columns possibly pre-scaled, see the module)."""

    weights: np.ndarray  # (K, N) float32; int8 values (times column factors) when ``scale`` is set
    scale: float | None

    @classmethod
    def of(cls, tensor: Tensor, columns: np.ndarray | None = None) -> Product:
        weights = tensor.values.astype(np.float32)  # int8 values as float32 integers: BLAS sums them exactly
        return cls(np.ascontiguousarray(weights if columns is None else weights * columns), tensor.scale)

    def __call__(self, x: np.ndarray, quantized: tuple[np.ndarray, np.ndarray] | None = None,
                 clamp: bool = True) -> np.ndarray:
        """``quantized``: ``quantize_rows(x)`` already made (one activation, several products)."""
        if self.scale is None:
            return x @ self.weights
        q, step = quantized if quantized is not None else quantize_rows(x, clamp)
        out = q @ self.weights
        out *= _f32(step * self.scale) if isinstance(step, float) else step * np.float32(self.scale)
        return out

    def into(self, x: np.ndarray, out: np.ndarray, quantized: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """``self(x, quantized, clamp=False)`` written into ``out`` (a recurrent product: no allocation)."""
        if self.scale is None:
            np.matmul(x, self.weights, out=out)
            return
        q, step = quantized if quantized is not None else quantize_rows(x, False)
        np.matmul(q, self.weights, out=out)
        out *= _f32(step * self.scale) if isinstance(step, float) else step * np.float32(self.scale)


def _halves(units: int, sigmoid_gates: int, gates: int) -> np.ndarray:
    """Column factors: 0.5 for the first ``sigmoid_gates`` gates (tanh(x/2) gives their σ), else 1."""
    factors = np.ones(gates * units, np.float32)
    factors[: sigmoid_gates * units] = _HALF
    return factors


def _sigmoid_from_tanh(t: np.ndarray) -> np.ndarray:
    t *= _HALF
    t += _HALF
    return t


@dataclass(frozen=True)
class LstmCell:
    """Keras' LSTM step; columns in the order (i, f, o, c), the first three halved."""

    kernel: Product  # the input projection (hoisted: once for every step of a call)
    bias: np.ndarray
    recurrent: Product
    units: int
    states = 2

    @classmethod
    def of(cls, kernel: Tensor, recurrent: Tensor, bias: Tensor) -> LstmCell:
        units = recurrent.values.shape[0]
        order = np.concatenate([np.arange(2 * units), np.arange(3 * units, 4 * units), np.arange(2 * units, 3 * units)])
        columns = _halves(units, 3, 4)
        return cls(Product.of(Tensor(kernel.values[:, order], kernel.scale), columns), bias.values[order] * columns,
                   Product.of(Tensor(recurrent.values[:, order], recurrent.scale), columns), units)

    def project(self, x: np.ndarray) -> np.ndarray:
        out = self.kernel(x)
        out += self.bias
        return out

    def stepper(self, rows: int) -> Callable[[np.ndarray, State], None]:
        """``step`` for ``rows`` rows that updates the state in place, in buffers made once: the
        same operations in the same order (the same bits), without the slicing and allocation
        that cost ~3 of a step's ~17 µs at one row."""
        u = self.units
        z, product = np.empty((rows, 4 * u), np.float32), np.empty((rows, u), np.float32)
        sigmoids, i, f, o, candidate = z[:, : 3 * u], z[:, :u], z[:, u : 2 * u], z[:, 2 * u : 3 * u], z[:, 3 * u :]

        def advance(projected: np.ndarray, state: State) -> None:
            h, c = state
            self.recurrent.into(h, z)
            np.add(z, projected, out=z)
            np.tanh(z, out=z)
            _sigmoid_from_tanh(sigmoids)
            c *= f
            np.multiply(i, candidate, out=product)
            c += product
            np.tanh(c, out=h)
            h *= o

        return advance

    def step(self, projected: np.ndarray, state: State) -> State:
        h, c = state
        z = self.recurrent(h, clamp=False)
        z += projected
        np.tanh(z, out=z)
        u = self.units
        gates = _sigmoid_from_tanh(z[:, : 3 * u])
        c = gates[:, u : 2 * u] * c
        c += gates[:, :u] * z[:, 3 * u :]
        return gates[:, 2 * u :] * np.tanh(c), c


@dataclass(frozen=True)
class GruCell:
    """Keras' GRU step (z, r, candidate), as the loop form writes it: the recurrent kernel as two
    constants (gates, candidate), each quantized on its own by the converter; with ``reset_after``
    the gates' recurrent bias is in the projection's bias and the candidate's is added each step."""

    kernel: Product
    bias: np.ndarray
    gates: Product  # (units, 2 units), halved
    candidate: Product  # (units, units)
    candidate_bias: np.ndarray | None  # reset_after only
    units: int
    states = 1

    @classmethod
    def of(cls, kernel: Tensor, bias: Tensor, gates: Tensor, candidate: Tensor, candidate_bias: Tensor | None) -> GruCell:
        units = candidate.values.shape[0]
        columns = _halves(units, 2, 3)
        return cls(Product.of(kernel, columns), bias.values * columns, Product.of(gates, columns[: 2 * units]),
                   Product.of(candidate), None if candidate_bias is None else candidate_bias.values, units)

    project = LstmCell.project

    def _shared(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """With ``reset_after`` both recurrent products read h: it is quantized once."""
        return quantize_rows(h, False) if self.gates.scale is not None and self.candidate_bias is not None else None

    def stepper(self, rows: int) -> Callable[[np.ndarray, State], None]:
        """``step`` updating the state in place (see ``LstmCell.stepper``)."""
        u = self.units
        zr, candidate, change = (np.empty((rows, w), np.float32) for w in (2 * u, u, u))
        z, r = zr[:, :u], zr[:, u:]

        def advance(projected: np.ndarray, state: State) -> None:
            (h,) = state
            quantized = self._shared(h)
            self.gates.into(h, zr, quantized)
            np.add(zr, projected[:, : 2 * u], out=zr)
            _sigmoid_from_tanh(np.tanh(zr, out=zr))
            if self.candidate_bias is not None:
                self.candidate.into(h, candidate, quantized)
                np.add(candidate, self.candidate_bias, out=candidate)
                np.multiply(candidate, r, out=candidate)
            else:
                self.candidate.into(r * h, candidate)
            np.add(candidate, projected[:, 2 * u :], out=candidate)
            np.tanh(candidate, out=candidate)
            np.subtract(h, candidate, out=change)
            np.multiply(z, change, out=change)
            np.add(candidate, change, out=h)

        return advance

    def step(self, projected: np.ndarray, state: State) -> State:
        (h,) = state
        u = self.units
        quantized = self._shared(h)
        zr = self.gates(h, quantized)
        zr += projected[:, : 2 * u]
        zr = _sigmoid_from_tanh(np.tanh(zr, out=zr))
        z, r = zr[:, :u], zr[:, u:]
        if self.candidate_bias is not None:  # reset_after: r scales the candidate's recurrent product
            recurrent = self.candidate(h, quantized)
            recurrent += self.candidate_bias
            recurrent *= r
        else:
            recurrent = self.candidate(r * h, clamp=False)
        recurrent += projected[:, 2 * u :]
        candidate = np.tanh(recurrent, out=recurrent)
        return (candidate + z * (h - candidate),)
