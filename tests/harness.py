"""Helpers shared by the tests: run the program under mocks, find and resolve things.

The mocks themselves live in ``tools.mock_runtime`` (the offline plan uses the very
same ones); ``tests/conftest.py`` exposes these helpers as fixtures.

Two kinds of stack files:

- ``tests/fixtures/Pulumi.<stack>.yaml`` (:data:`FIXTURES`): owned by the tests.
  Component tests read only these (the default ``root`` of every helper here), so
  they assert on data that changes only with them, not with an environment.
- ``Pulumi.<stack>.yaml`` at the project root (``infra.stack.files.ROOT``): the
  committed environments. Only the stack-level suite (modules marked ``stacks``) reads
  them, discovering them with ``stack_names()`` and asserting what holds for any stack.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pulumi
from pulumi.runtime.sync_await import _sync_await

from infra.core.schema import ConfigError
from infra.stack.config import PlatformConfig
from infra.stack.files import StackFile, load_stack_file, stack_names, typed_stack_config
from tools.mock_runtime import Recorded, Run, run_program
from workloads.serving.config import ModelConfig

T = TypeVar("T")
Mutation = Callable[[dict[str, Any]], object]

FIXTURES = Path(__file__).resolve().parent / "fixtures"
"""Stack files owned by the tests."""
FIXTURE_STACKS = tuple(stack_names(FIXTURES))
SMALL = "small"
"""A small fixture stack: two zones, public endpoint, spot-only GPUs, one budget."""
HA = "ha"
"""A highly available fixture stack: three zones, private endpoint, on-demand fallback,
replicated monitoring, a cluster and a namespace budget."""


def model_8b(**overrides: Any) -> ModelConfig:
    """A model entry of the shape of Llama-3-8B (bf16), with ``overrides`` (camelCase)."""
    return ModelConfig.model_validate(
        {
            "name": "m",
            "servedModelName": "org/M-8B",
            "revision": "r1",
            "gpuPool": "gpu",
            "parametersBillions": 8.03,
            "numLayers": 32,
            "numKvHeads": 8,
            "headDim": 128,
            **overrides,
        }
    )


def stack_config(stack: str, root: Path = FIXTURES) -> dict[str, Any]:
    """The decoded config of a stack file (keys fully qualified)."""
    stack_file = load_stack_file(stack, root)
    return {k: _decode(v) for k, v in stack_file.config.items()}


def _decode(value: str) -> Any:
    return json.loads(value) if value[:1] in "[{" else value


@functools.cache
def typed_config(stack: str, root: Path = FIXTURES) -> PlatformConfig:
    """The validated config of a stack file (secrets are offline placeholders)."""
    return typed_stack_config(stack, root)


def cluster_name(stack: str, root: Path = FIXTURES) -> str:
    """The stack's EKS cluster name (``cluster.name``), the prefix of most AWS names."""
    return typed_config(stack, root).cluster.name


def fixture_where(predicate: Callable[[PlatformConfig], bool], what: str) -> str:
    """The first fixture stack whose config satisfies ``predicate``; fails naming
    ``what`` when none does (the fixtures must cover both sides of a property)."""
    for stack in FIXTURE_STACKS:
        if predicate(typed_config(stack)):
            return stack
    raise AssertionError(f"no fixture stack in {FIXTURES} has {what}")


def run_stack(
    stack: str,
    mutate: Mutation | None = None,
    *,
    clear_text: frozenset[str] = frozenset(),
    root: Path = FIXTURES,
) -> Run:
    """Run ``__main__.py`` with the stack's config, optionally mutated first.

    ``mutate`` gets the decoded config (``{"llm-platform:gpuPools": [...], ...}``) and
    changes it in place, so a test states only the one field it changes. Keys in
    ``clear_text`` are passed as plain (not secret) config.
    """
    stack_file: StackFile = load_stack_file(stack, root)
    config = copy.deepcopy(stack_config(stack, root))
    if mutate is not None:
        mutate(config)
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    return run_program(encoded, stack=stack, secret_keys=stack_file.secret_keys - clear_text)


def rejected(stack: str, mutate: Mutation, root: Path = FIXTURES) -> list[str]:
    """The config problems the program reports for the mutated stack; fails unless it
    stopped with a ``ConfigError`` before registering anything."""
    run = run_stack(stack, mutate, root=root)
    assert isinstance(run.error, ConfigError), run.error
    assert run.resources == []
    return run.error.problems


@functools.cache
def planned(stack: str, root: Path = FIXTURES) -> tuple[Recorded, ...]:
    """Resources of the stack (cached: the program is deterministic)."""
    run = run_stack(stack, root=root)
    if run.error is not None:
        raise run.error
    return tuple(run.resources)


def find_all(resources: tuple[Recorded, ...] | list[Recorded], type_: str) -> list[Recorded]:
    return sorted((r for r in resources if r.type == type_), key=lambda r: r.name)


def find(resources: tuple[Recorded, ...] | list[Recorded], type_: str, name: str) -> Recorded:
    """The one resource of ``type_`` named ``name``; fails listing what exists."""
    matches = [r for r in resources if r.type == type_ and r.name == name]
    if len(matches) != 1:
        names = sorted(r.name for r in resources if r.type == type_)
        raise AssertionError(f"expected one {type_} named {name!r}; found {names}")
    return matches[0]


def kubernetes_objects(resources: tuple[Recorded, ...] | list[Recorded]) -> list[dict[str, Any]]:
    """Every native Kubernetes object the program renders (built-in kinds and CRs)."""
    from tools.plan import is_kubernetes_object

    return [r.inputs for r in resources if is_kubernetes_object(r)]


def resolve(output: pulumi.Output[T]) -> T:
    """Value of an Output; fails if it is unknown, so an assertion cannot silently skip.

    Call it inside a program run (``run_component``), where the mock engine is live.
    The SDK's ``_sync_await`` is the one way to wait for a future inside the running
    loop (the public ``pulumi.runtime.test`` needs an ``apply`` chain instead).
    """
    if not _sync_await(output.is_known()):
        raise AssertionError("Output is unknown: the assertion would not have run")
    return _sync_await(output.future())  # type: ignore[return-value]


def run_component(build: Callable[[], T], stack: str = "test") -> tuple[list[Recorded], T]:
    """Run ``build`` (which creates components) under mocks; return resources and result.

    Resolve Outputs with :func:`resolve` inside ``build`` and return plain values.
    """
    box: list[T] = []
    run = run_program({}, stack=stack, program=lambda: box.append(build()))
    if run.error is not None:
        raise run.error
    return run.resources, box[0]
