"""Shared fixtures. The mocks live in ``tools.mock_runtime`` (one invoke table and one
set of fake outputs, used by the offline plan too); helpers in ``tests.harness``.

Two families of fixtures (see ``tests/harness.py``):

- ``fixture_stack`` / ``fixture_resources``: every stack file in ``tests/fixtures/``,
  owned by the tests. Component tests use these.
- ``stack`` / ``resources``: every committed ``Pulumi.<stack>.yaml``, discovered. Only
  modules marked ``pytest.mark.stacks`` (the stack-level suite) may use them, and they
  assert what must hold for any stack, derived from its loaded config: adding a model,
  a pool or an environment to the stack files never needs a test edit.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from moto import mock_aws

from infra.stack.files import ROOT, stack_names
from tests.harness import FIXTURE_STACKS, planned
from tools import plan as plan_tool
from tools.mock_runtime import Recorded

STACKS = tuple(stack_names())
"""Every committed stack, discovered: a new ``Pulumi.<stack>.yaml`` is tested too."""
COMMITTED = frozenset({"stack", "resources", "stack_plan"})
"""Fixtures that read the committed stack files."""


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """AWS mocked by moto, with fake credentials (never a real profile)."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest tests first (so pytest-xdist workers finish together); only the
    stack-level suite reads the committed stack files."""
    items.sort(key=lambda item: item.get_closest_marker("longest") is None)
    wrong = [
        item.nodeid
        for item in items
        if COMMITTED & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("stacks") is None
    ]
    if wrong:
        raise pytest.UsageError(
            "tests outside the stack-level suite use the committed stacks (fixtures "
            f"{', '.join(sorted(COMMITTED))}); use fixture_stack / fixture_resources, or "
            "mark the module pytest.mark.stacks if it asserts what holds for any stack:\n  "
            + "\n  ".join(wrong)
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection built (modules, the program's imports) out of the cyclic
    collector's reach: later collections then scan only what the tests create. And
    collect far less often: every program run allocates hundreds of thousands of
    objects, and the default thresholds spend about a fifth of the suite's CPU time in
    the collector (memory stays below 0.5 GB per process). Runs in each pytest-xdist
    worker, which collects on its own."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over every committed stack (stack-level suite only)."""
    return str(request.param)


@pytest.fixture
def resources(stack: str) -> tuple[Recorded, ...]:
    """Resources the committed ``stack`` registers."""
    return planned(stack, ROOT)


class StackPlan(NamedTuple):
    """The offline plan of a committed stack: its result and its ``build/<stack>/``."""

    result: plan_tool.PlanResult
    out: Path


@pytest.fixture(scope="session")
def _plans(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], StackPlan]:
    root = tmp_path_factory.mktemp("plans")
    done: dict[str, StackPlan] = {}

    def plan_of(stack: str) -> StackPlan:
        if stack not in done:
            result = plan_tool.plan(stack, out_root=root, log=lambda _: None)
            done[stack] = StackPlan(result, root / stack)
        return done[stack]

    return plan_of


@pytest.fixture
def stack_plan(stack: str, _plans: Callable[[str], StackPlan]) -> StackPlan:
    """The offline plan of the committed ``stack`` (once per session and worker)."""
    return _plans(stack)


@pytest.fixture(params=FIXTURE_STACKS)
def fixture_stack(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over every fixture stack (``tests/fixtures/``)."""
    return str(request.param)


@pytest.fixture
def fixture_resources(fixture_stack: str) -> tuple[Recorded, ...]:
    """Resources the fixture stack ``fixture_stack`` registers."""
    return planned(fixture_stack)
