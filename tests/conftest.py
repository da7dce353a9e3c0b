"""Shared fixtures. The mocks live in ``tools.mock_runtime`` (one invoke table and one
set of fake outputs, used by the offline plan too); helpers in ``tests.harness``."""

from __future__ import annotations

import gc

import pytest

from infra.stack.files import stack_names
from tests.harness import planned
from tools.mock_runtime import Recorded

STACKS = tuple(stack_names())
"""Every committed stack, discovered: a new ``Pulumi.<stack>.yaml`` is tested too."""


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection built (modules, the program's imports) out of the cyclic
    collector's reach: later collections then scan only what the tests create."""
    gc.collect()
    gc.freeze()


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over every committed stack."""
    return str(request.param)


@pytest.fixture
def resources(stack: str) -> tuple[Recorded, ...]:
    """Resources the committed ``stack`` registers."""
    return planned(stack)
