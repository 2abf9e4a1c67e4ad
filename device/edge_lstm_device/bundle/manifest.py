"""The bundle format, defined once: file names, artifact names, the manifest's schema, and
reading a bundle's files safely (docs/bundle-format.md).

A bundle is a folder. ``manifest.json`` names every exported file by a plain file name inside
the folder and pins its size and sha256; nothing a manifest says can make a reader leave the
folder, follow a symlink, or read more than the manifest's own size bounds.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable

from edge_lstm_device.bundle.files import bytes_sha256
from edge_lstm_device.bundle.tokenizer_file import MAX_TOKENIZER_BYTES

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
REPORT_FILE = "export_report.json"  # what the export measured on its machine
REFERENCE_SCORES_FILE = "reference_scores.json"  # texts and the float model's scores for them (verify)

# Artifact names (manifest keys), one per exported file.
FLOAT_TFLITE = "float_tflite"
FLOAT_ONNX = "float_onnx"
FLOAT_LOOP_TFLITE = "float_loop_tflite"  # the loop form in float32: the exact reference of the int8 one
INT8_LOOP_TFLITE = "int8_loop_tflite"
INT8_TFLITE = "int8_tflite"  # fused LSTM, full-integer (or dynamic-range with --tflite-scheme)
INT8_DYNAMIC_TFLITE = "int8_dynamic_tflite"
INT8_ONNX = "int8_onnx"
ARTIFACT_FILES = {
    FLOAT_TFLITE: "model_float.tflite",
    FLOAT_ONNX: "model_float.onnx",
    FLOAT_LOOP_TFLITE: "model_float_loop.tflite",
    INT8_LOOP_TFLITE: "model_int8_loop.tflite",
    INT8_TFLITE: "model_int8.tflite",
    INT8_DYNAMIC_TFLITE: "model_int8_dynamic.tflite",
    INT8_ONNX: "model_int8.onnx",
}
FORMATS = ("tflite", "onnx")
NUMPY_WEIGHTS = "numpy_weights"  # the numpy engine's weights file (numpy_weights.py): a manifest key of its
# own, not an artifact, so that device packages that know only TFLite and ONNX artifacts still read the bundle

BUNDLE_VERSION = "bundle_version"  # grows with every export that changes the manifest (rollback.py)
MAX_BUNDLE_VERSION = (1 << 63) - 1  # fits a signed 64-bit integer, for JSON readers in other languages

MAX_MANIFEST_BYTES = 1 << 20
MAX_ARTIFACT_BYTES = 256 << 20
MAX_REFERENCE_SCORES_BYTES = 8 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle is missing, tampered with, truncated, malformed or inconsistent."""


# The shipped reference bundle (package data). In a source tree its files are relative links into the
# repository's export/ (stored once; a built wheel holds their bytes): as trusted as this code, the
# only folder whose links are read (docs/decisions/bundle-transaction.md).
REFERENCE_BUNDLE = Path(__file__).resolve().parent.parent / "reference"


class FileTooLargeError(BundleError):
    """A file is larger than the bound it is read with."""


def plain_name(name: object) -> str:
    """``name`` if it is a plain file name (no folder, not hidden), else ``BundleError``."""
    if (not isinstance(name, str) or not name or name.startswith(".") or "/" in name or "\\" in name
            or "\x00" in name or len(name) > 255):
        raise BundleError(f"manifest names a file outside the bundle or not a plain file name: {str(name)[:80]!r}")
    return name


def read_bounded(path: Path, limit: int) -> bytes:
    """A regular file's bytes (not a symlink, not a device), refused beyond ``limit`` bytes. The
    one exception: a link in the package's own reference folder (``REFERENCE_BUNDLE``) is followed."""
    if os.path.islink(path) and Path(path).parent.resolve() == REFERENCE_BUNDLE:
        path = Path(path).resolve()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as err:
        raise BundleError(f"missing file {path}") from err
    except OSError as err:
        raise BundleError(f"cannot read {path}: {err.strerror or err}") from err
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # (before fdopen, which refuses a directory with IsADirectoryError)
        os.close(fd)
        raise BundleError(f"{path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        data = b"" if info.st_size > limit else handle.read(limit + 1)
    if info.st_size > limit or len(data) > limit:
        raise FileTooLargeError(f"{path} is larger than the {limit:,}-byte limit")
    return data


def parse_json(data: bytes, source: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"cannot read {source}: {err}") from err
    except RecursionError as err:
        raise BundleError(f"cannot read {source}: JSON nested too deeply") from err


def _file_entry(entry: object, where: str, limit: int) -> dict:
    if not isinstance(entry, dict):
        raise BundleError(f"manifest: {where} is not an object")
    plain_name(entry.get("file"))
    size, digest = entry.get("bytes"), entry.get("sha256")
    if type(size) is not int or not 0 <= size <= limit:
        raise BundleError(f"manifest: {where} has no valid 'bytes' (at most {limit:,})")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise BundleError(f"manifest: {where} has no valid 'sha256'")
    return entry


def check_manifest(manifest: object) -> dict:
    """The manifest if it follows the schema (docs/bundle-format.md), else ``BundleError``."""
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError("unsupported manifest format (expected format_version 1)")
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, dict):
        raise BundleError("manifest: 'artifacts' is not an object")
    for name, entry in artifacts.items():
        _file_entry(entry, f"artifact {str(name)[:40]!r}", MAX_ARTIFACT_BYTES)
        if entry.get("format") not in FORMATS:
            raise BundleError(f"manifest: artifact {str(name)[:40]!r} has an unknown format")
    _file_entry(manifest.get("tokenizer"), "tokenizer", MAX_TOKENIZER_BYTES)
    if "reference_scores" in manifest:
        _file_entry(manifest["reference_scores"], "reference_scores", MAX_REFERENCE_SCORES_BYTES)
    if NUMPY_WEIGHTS in manifest:
        _file_entry(manifest[NUMPY_WEIGHTS], NUMPY_WEIGHTS, MAX_ARTIFACT_BYTES)
    model = manifest.get("model")
    if not isinstance(model, dict) or type(model.get("num_words")) is not int:
        raise BundleError("manifest: 'model' has no 'num_words'")
    _check_labels(model.get("labels"))
    order = manifest.get("device_order", [])
    if not isinstance(order, list) or not all(isinstance(n, str) for n in order):
        raise BundleError("manifest: 'device_order' is not a list of names")
    bundle_version(manifest)
    return manifest


