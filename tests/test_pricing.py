"""Cost estimator: price table, worst-case and expected spend, budget check."""

from __future__ import annotations

import re

import pytest

from infra.core.gpu_catalog import GPU_INSTANCE_TYPES
from infra.core.pricing import (
    ESTIMATED,
    ON_DEMAND_USD_PER_HOUR,
    MissingPriceError,
    nodepool_spend,
    on_demand_price,
)
from infra.stack.stack_cost import budget_problems
from tests.harness import SMALL, stack_config, typed_config
from tools.cost_summary import cost_lines


@pytest.mark.parametrize("region", ["us-west-2", "us-east-1"])
def test_every_catalog_type_has_a_price_in_the_stack_regions(region: str) -> None:
    # p5e is not offered on demand in us-east-1: the one deliberate gap.
    missing = sorted(set(GPU_INSTANCE_TYPES) - set(ON_DEMAND_USD_PER_HOUR[region]))
    assert missing == ([] if region == "us-west-2" else ["p5e.48xlarge"])
    assert set(ON_DEMAND_USD_PER_HOUR[region]) <= set(GPU_INSTANCE_TYPES)
    assert set(GPU_INSTANCE_TYPES) >= ESTIMATED


def test_worst_case_is_the_maximum_over_types_at_the_gpu_limit() -> None:
    # 4 GPUs: 1 x g6e.12xlarge (10.49264/h) = 7,659.63 beats 4 x g6e.xlarge (1.861/h) =
    # 5,434.12: here the 4-GPU instance is the dearer way to fill the limit.
    spend = nodepool_spend(
        "p",
        gpu_limit=4,
        families=["g6e"],
        sizes=["xlarge", "12xlarge"],
        capacity_types=["on-demand"],
        region="us-east-1",
    )
    assert (spend.worst_instance_type, spend.worst_instances) == ("g6e.12xlarge", 1)
    assert spend.worst_case_monthly_usd == round(10.49264 * 730, 2) == 7659.63
    assert spend.expected_monthly_usd == spend.worst_case_monthly_usd  # no spot allowed


def test_a_pool_holds_whole_instances_only() -> None:
    # 5 GPUs admit one 4-GPU g6.12xlarge (4.6016/h = 3,359.17), never two (Karpenter
    # launches a type only while it fits the limit left); 5 x g6.4xlarge (1.3232) =
    # 4,829.68 is the dearer way to fill the limit.
    spend = nodepool_spend(
        "p",
        gpu_limit=5,
        families=["g6"],
        sizes=["4xlarge", "12xlarge"],
        capacity_types=["spot", "on-demand"],
        region="us-west-2",
        spot_discount=0.6,
    )
    assert (spend.worst_instance_type, spend.worst_instances) == ("g6.4xlarge", 5)
    assert spend.worst_case_monthly_usd == 4829.68
    assert spend.expected_monthly_usd == round(5 * 1.3232 * 730 * 0.4, 2) == 1931.87
    assert spend.allows_spot


def test_cpu_and_memory_limits_bound_the_worst_case() -> None:
    # 8 GPUs alone: 8 x g5.4xlarge (1.624) = 9,484.16. Under 64 vCPUs and 256 GiB only four
    # g5.4xlarge fit (16 vCPUs and 59.2 GiB as Karpenter counts 64 GiB each): 4,742.08,
    # less than 8 x g5.xlarge (1.006) = 5,875.04, which is then the worst case.
    def spend(**limits: int) -> tuple[str, int, float]:
        s = nodepool_spend(
            "p",
            gpu_limit=8,
            families=["g5"],
            sizes=["xlarge", "4xlarge"],
            capacity_types=["on-demand"],
            region="us-east-1",
            **limits,
        )
        return s.worst_instance_type, s.worst_instances, s.worst_case_monthly_usd

    assert spend() == ("g5.4xlarge", 8, 9484.16)
    assert spend(cpu_limit=64, memory_limit_gib=256) == ("g5.xlarge", 8, 5875.04)
    with pytest.raises(ValueError, match=r"^pool p: its limits hold no allowed instance type$"):
        spend(cpu_limit=2)


def test_single_gpu_types_can_be_the_worst_case() -> None:
    # 4 GPUs: 4 x g5.4xlarge (1.624) = 4,742.08 > 1 x g5.12xlarge (5.672) = 4,140.56.
    spend = nodepool_spend(
        "p",
        gpu_limit=4,
        families=["g5"],
        sizes=["4xlarge", "12xlarge"],
        capacity_types=["spot"],
        region="us-west-2",
    )
    assert (spend.worst_instance_type, spend.worst_instances) == ("g5.4xlarge", 4)
    assert spend.worst_case_monthly_usd == 4742.08


