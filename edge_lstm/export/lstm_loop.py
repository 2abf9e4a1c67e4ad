"""Stage 1b of export: the LSTM as a builtin ``WHILE`` loop of plain ops, the fast TFLite form.

TFLite's fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` runs in TFLite's own kernels; XNNPACK has no LSTM
op. Written as ``FULLY_CONNECTED`` + elementwise ops, every step is XNNPACK's, and with int8
weights (dynamic range) one review costs a fraction of the fused op's time (DEVELOPERS.md,
"Fast int8 on the device"). The form:

* the input projection ``x·W + b`` of all steps is one ``FULLY_CONNECTED`` before the loop
  (a matrix product instead of ``max_len`` vector products);
* the loop body runs ``STEPS_PER_ITERATION`` steps. Fully unrolled (200 steps, no loop), XNNPACK
  packs the recurrent weights once per step (~2.6 times the memory) and it ran slower; one step
  per iteration pays the loop's overhead 200 times. 4 steps per iteration was fastest here
  (docs/loop_variants.md);
* weights per tensor: per-channel ``FULLY_CONNECTED`` is version 12, which tflite-runtime 2.14
  cannot load, and agreed less with the float model.

The graph keeps no state between ``invoke()`` calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from edge_lstm.export.convert import INPUT_NAME, ConversionError, run_converter

STEPS_PER_ITERATION = 4

LOOP_SCHEMES = {
    "dynamic-range": "int8 weights (per tensor), float activations",
    "dynamic-range-per-channel": "int8 weights (per output channel), float activations",
    "full-integer": "int8 weights and activations (calibrated)",
    "float": "float32",
}


@dataclass(frozen=True)
class LstmWeights:
    """The three layers' weights, gates in Keras order (i, f, c, o)."""

    embedding: np.ndarray  # (num_words, embedding_dim)
    kernel: np.ndarray  # (embedding_dim, 4 units)
    recurrent: np.ndarray  # (units, 4 units)
    bias: np.ndarray  # (4 units,)
    dense_kernel: np.ndarray  # (units, 1)
    dense_bias: np.ndarray  # (1,)

    @classmethod
    def from_model(cls, model: Any) -> LstmWeights:
        embedding, lstm, dense = model.layers
        return cls(embedding.get_weights()[0], *lstm.get_weights(), *dense.get_weights())

    @property
    def units(self) -> int:
        return self.recurrent.shape[0]


def loop_function(weights: LstmWeights, max_len: int, steps_per_iteration: int = STEPS_PER_ITERATION,
                  hoist: bool = True) -> Any:
    """A ``tf.function`` over ``(1, max_len)`` int32 ids giving the positive probability ``(1, 1)``;
    ``hoist=False`` computes each step's input projection inside the loop (for comparison)."""
    import tensorflow as tf

    units, block = weights.units, math.gcd(max_len, steps_per_iteration)
    kernel, recurrent, bias = tf.constant(weights.kernel), tf.constant(weights.recurrent), tf.constant(weights.bias)
    embedding = tf.constant(weights.embedding)
    dense_kernel, dense_bias = tf.constant(weights.dense_kernel), tf.constant(weights.dense_bias)

    def lstm_steps(block_inputs: Any, h: Any, c: Any) -> tuple[Any, Any]:
        for step in tf.unstack(block_inputs, axis=0):
            projected = step[None, :] if hoist else tf.matmul(step[None, :], kernel) + bias
            z = projected + tf.matmul(h, recurrent)
            z_i, z_f, z_c, z_o = tf.split(z, 4, axis=1)  # Keras' gate order
            c = tf.sigmoid(z_f) * c + tf.sigmoid(z_i) * tf.tanh(z_c)
            h = tf.sigmoid(z_o) * tf.tanh(c)
        return h, c

    @tf.function(input_signature=[tf.TensorSpec([1, max_len], tf.int32, name=INPUT_NAME)])
    def score(token_ids: Any) -> Any:
        ids = tf.reshape(token_ids, [max_len])
        inputs = tf.gather(embedding, ids)
        steps = tf.matmul(inputs, kernel) + bias if hoist else inputs
        projected = tf.reshape(steps, [max_len // block, block, 4 * units if hoist else weights.kernel.shape[0]])
        h, c = tf.zeros([1, units]), tf.zeros([1, units])
        if block == max_len:
            h, c = lstm_steps(projected[0], h, c)
        else:
            _, h, c = tf.while_loop(lambda i, h, c: i < max_len // block,
                                    lambda i, h, c: (i + 1, *lstm_steps(tf.gather(projected, i), h, c)),
                                    (tf.constant(0), h, c))
        return tf.sigmoid(tf.matmul(h, dense_kernel) + dense_bias)

    return score


def to_tflite_loop(
    model: Any, max_len: int, scheme: str, calibration: Callable[[], Iterable[np.ndarray]],
    steps_per_iteration: int = STEPS_PER_ITERATION, hoist: bool = True,
) -> bytes:
    """The loop form as TFLite, quantized by ``scheme`` (a key of ``LOOP_SCHEMES``)."""
    import tensorflow as tf

    if scheme not in LOOP_SCHEMES:
        raise ConversionError(f"unknown loop scheme {scheme!r}")
    function = loop_function(LstmWeights.from_model(model), max_len, steps_per_iteration, hoist)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if scheme != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if scheme == "dynamic-range":
        converter._experimental_disable_per_channel = True  # noqa: SLF001 (the converter's only switch)
    if scheme == "full-integer":
        converter.representative_dataset = lambda: ([row[None, :]] for row in calibration())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_output_type = tf.int8
    return run_converter(converter)
