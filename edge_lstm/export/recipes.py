"""One recipe per file an export may write: what it is, when the options ask for it, which
architectures have it, how it is built, and the tolerance its self-check holds it to. The
exporter runs the recipes the options select; nothing else dispatches on a variant.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np
from edge_lstm_device.bundle import manifest as bundle_format

from edge_lstm.export import convert, lstm_loop, quantize, selfcheck


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    int8: bool = True
    tflite_scheme: str = "both"  # "full-integer", "dynamic-range", or both (full-integer first)
    calibration_reviews: int = 400
    data: Path | None = None  # IMDB data for calibration; default: the shipped training sample
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class BuildInputs:
    model: Any  # the float tf-keras model
    max_len: int
    staging: Path  # where the files of this export are built (the float ONNX is there before the int8)
    calibration: np.ndarray  # rows for full-integer calibration
    judge: Callable[[Path], tuple[float, float]]  # an ONNX file's agreement with the float model


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str  # key in the manifest
    file: str
    format: str  # "tflite" or "onnx"
    precision: str  # "float32" or "int8"
    scheme: str  # quantization scheme, "none" for float
    lstm: str  # the LSTM as: "fused" (one TFLite op), "loop" (a WHILE loop of builtin ops), "onnx"
    wanted: Callable[[ExportOptions], bool]  # whether the options ask for this file
    build: Callable[[BuildInputs, Path], dict]  # writes the file; returns what it chose (the int8 ONNX's quantizer)

    @property
    def tolerance(self) -> selfcheck.Tolerance:
        return selfcheck.INT8_TOLERANCE if self.precision == "int8" else selfcheck.FLOAT_TOLERANCE

    @property
    def built_as(self) -> str:
        return self.scheme if self.precision == "int8" else "float"


def _bytes(make: Callable[[BuildInputs], bytes]) -> Callable[[BuildInputs, Path], dict]:
    def build(inputs: BuildInputs, path: Path) -> dict:
        path.write_bytes(make(inputs))
        return {}

    return build


def _loop(scheme: str) -> Callable[[BuildInputs, Path], dict]:
    return _bytes(lambda i: lstm_loop.to_tflite_loop(i.model, i.max_len, scheme, lambda: iter(i.calibration)))


def _fused_int8(scheme: str) -> Callable[[BuildInputs, Path], dict]:
    return _bytes(lambda i: quantize.to_tflite_int8(i.model, i.max_len, scheme, lambda: iter(i.calibration)))


def _onnx_int8(inputs: BuildInputs, path: Path) -> dict:
    """Quantized from the float ONNX file, by the quantizer whose scores agree best (``judge``)."""
    chosen, candidates = quantize.to_onnx_int8(inputs.staging / bundle_format.ARTIFACT_FILES[bundle_format.FLOAT_ONNX],
                                               path, inputs.judge)
    return {"quantizer": chosen, "quantizers": candidates}


def _always(options: ExportOptions) -> bool:
    return True


def _int8(options: ExportOptions) -> bool:
    return options.int8


def _recipe(name: str, fmt: str, precision: str, scheme: str, lstm: str, wanted: Callable[[ExportOptions], bool],
            build: Callable[[BuildInputs, Path], dict]) -> Recipe:
    return Recipe(name, bundle_format.ARTIFACT_FILES[name], fmt, precision, scheme, lstm, wanted, build)


# In the order they are built and listed in the manifest; the float ONNX comes before the int8.
RECIPES = (
    _recipe(bundle_format.FLOAT_TFLITE, "tflite", "float32", "none", "fused", _always,
            _bytes(lambda i: convert.to_tflite_float(i.model, i.max_len))),
    _recipe(bundle_format.FLOAT_ONNX, "onnx", "float32", "none", "onnx", _always,
            _bytes(lambda i: convert.to_onnx_float(i.model, i.max_len))),
    _recipe(bundle_format.FLOAT_LOOP_TFLITE, "tflite", "float32", "none", "loop", _always, _loop("float")),
    _recipe(bundle_format.INT8_LOOP_TFLITE, "tflite", "int8", "dynamic-range", "loop", _int8, _loop("dynamic-range")),
    _recipe(bundle_format.INT8_TFLITE, "tflite", "int8", "full-integer", "fused",
            lambda o: o.int8 and o.tflite_scheme != "dynamic-range", _fused_int8("full-integer")),
    # --tflite-scheme dynamic-range: model_int8.tflite is the fused dynamic-range form
    _recipe(bundle_format.INT8_TFLITE, "tflite", "int8", "dynamic-range", "fused",
            lambda o: o.int8 and o.tflite_scheme == "dynamic-range", _fused_int8("dynamic-range")),
    _recipe(bundle_format.INT8_DYNAMIC_TFLITE, "tflite", "int8", "dynamic-range", "fused",
            lambda o: o.int8 and o.tflite_scheme == "both", _fused_int8("dynamic-range")),
    _recipe(bundle_format.INT8_ONNX, "onnx", "int8", "dynamic", "onnx", _int8, _onnx_int8),
)
FUSED = tuple(dict.fromkeys(r.name for r in RECIPES if r.lstm == "fused"))
FULL_INTEGER_SOFTMAX = ("full-integer int8 gives a softmax head's probabilities in steps of 1/256 and its activations "
                        "in int8: near classes tie or swap (a 3-class model: 97.0% top labels agreed, the dynamic-range "
                        "forms 99.4-99.6%); the dynamic-range forms keep float activations")


def planned(options: ExportOptions, config: dict | None = None) -> list[Recipe]:
    """The recipes ``options`` ask for that the architecture has (``not_exported`` says why not)."""
    left_out = not_exported(config or {}, options)
    return [r for r in RECIPES if r.wanted(options) and r.name not in left_out]


def not_exported(config: dict, options: ExportOptions = ExportOptions()) -> dict[str, str]:
    """Artifacts the architecture has no form for, and why: the fused TFLite forms exist for one
    unmasked LSTM layer only; the full-integer one for a binary head only."""
    layers = config.get("layers", [{"cells": ["LSTM"]}])
    if len(layers) > 1 or len(layers[0]["cells"]) > 1:
        why = "TFLite's fused forms are for one unidirectional LSTM layer (the loop form runs this one)"
    elif layers[0]["cells"][0] != "LSTM":
        why = f"TFLite has no fused {layers[0]['cells'][0]} op (the loop form runs it)"
    elif config.get("whole_reviews"):
        why = "the model reads each review unpadded; TFLite's fused LSTM would run the pad steps (the loop form skips them)"
    elif config.get("masked"):
        why = "TFLite's fused LSTM has no mask (the loop form skips the pad steps)"
    elif config.get("head") == "softmax" and options.tflite_scheme != "dynamic-range":
        return {bundle_format.INT8_TFLITE: FULL_INTEGER_SOFTMAX}
    else:
        return {}
    return dict.fromkeys(FUSED, why)
