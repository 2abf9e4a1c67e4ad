"""The device package ships the reference bundle's files as exported: links into export/ (stored
once), exactly the files ``edge-lstm reference`` names (``device_files``)."""

from __future__ import annotations

import json
import os

from edge_lstm_device.runtime.model import PACKAGED_REFERENCE, REFERENCE_BUNDLE

from edge_lstm.export.reference import device_files
from tests.support.fixtures import BUNDLE


def test_device_ships_the_exported_reference_files_as_links_into_export() -> None:
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    assert sorted(p.name for p in PACKAGED_REFERENCE.iterdir()) == sorted(device_files(manifest))
    for path in PACKAGED_REFERENCE.iterdir():
        assert path.is_symlink() and os.readlink(path) == f"../../../export/{path.name}", path
        assert path.resolve() == (BUNDLE / path.name).resolve(), path


def test_in_a_source_tree_the_device_reads_the_reference_from_export() -> None:
    assert REFERENCE_BUNDLE == BUNDLE.resolve()  # (no bundle file is read through a link)
