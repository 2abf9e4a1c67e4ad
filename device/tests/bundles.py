"""Bundles made from the shipped reference for tests: a copy, and copies whose manifest or
reference scores were changed on purpose (re-pinned, so the change is all that differs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from edge_lstm_device.bundle.files import bytes_sha256
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE


def copy_reference(dest: Path) -> Path:
    """The shipped reference bundle, copied to ``dest`` (every file its manifest names)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in REFERENCE_BUNDLE.iterdir():
        if path.is_file() and path.suffix in (".tflite", ".json"):
            shutil.copy(path, dest / path.name)
    return dest


def edit_manifest(bundle: Path, change: Callable[[dict], None]) -> dict:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def edit_reference_scores(bundle: Path, change: Callable[[dict], None]) -> None:
    """Change ``reference_scores.json`` and pin the new bytes in the manifest."""
    document = json.loads((bundle / "reference_scores.json").read_text())
    change(document)
    data = json.dumps(document).encode("utf-8")
    (bundle / "reference_scores.json").write_bytes(data)

    def pin(manifest: dict) -> None:
        manifest["reference_scores"].update(sha256=bytes_sha256(data), bytes=len(data))

    edit_manifest(bundle, pin)


def invert_scores(document: dict) -> None:
    """Every reference score p becomes 1 - p: no model can agree with it."""
    for text_set in document["sets"]:
        for item in text_set["items"]:
            item["score"] = 1.0 - item["score"]
