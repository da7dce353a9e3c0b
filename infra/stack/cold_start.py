"""Cold-start budgets of a stack's models (spans ``models``, ``gpuPools``, ``nodeClass``
and ``serving``; the figures and the arithmetic are ``workloads.serving.cold_start``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.core.gpu_catalog import GpuInstanceType, allowed_instance_types
from workloads.serving.cold_start import (
    ColdStartBudget,
    NodeStart,
    StartupSettings,
    cold_start_budget,
    instance_types_for,
    startup_settings,
    streamer_concurrency,
)
from workloads.serving.config import ModelConfig
from workloads.serving.vllm import drain_timings

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig


def node_start(cfg: PlatformConfig) -> NodeStart:
    """How the stack's GPU nodes come up and get the serving image."""
    nc = cfg.node_class
    return NodeStart(
        ami_family=nc.ami_family,
        image_on_snapshot=nc.data_volume_snapshot_id is not None,
        volume_initialization_mib_per_second=nc.volume_initialization_rate,
        fast_image_pull=nc.fast_image_pull,
    )


def model_instance_types(cfg: PlatformConfig, model: ModelConfig) -> list[GpuInstanceType]:
    """Instance types of the model's pool a replica can start on."""
    pool = next(p for p in cfg.gpu_pools if p.name == model.gpu_pool)
    allowed = allowed_instance_types(pool.instance_families, pool.instance_sizes)
    return instance_types_for(model.shape, allowed)


def required_instance_types(cfg: PlatformConfig, model: ModelConfig) -> tuple[str, ...]:
    """The types a replica must be held to (its node affinity): those it fits, when some
    type of its pool with enough GPUs does not hold it; empty when every one does."""
    pool = next(p for p in cfg.gpu_pools if p.name == model.gpu_pool)
    allowed = allowed_instance_types(pool.instance_families, pool.instance_sizes)
    enough = [t for t in allowed if t.gpus >= model.tensor_parallel_size]
    fitting = instance_types_for(model.shape, allowed)
    return () if len(fitting) == len(enough) else tuple(t.name for t in fitting)


def model_budgets(
    cfg: PlatformConfig, model: ModelConfig, *, warm_slot: bool = False
) -> list[ColdStartBudget]:
    """The model's budget on every instance type it may get, cheapest GPUs first."""
    types = model_instance_types(cfg, model)
    if not types:
        return []
    concurrency = streamer_concurrency(types)
    return [
        cold_start_budget(
            model.name,
            model.shape,
            t,
            node=node_start(cfg),
            image_gib=cfg.serving.image_size_gib,
            concurrency=concurrency,
            warm_slot=warm_slot,
        )
        for t in types
    ]


def model_startup(cfg: PlatformConfig, model: ModelConfig) -> StartupSettings:
    """Probe window, deadlines, rollout await and scale-up period of one model."""
    types = model_instance_types(cfg, model)
    return startup_settings(
        model_budgets(cfg, model),
        max_replicas=model.replicas.max,
        drain_grace_seconds=drain_timings(cfg.serving.drain_seconds).grace_period_seconds,
        concurrency=streamer_concurrency(types) if types else 0,
    )
