"""Export a bundle's float model to TFLite and ONNX (float and int8) with a manifest.

Everything is built and validated in a staging folder inside the bundle, then renamed into
place with SIGINT/SIGTERM held back: a failed or interrupted export leaves the previous
artifacts and manifest exactly as they were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from edge_lstm import bundle, convert, manifest, quantize, validate
from edge_lstm.backends import KerasBackend, open_artifact
from edge_lstm.samples import TEST_SAMPLE, TRAIN_SAMPLE, read_sample
from edge_lstm_device.files import atomic_write_json
from edge_lstm_device.model import BundleError as DeviceBundleError
from edge_lstm_device.model import read_manifest
from edge_lstm_device.tokenizer import Tokenizer

STAGING_PREFIX = ".export-staging-"
VALIDATION_REVIEWS = 64


class ExportError(Exception):
    """The bundle cannot be exported (bad model, mismatched tokenizer, failed conversion...)."""


@dataclass(frozen=True)
class Artifact:
    name: str  # key in the manifest
    file: str
    format: str  # "tflite" or "onnx"
    precision: str  # "float32" or "int8"
    scheme: str  # quantization scheme, "none" for float


@dataclass(frozen=True)
class ExportOptions:
    int8: bool = True
    tflite_scheme: str = "both"  # "full-integer", "dynamic-range", or both (full-integer first)
    calibration_reviews: int = 400
    data: Path | None = None  # IMDB data for calibration; default: the shipped training sample
    seed: int = 0


def planned_artifacts(options: ExportOptions) -> list[Artifact]:
    plan = [
        Artifact("float_tflite", "model_float.tflite", "tflite", "float32", "none"),
        Artifact("float_onnx", "model_float.onnx", "onnx", "float32", "none"),
    ]
    if options.int8:
        first = "dynamic-range" if options.tflite_scheme == "dynamic-range" else "full-integer"
        plan.append(Artifact("int8_tflite", "model_int8.tflite", "tflite", "int8", first))
        if options.tflite_scheme == "both":
            plan.append(Artifact("int8_dynamic_tflite", "model_int8_dynamic.tflite", "tflite", "int8", "dynamic-range"))
        plan.append(Artifact("int8_onnx", "model_int8.onnx", "onnx", "int8", "dynamic"))
    return plan


def check_model(model: Any, tokenizer: Tokenizer) -> dict:
    """The model must be Embedding -> LSTM -> Dense(1) over the tokenizer's ids; returns its config."""
    kinds = [type(layer).__name__ for layer in model.layers]
    if kinds != ["Embedding", "LSTM", "Dense"]:
        raise ExportError(f"expected an Embedding -> LSTM -> Dense model, got {' -> '.join(kinds)}")
    embedding, lstm, dense = model.layers
    max_len = model.input_shape[1]
    if max_len != tokenizer.max_len:
        raise ExportError(f"the model reads {max_len} tokens but the tokenizer writes {tokenizer.max_len}")
    if embedding.input_dim != tokenizer.num_words:
        raise ExportError(
            f"the model's vocabulary has {embedding.input_dim} ids but the tokenizer's has {tokenizer.num_words}"
        )
    if dense.units != 1:
        raise ExportError(f"expected one output unit, got {dense.units}")
    return {"num_words": embedding.input_dim, "max_len": max_len, "embedding_dim": embedding.output_dim,
            "lstm_units": lstm.units, "architecture": "Embedding -> LSTM -> Dense(1, sigmoid)"}


def calibration_rows(options: ExportOptions, tokenizer: Tokenizer) -> tuple[np.ndarray, str]:
    """Real training reviews through the same tokenizer (never random ids)."""
    if options.data is not None:
        from edge_lstm.data import load_imdb, resolve_source

        reviews = load_imdb(resolve_source(options.data, download=False), ("train",))["train"]
        origin = f"{options.data} (train split)"
    else:
        reviews, origin = read_sample(TRAIN_SAMPLE), f"shipped sample {TRAIN_SAMPLE.name}"
    reviews = reviews.balanced(options.calibration_reviews, options.seed)
    return tokenizer.encode_batch(reviews.texts), f"{len(reviews)} reviews from {origin}"


def _build(art: Artifact, model: Any, max_len: int, staging: Path, calibration: np.ndarray) -> Path:
    path = staging / art.file
    if art.format == "onnx" and art.precision == "int8":
        quantize.to_onnx_int8(staging / "model_float.onnx", path)
        return path
    if art.format == "onnx":
        data = convert.to_onnx_float(model, max_len)
    elif art.precision == "float32":
        data = convert.to_tflite_float(model, max_len)
    else:
        data = quantize.to_tflite_int8(model, max_len, art.scheme, lambda: iter(calibration))
    path.write_bytes(data)
    return path


