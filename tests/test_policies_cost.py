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
    "tags": {"cost-center": "ml-test", "owner": "platform-team@example.com"},
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


def test_every_taggable_type_the_program_creates_is_listed(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    unlisted = sorted(
        t for t in _provider_types(fixture_resources) if _takes_tags(t) and t not in TAGGABLE_TYPES
    )
    assert unlisted == [], "add these to policies.cost.TAGGABLE_TYPES"


def test_the_fixture_stacks_tag_every_taggable_resource(fixture_stack: str) -> None:
    checked = [r for r in planned(fixture_stack) if r.type in TAGGABLE_TYPES]
    assert checked
    settings = {"requiredTags": ["cost-center", "environment", "owner", "project"]}
    for r in checked:
        assert check("cost-tags-required", r.type, dict(r.inputs), settings) == [], r.name


# --------------------------------------------------------------------------- GPU spend

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
SPEND = {"monthlyBudgetUsd": 6000, "region": "us-west-2"}


def _gpu_pool(name: str, limit: int, families: list[str], sizes: list[str]) -> Resource:
    requirements = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": families},
        {"key": "karpenter.k8s.aws/instance-size", "operator": "In", "values": sizes},
    ]
    props = {
        "spec": {
            "limits": {"nvidia.com/gpu": limit},
            "template": {"spec": {"requirements": requirements}},
        }
    }
    return Resource(NODEPOOL, name, props)


def test_gpu_spend_within_the_budget_passes() -> None:
    # 4 x g6.xlarge at USD 0.8048/h x 730 h = 2,350.02 (infra.core.pricing prices).
    pools = [_gpu_pool("gpu-a", 4, ["g6"], ["xlarge"])]
    assert check_stack("cost-gpu-worst-case-within-budget", pools, SPEND) == []


def test_gpu_spend_over_the_budget_names_the_worst_types() -> None:
    pools = [
        _gpu_pool("gpu-a", 4, ["g6"], ["xlarge"]),
        _gpu_pool("gpu-big", 4, ["g6e"], ["xlarge", "12xlarge"]),
    ]
    assert check_stack("cost-gpu-worst-case-within-budget", pools, SPEND) == [
        "worst-case monthly GPU spend USD 10,009.65 (gpu-a 2,350.02 = 4 x g6.xlarge; "
        "gpu-big 7,659.63 = 1 x g6e.12xlarge) exceeds the budget USD 6,000.00"
    ]


def test_gpu_spend_counts_only_whole_instances_under_every_limit() -> None:
    # Karpenter launches a type only while its whole capacity fits every limit left. At
    # 4 GPUs, 64 vCPUs and 256Gi: a g6e.12xlarge (384 GiB, 355.2 as Karpenter counts it)
    # never fits; two g6e.4xlarge (118.4 GiB each) do, not four; four g6e.xlarge
    # (4 x 1.861 x 730 = 5,434.12) are the worst case. Without the cpu and memory limits it
    # would be 4 x g6e.4xlarge (8,772.38).
    big = _gpu_pool("gpu-big", 4, ["g6e"], ["xlarge", "4xlarge", "12xlarge"])
    big.props["spec"]["limits"].update(cpu=64, memory="256Gi")
    assert check_stack(
        "cost-gpu-worst-case-within-budget", [big], {**SPEND, "monthlyBudgetUsd": 1}
    ) == [
        "worst-case monthly GPU spend USD 5,434.12 (gpu-big 5,434.12 = 4 x g6e.xlarge) "
        "exceeds the budget USD 1.00"
    ]


def test_gpu_spend_of_an_unpriced_region_cannot_pass() -> None:
    pools = [_gpu_pool("gpu-a", 4, ["g6"], ["xlarge"])]
    settings = {**SPEND, "region": "eu-west-1"}
    [message] = check_stack("cost-gpu-worst-case-within-budget", pools, settings)
    assert message.startswith("GPU pool gpu-a: no on-demand price for g6.xlarge in eu-west-1")


def test_gpu_spend_of_a_pool_without_limit_is_unbounded() -> None:
    pool = _gpu_pool("gpu-a", 4, ["g6"], ["xlarge"])
    pool.props["spec"]["limits"].clear()
    assert check_stack("cost-gpu-worst-case-within-budget", [pool], SPEND) == [
        "GPU pool gpu-a has no GPU limit or family list: spend is unbounded"
    ]
