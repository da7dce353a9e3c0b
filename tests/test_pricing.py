"""Cost estimator: price table, worst-case and expected spend, budget check."""

from __future__ import annotations

import pytest

from infra.core.gpu_catalog import GPU_INSTANCE_TYPES
from infra.core.pricing import (
    ESTIMATED,
    ON_DEMAND_USD_PER_HOUR,
    MissingPriceError,
    nodepool_spend,
    on_demand_price,
)
from infra.stack.gpu_spend import check_budget
from tests.harness import HA, SMALL, stack_config, typed_config
from tools.cost_summary import gpu_spend_lines


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


def test_mixed_gpu_counts_round_instances_up_and_pick_the_dearest() -> None:
    # 5 GPUs: 5 x g6.4xlarge (1.3232) = 4,829.68; 2 x g6.12xlarge (4.6016) = 6,718.34.
    spend = nodepool_spend(
        "p",
        gpu_limit=5,
        families=["g6"],
        sizes=["4xlarge", "12xlarge"],
        capacity_types=["spot", "on-demand"],
        region="us-west-2",
        spot_discount=0.6,
    )
    assert (spend.worst_instance_type, spend.worst_instances) == ("g6.12xlarge", 2)
    assert spend.worst_case_monthly_usd == 6718.34
    assert spend.expected_monthly_usd == round(2 * 4.6016 * 730 * 0.4, 2) == 2687.33
    assert spend.allows_spot


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
        r"infra/core/pricing\.py ON_DEMAND_USD_PER_HOUR from the AWS price list$",
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


def test_the_fixture_stacks_fit_their_cluster_budget(fixture_stack: str) -> None:
    assert check_budget(typed_config(fixture_stack)) == []


def test_summary_lines_of_the_fixture_stacks(fixture_stack: str) -> None:
    expected = {
        SMALL: [
            "  gpu-lab    4 GPUs  worst     4,742.08 (4 x g5.4xlarge)  expected     1,896.83",
            "  total      4 GPUs  worst     4,742.08  expected     1,896.83",
            "  cluster budget 6,000.00  headroom 1,257.92",
        ],
        HA: [
            "  gpu-serve   16 GPUs  worst    35,089.52 (16 x g6e.4xlarge)  expected    14,035.81",
            "  total       16 GPUs  worst    35,089.52  expected    14,035.81",
            "  cluster budget 45,000.00  headroom 9,910.48",
        ],
    }
    assert gpu_spend_lines(typed_config(fixture_stack))[1:] == expected[fixture_stack]


def test_an_environment_over_budget_is_reported() -> None:
    from infra.stack.config import REQUIRED_SECRETS, load_config

    raw = {k.removeprefix("llm-platform:"): v for k, v in stack_config(SMALL).items()}
    raw["gpuPools"][0]["gpuLimit"] = 8
    region = raw.pop("aws:region")
    secrets = frozenset(k for k in raw if k in REQUIRED_SECRETS)
    cfg = load_config(raw, stack=SMALL, region=region, secret_keys=secrets)
    assert check_budget(cfg) == [
        "worst-case monthly GPU spend USD 9,484.16 exceeds the cluster budget USD 6,000.00 of "
        f"stack {SMALL} by USD 3,484.16 (gpu-lab 9,484.16 (8 x g5.4xlarge)); lower "
        "gpuPools[].gpuLimit, narrow instanceFamilies/instanceSizes or raise the cluster budget"
    ]
    assert gpu_spend_lines(cfg)[-1].startswith("  OVER BUDGET: worst-case monthly GPU spend")