def _check_onnx(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ExportError(f"{path.name} fails onnx.checker: {err}") from err


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT/SIGTERM while files are renamed into place."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _commit(bundle_dir: Path, staging: Path, files: list[str], new_manifest: dict) -> None:
    """Rename the staged files into place, manifest last; drop artifacts the new manifest dropped."""
    old_files: set[str] = set()
    if (bundle_dir / bundle.MANIFEST_FILE).exists():
        with contextlib.suppress(DeviceBundleError):  # an unreadable old manifest names no files
            old_files = {e["file"] for e in read_manifest(bundle_dir).get("artifacts", {}).values()}
    atomic_write_json(staging / bundle.MANIFEST_FILE, new_manifest)
    with _signals_held():
        for name in files:
            os.replace(staging / name, bundle_dir / name)
        os.replace(staging / bundle.MANIFEST_FILE, bundle_dir / bundle.MANIFEST_FILE)
        for stale in old_files - set(files):
            (bundle_dir / stale).unlink(missing_ok=True)


def _build_and_validate(art: Artifact, model: Any, max_len: int, staging: Path, calibration: np.ndarray,
                        calibration_origin: str, rows: np.ndarray, reference: np.ndarray, tools: dict,
                        log: Callable[[str], None]) -> dict:
    """Build one artifact in ``staging``, run it against the float model, describe it."""
    log(f"building {art.name} ({art.scheme if art.precision == 'int8' else 'float'})")
    started = time.perf_counter()
    path = _build(art, model, max_len, staging, calibration)
    if art.format == "onnx":
        _check_onnx(path)
    tolerance = validate.INT8_TOLERANCE if art.precision == "int8" else validate.FLOAT_TOLERANCE
    backend = open_artifact(staging, art.name, {"file": art.file, "format": art.format})
    entry = manifest.artifact_entry(path, art.format, art.precision, art.scheme, tools)
    entry["validation"] = validate.validate(backend, rows, reference, tolerance).to_dict()
    if art.scheme == "full-integer":
        entry["calibration"] = calibration_origin
    log(f"  {art.file}: {path.stat().st_size / 1024:.0f} KiB in {time.perf_counter() - started:.1f} s")
    return entry


def export_bundle(
    bundle_dir: Path, options: ExportOptions = ExportOptions(), log: Callable[[str], None] = print
) -> dict:
    """Write the float (and with ``options.int8`` the int8) artifacts and manifest.json;
    returns the manifest, each artifact carrying its validation result. The manifest depends only
    on its inputs (no timestamps), so re-exporting the same model rewrites the same bytes."""
    bundle.ensure_writable(bundle_dir)
    tokenizer = bundle.load_tokenizer(bundle_dir)
    model = bundle.load_model(bundle_dir)
    config = check_model(model, tokenizer)
    calibration, calibration_origin = calibration_rows(options, tokenizer)
    sample = read_sample(TEST_SAMPLE)
    rows = tokenizer.encode_batch(sample.texts[:VALIDATION_REVIEWS])
    reference = KerasBackend(model).score(rows)
    tools = manifest.tool_versions()
    for leftover in bundle_dir.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=bundle_dir))
    try:
        entries = {art.name: _build_and_validate(art, model, config["max_len"], staging, calibration,
                                                 calibration_origin, rows, reference, tools, log)
                   for art in planned_artifacts(options)}
        _add_size_ratios(entries)
        default = "int8_tflite" if "int8_tflite" in entries else "float_tflite"
        result = manifest.build_manifest(bundle_dir / bundle.MODEL_FILE, bundle_dir / bundle.TOKENIZER_FILE,
                                         tokenizer, config, entries, default)
        _commit(bundle_dir, staging, [e["file"] for e in entries.values()], result)
        return result
    except (convert.ConversionError, validate.ValidationError) as err:
        raise ExportError(str(err)) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add_size_ratios(entries: dict[str, dict]) -> None:
    """Each int8 artifact's size as a fraction of its float twin."""
    for entry in entries.values():
        twin = entries.get(f"float_{entry['format']}")
        if entry["precision"] == "int8" and twin:
            entry["size_ratio_to_float"] = round(entry["bytes"] / twin["bytes"], 4)
