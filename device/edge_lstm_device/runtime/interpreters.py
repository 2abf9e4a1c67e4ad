"""Find a TFLite interpreter: ai-edge-litert, else tflite-runtime, else TensorFlow's (last resort)."""

from __future__ import annotations

import importlib
from typing import Any

# (module holding ``Interpreter``, distribution name) in order of preference
CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite.python.interpreter", "tensorflow"),
)


class NoInterpreterError(ImportError):
    """No TFLite interpreter is installed."""


def interpreter_class(prefer: str | None = None) -> tuple[type, str]:
    """The ``Interpreter`` class and the name of the package that provides it."""
    candidates = [c for c in CANDIDATES if prefer in (None, c[1])]
    for module_name, dist in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return module.Interpreter, dist
    wanted = prefer or "ai-edge-litert (or tflite-runtime)"
    raise NoInterpreterError(f"no TFLite interpreter found: pip install {wanted}")


def installed() -> bool:
    """Whether any TFLite interpreter can be imported (else the numpy engine runs)."""
    try:
        interpreter_class()
    except NoInterpreterError:
        return False
    return True


def interpreter_version(dist: str) -> str:
    """The installed version of an interpreter package: its module's ``__version__`` (importlib's
    metadata reader costs a device ~1.5 MB of peak memory), else the package metadata."""
    import sys

    package = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}.get(dist, dist)
    version = getattr(sys.modules.get(package), "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as metadata_version

    try:
        return metadata_version(dist)
    except PackageNotFoundError:
        return "unknown"


def make_interpreter(model_content: bytes, threads: int = 1, prefer: str | None = None) -> Any:
    """A ready (tensors allocated) interpreter for a model held in memory."""
    cls, _ = interpreter_class(prefer)
    interpreter = cls(model_content=model_content, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter
