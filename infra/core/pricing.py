"""The one price table of the stack (dated, sourced) and the worst-case and expected
monthly GPU spend of Karpenter GPU NodePools (pure Python).

A NodePool's ``limits`` cap how many GPUs, vCPUs and GiB it may hold, not how many
instances: with mixed instance types the bill depends on which types Karpenter picks.
Karpenter launches a type only while its whole capacity fits what is left of every limit
(``filterByRemainingResources``, kubernetes-sigs/karpenter
pkg/controllers/provisioning/scheduling), so a pool holds at most

    n(t) = min(gpu_limit // t.gpus, cpu_limit // t.vcpus, memory_limit // memory(t))

instances of type ``t`` (``memory(t)`` as Karpenter counts it, after the VM overhead),
and the worst case is the maximum, over the allowed types with ``n(t) >= 1``, of

    n(t) * on_demand_price(t) * 730

(730 hours a month, the AWS and Kubecost convention). A single-GPU type with a high
per-GPU price (say ``g6e.xlarge``) can cost more at the cap than the most expensive
instance of the pool. When a pool allows spot, the *expected* figure applies the
configured spot discount to the worst case; on-demand-only pools expect the worst case.

Prices: :data:`ON_DEMAND_USD_PER_HOUR` (GPU types), :data:`CPU_ON_DEMAND_USD_PER_HOUR`
(system node types), Linux, shared tenancy, and :data:`PLATFORM_USD` (EKS, NAT, EBS,
CloudWatch Logs), per region, as of :data:`PRICES_AS_OF`, from :data:`PRICE_SOURCE` and
:data:`PLATFORM_PRICE_SOURCE`. Refresh them as the README says. The whole stack's cost
is counted in ``infra.stack.stack_cost``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from infra.core.gpu_catalog import GPU_INSTANCE_TYPES, GpuInstanceType, allowed_instance_types
from infra.core.instance_types import karpenter_memory_gib

HOURS_PER_MONTH: Final = 730

PRICES_AS_OF: Final = "2026-11-22"
PRICE_SOURCE: Final = (
    "AWS EC2 On-Demand pricing page (https://aws.amazon.com/ec2/pricing/on-demand/) and the "
    "AWS Price List offer file of each region (https://pricing.us-east-1.amazonaws.com/offers/"
    "v1.0/aws/AmazonEC2/current/<region>/index.json), Linux, shared tenancy, cross-checked "
    "against public price snapshots of the same rates"
)

# G families: the same list price in us-east-1 and us-west-2 (both are base-price regions).
_G_FAMILY_PRICES: Final = {
    # g4dn: NVIDIA T4
    "g4dn.xlarge": 0.526,
    "g4dn.2xlarge": 0.752,
    "g4dn.4xlarge": 1.204,
    "g4dn.8xlarge": 2.176,
    "g4dn.12xlarge": 3.912,
    "g4dn.16xlarge": 4.352,
    "g4dn.metal": 7.824,
    # g5: NVIDIA A10G
    "g5.xlarge": 1.006,
    "g5.2xlarge": 1.212,
    "g5.4xlarge": 1.624,
    "g5.8xlarge": 2.448,
    "g5.12xlarge": 5.672,
    "g5.16xlarge": 4.096,
    "g5.24xlarge": 8.144,
    "g5.48xlarge": 16.288,
    # g6: NVIDIA L4
    "g6.xlarge": 0.8048,
    "g6.2xlarge": 0.9776,
    "g6.4xlarge": 1.3232,
    "g6.8xlarge": 2.0144,
    "g6.12xlarge": 4.6016,
    "g6.16xlarge": 3.3968,
    "g6.24xlarge": 6.6752,
    "g6.48xlarge": 13.3504,
    # g6e: NVIDIA L40S
    "g6e.xlarge": 1.861,
    "g6e.2xlarge": 2.24208,
    "g6e.4xlarge": 3.00424,
    "g6e.8xlarge": 4.52856,
    "g6e.12xlarge": 10.49264,
    "g6e.16xlarge": 7.57719,
    "g6e.24xlarge": 15.06559,
    "g6e.48xlarge": 30.13118,
}

# P families: AWS cut P4/P5 on-demand prices in June 2025 and the public snapshots
# disagree on some of the new rates, so these are ESTIMATES (see ESTIMATED): p5.48xlarge
# is the post-cut rate; the others are pre-cut list prices, an upper bound that keeps the
# worst case a worst case. p5.4xlarge is one eighth of p5.48xlarge.
_P_FAMILY_PRICES: Final = {
    "p4d.24xlarge": 32.7726,
    "p4de.24xlarge": 40.9657,
    "p5.4xlarge": 6.88,
    "p5.48xlarge": 55.04,
    "p5en.48xlarge": 84.80,
}

ON_DEMAND_USD_PER_HOUR: Final[dict[str, dict[str, float]]] = {
    "us-east-1": {**_G_FAMILY_PRICES, **_P_FAMILY_PRICES},
    # p5e is offered on demand in us-west-2 (not us-east-1); p5e.48xlarge: pre-cut list price.
    "us-west-2": {**_G_FAMILY_PRICES, **_P_FAMILY_PRICES, "p5e.48xlarge": 108.53},
}
"""USD per instance-hour, on demand, by region then instance type."""

ESTIMATED: Final = frozenset({*_P_FAMILY_PRICES, "p5e.48xlarge"})
"""Instance types whose price is an estimate (refresh from the price list before relying)."""


# --------------------------------------------------------------------------- the rest of the stack
# Same date as the GPU prices (PRICES_AS_OF), from the AWS pricing pages of each service
# (PLATFORM_PRICE_SOURCE); us-east-1 and us-west-2 list the same rates for all of them.

PLATFORM_PRICE_SOURCE: Final = (
    "https://aws.amazon.com/eks/pricing/ (control plane, standard support), "
    "https://aws.amazon.com/vpc/pricing/ (NAT gateway hour and GB processed), "
    "https://aws.amazon.com/ebs/pricing/ (gp3 GB-month), "
    "https://aws.amazon.com/cloudwatch/pricing/ (Logs standard ingestion, storage), "
    "EC2 On-Demand pricing page (CPU instance types)"
)
_PLATFORM_PRICES: Final = {
    # EKS control plane per cluster-hour, standard support (extended support: 0.60).
    "eks-cluster-hour": 0.10,
    "nat-gateway-hour": 0.045,
    "nat-gateway-gb": 0.045,
    # AWS PrivateLink: an interface endpoint per AZ-hour (data processed, 0.01/GB, is
    # small next to it: layers come through the free S3 gateway endpoint).
    "interface-endpoint-hour": 0.01,
    "ebs-gp3-gb-month": 0.08,
    # gp3 performance provisioned above its free baseline (3,000 IOPS, 125 MiB/s).
    "ebs-gp3-mibps-month": 0.040,
    "ebs-gp3-iops-month": 0.005,
    "logs-ingest-gb": 0.50,
    "logs-storage-gb-month": 0.03,
}
PLATFORM_USD: Final[dict[str, dict[str, float]]] = {
    "us-east-1": dict(_PLATFORM_PRICES),
    "us-west-2": dict(_PLATFORM_PRICES),
}
"""USD per unit of each non-instance item the stack pays for, by region."""

_CPU_INSTANCE_PRICES: Final = {
    "m5.large": 0.096,
    "m5.xlarge": 0.192,
    "m5.2xlarge": 0.384,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "m6i.2xlarge": 0.384,
    "m7i.large": 0.1008,
    "m7i.xlarge": 0.2016,
    "m7i.2xlarge": 0.4032,
    "m7i.4xlarge": 0.8064,
    "c7i.large": 0.08925,
    "c7i.xlarge": 0.1785,
    "c7i.2xlarge": 0.357,
    "r7i.large": 0.1323,
    "r7i.xlarge": 0.2646,
    "r7i.2xlarge": 0.5292,
}
CPU_ON_DEMAND_USD_PER_HOUR: Final[dict[str, dict[str, float]]] = {
    "us-east-1": dict(_CPU_INSTANCE_PRICES),
    "us-west-2": dict(_CPU_INSTANCE_PRICES),
}
"""On-demand USD per hour of the CPU types a system node group may use, by region."""

CPU_CATEGORY_WORST: Final[dict[str, tuple[str, float, int]]] = {
    "c": ("c6in", 0.0567, 2),
    "m": ("m5zn", 0.0826, 4),
    "r": ("r7iz", 0.0930, 8),
}
"""Per instance category of the CPU NodePool (generation 5 and up): the family with the
dearest on-demand vCPU-hour, that price, and its GiB of memory per vCPU. ESTIMATES (the
pool may launch any of dozens of types; refresh them with the price list like the rest):
an upper bound for the pool's worst case, not a forecast."""


