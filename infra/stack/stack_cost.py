"""Monthly cost of a whole stack, worst case and expected, and what each budget scopes.

Every item the stack pays for by the hour or the GB, from the stack config and the one
price table (``infra.core.pricing``, dated ``PRICES_AS_OF``), 730 hours a month:

=====================  ==========================================  ==========================
item                   worst case                                  expected
=====================  ==========================================  ==========================
EKS control plane      one cluster, standard support               same
NAT gateways           hours of each + ``cost.natGiBPerMonth``     same
VPC endpoints          ECR interface endpoints x zones, hourly     same
system node group      ``maxSize`` x the dearest allowed type      ``desiredSize`` x the first
CPU NodePool           its cpu/memory limits filled at the         ``cost.cpuPoolExpectedShare``
                       dearest vCPU of its categories              of that, spot discounted
GPU NodePools          ``infra.core.pricing.pool_spend``           same (spot discounted)
EBS gp3                root volumes of the most nodes each pool    nodes of desired size / min
                       can hold, every PVC, GPU image volumes'     replicas, every PVC
                       throughput/IOPS above gp3's baseline
CloudWatch Logs        ``cost.logsGiBPerDay`` ingested, stored     same
                       for ``logging.retentionDays``
load balancers         none: the stack creates none                none
=====================  ==========================================  ==========================

The CI runner (CodeBuild, per build minute), S3 requests and storage, KMS keys and data
transfer out are not included: they are small next to the rest or scale with use, not
with the config.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from infra.core.gpu_catalog import allowed_instance_types
from infra.core.instance_types import GENERAL_INSTANCE_TYPES
from infra.core.pricing import (
    HOURS_PER_MONTH,
    PLATFORM_USD,
    MissingPriceError,
    cpu_instance_price,
    cpu_pool_worst_hourly,
    platform_price,
)
from infra.core.schema import NAMESPACE
from infra.network.config import ECR_ENDPOINT_SERVICES
from infra.stack.gpu_spend import gpu_pool_spends

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig
    from workloads.serving.config import ModelConfig

DAYS_PER_MONTH: Final = HOURS_PER_MONTH / 24
SYSTEM_ROOT_GIB: Final = 50
"""Root volume of a system node (``infra/cluster/component.py`` launch template)."""
CPU_ROOT_GIB: Final = 50
"""Root volume of a CPU NodePool node (``infra.karpenter.node_pools.CPU_VOLUME_GIB``)."""
CPU_SMALLEST_VCPUS: Final = 2
"""vCPUs of the smallest (``large``) type the CPU pool may launch: the most nodes."""
GP3_FREE_MIBPS: Final = 125
GP3_FREE_IOPS: Final = 3000
"""What every gp3 volume gets without provisioning (AWS EBS pricing)."""
KUBECOST_PVC_GIB: Final = 32
"""cost-analyzer's ``persistentVolume.size`` default (the platform keeps it)."""


@dataclass(frozen=True)
class CostItem:
    """One line of the cost table."""

    name: str
    worst_case_monthly_usd: float
    expected_monthly_usd: float
    basis: str
    """How the worst case is counted, for the reader of the plan."""


@dataclass(frozen=True)
class StackCost:
    items: tuple[CostItem, ...]

    @property
    def worst_case_monthly_usd(self) -> float:
        return round(sum(i.worst_case_monthly_usd for i in self.items), 2)

    @property
    def expected_monthly_usd(self) -> float:
        return round(sum(i.expected_monthly_usd for i in self.items), 2)

    @property
    def platform_worst_case_monthly_usd(self) -> float:
        """Everything but the GPU pools (the policy pack prices those from the NodePools)."""
        return round(
            sum(i.worst_case_monthly_usd for i in self.items if not i.name.startswith("GPU")), 2
        )


def _monthly(hourly: float) -> float:
    return round(hourly * HOURS_PER_MONTH, 2)


def _ebs(gib: float, region: str) -> float:
    return round(gib * platform_price("ebs-gp3-gb-month", region), 2)


