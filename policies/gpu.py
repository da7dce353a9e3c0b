"""GPU capacity rules: every Karpenter GPU NodePool is bounded, allowlisted, spot-first
and multi-zone, and the pools together stay under the environment cap.

NodePool fields (``karpenter.sh/v1``): ``spec.limits`` caps the resources of all nodes
the pool launches; ``spec.template.spec.requirements`` are node-selector requirements
on well-known labels. When ``karpenter.sh/capacity-type`` is not constrained Karpenter
launches on-demand only, and when ``topology.kubernetes.io/zone`` is not constrained
the zones come from the node class's subnets, which a rule cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.core.conventions import (
    CAPACITY_TYPE_LABEL,
    GPU_MANUFACTURER_LABEL,
    GPU_RESOURCE,
    INSTANCE_FAMILY_LABEL,
    INSTANCE_SIZE_LABEL,
    ZONE_LABEL,
)
from infra.core.gpu_catalog import GPU_FAMILIES
from policies.core import (
    Props,
    Resource,
    ResourceRule,
    Settings,
    StackRule,
    at,
    items,
    whole_number,
)

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
LIMIT_PATH = ("spec", "limits", GPU_RESOURCE)
LIMIT = 'spec.limits["nvidia.com/gpu"]'


def requirement(props: Props, key: str) -> tuple[str, list[str]] | None:
    """Operator and values of the NodePool requirement on ``key`` (first one wins)."""
    for i, req in enumerate(items(props, "spec", "template", "spec", "requirements")):
        if at(req, "key") == key:
            at_req = ("spec", "template", "spec", "requirements", i)
            return str(at(props, *at_req, "operator")), list(items(props, *at_req, "values"))
    return None


def in_values(props: Props, key: str) -> list[str] | None:
    """Values of an ``In`` requirement on ``key``; ``None`` when there is none."""
    req = requirement(props, key)
    return req[1] if req is not None and req[0] == "In" else None


def is_gpu_pool(props: Props) -> bool:
    """A NodePool that can launch NVIDIA GPU nodes: GPU taint, GPU limit, GPU
    manufacturer requirement or a GPU instance family."""
    taints = items(props, "spec", "template", "spec", "taints")
    return (
        any(at(t, "key") == GPU_RESOURCE for t in taints)
        or at(props, *LIMIT_PATH) is not None
        or requirement(props, GPU_MANUFACTURER_LABEL) is not None
        or any(f in GPU_FAMILIES for f in in_values(props, INSTANCE_FAMILY_LABEL) or [])
    )


def gpu_limit(props: Props) -> int | None:
    """The pool's whole-number GPU limit (Kubernetes quantity) or ``None`` if absent.

    Raises ``ValueError`` naming the value when it is not a whole number.
    """
    value: Any = at(props, *LIMIT_PATH)
    if value is None:
        return None
    limit = whole_number(value)
    if limit is None:
        raise ValueError(f"{LIMIT} = {value!r}: not a whole number of GPUs")
    return limit


def gpu_pools(resources: Sequence[Resource]) -> list[Resource]:
    return [r for r in resources if r.type == NODEPOOL and is_gpu_pool(r.props)]


def _join(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "(none)"


# --------------------------------------------------------------------------- rules


def check_gpu_limit(_type: str, props: Props, settings: Settings) -> list[str] | None:
    if not is_gpu_pool(props):
        return None
    try:
        limit = gpu_limit(props)
    except ValueError as exc:
        return [str(exc)]
    maximum = int(settings["maxGpusPerPool"])
    if limit is None:
        return [f"{LIMIT} is not set: a GPU pool without a GPU limit can grow without bound"]
    if limit > maximum:
        return [f"{LIMIT} = {limit}: above the environment maximum of {maximum} GPUs per pool"]
    return []


def check_total(resources: Sequence[Resource], settings: Settings) -> list[str]:
    cap = int(settings["maxGpusTotal"])
    parts: list[str] = []
    unbounded: list[str] = []
    total = 0
    for pool in gpu_pools(resources):
        try:
            limit = gpu_limit(pool.props)
        except ValueError:
            limit = None
        if limit is None:
            unbounded.append(pool.name)
            continue
        total += limit
        parts.append(f"{pool.name} {limit}")
    if unbounded:
        return [f"GPU pools without a whole-number GPU limit ({_join(unbounded)}): unbounded total"]
    if total > cap:
        return [
            f"GPU limits sum to {total} ({' + '.join(parts)}), above the environment cap of "
            f"{cap} GPUs"
        ]
    return []


def check_instance_types(_type: str, props: Props, settings: Settings) -> list[str] | None:
    if not is_gpu_pool(props):
        return None
    problems: list[str] = []
    for key, allowed in (
        (INSTANCE_FAMILY_LABEL, list(settings["allowedInstanceFamilies"])),
        (INSTANCE_SIZE_LABEL, list(settings["allowedInstanceSizes"])),
    ):
        if key == INSTANCE_SIZE_LABEL and not allowed:
            continue  # no size allowlist in this environment
        values = in_values(props, key)
        if values is None:
            problems.append(
                f"requirement {key} is not an In list: the pool may launch any value; "
                f"allowed: {_join(allowed)}"
            )
            continue
        extra = [v for v in values if v not in allowed]
        if extra:
            problems.append(
                f"requirement {key} allows {_join(extra)}: not in the environment allowlist "
                f"({_join(allowed)})"
            )
    return problems


def check_spot(_type: str, props: Props, settings: Settings) -> list[str] | None:
    if not is_gpu_pool(props):
        return None
    req = requirement(props, CAPACITY_TYPE_LABEL)
    if req is None:
        return [
            f"requirement {CAPACITY_TYPE_LABEL} is not set: Karpenter then launches on-demand only"
        ]
    operator, values = req
    if operator != "In":
        return [
            f"requirement {CAPACITY_TYPE_LABEL} uses {operator}: state the capacity types with In"
        ]
    if "spot" not in values:
        return [
            f"requirement {CAPACITY_TYPE_LABEL} allows {_join(values)}: GPU pools must allow spot"
        ]
    others = [v for v in values if v != "spot"]
    if settings["spotOnly"] and others:
        return [
            f"requirement {CAPACITY_TYPE_LABEL} allows {_join(others)}: this environment is "
            "spot-only"
        ]
    return []


def check_zones(_type: str, props: Props, settings: Settings) -> list[str] | None:
    if not is_gpu_pool(props):
        return None
    minimum = int(settings["minZones"])
    zones = in_values(props, ZONE_LABEL)
    if zones is None:
        return [
            f"requirement {ZONE_LABEL} is not an In list: the pool's zones cannot be verified "
            f"(at least {minimum} required)"
        ]
    if len(set(zones)) < minimum:
        return [
            f"requirement {ZONE_LABEL} spans {len(set(zones))} zone(s) ({_join(zones)}): "
            f"at least {minimum} required"
        ]
    return []


_STRINGS = {"type": "array", "items": {"type": "string"}}

RULES = (
    ResourceRule(
        name="gpu-nodepool-requires-gpu-limit",
        description="Every GPU NodePool sets limits.nvidia.com/gpu at or below the "
        "environment maximum.",
        default_level="mandatory",
        settings={"maxGpusPerPool": {"type": "integer", "minimum": 1}},
        types=frozenset({NODEPOOL}),
        check=check_gpu_limit,
    ),
    StackRule(
        name="gpu-total-within-cap",
        description="The GPU limits of all GPU NodePools add up to at most the environment cap.",
        default_level="mandatory",
        settings={"maxGpusTotal": {"type": "integer", "minimum": 1}},
        types=frozenset({NODEPOOL}),
        check=check_total,
    ),
    ResourceRule(
        name="gpu-nodepool-allowed-instance-types",
        description="GPU NodePools allow only the environment's GPU instance families and sizes.",
        default_level="mandatory",
        settings={
            "allowedInstanceFamilies": {**_STRINGS, "minItems": 1},
            "allowedInstanceSizes": _STRINGS,
        },
        types=frozenset({NODEPOOL}),
        check=check_instance_types,
    ),
    ResourceRule(
        name="gpu-nodepool-allows-spot",
        description="GPU NodePools allow spot capacity (only spot where the environment is "
        "spot-only).",
        default_level="mandatory",
        settings={"spotOnly": {"type": "boolean"}},
        types=frozenset({NODEPOOL}),
        check=check_spot,
    ),
    ResourceRule(
        name="gpu-nodepool-spans-zones",
        description="GPU NodePools span at least the environment's minimum number of zones.",
        default_level="mandatory",
        settings={"minZones": {"type": "integer", "minimum": 1}},
        types=frozenset({NODEPOOL}),
        check=check_zones,
    ),
)
