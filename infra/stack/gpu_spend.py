"""GPU spend of a stack's pools against its cluster budget (spans ``gpuPools``,
``cost`` and the region; prices in ``infra.core.pricing``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.core.pricing import EnvironmentSpend, MissingPriceError, nodepool_spend

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig


def environment_spend(cfg: PlatformConfig) -> EnvironmentSpend:
    """Spend of every GPU pool of a stack, with its (smallest) cluster budget."""
    return EnvironmentSpend(
        pools=tuple(
            nodepool_spend(
                p.name,
                gpu_limit=p.gpu_limit,
                families=p.instance_families,
                sizes=p.instance_sizes,
                capacity_types=p.capacity_types,
                region=cfg.region,
                spot_discount=cfg.cost.spot_discount,
                cpu_limit=p.cpu_limit,
                memory_limit_gib=p.memory_limit_gib,
            )
            for p in cfg.gpu_pools
        ),
        cluster_budget_usd=cfg.cost.cluster_budget.monthly_usd,
    )


def check_budget(cfg: PlatformConfig) -> list[str]:
    """Problems when the GPU pools' worst case does not fit the cluster budget.

    Empty when it fits. A missing price is a problem too: an unpriced pool cannot be
    shown to fit.
    """
    try:
        spend = environment_spend(cfg)
    except MissingPriceError as exc:
        return [str(exc)]
    if spend.headroom_usd >= 0:
        return []
    pools = ", ".join(
        f"{p.pool} {p.worst_case_monthly_usd:,.2f} ({p.worst_instances} x {p.worst_instance_type})"
        for p in spend.pools
    )
    return [
        f"worst-case monthly GPU spend USD {spend.worst_case_monthly_usd:,.2f} exceeds the "
        f"cluster budget USD {spend.cluster_budget_usd:,.2f} of stack {cfg.stack} by USD "
        f"{-spend.headroom_usd:,.2f} ({pools}); lower gpuPools[].gpuLimit, narrow "
        "instanceFamilies/instanceSizes or raise the cluster budget"
    ]