def bundle_version(manifest: dict) -> int:
    """The manifest's ``bundle_version``; 0 for a bundle exported before versions existed (so it
    is older than any versioned bundle). ``BundleError`` if present but not a whole number >= 0."""
    version = manifest.get(BUNDLE_VERSION, 0)
    if type(version) is not int or not 0 <= version <= MAX_BUNDLE_VERSION:
        raise BundleError(f"manifest: '{BUNDLE_VERSION}' is not a whole number between 0 and {MAX_BUNDLE_VERSION}")
    return version


def _check_labels(labels: object) -> None:
    """``model.labels`` (a softmax head's classes): absent, or 2 or more unique non-empty names."""
    if labels is None:
        return
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(n, str) and n for n in labels) \
            or len(set(labels)) != len(labels):
        raise BundleError("manifest: 'model.labels' is not a list of 2 or more unique, non-empty class names")


def class_names(manifest: dict) -> tuple[str, ...]:
    """A multi-class bundle's class names, in output order; empty for a binary (positive/negative) bundle."""
    return tuple(manifest["model"].get("labels") or ())


def read_manifest(bundle_dir: Path, check_bytes: Callable[[bytes], None] | None = None) -> dict:
    """The bundle's manifest, size-bounded and checked against the schema. ``check_bytes`` (the
    signature check, ``signing.py``) sees the very bytes that are then parsed."""
    path = Path(bundle_dir) / MANIFEST_FILE
    if not path.exists() and not path.is_symlink():
        raise BundleError(f"no {MANIFEST_FILE} in {bundle_dir}: not an exported bundle")
    data = read_bounded(path, MAX_MANIFEST_BYTES)
    if check_bytes is not None:
        check_bytes(data)
    return check_manifest(parse_json(data, str(path)))


def read_verified(bundle_dir: Path, entry: dict) -> bytes:
    """The bytes of a manifest entry's file, refused unless size and sha256 match."""
    path = Path(bundle_dir) / plain_name(entry["file"])
    try:
        data = read_bounded(path, entry["bytes"])
    except FileTooLargeError:
        data = b""
    if len(data) != entry["bytes"] or bytes_sha256(data) != entry["sha256"]:
        raise BundleError(
            f"{path} does not match the manifest (expected {entry['bytes']} bytes, sha256 "
            f"{entry['sha256'][:12]}…): tampered, truncated or from another export"
        )
    return data


def model_entry(manifest: dict, name: str) -> dict:
    """The manifest entry of the model ``name`` runs: an artifact's, or the numpy engine's weights."""
    return manifest[NUMPY_WEIGHTS] if name == NUMPY_WEIGHTS else manifest["artifacts"][name]


def tflite_models(manifest: dict, bundle_dir: Path | None = None) -> list[str]:
    """Names of the bundle's TFLite artifacts (only those present, when ``bundle_dir`` is given;
    a symlink counts as present, so that reading it is refused rather than skipped)."""
    return [
        name
        for name, entry in manifest.get("artifacts", {}).items()
        if entry.get("format") == "tflite" and (bundle_dir is None or os.path.lexists(Path(bundle_dir) / entry["file"]))
    ]


def device_order(manifest: dict, bundle_dir: Path | None = None) -> list[str]:
    """The bundle's TFLite models, fastest first as the export measured them (older manifests
    name only ``device_default``; models it did not rank follow in manifest order)."""
    available = tflite_models(manifest, bundle_dir)
    ranked = manifest.get("device_order") or [manifest.get("device_default")]
    return [n for n in ranked if n in available] + [n for n in available if n not in ranked]
