"""A package's import graph from its source (no module is imported): which of its modules each
one imports when it runs, at load time or inside a function, but not for type checkers only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def module_name(package_dir: Path, path: Path) -> str:
    parts = (package_dir.name, *path.relative_to(package_dir).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (names for type checkers only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(path: Path, package: str) -> set[str]:
    """Every module of ``package`` that ``path`` imports when it runs (a cycle through a function
    is still a cycle)."""
    found: set[str] = set()
    inside = (package, f"{package}.")
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(inside):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(inside))
    return {name for name in found if name == package or name.startswith(f"{package}.")}


def graph(package_dir: Path) -> dict[str, set[str]]:
    modules = {module_name(package_dir, path): path for path in package_dir.rglob("*.py")}
    return {name: {dep for dep in imports_of(path, package_dir.name) if dep in modules and dep != name}
            for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``edges``, each as the modules around it (depth-first)."""
    state: dict[str, str] = {}
    found: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in sorted(edges[module]):
            if state.get(dep) == "open":
                found.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return found
