"""The tests depend on no committed stack's contents.

Component tests read ``tests/fixtures/`` (collection refuses the committed-stack fixtures
outside modules marked ``stacks``, see ``tests/conftest.py``); the stack-level suite
discovers the stacks and derives what it expects from their config. Here: no test names
a committed stack, model, GPU pool, cluster or budget in a string literal, so renaming or
adding one never needs a test edit.
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import pytest

from infra.stack.files import typed_stack_config
from tests.conftest import STACKS

pytestmark = pytest.mark.stacks

TESTS = Path(__file__).resolve().parent


def committed_names() -> dict[str, str]:
    """Name -> what it names, for every committed stack."""
    names: dict[str, str] = {}
    for stack in STACKS:
        cfg = typed_stack_config(stack)
        names[stack] = "stack"
        names[cfg.cluster.name] = f"cluster of stack {stack}"
        names.update({m.name: f"model of stack {stack}" for m in cfg.models})
        names.update({p.name: f"GPU pool of stack {stack}" for p in cfg.gpu_pools})
        names.update({b.name: f"budget of stack {stack}" for b in cfg.cost.budgets})
    return names


def literals(path: Path) -> list[tuple[int, str]]:
    """Every plain string literal of a module (f-string parts included), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
    return found


def test_no_test_names_what_a_committed_stack_contains() -> None:
    names = committed_names()
    found = [
        f"{path.relative_to(TESTS.parent)}:{line}: {value!r} ({names[value]})"
        for path in sorted(TESTS.rglob("*.py"))
        for line, value in literals(path)
        if value in names
    ]
    assert found == [], "derive these from the loaded config or use tests/fixtures/"


def test_the_guard_sees_literals_anywhere(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('X = {"a": ["b"]}\ndef f() -> str:\n    return f"c{X}" + "d"\n')
    assert {v for _, v in literals(module)} == {"a", "b", "c", "d"}


def test_collection_froze_the_heap() -> None:
    """``pytest_collection_finish`` ran in this process (each xdist worker collects)."""
    assert gc.get_freeze_count() > 0
