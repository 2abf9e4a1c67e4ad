"""The shipped reference: ``export/`` (the float model and its exports), refreshed by one
command. The device package ships some of its files: ``device/edge_lstm_device/reference/`` holds
links to them (stored once; a built wheel holds their bytes)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from edge_lstm_device.bundle.manifest import (
    MANIFEST_FILE,
    NUMPY_WEIGHTS,
    REFERENCE_SCORES_FILE,
    TOKENIZER_FILE,
)

from edge_lstm import bundle
from edge_lstm.export.exporter import ExportOptions, export_bundle
from edge_lstm.transaction import BundleTransaction

TRAINED_FILES = bundle.TRAINED_FILES


def device_files(manifest: dict) -> list[str]:
    """What the device package ships (its ``reference/`` links): the int8 TFLite files, the numpy
    engine's weights, the tokenizer, the reference scores (``verify``) and the manifest."""
    tflite = [e["file"] for e in manifest["artifacts"].values() if e["format"] == "tflite" and e["precision"] == "int8"]
    weights = [manifest[NUMPY_WEIGHTS]["file"]] if NUMPY_WEIGHTS in manifest else []
    scores = [REFERENCE_SCORES_FILE] if "reference_scores" in manifest else []
    return [*tflite, *weights, TOKENIZER_FILE, *scores, MANIFEST_FILE]


def adopt(source: Path, bundle_dir: Path) -> None:
    """Copy a trained bundle's model, tokenizer and metrics into ``bundle_dir`` (together)."""
    missing = [name for name in TRAINED_FILES if not (source / name).is_file()]
    if missing:
        raise bundle.BundleError(f"{source} is not a trained bundle (missing {', '.join(missing)})")
    bundle.ensure_writable(bundle_dir)
    with BundleTransaction(bundle_dir) as txn:
        for name in TRAINED_FILES:
            shutil.copyfile(source / name, txn.stage(name))
        txn.commit()


def refresh_reference(source: Path | None = None, bundle_dir: Path = bundle.DEFAULT_BUNDLE,
                      log: Callable[[str], None] = print) -> dict:
    """Optionally adopt ``source``'s trained model, then export ``bundle_dir`` with int8; returns
    the export's result and the files the device package ships (its links into ``export/``)."""
    if source is not None and source.resolve() != bundle_dir.resolve():
        adopt(source, bundle_dir)
    result = export_bundle(bundle_dir, ExportOptions(int8=True), log=log)
    return {**result, "device_files": device_files(result["manifest"])}
