"""The compute floor of a review: the LSTM's multiply-adds over its real ids, at the int8 rate this
CPU reaches in the same interpreter (a large dynamic-range ``FULLY_CONNECTED``, XNNPACK's best case)."""

from __future__ import annotations

import time

import numpy as np

PEAK_SHAPE = (256, 1024, 1024)  # (rows, inputs, outputs) of the probe's matrix product
PEAK_CALLS = 20


def step_macs(model: dict) -> int:
    """Multiply-adds of one recurrent step (a manifest's ``model``): input projection and recurrent product."""
    if "step_macs" in model:
        return model["step_macs"]
    units = model["lstm_units"]  # manifests of the LSTM-only exports
    return 4 * units * (units + model["embedding_dim"])


def int8_peak_macs_per_s() -> float:
    """Multiply-adds per second of a dynamic-range int8 matrix product, one thread."""
    import tensorflow as tf
    from edge_lstm_device.runtime.interpreters import make_interpreter

    rows, inputs, outputs = PEAK_SHAPE
    weights = tf.constant(np.random.default_rng(0).normal(size=(inputs, outputs)).astype(np.float32))
    product = tf.function(lambda x: tf.matmul(x, weights), input_signature=[tf.TensorSpec([rows, inputs], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([product.get_concrete_function()], product)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter._experimental_disable_per_channel = True  # noqa: SLF001 (as the loop form is quantized)
    interpreter = make_interpreter(converter.convert())
    index = interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(index, np.random.default_rng(1).normal(size=(rows, inputs)).astype(np.float32))
    interpreter.invoke()
    start = time.perf_counter()
    for _ in range(PEAK_CALLS):
        interpreter.invoke()
    return rows * inputs * outputs * PEAK_CALLS / (time.perf_counter() - start)


def floor_us(model: dict, mean_ids: float, peak: float) -> float:
    """Microseconds one review of ``mean_ids`` real ids needs at ``peak`` multiply-adds/s."""
    return mean_ids * step_macs(model) / peak * 1e6
