"""GPU rules: limits, the environment cap, instance allowlist, spot, zones."""

from __future__ import annotations

import pytest
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE

from policies.core import Resource
from tests.policy_cases import Mutation, Props, changed, check, check_stack

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
REQS = ("spec", "template", "spec", "requirements")

# A GPU NodePool as the GPU node pools component renders it (karpenter.sh/v1).
GPU_POOL: Props = {
    "apiVersion": "karpenter.sh/v1",
    "kind": "NodePool",
    "metadata": {"name": "gpu-a"},
    "spec": {
        "template": {
            "metadata": {"labels": {"llm-platform.io/accelerator": "nvidia"}},
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": "gpu",
                },
                "requirements": [
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                    {
                        "key": "topology.kubernetes.io/zone",
                        "operator": "In",
                        "values": ["us-west-2a", "us-west-2b"],
                    },
                    {
                        "key": "karpenter.k8s.aws/instance-family",
                        "operator": "In",
                        "values": ["g6", "g5"],
                    },
                    {
                        "key": "karpenter.k8s.aws/instance-size",
                        "operator": "In",
                        "values": ["xlarge", "12xlarge"],
                    },
                    {
                        "key": "karpenter.k8s.aws/instance-gpu-manufacturer",
                        "operator": "In",
                        "values": ["nvidia"],
                    },
                ],
                "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                "expireAfter": "720h",
            },
        },
        "limits": {"cpu": 64, "memory": "256Gi", "nvidia.com/gpu": 4},
        "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "15m"},
    },
}

CPU_POOL: Props = {
    "apiVersion": "karpenter.sh/v1",
    "kind": "NodePool",
    "metadata": {"name": "general"},
    "spec": {
        "template": {
            "spec": {
                "requirements": [
                    {
                        "key": "karpenter.k8s.aws/instance-category",
                        "operator": "In",
                        "values": ["c", "m", "r"],
                    },
                    {
                        "key": "karpenter.sh/capacity-type",
                        "operator": "In",
                        "values": ["on-demand"],
                    },
                ]
            }
        },
        "limits": {"cpu": 64, "memory": "256Gi"},
    },
}


def _req(p: Props, key: str) -> dict[str, object]:
    return next(r for r in p["spec"]["template"]["spec"]["requirements"] if r["key"] == key)


def _drop_req(p: Props, key: str) -> None:
    reqs = p["spec"]["template"]["spec"]["requirements"]
    reqs[:] = [r for r in reqs if r["key"] != key]


RULE_NAMES = (
    "gpu-nodepool-requires-gpu-limit",
    "gpu-nodepool-allowed-instance-types",
    "gpu-nodepool-allows-spot",
    "gpu-nodepool-spans-zones",
)


@pytest.mark.parametrize("name", RULE_NAMES)
def test_the_rendered_gpu_pool_passes(name: str) -> None:
    assert check(name, NODEPOOL, GPU_POOL) == []


@pytest.mark.parametrize("name", RULE_NAMES)
def test_cpu_pools_are_not_gpu_rules_business(name: str) -> None:
    assert check(name, NODEPOOL, CPU_POOL) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["spec"]["template"]["spec"].pop("taints"),
        lambda p: (p["spec"]["template"]["spec"].pop("taints"), p["spec"]["limits"].clear()),
    ],
    ids=["no taint but a GPU limit", "only a GPU family"],
)
def test_a_pool_is_a_gpu_pool_by_limit_family_or_taint(mutate: Mutation) -> None:
    assert check("gpu-nodepool-spans-zones", NODEPOOL, changed(GPU_POOL, mutate)) == []


LIMIT = 'spec.limits["nvidia.com/gpu"]'

