"""The host package: no import cycle, and the device package never imports it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import edge_lstm_device

import edge_lstm

ROOT = Path(__file__).resolve().parents[1]


def _import_graph():
    """The device tests' import-graph reader (one copy for both packages)."""
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "device" / "tests" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_in_the_host_package() -> None:
    reader = _import_graph()
    assert reader.cycles(reader.graph(Path(edge_lstm.__file__).resolve().parent)) == []


def test_the_device_package_never_imports_the_host() -> None:
    reader = _import_graph()
    device = Path(edge_lstm_device.__file__).resolve().parent
    assert [str(p) for p in device.rglob("*.py") if reader.imports_of(p, "edge_lstm")] == []
