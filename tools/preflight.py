"""Preflight: can the account actually launch what a stack's GPU pools allow?

Run before ``pulumi up`` (``python -m tools preflight <stack>``). For the stack's region
and zones it checks, with the caller's AWS credentials (read-only calls only):

- every instance type a GPU pool allows is offered in every configured zone
  (``ec2:DescribeInstanceTypeOfferings``, location type ``availability-zone``);
- the EC2 vCPU quotas for G/VT and P instances, on-demand and spot, cover the worst case
  the pools' ``gpuLimit`` admits (``servicequotas:GetServiceQuota``), on top of what
  instances outside the stack's cluster already hold (``ec2:DescribeInstances``,
  ``ec2:DescribeInstanceTypes``);
- and it reports the current spot price of each type in each zone
  (``ec2:DescribeSpotPriceHistory``).

Exit status: 0 nothing blocking, 1 blocking findings (each says what to change),
2 bad stack config or an AWS error (missing credentials, access denied).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import boto3

from infra.core.gpu_catalog import GpuInstanceType, allowed_instance_types
from infra.core.schema import NAMESPACE, CapacityType, ConfigError
from infra.stack.config import PlatformConfig
from infra.stack.files import ROOT, typed_stack_config
from tools.aws import ToolError, aws_errors

QuotaFamily = Literal["G and VT", "P"]


@dataclass(frozen=True)
class VcpuQuota:
    """One EC2 vCPU quota (Service Quotas, service code ``ec2``)."""

    code: str
    name: str
    family: QuotaFamily
    capacity_type: CapacityType


# The four vCPU quotas that bound GPU instances. Codes as listed by
# ``aws service-quotas list-service-quotas --service-code ec2``.
VCPU_QUOTAS: tuple[VcpuQuota, ...] = (
    VcpuQuota("L-DB2E81BA", "Running On-Demand G and VT instances", "G and VT", "on-demand"),
    VcpuQuota("L-3819A6DF", "All G and VT Spot Instance Requests", "G and VT", "spot"),
    VcpuQuota("L-417A185B", "Running On-Demand P instances", "P", "on-demand"),
    VcpuQuota("L-7212CCBC", "All P Spot Instance Requests", "P", "spot"),
)


CLUSTER_TAG = "eks:eks-cluster-name"
"""Karpenter tags each node it launches with its cluster's name (karpenter-provider-aws
v1.x, ``pkg/apis/v1/labels.go`` ``EKSClusterNameTagKey``)."""


def quota_family(family: str) -> QuotaFamily | None:
    """The quotas EC2 counts an instance family against: g* and vt* the G and VT ones,
    p* the P ones; none for other families."""
    if family.startswith("p"):
        return "P"
    return "G and VT" if family.startswith(("g", "vt")) else None


def quota_for(family: QuotaFamily, capacity_type: CapacityType) -> VcpuQuota:
    return next(q for q in VCPU_QUOTAS if (q.family, q.capacity_type) == (family, capacity_type))


def pool_types(cfg: PlatformConfig) -> dict[str, list[GpuInstanceType]]:
    """Instance types each GPU pool admits, by pool name."""
    return {
        p.name: allowed_instance_types(p.instance_families, p.instance_sizes) for p in cfg.gpu_pools
    }


def required_vcpus(cfg: PlatformConfig) -> dict[str, int]:
    """vCPUs each quota must allow (by quota code) for every pool to reach its GPU limit.

    Worst case per pool: Karpenter may fill the pool's ``gpuLimit`` with any allowed type,
    all of one capacity type (spot-first pools fall back to on-demand entirely when spot
    dries up), so for each quota family and capacity type the pool needs the maximum over
    its types of ``ceil(gpuLimit / gpus) * vcpus``. Pools add up.
    """
    needed = {q.code: 0 for q in VCPU_QUOTAS}
    types = pool_types(cfg)
    for pool in cfg.gpu_pools:
        by_family: dict[QuotaFamily, int] = {}
        for t in types[pool.name]:
            vcpus = math.ceil(pool.gpu_limit / t.gpus) * t.vcpus
            family = quota_family(t.family)
            if family is None:
                raise ValueError(f"{t.name} counts against no GPU vCPU quota")
            by_family[family] = max(by_family.get(family, 0), vcpus)
        for family, vcpus in by_family.items():
            for capacity_type in pool.capacity_types:
                needed[quota_for(family, capacity_type).code] += vcpus
    return needed


def quota_use(
    instances: Iterable[Mapping[str, Any]], vcpus: Mapping[str, int], cluster: str
) -> dict[str, int]:
    """vCPUs that running instances outside ``cluster`` hold against each quota (by
    code), with ``vcpus`` the default vCPUs per instance type. The cluster's own GPU nodes
    are left out: they are part of what its pools need."""
    used = {q.code: 0 for q in VCPU_QUOTAS}
    for instance in instances:
        type_name = str(instance["InstanceType"])
        family = quota_family(type_name.split(".")[0])
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        if family is None or tags.get(CLUSTER_TAG) == cluster:
            continue
        capacity: CapacityType = (
            "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"
        )
        used[quota_for(family, capacity).code] += vcpus[type_name]
    return used


@dataclass(frozen=True)
class SpotPrice:
    usd_per_hour: float
    timestamp: datetime


def latest_spot_prices(history: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], SpotPrice]:
    """The newest price per (instance type, zone) from ``SpotPriceHistory`` entries."""
    latest: dict[tuple[str, str], SpotPrice] = {}
    for entry in history:
        key = (str(entry["InstanceType"]), str(entry["AvailabilityZone"]))
        timestamp = entry["Timestamp"]
        if isinstance(timestamp, str):
            timestamp = datetime.fromisoformat(timestamp)
        price = SpotPrice(float(entry["SpotPrice"]), timestamp)
        if key not in latest or price.timestamp > latest[key].timestamp:
            latest[key] = price
    return latest


@dataclass(frozen=True)
class Observed:
    """What AWS said, gathered by :func:`observe`; everything :func:`evaluate` needs."""

    offered: Mapping[str, frozenset[str]]
    """Instance type -> zones (of the configured ones) where it is offered."""
    quotas: Mapping[str, float]
    """Quota code -> applied vCPU quota value."""
    spot_prices: Mapping[tuple[str, str], SpotPrice]
    in_use: Mapping[str, int] = field(default_factory=dict)
    """Quota code -> vCPUs held by running instances outside the cluster (:func:`quota_use`)."""


@dataclass
class Report:
    stack: str
    lines: list[str] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.blocking else 0


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def evaluate(cfg: PlatformConfig, observed: Observed) -> Report:
    """Pure: turn the observations into a printable report and blocking findings."""
    report = Report(stack=cfg.stack)
    report.lines.append(
        f"Preflight of stack {cfg.stack}: region {cfg.region}, zones {', '.join(cfg.zones)}"
    )
    types = pool_types(cfg)

    report.lines += ["", "GPU instance types per zone (spot USD/hour where the pool allows spot):"]
    rows: list[list[str]] = []
    for index, pool in enumerate(cfg.gpu_pools):
        spot = "spot" in pool.capacity_types
        for t in types[pool.name]:
            offered = observed.offered.get(t.name, frozenset())
            cells = []
            for zone in cfg.zones:
                price = observed.spot_prices.get((t.name, zone))
                if zone not in offered:
                    cells.append("NOT OFFERED")
                elif not spot:
                    cells.append("offered")
                else:
                    cells.append("no spot price" if price is None else f"{price.usd_per_hour:.4f}")
            rows.append([pool.name, t.name, str(t.gpus), str(t.vcpus), *cells])
            missing = [z for z in cfg.zones if z not in offered]
            if missing:
                report.blocking.append(
                    f"{t.name} (pool {pool.name}) is not offered in {', '.join(missing)}: drop "
                    f"{'that zone' if len(missing) == 1 else 'those zones'} from "
                    f"{NAMESPACE}:zones, or drop {t.name} from {NAMESPACE}:gpuPools[{index}] "
                    f"(instanceFamilies {t.family} / instanceSizes {t.size})"
                )
    report.lines += _table(["pool", "type", "gpus", "vcpus", *cfg.zones], rows)

    report.lines += ["", "EC2 vCPU quotas (the pools' gpuLimit at worst, plus other instances):"]
    needed = required_vcpus(cfg)
    rows = []
    for quota in VCPU_QUOTAS:
        have, need = observed.quotas[quota.code], needed[quota.code]
        used = observed.in_use.get(quota.code, 0)
        short = need > 0 and have < need + used  # a quota the pools do not use cannot block
        rows.append(
            [
                quota.code,
                quota.name,
                str(need),
                str(used),
                f"{have:g}",
                "TOO LOW" if short else "ok",
            ]
        )
        if short:
            others = f", {used} of them used by instances outside the cluster" if used else ""
            report.blocking.append(
                f"quota {quota.code} ({quota.name}) is {have:g} vCPUs in {cfg.region}{others}; "
                f"the GPU pools need {need}: request an increase of "
                f"{math.ceil(need + used - have)} vCPUs "
                f"(aws service-quotas request-service-quota-increase --service-code ec2 "
                f"--quota-code {quota.code} --desired-value {need + used} --region "
                f"{cfg.region}), or lower {NAMESPACE}:gpuPools[].gpuLimit / drop "
                f"{quota.capacity_type} from capacityTypes"
            )
    report.lines += _table(["quota", "name", "needed", "in use", "quota", "status"], rows)
    return report


# --------------------------------------------------------------------------- AWS


def observe(cfg: PlatformConfig, session: Any) -> Observed:
    """Ask AWS (read-only) for offerings, quotas and spot prices of the stack's pools."""
    ec2 = session.client("ec2", region_name=cfg.region)
    quotas = session.client("service-quotas", region_name=cfg.region)
    types = pool_types(cfg)
    names = sorted({t.name for ts in types.values() for t in ts})

    offered: dict[str, set[str]] = {n: set() for n in names}
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone",
        Filters=[
            {"Name": "location", "Values": list(cfg.zones)},
            {"Name": "instance-type", "Values": names},
        ],
    )
    for page in pages:
        for offering in page["InstanceTypeOfferings"]:
            offered.setdefault(offering["InstanceType"], set()).add(offering["Location"])

    quota_values = {q.code: _quota_value(quotas, q.code) for q in VCPU_QUOTAS}

    history: list[Mapping[str, Any]] = []
    spot_types = sorted(
        {t.name for p in cfg.gpu_pools if "spot" in p.capacity_types for t in types[p.name]}
    )
    if spot_types:
        # With a start time of now, the API returns the price in effect now per type/zone.
        pages = ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=spot_types,
            ProductDescriptions=["Linux/UNIX"],
            StartTime=datetime.now(UTC),
            Filters=[{"Name": "availability-zone", "Values": list(cfg.zones)}],
        )
        for page in pages:
            history += page["SpotPriceHistory"]

    instances = [
        instance
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        )
        for reservation in page["Reservations"]
        for instance in reservation["Instances"]
        if quota_family(str(instance["InstanceType"]).split(".")[0]) is not None
    ]
    vcpus: dict[str, int] = {}
    kinds = sorted({str(i["InstanceType"]) for i in instances})
    for start in range(0, len(kinds), 100):  # DescribeInstanceTypes takes 100 at a time
        pages = ec2.get_paginator("describe_instance_types").paginate(
            InstanceTypes=kinds[start : start + 100]
        )
        for page in pages:
            for info in page["InstanceTypes"]:
                vcpus[info["InstanceType"]] = int(info["VCpuInfo"]["DefaultVCpus"])
    unknown = sorted(set(kinds) - set(vcpus))
    if unknown:
        raise ToolError(f"DescribeInstanceTypes did not describe {', '.join(unknown)}")

    return Observed(
        offered={k: frozenset(v) for k, v in offered.items()},
        quotas=quota_values,
        spot_prices=latest_spot_prices(history),
        in_use=quota_use(instances, vcpus, cfg.cluster.name),
    )


def _quota_value(client: Any, code: str) -> float:
    """Applied quota value; the AWS default when the account never had it changed."""
    errors = client.exceptions
    try:
        return float(client.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"])
    except errors.NoSuchResourceException:
        response = client.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)
        return float(response["Quota"]["Value"])


def main(stack: str, stack_dir: Path = ROOT, session: Any = None) -> int:
    """CLI entry: print the report, return the exit status (see module docstring)."""
    try:
        cfg = typed_stack_config(stack, stack_dir)
        with aws_errors(f"stack {stack} ({cfg.region})"):
            observed = observe(cfg, session or boto3.session.Session())
    except (ConfigError, ToolError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate(cfg, observed)
    print("\n".join(report.lines))
    if report.blocking:
        print(f"\nBlocking findings ({len(report.blocking)}):", file=sys.stderr)
        for finding in report.blocking:
            print(f"  - {finding}", file=sys.stderr)
    print(f"\npreflight of stack {stack}: " + ("BLOCKED" if report.blocking else "ok"))
    return report.exit_code
