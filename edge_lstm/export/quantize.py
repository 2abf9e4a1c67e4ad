"""Stage 2 of export: int8 TFLite (full-integer or dynamic-range) and int8 ONNX (dynamic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edge_lstm.export.convert import ConversionError, run_converter, tflite_converter

TFLITE_SCHEMES = {
    "full-integer": "int8 weights and activations (post-training, calibrated on training reviews)",
    "dynamic-range": "int8 weights, float activations (quantized on the fly)",
}
ONNX_SCHEME = "dynamic int8 weights and activations (onnxruntime quantize_dynamic, per-batch activation scale)"
# Weights of 7 bits (reduce_range) in both: without VNNI, onnxruntime's x86 int8 kernels multiply
# u8 × s8 with an instruction whose pairwise sums saturate at 16 bits; 7-bit weights keep them in
# range. Per channel or per tensor is measured per model: per channel agreed best for the shipped
# model and a 4-class one, per tensor for a small stacked Bidirectional one (docs/decisions/onnx-int8.md).
ONNX_QUANTIZERS = (
    {"weight_type": "QInt8", "per_channel": True, "reduce_range": True},
    {"weight_type": "QInt8", "per_channel": False, "reduce_range": True},
)
ONNX_TOOL = "onnxruntime.quantization.quantize_dynamic"


def to_tflite_int8(
    model: Any, max_len: int, scheme: str, calibration: Callable[[], Iterable[np.ndarray]]
) -> bytes:
    """int8 TFLite by ``scheme``; full-integer calibrates on the rows ``calibration()`` yields."""
    import tensorflow as tf

    converter = tflite_converter(model, max_len)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if scheme == "full-integer":
        converter.representative_dataset = lambda: ([row[None, :]] for row in calibration())
        converter.inference_output_type = tf.int8
    elif scheme != "dynamic-range":
        raise ConversionError(f"unknown TFLite int8 scheme {scheme!r}")
    return run_converter(converter)


def to_onnx_int8(float_path: Path, out_path: Path, judge: Callable[[Path], tuple[float, float]]) -> tuple[dict, list]:
    """Dynamic int8 quantization of a float ONNX file (the LSTM becomes ``DynamicQuantizeLSTM``) by
    each of ``ONNX_QUANTIZERS``; the one ``judge`` scores best (its labels agree most with the float
    model, then the smaller max |Δp|) is kept at ``out_path``. Returns its settings and what each
    candidate measured."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing": not for an LSTM
    measured, best = [], None
    for number, settings in enumerate(ONNX_QUANTIZERS):
        candidate = out_path.with_name(f".candidate-{number}-{out_path.name}")
        try:
            quantize_dynamic(str(float_path), str(candidate), weight_type=QuantType.QInt8,
                             per_channel=settings["per_channel"], reduce_range=settings["reduce_range"])
        except (ValueError, RuntimeError) as err:
            raise ConversionError(f"ONNX quantization failed: {err}") from err
        agreement, max_diff = judge(candidate)
        measured.append({**settings, "label_agreement": round(agreement, 5), "max_abs_diff": float(f"{max_diff:.3g}")})
        if best is None or (agreement, -max_diff) > best[0]:
            best = ((agreement, -max_diff), candidate, settings)
    assert best is not None
    best[1].replace(out_path)
    for leftover in out_path.parent.glob(f".candidate-*-{out_path.name}"):
        leftover.unlink()
    return {"tool": ONNX_TOOL, **best[2]}, measured