def test_missing_price_names_the_type_and_region() -> None:
    with pytest.raises(
        MissingPriceError,
        match=r"^no on-demand price for p5e\.48xlarge in us-east-1 \(price table as of "
        r"\d{4}-\d{2}-\d{2} covers regions us-east-1, us-west-2\); add it to "
        r"infra/core/pricing\.py from the AWS price list$",
    ):
        nodepool_spend(
            "p",
            gpu_limit=8,
            families=["p5e"],
            sizes=[],
            capacity_types=["on-demand"],
            region="us-east-1",
        )
    with pytest.raises(
        MissingPriceError, match=r"^no on-demand price for g5\.xlarge in eu-west-1 "
    ):
        on_demand_price("g5.xlarge", "eu-west-1")


def test_bad_nodepool_inputs_are_named() -> None:
    with pytest.raises(ValueError, match=r"^pool p: not NVIDIA GPU families: m7i$"):
        nodepool_spend(
            "p", gpu_limit=1, families=["m7i"], sizes=[], capacity_types=[], region="us-west-2"
        )
    with pytest.raises(ValueError, match=r"^gpu_limit \(0\) must be >= 1$"):
        nodepool_spend(
            "p", gpu_limit=0, families=["g5"], sizes=[], capacity_types=[], region="us-west-2"
        )
    with pytest.raises(ValueError, match=r"^pool p allows no GPU instance type$"):
        nodepool_spend(
            "p", gpu_limit=1, families=["p4d"], sizes=["xlarge"], capacity_types=[], region="x"
        )


def test_the_fixture_stacks_fit_their_budgets(fixture_stack: str) -> None:
    assert budget_problems(typed_config(fixture_stack)) == []


def test_cost_table_of_a_fixture_stack_worked_out_by_hand() -> None:
    # From infra/core/pricing.py, 730 h: CPU pool 16 vCPU (64 GiB holds 16 of m) of m5zn
    # at 0.0826; EBS 3 x 50 + 8 x 50 + 4 x 150 + 30 + 5 + 32 GiB at 0.08; logs 5 GiB/day
    # x 730/24 days at 0.50 plus 5 x 14 GiB stored at 0.03; NAT 1 x 0.045 h + 500 GiB;
    # ECR endpoints 2 x 2 zones x 0.01 h; each GPU image volume (600 - 125) MiB/s x 0.04.
    expected = [
        ("EKS control plane", "73.00", "73.00", "1 cluster, standard support"),
        ("NAT gateways", "55.35", "55.35", "1 x 730 h + 500 GiB"),
        ("VPC interface endpoints", "29.20", "29.20", "2 x 2 zones"),
        ("system node group", "441.50", "294.34", "3 x m7i.xlarge"),
        ("CPU NodePool", "964.77", "96.48", "16 vCPU / 64 GiB limit, m5zn prices"),
        ("GPU NodePool gpu-lab", "4,742.08", "1,896.83", "4 x g5.4xlarge"),
        (
            "EBS gp3",
            "173.36",
            "83.36",
            "1,217 GiB: roots of 3 system, 8 CPU, 4 GPU nodes + 67 GiB PVCs; GPU image volumes "
            "at 600 MiB/s, 3000 IOPS",
        ),
        ("CloudWatch Logs", "78.14", "78.14", "5 GiB/day, kept 14 days"),
        ("load balancers", "0.00", "0.00", "none created"),
        ("total", "6,557.40", "2,606.70", ""),
    ]
    lines = cost_lines(typed_config(SMALL))
    # name, worst, expected, basis (the total has no basis)
    rows = [(*re.split(r"\s{2,}", line.strip(), maxsplit=3), "")[:4] for line in lines[2:-1]]
    assert rows == expected
    assert (
        lines[-1]
        == "  budget lab-cluster (whole stack) 7,000.00: worst case 6,557.40, headroom 442.60"
    )


def test_a_stack_over_a_budget_is_reported() -> None:
    from infra.stack.config import SECRET_KEYS, load_config

    raw = {k.removeprefix("llm-platform:"): v for k, v in stack_config(SMALL).items()}
    raw["gpuPools"][0]["gpuLimit"] = 8
    region = raw.pop("aws:region")
    secrets = frozenset(k for k in raw if k in SECRET_KEYS)
    cfg = load_config(raw, stack=SMALL, region=region, secret_keys=secrets)
    # 8 x g5.2xlarge (7,078.08: the pool's cpu and memory limits hold no more g5.4xlarge)
    # and 8 GPU node roots (+ 4 x 150 GiB, + 4 x 19.00 of throughput) over the rest.
    assert budget_problems(cfg) == [
        "budget lab-cluster: worst case of the stack USD 9,017.40 exceeds USD 7,000.00 by "
        "USD 2,017.40"
    ]
    assert cost_lines(cfg)[-1] == f"  OVER BUDGET: {budget_problems(cfg)[0]}"


def test_every_priced_region_prices_the_platform_too() -> None:
    """An unpriced region is one config error (infra/stack/config.py): the GPU and the
    platform tables must cover the same regions for that to hold."""
    from infra.core.pricing import ON_DEMAND_USD_PER_HOUR, PLATFORM_USD

    assert set(PLATFORM_USD) == set(ON_DEMAND_USD_PER_HOUR)
