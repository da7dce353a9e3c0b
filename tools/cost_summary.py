"""Offline plan section: GPU cap and worst-case / expected monthly GPU spend vs budget."""

from __future__ import annotations

from infra.core.pricing import HOURS_PER_MONTH, MissingPriceError
from infra.stack.config import PlatformConfig
from infra.stack.gpu_spend import check_budget, environment_spend
from infra.stack.warm_capacity import warm_slot_spend
from tools.mock_runtime import Recorded


def gpu_spend_lines(cfg: PlatformConfig) -> list[str]:
    """Per pool and in total: GPU cap, worst-case and expected monthly cost, budget, headroom."""
    try:
        spend = environment_spend(cfg)
    except MissingPriceError as exc:
        return ["GPU spend (USD/month):", f"  cannot estimate: {exc}"]
    width = max(len(p.pool) for p in spend.pools)
    lines = [
        f"GPU spend (USD/month, {HOURS_PER_MONTH} h, on-demand worst case; expected with "
        f"{cfg.cost.spot_discount:.0%} spot discount where spot is allowed):"
    ]
    for p in spend.pools:
        lines.append(
            f"  {p.pool.ljust(width)}  {p.gpu_limit:>3} GPUs  worst "
            f"{p.worst_case_monthly_usd:>12,.2f} ({p.worst_instances} x {p.worst_instance_type})"
            f"  expected {p.expected_monthly_usd:>12,.2f}"
        )
    lines += [
        f"  {'total'.ljust(width)}  {spend.gpu_cap:>3} GPUs  worst "
        f"{spend.worst_case_monthly_usd:>12,.2f}  expected {spend.expected_monthly_usd:>12,.2f}",
        f"  cluster budget {spend.cluster_budget_usd:,.2f}  headroom {spend.headroom_usd:,.2f}",
    ]
    lines += warm_capacity_lines(cfg)
    return lines + [f"  OVER BUDGET: {problem}" for problem in check_budget(cfg)]


def warm_capacity_lines(cfg: PlatformConfig) -> list[str]:
    """Warm slots (``gpuPools[].warmSlots``): the nodes they hold, monthly."""
    return [
        f"  warm slots {w.pool}: {w.slots} x {w.instance_type} ({w.gpus} GPUs) worst "
        f"{w.worst_case_monthly_usd:>12,.2f}  expected {w.expected_monthly_usd:>12,.2f}"
        for w in warm_slot_spend(cfg)
    ]


def gpu_spend_section(resources: list[Recorded], cfg: PlatformConfig) -> list[str]:
    """Summary section of the offline plan (``tools.plan.SUMMARY_SECTIONS``)."""
    return gpu_spend_lines(cfg)