def platform_price(item: str, region: str) -> float:
    """USD per unit of ``item`` (a key of :data:`PLATFORM_USD`) in ``region``."""
    price = PLATFORM_USD.get(region, {}).get(item)
    if price is None:
        raise MissingPriceError(item, region)
    return price


def cpu_instance_price(instance_type: str, region: str) -> float:
    """On-demand USD per hour of a CPU instance type (system node group)."""
    price = CPU_ON_DEMAND_USD_PER_HOUR.get(region, {}).get(instance_type)
    if price is None:
        raise MissingPriceError(instance_type, region)
    return price


def cpu_pool_worst_hourly(
    categories: Sequence[str], cpu_limit: int, memory_limit_gib: int, region: str
) -> tuple[float, str]:
    """Dearest hourly cost of filling a CPU pool's limits, and the family that does it:
    per category, as many vCPUs as both limits admit at its dearest vCPU price."""
    platform_price("eks-cluster-hour", region)  # an unpriced region fails here too
    options = []
    for category in categories:
        family, per_vcpu, gib_per_vcpu = CPU_CATEGORY_WORST[category]
        vcpus = min(cpu_limit, memory_limit_gib // gib_per_vcpu)
        options.append((vcpus * per_vcpu, family))
    return max(options)


class MissingPriceError(ValueError):
    """The price table has no on-demand price for an instance type in a region."""

    def __init__(self, instance_type: str, region: str) -> None:
        known = ", ".join(sorted(ON_DEMAND_USD_PER_HOUR))
        super().__init__(
            f"no on-demand price for {instance_type} in {region} "
            f"(price table as of {PRICES_AS_OF} covers regions {known}); add it to "
            "infra/core/pricing.py from the AWS price list"
        )
        self.instance_type = instance_type
        self.region = region


def on_demand_price(instance_type: str, region: str) -> float:
    """On-demand USD per hour of ``instance_type`` in ``region``."""
    price = ON_DEMAND_USD_PER_HOUR.get(region, {}).get(instance_type)
    if price is None:
        raise MissingPriceError(instance_type, region)
    return price


@dataclass(frozen=True)
class PoolSpend:
    """Monthly GPU spend bounds of one NodePool."""

    pool: str
    region: str
    gpu_limit: int
    allows_spot: bool
    worst_instance_type: str
    """The allowed type that costs most when the pool is filled to its GPU limit."""
    worst_instances: int
    """How many of ``worst_instance_type`` the pool's limits admit."""
    worst_case_monthly_usd: float
    expected_monthly_usd: float
    dearest_gpu_hour_usd: float = 0.0
    """Highest on-demand price per GPU-hour among the allowed types: what a pod's GPUs
    cost at most as Kubecost allocates them (a node's cost shared by requested GPUs)."""


def pool_spend(
    pool: str,
    *,
    gpu_limit: int,
    instance_types: Sequence[GpuInstanceType],
    capacity_types: Iterable[str],
    region: str,
    spot_discount: float,
    cpu_limit: int | None = None,
    memory_limit_gib: float | None = None,
) -> PoolSpend:
    """Worst-case and expected monthly spend of a pool of ``instance_types``.

    ``cpu_limit``/``memory_limit_gib``: the pool's other limits (``None``: unbounded).
    Raises :class:`MissingPriceError` naming the first allowed type without a price.
    """
    if gpu_limit < 1:
        raise ValueError(f"gpu_limit ({gpu_limit}) must be >= 1")
    if not instance_types:
        raise ValueError(f"pool {pool} allows no GPU instance type")
    if not 0 <= spot_discount < 1:
        raise ValueError(f"spot_discount ({spot_discount}) must be in [0, 1)")

    def instances(t: GpuInstanceType) -> int:
        return min(
            gpu_limit // t.gpus,
            cpu_limit // t.vcpus if cpu_limit is not None else gpu_limit,
            math.floor(memory_limit_gib / karpenter_memory_gib(t.memory_gib))
            if memory_limit_gib is not None
            else gpu_limit,
        )

    def at_cap(t: GpuInstanceType) -> tuple[float, int, str]:
        count = instances(t)
        # Ties go to the type name so the result never depends on input order.
        return count * on_demand_price(t.name, region) * HOURS_PER_MONTH, count, t.name

    launchable = [t for t in instance_types if instances(t) >= 1]
    if not launchable:
        raise ValueError(f"pool {pool}: its limits hold no allowed instance type")
    monthly, count, worst = max(at_cap(t) for t in launchable)
    allows_spot = "spot" in set(capacity_types)
    return PoolSpend(
        pool=pool,
        region=region,
        gpu_limit=gpu_limit,
        allows_spot=allows_spot,
        worst_instance_type=worst,
        worst_instances=count,
        worst_case_monthly_usd=round(monthly, 2),
        expected_monthly_usd=round(monthly * (1 - spot_discount) if allows_spot else monthly, 2),
        dearest_gpu_hour_usd=max(on_demand_price(t.name, region) / t.gpus for t in instance_types),
    )


def nodepool_spend(
    pool: str,
    *,
    gpu_limit: int,
    families: Sequence[str],
    sizes: Sequence[str],
    capacity_types: Iterable[str],
    region: str,
    spot_discount: float = 0.0,
    cpu_limit: int | None = None,
    memory_limit_gib: float | None = None,
) -> PoolSpend:
    """:func:`pool_spend` from NodePool properties (what the policy pack sees).

    ``families``/``sizes`` are the values of the ``karpenter.k8s.aws/instance-family`` and
    ``instance-size`` requirements (empty sizes: every size of the families).
    """
    unknown = [f for f in families if f not in {t.family for t in GPU_INSTANCE_TYPES.values()}]
    if unknown:
        raise ValueError(f"pool {pool}: not NVIDIA GPU families: {', '.join(unknown)}")
    return pool_spend(
        pool,
        gpu_limit=gpu_limit,
        instance_types=allowed_instance_types(tuple(families), tuple(sizes)),
        capacity_types=capacity_types,
        region=region,
        spot_discount=spot_discount,
        cpu_limit=cpu_limit,
        memory_limit_gib=memory_limit_gib,
    )


def gpu_hourly_cost_expr(offset: str = "") -> str:
    """PromQL: GPU spend per hour from Kubecost's node metrics (``node_gpu_hourly_cost``
    is per GPU), optionally ``offset``."""
    shift = f" offset {offset}" if offset else ""
    return f"sum(node_gpu_hourly_cost{shift} * node_gpu_count{shift})"
