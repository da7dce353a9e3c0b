"""GPU spend of a stack's pools (spans ``gpuPools``, ``cost`` and the region; prices in
``infra.core.pricing``); the whole stack's cost is ``infra.stack.stack_cost``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.core.pricing import PoolSpend, nodepool_spend

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig


def gpu_pool_spends(cfg: PlatformConfig) -> tuple[PoolSpend, ...]:
    """Worst-case and expected spend of every GPU pool of a stack."""
    return tuple(
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
    )
