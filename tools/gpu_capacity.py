"""Offline-plan summary section: the GPU capacity each Karpenter NodePool may launch.

Read from the rendered NodePool objects (what the cluster will actually get), not from
config, so the summary shows what ``pulumi up`` would apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.core.conventions import (
    CAPACITY_TYPE_LABEL,
    GPU_RESOURCE,
    INSTANCE_FAMILY_LABEL,
    INSTANCE_SIZE_LABEL,
    ZONE_LABEL,
)
from infra.core.gpu_catalog import allowed_instance_types
from infra.stack.config import PlatformConfig
from tools.mock_runtime import Recorded

NODEPOOL_TYPE = "kubernetes:karpenter.sh/v1:NodePool"


@dataclass(frozen=True)
class PoolCapacity:
    """GPU capacity of one NodePool."""

    pool: str
    capacity_types: tuple[str, ...]
    zones: tuple[str, ...]
    families: tuple[str, ...]
    gpu_limit: int
    largest_type: str
    largest_gpus: int

    @property
    def max_instances(self) -> int:
        """Instances of the largest type that fit under the pool's GPU limit."""
        return self.gpu_limit // self.largest_gpus


def _requirement(spec: dict[str, Any], key: str) -> tuple[str, ...]:
    for r in spec["template"]["spec"]["requirements"]:
        if r["key"] == key and r["operator"] == "In":
            return tuple(r["values"])
    return ()


def pool_capacity(nodepool: dict[str, Any]) -> PoolCapacity | None:
    """Capacity of a rendered NodePool object; ``None`` for a pool without a GPU limit."""
    spec = nodepool["spec"]
    limit = (spec.get("limits") or {}).get(GPU_RESOURCE)
    if limit is None:
        return None
    families = _requirement(spec, INSTANCE_FAMILY_LABEL)
    types = allowed_instance_types(families, _requirement(spec, INSTANCE_SIZE_LABEL))
    largest = max(types, key=lambda t: (t.gpus, t.name))
    return PoolCapacity(
        pool=nodepool["metadata"]["name"],
        capacity_types=_requirement(spec, CAPACITY_TYPE_LABEL),
        zones=_requirement(spec, ZONE_LABEL),
        families=families,
        gpu_limit=int(limit),
        largest_type=largest.name,
        largest_gpus=largest.gpus,
    )


def _capacity(types: tuple[str, ...]) -> str:
    # Karpenter prefers spot whatever the order of the values (docs/concepts/nodepools.md).
    if set(types) == {"spot", "on-demand"}:
        return "spot first, on-demand fallback"
    return f"{', '.join(types)} only"


def gpu_capacity_section(resources: list[Recorded], _cfg: PlatformConfig) -> list[str]:
    """Summary lines: one per GPU NodePool, then the total GPU limit."""
    pools = [
        c
        for c in (pool_capacity(r.inputs) for r in resources if r.type == NODEPOOL_TYPE)
        if c is not None
    ]
    if not pools:
        return []
    lines = ["GPU capacity (Karpenter NodePools; each limit applies across its zones):"]
    for c in sorted(pools, key=lambda c: c.pool):
        lines += [
            f"  {c.pool}: limit {c.gpu_limit} GPUs, {_capacity(c.capacity_types)}, "
            f"families {', '.join(c.families)}",
            f"    zones {', '.join(c.zones)}",
            f"    largest type {c.largest_type} ({c.largest_gpus} GPUs): at most "
            f"{c.max_instances} instance{'s' if c.max_instances != 1 else ''}"
            + ("  (larger than the GPU limit: never launched)" if not c.max_instances else ""),
        ]
    lines.append(f"  total GPU limit: {sum(c.gpu_limit for c in pools)}")
    return lines