# (case, rule, mutation, exact messages)
VIOLATIONS: list[tuple[str, str, Mutation, list[str]]] = [
    (
        "no GPU limit",
        "gpu-nodepool-requires-gpu-limit",
        lambda p: p["spec"]["limits"].pop("nvidia.com/gpu"),
        [f"{LIMIT} is not set: a GPU pool without a GPU limit can grow without bound"],
    ),
    (
        "GPU limit above the maximum",
        "gpu-nodepool-requires-gpu-limit",
        lambda p: p["spec"]["limits"].update({"nvidia.com/gpu": 8}),
        [f"{LIMIT} = 8: above the environment maximum of 4 GPUs per pool"],
    ),
    (
        "GPU limit as a quantity string above the maximum",
        "gpu-nodepool-requires-gpu-limit",
        lambda p: p["spec"]["limits"].update({"nvidia.com/gpu": "5"}),
        [f"{LIMIT} = 5: above the environment maximum of 4 GPUs per pool"],
    ),
    (
        "fractional GPU limit",
        "gpu-nodepool-requires-gpu-limit",
        lambda p: p["spec"]["limits"].update({"nvidia.com/gpu": "2.5"}),
        [f"{LIMIT} = '2.5': not a whole number of GPUs"],
    ),
    (
        "GPU limit unknown at preview",
        "gpu-nodepool-requires-gpu-limit",
        lambda p: p["spec"]["limits"].update({"nvidia.com/gpu": UNKNOWN_NUMBER_VALUE}),
        [f"{LIMIT} cannot be verified at preview (unknown until apply)"],
    ),
    (
        "family outside the allowlist",
        "gpu-nodepool-allowed-instance-types",
        lambda p: _req(p, "karpenter.k8s.aws/instance-family").update(values=["g6", "p5"]),
        [
            "requirement karpenter.k8s.aws/instance-family allows p5: not in the environment "
            "allowlist (g5, g6)"
        ],
    ),
    (
        "size outside the allowlist",
        "gpu-nodepool-allowed-instance-types",
        lambda p: _req(p, "karpenter.k8s.aws/instance-size").update(values=["48xlarge"]),
        [
            "requirement karpenter.k8s.aws/instance-size allows 48xlarge: not in the environment "
            "allowlist (xlarge, 2xlarge, 12xlarge)"
        ],
    ),
    (
        "no family requirement",
        "gpu-nodepool-allowed-instance-types",
        lambda p: _drop_req(p, "karpenter.k8s.aws/instance-family"),
        [
            "requirement karpenter.k8s.aws/instance-family is not an In list: the pool may "
            "launch any value; allowed: g5, g6"
        ],
    ),
    (
        "family requirement with NotIn",
        "gpu-nodepool-allowed-instance-types",
        lambda p: _req(p, "karpenter.k8s.aws/instance-family").update(operator="NotIn"),
        [
            "requirement karpenter.k8s.aws/instance-family is not an In list: the pool may "
            "launch any value; allowed: g5, g6"
        ],
    ),
    (
        "on-demand only",
        "gpu-nodepool-allows-spot",
        lambda p: _req(p, "karpenter.sh/capacity-type").update(values=["on-demand"]),
        ["requirement karpenter.sh/capacity-type allows on-demand: GPU pools must allow spot"],
    ),
    (
        "on-demand fallback in a spot-only environment",
        "gpu-nodepool-allows-spot",
        lambda p: _req(p, "karpenter.sh/capacity-type").update(values=["spot", "on-demand"]),
        ["requirement karpenter.sh/capacity-type allows on-demand: this environment is spot-only"],
    ),
    (
        "capacity type left to Karpenter's default",
        "gpu-nodepool-allows-spot",
        lambda p: _drop_req(p, "karpenter.sh/capacity-type"),
        [
            "requirement karpenter.sh/capacity-type is not set: Karpenter then launches "
            "on-demand only"
        ],
    ),
    (
        "capacity type unknown at preview",
        "gpu-nodepool-allows-spot",
        lambda p: _req(p, "karpenter.sh/capacity-type").update(values=[UNKNOWN_STRING_VALUE]),
        [
            "spec.template.spec.requirements[0].values[0] cannot be verified at preview "
            "(unknown until apply)"
        ],
    ),
    (
        "one zone",
        "gpu-nodepool-spans-zones",
        lambda p: _req(p, "topology.kubernetes.io/zone").update(values=["us-west-2a"]),
        [
            "requirement topology.kubernetes.io/zone spans 1 zone(s) (us-west-2a): at least 2 "
            "required"
        ],
    ),
    (
        "zones not constrained",
        "gpu-nodepool-spans-zones",
        lambda p: _drop_req(p, "topology.kubernetes.io/zone"),
        [
            "requirement topology.kubernetes.io/zone is not an In list: the pool's zones cannot "
            "be verified (at least 2 required)"
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "messages"),
    [(n, m, msg) for _, n, m, msg in VIOLATIONS],
    ids=[c for c, *_ in VIOLATIONS],
)
def test_one_changed_field_violates(name: str, mutate: Mutation, messages: list[str]) -> None:
    assert check(name, NODEPOOL, changed(GPU_POOL, mutate)) == messages


def test_a_limit_the_engine_sends_as_a_double_is_whole() -> None:
    # Pulumi carries numbers as protobuf doubles: the rendered 4 reaches rules as 4.0.
    pool = changed(GPU_POOL, lambda p: p["spec"]["limits"].update({"nvidia.com/gpu": 4.0}))
    assert check("gpu-nodepool-requires-gpu-limit", NODEPOOL, pool) == []


def test_spot_with_on_demand_fallback_passes_where_not_spot_only() -> None:
    pool = changed(
        GPU_POOL,
        lambda p: _req(p, "karpenter.sh/capacity-type").update(values=["spot", "on-demand"]),
    )
    settings = {"spotOnly": False}
    assert check("gpu-nodepool-allows-spot", NODEPOOL, pool, settings) == []


def test_no_size_allowlist_admits_every_size() -> None:
    pool = changed(
        GPU_POOL, lambda p: _req(p, "karpenter.k8s.aws/instance-size").update(values=["48xlarge"])
    )
    settings = {"allowedInstanceFamilies": ["g5", "g6"], "allowedInstanceSizes": []}
    assert check("gpu-nodepool-allowed-instance-types", NODEPOOL, pool, settings) == []


def _pools(*limits: int | None) -> list[Resource]:
    def pool(limit: int | None) -> Props:
        return changed(
            GPU_POOL,
            lambda p: (
                p["spec"]["limits"].update({"nvidia.com/gpu": limit})
                if limit is not None
                else p["spec"]["limits"].pop("nvidia.com/gpu")
            ),
        )

    return [Resource(NODEPOOL, f"pool-{i}", pool(limit)) for i, limit in enumerate(limits)] + [
        Resource(NODEPOOL, "general", CPU_POOL)
    ]


def test_pools_within_the_cap_pass() -> None:
    assert check_stack("gpu-total-within-cap", _pools(4, 2)) == []


def test_pools_above_the_cap_violate() -> None:
    assert check_stack("gpu-total-within-cap", _pools(4, 3)) == [
        "GPU limits sum to 7 (pool-0 4 + pool-1 3), above the environment cap of 6 GPUs"
    ]


def test_a_pool_without_limit_makes_the_total_unbounded() -> None:
    assert check_stack("gpu-total-within-cap", _pools(2, None)) == [
        "GPU pools without a whole-number GPU limit (pool-1): unbounded total"
    ]
