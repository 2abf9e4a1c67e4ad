"""The numpy engine's weights file (``model_numpy.npz``), defined once: the host writes it
(``edge_lstm.export.numpy_weights``), the device reads it (``numpy_engine``).

It holds what the loop form's graph holds, as the dynamic-range converter leaves it: a constant
of at least ``QUANTIZED_MIN_ELEMENTS`` elements (the embedding, the input and recurrent kernels,
large Dense kernels) as int8 with one per-tensor scale (``NAME`` int8 + ``NAME.scale``), the rest
(biases, the pad-state table, small kernels) float32. A ``float32`` file holds every array in
float32. ``structure`` (JSON bytes) says how the arrays make the network.

Reading is bounded like every bundle file: the caller hands the bytes it read against the
manifest's size and sha256; members are stored (not compressed), read with ``allow_pickle=False``,
their shapes checked against the structure before the engine sees them.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = 1
WEIGHTS_FILE = "model_numpy.npz"
STRUCTURE = "structure"
QUANTIZED_MIN_ELEMENTS = 1024  # the converter's threshold: smaller constants stay float
MAX_MEMBERS = 512
CELL_KINDS = ("lstm", "gru")
MERGE_MODES = ("concat", "sum", "ave", "mul")
_EPOCH = (1980, 1, 1, 0, 0, 0)
ACTIVATIONS = ("relu", "tanh", "gelu", "linear", "sigmoid", "softmax")


class WeightsError(ValueError):
    """The weights file is malformed or does not describe a network the engine runs."""


@dataclass(frozen=True)
class Tensor:
    """A constant: ``values`` float32, or int8 with its per-tensor ``scale``."""

    values: np.ndarray
    scale: float | None = None

    def dequantized(self) -> np.ndarray:
        """float32 as TFLite's ``DEQUANTIZE`` makes it: values times scale."""
        return self.values if self.scale is None else self.values.astype(np.float32) * np.float32(self.scale)


def write(arrays: dict[str, np.ndarray], structure: dict) -> bytes:
    """The file's bytes: ``arrays`` (int8 or float32) and the structure, members stored uncompressed."""
    buffer = io.BytesIO()
    members = {STRUCTURE: np.frombuffer(json.dumps(structure, sort_keys=True).encode(), np.uint8), **arrays}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in sorted(members.items()):
            info = zipfile.ZipInfo(name + ".npy", date_time=_EPOCH)  # no clock time: a re-export writes the same bytes
            with archive.open(info, "w") as handle:
                np.lib.format.write_array(handle, np.asarray(array, order="C"), allow_pickle=False)
    return buffer.getvalue()


def read(data: bytes) -> tuple[dict, dict[str, Tensor]]:
    """``(structure, tensors)`` from the file's bytes, or ``WeightsError``."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            raw = _members(archive, len(data))
    except (zipfile.BadZipFile, OSError, EOFError) as err:  # (np.lib.format raises ValueError: passed on below)
        raise WeightsError(f"not a numpy weights file: {err}") from err
    structure = _structure(raw.pop(STRUCTURE, None))
    tensors = {}
    for name, array in raw.items():
        if name.endswith(".scale"):
            continue
        scale = raw.get(name + ".scale")
        tensors[name] = _tensor(name, array, scale)
    return structure, tensors


def _members(archive: zipfile.ZipFile, size: int) -> dict[str, np.ndarray]:
    """Every member as an array; refused when compressed or larger than the file (no zip bombs)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise WeightsError(f"too many arrays ({len(infos)})")
    out = {}
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > size or not info.filename.endswith(".npy"):
            raise WeightsError(f"member {info.filename[:60]!r} is not a stored .npy array")
        with archive.open(info) as handle:
            try:
                out[info.filename[:-4]] = np.lib.format.read_array(handle, allow_pickle=False)
            except ValueError as err:
                raise WeightsError(f"member {info.filename[:60]!r}: {err}") from err
    return out


def _structure(raw: np.ndarray | None) -> dict:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise WeightsError("no structure record")
    try:
        structure = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise WeightsError(f"unreadable structure record: {err}") from err
    if not isinstance(structure, dict) or structure.get("format") != FORMAT:
        raise WeightsError(f"unsupported weights format (expected format {FORMAT})")
    return structure


def _tensor(name: str, array: np.ndarray, scale: np.ndarray | None) -> Tensor:
    if scale is None:
        if array.dtype != np.float32:
            raise WeightsError(f"{name} is {array.dtype}, expected float32 (or int8 with a scale)")
        return Tensor(array)
    if array.dtype != np.int8 or scale.shape != () or scale.dtype != np.float32 or not 0 < float(scale) < np.inf:
        raise WeightsError(f"{name}: expected int8 values and one positive float32 scale")
    return Tensor(array, float(scale))


def quantize(values: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Symmetric per-tensor int8 as TFLite's dynamic-range converter does it
    (``SymmetricQuantizeFloats``: scale = max|w| / 127, q = round(w · 127 / max|w|), halves away from 0)."""
    values = np.asarray(values, np.float32)
    bound = np.float32(np.abs(values).max())
    if bound == 0:
        return np.zeros(values.shape, np.int8), np.float32(1.0)
    scaled = values * (np.float32(127.0) / bound)
    whole = np.trunc(scaled)
    rounded = whole + np.sign(scaled) * (np.abs(scaled - whole) >= 0.5)
    return np.clip(rounded, -127, 127).astype(np.int8), np.float32(bound / np.float32(127.0))


def get(tensors: dict[str, Tensor], name: str, shape: tuple[Any, ...], float_only: bool = False) -> Tensor:
    """The tensor ``name`` if its shape is ``shape`` (``None`` matches any size), else
    ``WeightsError``; ``float_only``: biases and tables, which the converter leaves float."""
    tensor = tensors.get(name)
    if tensor is None:
        raise WeightsError(f"missing array {name}")
    if float_only and tensor.scale is not None:
        raise WeightsError(f"{name} is quantized; expected float32")
    actual = tensor.values.shape
    if len(actual) != len(shape) or any(want is not None and want != got for want, got in zip(shape, actual)):
        raise WeightsError(f"{name} has shape {actual}, expected {shape}")
    if not np.isfinite(tensor.values).all():
        raise WeightsError(f"{name} holds a NaN or infinity")
    return tensor
