"""Warm GPU capacity of a stack: what each pool's ``warmSlots`` hold and cost (spans
``gpuPools``, ``models``, ``serving`` and the prices of ``infra.core.pricing``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from infra.core.conventions import GPU_RESOURCE
from infra.core.gpu_catalog import allowed_instance_types
from infra.core.pricing import HOURS_PER_MONTH, on_demand_price
from infra.stack.cold_start import required_instance_types
from workloads.serving.cold_start import instance_types_for
from workloads.serving.vllm import container_resources
from workloads.serving.warm_capacity import WarmSlots

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig


def warm_slots(cfg: PlatformConfig) -> tuple[WarmSlots, ...]:
    """The placeholders of every pool with warm slots and an enabled model to size them."""
    out = []
    for pool in cfg.gpu_pools:
        models = [m for m in cfg.enabled_models if m.gpu_pool == pool.name]
        if not pool.warm_slots or not models:
            continue
        largest = max(models, key=lambda m: (m.tensor_parallel_size, m.parameters_billions))
        out.append(
            WarmSlots(
                pool=pool.name,
                count=pool.warm_slots,
                resources=container_resources(largest, cfg.serving),
                sized_for=largest.name,
                instance_types=required_instance_types(cfg, largest),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class WarmSlotSpend:
    """Monthly cost of one pool's warm slots: each holds one node of the cheapest type
    its largest model starts on (what Karpenter picks for it)."""

    pool: str
    slots: int
    gpus: int
    instance_type: str
    worst_case_monthly_usd: float
    """On demand."""
    expected_monthly_usd: float
    """With the spot discount where the pool allows spot."""


def warm_slot_spend(cfg: PlatformConfig) -> tuple[WarmSlotSpend, ...]:
    out = []
    for slots in warm_slots(cfg):
        pool = next(p for p in cfg.gpu_pools if p.name == slots.pool)
        model = next(m for m in cfg.enabled_models if m.name == slots.sized_for)
        types = instance_types_for(
            model.shape, allowed_instance_types(pool.instance_families, pool.instance_sizes)
        )
        cheapest = min(types, key=lambda t: (on_demand_price(t.name, cfg.region), t.name))
        monthly = slots.count * on_demand_price(cheapest.name, cfg.region) * HOURS_PER_MONTH
        spot = "spot" in pool.capacity_types
        out.append(
            WarmSlotSpend(
                pool=pool.name,
                slots=slots.count,
                gpus=slots.count * int(slots.resources["limits"][GPU_RESOURCE]),
                instance_type=cheapest.name,
                worst_case_monthly_usd=round(monthly, 2),
                expected_monthly_usd=round(
                    monthly * (1 - cfg.cost.spot_discount) if spot else monthly, 2
                ),
            )
        )
    return tuple(out)


def warm_slot_problems(cfg: PlatformConfig) -> list[str]:
    """Warm slots need a model to size them; the room they take is counted with the
    pool's capacity (:mod:`infra.stack.capacity`)."""
    return [
        f"llm-platform:gpuPools[{i}].warmSlots = {pool.warm_slots}: no enabled model "
        f"runs on pool {pool.name}, so there is nothing to keep warm; set 0"
        for i, pool in enumerate(cfg.gpu_pools)
        if pool.warm_slots and not any(m.gpu_pool == pool.name for m in cfg.enabled_models)
    ]
