"""Cost rules: budgets exist, cost tags everywhere; the taggable-type list matches the
provider schemas."""

from __future__ import annotations

import importlib
import inspect

import pytest

from infra.core.pricing import PRICES_AS_OF
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


# --------------------------------------------------------------------------- budgets

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
RULE = "cost-worst-case-within-budgets"
CLUSTER = {"name": "c", "scope": "cluster", "monthlyUsd": 6000}


def _spend(*budgets: dict[str, object], platform: float = 1000) -> dict[str, object]:
    return {
        "region": "us-west-2",
        "platformWorstCaseMonthlyUsd": platform,
        "budgets": list(budgets),
    }


def _gpu_pool(name: str, limit: int, families: list[str], sizes: list[str]) -> Resource:
    requirements = [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": families},
        {"key": "karpenter.k8s.aws/instance-size", "operator": "In", "values": sizes},
    ]
    props = {
        "metadata": {"name": name},
        "spec": {
            "limits": {"nvidia.com/gpu": limit},
            "template": {"spec": {"requirements": requirements}},
        },
    }
    return Resource(NODEPOOL, name, props)


def _model(name: str, pool: str, gpus: int = 1, namespace: str = "inference") -> Resource:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "karpenter.sh/nodepool", "operator": "In", "values": [pool]}
                        ]
                    }
                ]
            }
        }
    }
    container = {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": gpus}}}
    props = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"llm-platform.io/model": name}},
                "spec": {"affinity": affinity, "containers": [container]},
            },
        },
    }
    return Resource(DEPLOYMENT, f"model-{name}", props)


def _scaler(name: str, max_replicas: int, namespace: str = "inference") -> Resource:
    props = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scaleTargetRef": {"name": name}, "maxReplicaCount": max_replicas},
    }
    return Resource(SCALED_OBJECT, f"scaler-{name}", props)


G6 = _gpu_pool("gpu-a", 4, ["g6"], ["xlarge"])  # 4 x 0.8048 x 730 = 2,350.02
G6E = _gpu_pool("gpu-big", 2, ["g6e"], ["xlarge", "12xlarge"])  # 2 x xlarge = 2,717.06
# (a 4-GPU g6e.12xlarge never fits the 2-GPU limit: Karpenter launches whole instances)
UNBOUNDED = _gpu_pool("gpu-a", 4, ["g6"], ["xlarge"])
UNBOUNDED.props["spec"]["limits"].clear()
LIMITED = _gpu_pool("gpu-big", 4, ["g6e"], ["xlarge", "4xlarge", "12xlarge"])
LIMITED.props["spec"]["limits"].update(cpu=64, memory="256Gi")
CHAT = [_model("m1", "gpu-a"), _scaler("m1", 3)]  # 3 x 1 GPU x 0.8048 x 730 = 1,762.51

# (case, resources, settings, exact messages)
BUDGET_CASES: list[tuple[str, list[Resource], dict[str, object], list[str]]] = [
    ("the stack fits its cluster budget", [G6], _spend(CLUSTER), []),
    (
        "GPU pools plus the rest of the stack over the cluster budget",
        [G6, G6E],
        _spend(CLUSTER),
        [
            "budget c: worst-case monthly spend USD 6,067.08 (GPU pools 5,067.08 (gpu-a "
            "2,350.02 = 4 x g6.xlarge; gpu-big 2,717.06 = 2 x g6e.xlarge) + rest of the "
            "stack 1,000.00) exceeds USD 6,000.00"
        ],
    ),
    (
        "the rest of the stack alone tips it over",
        [G6],
        _spend(CLUSTER, platform=4000),
        [
            "budget c: worst-case monthly spend USD 6,350.02 (GPU pools 2,350.02 (gpu-a "
            "2,350.02 = 4 x g6.xlarge) + rest of the stack 4,000.00) exceeds USD 6,000.00"
        ],
    ),
    (
        "a namespace budget that holds its models",
        [G6, *CHAT],
        _spend({"name": "ns", "scope": "namespace", "target": "inference", "monthlyUsd": 1800}),
        [],
    ),
    (
        "a namespace budget below its models at max replicas",
        [G6, *CHAT],
        _spend({"name": "ns", "scope": "namespace", "target": "inference", "monthlyUsd": 1000}),
        [
            "budget ns: worst-case monthly spend USD 1,762.51 (GPU pods of namespace inference "
            "at their max replicas) exceeds USD 1,000.00"
        ],
    ),
    (
        "a model budget below its model",
        [G6, *CHAT],
        _spend({"name": "m", "scope": "model", "target": "m1", "monthlyUsd": 1000}),
        [
            "budget m: worst-case monthly spend USD 1,762.51 (GPU pods of model m1 at their "
            "max replicas) exceeds USD 1,000.00"
        ],
    ),
    (
        "a model budget of another namespace's model is not charged",
        [G6, *CHAT],
        _spend({"name": "ns", "scope": "namespace", "target": "other", "monthlyUsd": 1}),
        [],
    ),
    (
        "a model capped at its pool's worst case",
        [G6, _model("m1", "gpu-a"), _scaler("m1", 10)],
        _spend({"name": "m", "scope": "model", "target": "m1", "monthlyUsd": 2400}),
        [],
    ),
    (
        "a model on a pool the stack does not have",
        [G6, _model("m1", "gpu-x")],
        _spend({"name": "m", "scope": "model", "target": "m1", "monthlyUsd": 2400}),
        [
            "budget m: kubernetes:apps/v1:Deployment model-m1 runs on no GPU pool of the "
            "stack (gpu-x): its cost cannot be bounded"
        ],
    ),
    (
        "an unpriced region",
        [G6],
        {**_spend(CLUSTER), "region": "eu-west-1"},
        [
            "GPU pool gpu-a: no on-demand price for g6.xlarge in eu-west-1 (price table as of "
            f"{PRICES_AS_OF} covers regions us-east-1, us-west-2); add it to "
            "infra/core/pricing.py from the AWS price list"
        ],
    ),
    (
        "a pool without a GPU limit",
        [UNBOUNDED],
        _spend(CLUSTER),
        ["GPU pool gpu-a has no GPU limit or family list: spend is unbounded"],
    ),
    (
        "only whole instances under every limit count",
        # Karpenter launches a type only while its whole capacity fits every limit left. At
        # 4 GPUs, 64 vCPUs and 256Gi: a g6e.12xlarge (384 GiB, 355.2 as Karpenter counts
        # it) never fits; two g6e.4xlarge (118.4 GiB each) do, not four; four g6e.xlarge
        # (4 x 1.861 x 730 = 5,434.12) are the worst case, not 4 x g6e.4xlarge (8,772.38).
        [LIMITED],
        _spend(CLUSTER),
        [
            "budget c: worst-case monthly spend USD 6,434.12 (GPU pools 5,434.12 (gpu-big "
            "5,434.12 = 4 x g6e.xlarge) + rest of the stack 1,000.00) exceeds USD 6,000.00"
        ],
    ),
]


@pytest.mark.parametrize(
    ("found", "settings", "messages"),
    [pytest.param(r, s, m, id=c) for c, r, s, m in BUDGET_CASES],
)
def test_every_budget_against_the_worst_case_of_its_scope(
    found: list[Resource], settings: dict[str, object], messages: list[str]
) -> None:
    assert check_stack(RULE, found, settings) == messages
