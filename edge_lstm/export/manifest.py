"""manifest.json: describes and fingerprints every file of an exported bundle."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from edge_lstm_device.bundle.files import file_sha256
from edge_lstm_device.bundle.manifest import BUNDLE_VERSION, FORMAT_VERSION, bundle_version
from edge_lstm_device.bundle.tokenizer import Tokenizer
from edge_lstm_device.runtime.interpreters import interpreter_version, make_interpreter

STATEFUL_OPS = frozenset({"UNIDIRECTIONAL_SEQUENCE_LSTM", "VAR_HANDLE", "ASSIGN_VARIABLE"})


def file_entry(path: Path) -> dict:
    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size}


def _dtype_name(dtype: Any) -> str:
    return getattr(dtype, "__name__", str(dtype))


def describe_tflite(path: Path) -> dict:
    """Inputs, outputs (with quantization parameters) and operators of a TFLite file."""
    content = path.read_bytes()
    interpreter = make_interpreter(content)

    def tensor(detail: dict) -> dict:
        scale, zero_point = detail["quantization"]
        info = {"name": detail["name"], "shape": [int(d) for d in detail["shape"]], "dtype": _dtype_name(detail["dtype"])}
        info["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)} if scale else None
        return info

    versions = operator_versions(content)
    operators = sorted(versions)
    return {
        "inputs": [tensor(d) for d in interpreter.get_input_details()],
        "outputs": [tensor(d) for d in interpreter.get_output_details()],
        "operators": operators,
        "operator_versions": versions,
        # the fused LSTM keeps its state across invoke(): reset per review
        "stateful": bool(STATEFUL_OPS.intersection(operators)),
    }


def operator_versions(model: bytes) -> dict[str, int]:
    """Every builtin operator of a TFLite flatbuffer (all subgraphs) with its version: what an
    interpreter must know to load the file (tflite-runtime 2.14 refuses FULLY_CONNECTED version 12)."""
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAs(model, 0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    versions: dict[str, int] = {}
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        versions[name] = max(versions.get(name, 0), code.Version())
    return dict(sorted(versions.items()))


def describe_onnx(path: Path) -> dict:
    """Inputs, outputs, operators and opset of an ONNX file."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))

    def tensor(value: Any) -> dict:
        tt = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
        return {"name": value.name, "shape": shape, "dtype": helper.tensor_dtype_to_np_dtype(tt.elem_type).name, "quantization": None}

    ops = sorted({f"{n.domain}.{n.op_type}" if n.domain else n.op_type for n in model.graph.node})
    return {
        "inputs": [tensor(v) for v in model.graph.input],
        "outputs": [tensor(v) for v in model.graph.output],
        "operators": ops,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "stateful": False,
    }


def artifact_entry(path: Path, fmt: str, precision: str, scheme: str, tools: dict) -> dict:
    describe = describe_tflite if fmt == "tflite" else describe_onnx
    return {**file_entry(path), "format": fmt, "precision": precision, "quantization": scheme,
            **describe(path), "tools": tools}


def tool_versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("tensorflow", "tf-keras", "tf2onnx", "onnx", "onnxruntime", "ai-edge-litert", "numpy")
    return {"python": platform.python_version(), **{n: version(n) for n in names}}


def runtime_id(interpreter_dist: str) -> dict[str, str]:
    """The interpreter, its version and the CPU a file was loaded and run in."""
    return {"interpreter": interpreter_dist, "version": interpreter_version(interpreter_dist),
            "machine": platform.machine()}


def build_manifest(source_model: Path, tokenizer_path: Path, tokenizer: Tokenizer,
                   model_config: dict, artifacts: dict[str, dict], device_order: list[str],
                   not_exported: dict[str, str] | None = None, reference_scores: dict | None = None) -> dict:
    """``device_order``: TFLite artifacts, fastest first; the device runs the first it can load
    (``device_default``, the first, is kept for older device runtimes). ``not_exported``: the
    artifacts the architecture has no form for, and why. ``reference_scores``: the entry of the
    float model's scores of real texts, which devices verify their models against."""
    return {
        "format_version": FORMAT_VERSION,
        "source_model": file_entry(source_model),
        "tokenizer": {**file_entry(tokenizer_path), "settings": tokenizer.settings()},
        "model": model_config,
        "device_default": device_order[0],
        "device_order": device_order,
        "artifacts": artifacts,
        **({"reference_scores": reference_scores} if reference_scores else {}),
        **({"not_exported": dict(sorted(not_exported.items()))} if not_exported else {}),
    }


def export_report(measured: dict[str, dict], selfcheck_reviews: int, latency_calls: int) -> dict:
    """What this machine measured during export (machine-dependent, so not in the manifest)."""
    return {
        "machine": {"cpu": platform.machine(), "python": platform.python_version(), "cores": os.cpu_count()},
        "selfcheck": f"{selfcheck_reviews} shipped test reviews against the float Keras model",
        "latency": f"batch 1, one thread, {latency_calls} reviews after warm-up",
        "artifacts": measured,
    }


def now_version() -> int:
    """The current UTC time in whole seconds, or ``$SOURCE_DATE_EPOCH`` for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(epoch) if epoch.isdigit() else int(time.time())


def stamp_version(new: dict, previous: dict | None) -> dict:
    """``new`` with its ``bundle_version`` (second, after ``format_version``). A manifest that says
    what the previous one said keeps its version, so a re-export writes the same bytes and a
    signature of them still holds; any other gets max(previous + 1, UTC seconds now): it is newer
    than the folder's last bundle even when the clock is behind, and bundles built in different
    folders (or machines) are ordered by when they were built."""
    body = {k: v for k, v in new.items() if k != BUNDLE_VERSION}
    if previous is not None and body == {k: v for k, v in previous.items() if k != BUNDLE_VERSION} \
            and BUNDLE_VERSION in previous:
        version = bundle_version(previous)
    else:
        version = max(bundle_version(previous) + 1 if previous else 0, now_version())
    first, *rest = body.items()
    return dict([first, (BUNDLE_VERSION, version), *rest])
