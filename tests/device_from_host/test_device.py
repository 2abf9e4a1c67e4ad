"""The device package ships the reference bundle's files as exported: links into export/ (stored
once), exactly the files ``edge-lstm reference`` names (``device_files``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from edge_lstm_device.bundle.manifest import BundleError, read_bounded, read_manifest
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE

from edge_lstm.export.reference import device_files
from tests.support.fixtures import BUNDLE


def test_device_ships_the_exported_reference_files_as_links_into_export() -> None:
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    assert sorted(p.name for p in REFERENCE_BUNDLE.iterdir()) == sorted(device_files(manifest))
    for path in REFERENCE_BUNDLE.iterdir():
        assert path.is_symlink() and os.readlink(path) == f"../../../export/{path.name}", path
        assert path.resolve() == (BUNDLE / path.name).resolve(), path


def test_links_are_read_in_the_reference_folder_only(tmp_path: Path) -> None:
    assert read_manifest(REFERENCE_BUNDLE) == read_manifest(BUNDLE)
    (tmp_path / "manifest.json").symlink_to(BUNDLE / "manifest.json")
    with pytest.raises(BundleError, match="symbolic links"):
        read_bounded(tmp_path / "manifest.json", 1 << 20)
