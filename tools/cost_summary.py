"""Offline plan section: the whole stack's monthly cost, worst case and expected, and
each budget against the worst case of what it scopes."""

from __future__ import annotations

from infra.core.pricing import HOURS_PER_MONTH, PRICES_AS_OF, MissingPriceError
from infra.stack.config import PlatformConfig
from infra.stack.stack_cost import budget_problems, budget_scope_worst, stack_cost
from infra.stack.warm_capacity import warm_slot_spend
from tools.mock_runtime import Recorded


def cost_lines(cfg: PlatformConfig) -> list[str]:
    """One line per cost item, the total, then each budget with its headroom."""
    title = (
        f"Cost (USD/month, {HOURS_PER_MONTH} h, prices of {PRICES_AS_OF}, infra/core/pricing.py; "
        f"worst case on demand, expected with {cfg.cost.spot_discount:.0%} spot discount "
        "where spot is allowed):"
    )
    try:
        cost = stack_cost(cfg)
    except MissingPriceError as exc:
        return [title, f"  cannot estimate: {exc}"]
    width = max(len(i.name) for i in cost.items)
    lines = [title, f"  {'item'.ljust(width)}  {'worst':>12}  {'expected':>12}  worst case from"]
    lines += [
        f"  {i.name.ljust(width)}  {i.worst_case_monthly_usd:>12,.2f}  "
        f"{i.expected_monthly_usd:>12,.2f}  {i.basis}"
        for i in cost.items
    ]
    lines.append(
        f"  {'total'.ljust(width)}  {cost.worst_case_monthly_usd:>12,.2f}  "
        f"{cost.expected_monthly_usd:>12,.2f}"
    )
    for b in cfg.cost.budgets:
        scope = "whole stack" if b.scope == "cluster" else f"{b.scope} {b.target}"
        worst = budget_scope_worst(cfg, b.scope, b.target)
        lines.append(
            f"  budget {b.name} ({scope}) {b.monthly_usd:,.2f}: worst case {worst:,.2f}, "
            f"headroom {b.monthly_usd - worst:,.2f}"
        )
    lines += warm_capacity_lines(cfg)
    return lines + [f"  OVER BUDGET: {problem}" for problem in budget_problems(cfg)]


def warm_capacity_lines(cfg: PlatformConfig) -> list[str]:
    """Warm slots (``gpuPools[].warmSlots``): the nodes they keep up, monthly. Already
    inside their GPU pool's line: a pool's figures count its whole limit."""
    return [
        f"  warm slots {w.pool}: {w.slots} x {w.instance_type} ({w.gpus} GPUs) worst "
        f"{w.worst_case_monthly_usd:>12,.2f}  expected {w.expected_monthly_usd:>12,.2f}"
        "  (inside the pool's line)"
        for w in warm_slot_spend(cfg)
    ]


def cost_section(resources: list[Recorded], cfg: PlatformConfig) -> list[str]:
    """Summary section of the offline plan (``tools.plan.SUMMARY_SECTIONS``)."""
    return cost_lines(cfg)