def stack_cost(cfg: PlatformConfig) -> StackCost:
    """The cost table of ``cfg``. Raises ``MissingPriceError`` naming what has no price."""
    region, cost = cfg.region, cfg.cost
    items: list[CostItem] = []

    eks = _monthly(platform_price("eks-cluster-hour", region))
    items.append(CostItem("EKS control plane", eks, eks, "1 cluster, standard support"))

    nats = len(cfg.zones) if cfg.network.nat_gateways == "perZone" else 1
    nat = _monthly(nats * platform_price("nat-gateway-hour", region)) + round(
        cost.nat_gib_per_month * platform_price("nat-gateway-gb", region), 2
    )
    items.append(
        CostItem("NAT gateways", nat, nat, f"{nats} x 730 h + {cost.nat_gib_per_month:g} GiB")
    )

    endpoints = len(ECR_ENDPOINT_SERVICES) if cfg.network.ecr_endpoints else 0
    vpce = _monthly(endpoints * len(cfg.zones) * platform_price("interface-endpoint-hour", region))
    items.append(
        CostItem("VPC interface endpoints", vpce, vpce, f"{endpoints} x {len(cfg.zones)} zones")
    )

    group = cfg.cluster.system_node_group
    prices = [cpu_instance_price(t, region) for t in group.instance_types]
    items.append(
        CostItem(
            "system node group",
            _monthly(group.max_size * max(prices)),
            _monthly(group.desired_size * prices[0]),
            f"{group.max_size} x {group.instance_types[prices.index(max(prices))]}",
        )
    )

    pool = cfg.cpu_pool
    hourly, family = cpu_pool_worst_hourly(
        pool.instance_categories, pool.cpu_limit, pool.memory_limit_gib, region
    )
    discount = cost.spot_discount if "spot" in pool.capacity_types else 0.0
    items.append(
        CostItem(
            "CPU NodePool",
            _monthly(hourly),
            _monthly(hourly * cost.cpu_pool_expected_share * (1 - discount)),
            f"{pool.cpu_limit} vCPU / {pool.memory_limit_gib} GiB limit, {family} prices",
        )
    )

    for p in gpu_pool_spends(cfg):
        items.append(
            CostItem(
                f"GPU NodePool {p.pool}",
                p.worst_case_monthly_usd,
                p.expected_monthly_usd,
                f"{p.worst_instances} x {p.worst_instance_type}",
            )
        )

    items.append(_ebs_item(cfg))

    daily, kept = cost.logs_gib_per_day, cfg.logging.retention_days
    log_usd = round(
        daily * DAYS_PER_MONTH * platform_price("logs-ingest-gb", region)
        + daily * kept * platform_price("logs-storage-gb-month", region),
        2,
    )
    items.append(
        CostItem("CloudWatch Logs", log_usd, log_usd, f"{daily:g} GiB/day, kept {kept} days")
    )
    items.append(CostItem("load balancers", 0.0, 0.0, "none created"))
    return StackCost(tuple(items))


def _ebs_item(cfg: PlatformConfig) -> CostItem:
    """Root volumes of every node the stack can run, and every PVC."""
    group, pool, obs = cfg.cluster.system_node_group, cfg.cpu_pool, cfg.observability
    gpu_worst = gpu_expected = 0
    for p in cfg.gpu_pools:
        smallest = min(
            t.gpus for t in allowed_instance_types(p.instance_families, p.instance_sizes)
        )
        most = math.ceil(p.gpu_limit / smallest)
        replicas = sum(m.replicas.min for m in cfg.enabled_models if m.gpu_pool == p.name)
        gpu_worst += most
        gpu_expected += min(most, replicas)
    cpu_nodes = pool.cpu_limit // CPU_SMALLEST_VCPUS
    pvcs = (
        obs.storage_gib * obs.prometheus_replicas
        + obs.alertmanager_storage_gib * obs.alertmanager_replicas
        + KUBECOST_PVC_GIB
    )
    root = cfg.node_class.root_volume_gib
    worst = group.max_size * SYSTEM_ROOT_GIB + cpu_nodes * CPU_ROOT_GIB + gpu_worst * root + pvcs
    expected = (
        group.desired_size * SYSTEM_ROOT_GIB
        + math.ceil(cpu_nodes * cfg.cost.cpu_pool_expected_share) * CPU_ROOT_GIB
        + gpu_expected * root
        + pvcs
    )
    # The GPU nodes' image volume is provisioned above gp3's free baseline (nodeClass).
    nc = cfg.node_class
    performance = (nc.image_volume_throughput - GP3_FREE_MIBPS) * platform_price(
        "ebs-gp3-mibps-month", cfg.region
    ) + (nc.image_volume_iops - GP3_FREE_IOPS) * platform_price("ebs-gp3-iops-month", cfg.region)
    return CostItem(
        "EBS gp3",
        round(_ebs(worst, cfg.region) + gpu_worst * performance, 2),
        round(_ebs(expected, cfg.region) + gpu_expected * performance, 2),
        f"{worst:,} GiB: roots of {group.max_size} system, {cpu_nodes} CPU, {gpu_worst} GPU "
        f"nodes + {pvcs} GiB PVCs; GPU image volumes at {nc.image_volume_throughput} MiB/s, "
        f"{nc.image_volume_iops} IOPS",
    )


