"""The layout is the architecture: who may import whom, and no import cycles.

- ``infra.core`` knows no capability: it imports only itself.
- A capability package (``infra.network``, ``infra.karpenter``, ..., ``workloads.serving``)
  imports the core layer and itself, never another capability or the stack layer.
- ``infra.stack`` composes the capabilities; ``__main__.py`` and ``tools`` sit above it.
- ``policies`` imports only itself and the core layer (its virtualenv has no pydantic).

Imports under ``if TYPE_CHECKING:`` are type hints, not dependencies, and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infra.stack.files import ROOT

TOP_LEVEL = ("infra", "workloads", "policies", "tools")


def _modules() -> dict[str, Path]:
    found = {}
    for top in TOP_LEVEL:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """Project modules ``path`` imports, at module level or inside functions."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in MODULES}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    """``infra.core``, a capability (``infra.karpenter``), ``infra.stack``, ``policies``..."""
    parts = module.split(".")
    if parts[0] in ("infra", "workloads") and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _bad_import(module: str, target: str) -> str | None:
    src, dst = _layer(module), _layer(target)
    if src == dst or dst in ("infra", "workloads"):
        return None
    if src == "infra.core" or src.startswith("policies"):
        return None if dst == "infra.core" else "the core layer and policies import only core"
    if src in ("infra.stack", "tools"):
        return None if src != "infra.stack" or dst != "tools" else "the stack layer is below tools"
    # A capability package.
    if dst != "infra.core":
        return "a capability imports only the core layer and itself"
    return None


def test_the_layers_exist() -> None:
    layers = {_layer(m) for m in MODULES}
    assert {"infra.core", "infra.stack", "policies", "tools", "workloads.serving"} <= layers
    assert len([layer for layer in layers if layer.startswith("infra.")]) >= 9


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_follow_the_layers(module: str) -> None:
    wrong = {t: why for t in sorted(GRAPH[module]) if (why := _bad_import(module, t))}
    assert wrong == {}


def test_no_import_cycles() -> None:
    done: set[str] = set()
    cycles: list[list[str]] = []

    def walk(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            walk(target, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        walk(module, [])
    assert cycles == []
