"""The package's layers: imports point one way (bundle ← runtime ← serving, tools ← cli), and no
module imports itself back through others, at load time or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import edge_lstm_device

PACKAGE = Path(edge_lstm_device.__file__).resolve().parent
LAYERS = ("bundle", "runtime", "serving", "tools")  # each may import only the layers before it
ROOTS = {"__init__", "__main__", "cli"}  # the front end: may import every layer


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("edge_lstm_device", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (names for type checkers only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def package_imports(path: Path) -> set[str]:
    """Every ``edge_lstm_device`` module ``path`` imports when it runs: at load time or inside a
    function (a cycle through a function is still a cycle), not for type checkers only."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edge_lstm_device"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("edge_lstm_device"))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {dep for dep in package_imports(path) if dep in modules and dep != name}
            for name, path in modules.items()}


def layer_name(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ROOTS:
        return len(LAYERS)
    return LAYERS.index(parts[1])


def test_every_module_is_in_a_layer() -> None:
    for module in graph():
        parts = module.split(".")
        assert len(parts) == 1 or parts[1] in ROOTS or parts[1] in LAYERS, f"{module} is in no layer"


def test_imports_point_one_way() -> None:
    wrong = [f"{module} imports {dep}" for module, deps in graph().items() for dep in deps
             if dep != "edge_lstm_device" and layer(dep) > layer(module)]
    assert wrong == []


def test_serving_and_tools_do_not_import_each_other() -> None:
    sides = {"serving", "tools"}
    crossing = [f"{module} imports {dep}" for module, deps in graph().items() for dep in deps
                if {layer_name(module), layer_name(dep)} == sides]
    assert crossing == []


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(edges[module]):
            if state.get(dep) == "open":
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [module, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