def platform_worst_case(cfg: PlatformConfig) -> float:
    """Worst case of everything but the GPU pools (the policy pack's setting
    ``platformWorstCaseMonthlyUsd``: it prices the GPU pools from the NodePools)."""
    return stack_cost(cfg).platform_worst_case_monthly_usd


def price_problems(cfg: PlatformConfig) -> list[str]:
    """System node types that exist but have no price in the stack's region (the cost
    cannot be bounded). An unpriced region and a type that does not exist are reported
    by their own checks (``infra.stack.config``, ``infra.cluster.config``)."""
    if cfg.region not in PLATFORM_USD:
        return []
    at = f"{NAMESPACE}:cluster.systemNodeGroup.instanceTypes"
    problems = []
    for i, t in enumerate(cfg.cluster.system_node_group.instance_types):
        if t not in GENERAL_INSTANCE_TYPES:
            continue
        try:
            cpu_instance_price(t, cfg.region)
        except MissingPriceError as exc:
            problems.append(f"{at}[{i}] = {json.dumps(t)}: {exc}")
    return problems


# --------------------------------------------------------------------------- budget scopes


def models_worst_monthly(cfg: PlatformConfig, models: list[ModelConfig]) -> float:
    """``models`` at their max replicas, their GPUs at the dearest per-GPU price of their
    pool (Kubecost shares a node's cost by requested GPUs), each pool capped at its own
    worst case. The policy pack counts the same from the rendered Deployments."""
    pools = {p.pool: p for p in gpu_pool_spends(cfg)}
    by_pool: dict[str, float] = {}
    for m in models:
        gpu_hours = m.replicas.max * m.tensor_parallel_size * HOURS_PER_MONTH
        by_pool[m.gpu_pool] = (
            by_pool.get(m.gpu_pool, 0.0) + gpu_hours * pools[m.gpu_pool].dearest_gpu_hour_usd
        )
    return round(sum(min(v, pools[k].worst_case_monthly_usd) for k, v in by_pool.items()), 2)


def budget_scope_worst(cfg: PlatformConfig, scope: str, target: str | None) -> float:
    """Worst case of what a budget covers: the whole stack, the models of a namespace
    (GPU pods: the serving namespace holds them all) or one model."""
    if scope == "cluster":
        return stack_cost(cfg).worst_case_monthly_usd
    models = [
        m
        for m in cfg.enabled_models
        if (scope == "namespace" and cfg.serving.namespace == target)
        or (scope == "model" and m.name == target)
    ]
    return models_worst_monthly(cfg, models)


def budget_problems(cfg: PlatformConfig) -> list[str]:
    """Each budget whose scope's worst case exceeds it (empty when all fit)."""
    problems = []
    for b in cfg.cost.budgets:
        worst = budget_scope_worst(cfg, b.scope, b.target)
        if worst > b.monthly_usd:
            what = "the stack" if b.scope == "cluster" else f"{b.scope} {b.target}"
            problems.append(
                f"budget {b.name}: worst case of {what} USD {worst:,.2f} exceeds USD "
                f"{b.monthly_usd:,.2f} by USD {worst - b.monthly_usd:,.2f}"
            )
    return problems
