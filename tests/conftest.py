"""Shared fixtures. The mocks live in ``tools.mock_runtime`` (one invoke table and one
set of fake outputs, used by the offline plan too); helpers in ``tests.harness``."""

from __future__ import annotations

import pytest

from tests.harness import planned
from tools.mock_runtime import Recorded

STACKS = ("dev", "prod")


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over every committed stack."""
    return str(request.param)


@pytest.fixture
def resources(stack: str) -> tuple[Recorded, ...]:
    """Resources the committed ``stack`` registers."""
    return planned(stack)
