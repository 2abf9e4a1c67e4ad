"""The package's layers: imports point one way (bundle ← runtime ← serving, tools ← the CLI and
the public API), and no module imports itself back through others."""

from __future__ import annotations

from pathlib import Path

import edge_lstm_device
from import_graph import cycles, graph

PACKAGE = Path(edge_lstm_device.__file__).resolve().parent
LAYERS = ("bundle", "runtime", "serving", "tools")  # each may import only the layers before it
FRONT = {"__main__", "cli"}  # the front end, with the package itself: may import every layer


def layer_name(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str) -> int:
    name = layer_name(module)
    return LAYERS.index(name) if name in LAYERS else len(LAYERS)


def test_every_module_is_in_a_layer_or_the_front_end() -> None:
    assert [m for m in graph(PACKAGE) if layer_name(m) not in {"", *LAYERS, *FRONT}] == []


def test_imports_point_one_way() -> None:
    wrong = [f"{module} imports {dep}" for module, deps in graph(PACKAGE).items() for dep in deps
             if dep != "edge_lstm_device" and layer(dep) > layer(module)]
    assert wrong == []


def test_serving_and_tools_do_not_import_each_other() -> None:
    crossing = [f"{module} imports {dep}" for module, deps in graph(PACKAGE).items() for dep in deps
                if {layer_name(module), layer_name(dep)} == {"serving", "tools"}]
    assert crossing == []


def test_no_import_cycle() -> None:
    assert cycles(graph(PACKAGE)) == []
