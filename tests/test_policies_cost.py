"""Cost rules: budgets exist, cost tags everywhere; the taggable-type list matches the
provider schemas."""

from __future__ import annotations

import importlib
import inspect

import pytest

from policies.core import Resource
from policies.cost import TAGGABLE_TYPES
from tests.harness import planned
from tests.policy_cases import Mutation, Props, changed, check, check_stack
from tools.mock_runtime import Recorded

ROLE = "aws:iam/role:Role"
BUDGET = "aws:budgets/budget:Budget"
ROLE_PROPS: Props = {
    "assumeRolePolicy": "{}",
    "tags": {"cost-center": "ml-platform-dev", "owner": "platform-team@example.com"},
}

CASES: list[tuple[str, Mutation, list[str]]] = [
    (
        "one tag missing",
        lambda p: p["tags"].pop("owner"),
        ["tags lack owner (required: cost-center, owner)"],
    ),
    (
        "tag with an empty value",
        lambda p: p["tags"].update({"cost-center": ""}),
        ["tags lack cost-center (required: cost-center, owner)"],
    ),
    (
        "no tags at all",
        lambda p: p.pop("tags"),
        ["tags is not set; required: cost-center, owner"],
    ),
]


def test_a_tagged_resource_passes() -> None:
    assert check("cost-tags-required", ROLE, ROLE_PROPS) == []


@pytest.mark.parametrize(("mutate", "messages"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_missing_cost_tags_violate(mutate: Mutation, messages: list[str]) -> None:
    assert check("cost-tags-required", ROLE, changed(ROLE_PROPS, mutate)) == messages


def test_untaggable_types_without_tags_are_not_checked() -> None:
    attachment = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
    assert check("cost-tags-required", attachment, {"role": "r", "policyArn": "arn"}) is None


def test_an_unlisted_type_is_checked_when_it_has_tags() -> None:
    assert check("cost-tags-required", "aws:ecr/repository:Repository", {"tags": {}}) == [
        "tags is not set; required: cost-center, owner"
    ]


def test_the_stack_needs_a_budget() -> None:
    role = Resource(ROLE, "r", ROLE_PROPS)
    assert check_stack("cost-budget-defined", [role, Resource(BUDGET, "b", {})]) == []
    assert check_stack("cost-budget-defined", [role]) == [
        f"the stack creates no {BUDGET}: every environment needs a budget that alerts"
    ]


def _takes_tags(type_: str) -> bool:
    """Whether the provider SDK's resource class for ``type_`` has a ``tags`` input."""
    package, module, name = type_.split(":")
    if package == "eks":
        sdk = importlib.import_module("pulumi_eks")
    else:
        sdk = importlib.import_module(f"pulumi_{package}.{module.split('/')[0]}")
    return "tags" in inspect.signature(getattr(sdk, name)._internal_init).parameters


@pytest.mark.parametrize("type_", sorted(TAGGABLE_TYPES))
def test_every_listed_type_takes_tags(type_: str) -> None:
    assert _takes_tags(type_)


def _provider_types(resources: tuple[Recorded, ...]) -> set[str]:
    return {r.type for r in resources if r.type.split(":")[0] in ("aws", "eks")}


def test_every_taggable_type_the_stacks_create_is_listed(resources: tuple[Recorded, ...]) -> None:
    unlisted = sorted(
        t for t in _provider_types(resources) if _takes_tags(t) and t not in TAGGABLE_TYPES
    )
    assert unlisted == [], "add these to policies.cost.TAGGABLE_TYPES"


def test_the_committed_stacks_tag_every_taggable_resource(stack: str) -> None:
    checked = [r for r in planned(stack) if r.type in TAGGABLE_TYPES]
    assert checked
    settings = {"requiredTags": ["cost-center", "environment", "owner", "project"]}
    for r in checked:
        assert check("cost-tags-required", r.type, dict(r.inputs), settings) == [], r.name
