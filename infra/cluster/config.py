"""The ``cluster`` section: EKS control plane, system node group and add-ons."""

from __future__ import annotations

import ipaddress
import json
import typing
from typing import Annotated, Literal

from pydantic import Field

from infra.core.compatibility import COREDNS_MINOR, addon_minor_problem, kubernetes_minor
from infra.core.instance_types import unknown_instance_types
from infra.core.schema import DnsLabel, PositiveInt, Section, duplicates, repeated


class SystemNodeGroupConfig(Section):
    """On-demand managed node group for controllers (Karpenter cannot run on nodes it makes)."""

    instance_types: Annotated[tuple[str, ...], Field(min_length=1)] = ("m7i.xlarge",)
    """x86_64 types of ``infra/core/instance_types.py``; default ``m7i.xlarge`` x 2. At
    ``minSize`` nodes of the smallest type they must hold the controllers pinned here
    (about 4.4 vCPU and 8 GiB; ``infra/stack/capacity.py``)."""
    min_size: PositiveInt = 2
    """Fewest nodes (default 2)."""
    desired_size: PositiveInt = 2
    """Nodes at creation (default 2); drifts at run time, the program leaves it alone."""
    max_size: PositiveInt = 4
    """Most nodes (default 4)."""

    def check(self, at: str) -> list[str]:
        problems = unknown_instance_types(f"{at}.instanceTypes", self.instance_types)
        problems += repeated(f"{at}.instanceTypes", self.instance_types)
        if not self.min_size <= self.desired_size <= self.max_size:
            problems.append(
                f"{at} = {json.dumps(self.model_dump(by_alias=True))}: "
                "must satisfy minSize <= desiredSize <= maxSize"
            )
        return problems


AddonName = Literal[
    "vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver"
]
LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
REQUIRED_ADDONS: tuple[str, ...] = typing.get_args(AddonName)


class ClusterConfig(Section):
    """EKS control plane and system node group."""

    name: DnsLabel
    """EKS cluster name; also the Karpenter discovery tag value."""
    version: Annotated[str, Field(pattern=r"^1\.\d{2}$")] = "1.33"
    """Kubernetes minor version (default ``1.33``)."""
    admins: tuple[
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")], ...
    ] = ()
    """IAM principals granted ``AmazonEKSClusterAdminPolicy`` through access entries."""
    endpoint_public_access: bool = False
    """Expose the API endpoint publicly (limited to ``public_access_cidrs``)."""
    public_access_cidrs: tuple[ipaddress.IPv4Network, ...] = ()
    """CIDRs allowed to reach a public endpoint; required when it is public."""
    log_types: tuple[LogType, ...] = (
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    )
    """Control-plane log types shipped to CloudWatch (default: all five)."""
    system_node_group: SystemNodeGroupConfig = SystemNodeGroupConfig()
    addons: dict[AddonName, Annotated[str, Field(pattern=r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")]] = {}
    """EKS add-on versions, e.g. ``vpc-cni: v1.20.4-eksbuild.1``. All five are required."""

    def check(self, at: str) -> list[str]:
        problems = duplicates(f"{at}.admins", list(self.admins))
        if self.endpoint_public_access and not self.public_access_cidrs:
            problems.append(
                f"{at}.publicAccessCidrs = []: a public endpoint needs at least one CIDR "
                "(never 0.0.0.0/0 implicitly)"
            )
        if kubernetes_minor(self.version) not in COREDNS_MINOR:
            known = sorted(COREDNS_MINOR)
            problems.append(
                f"{at}.version = {json.dumps(self.version)}: no EKS add-on versions known for "
                f"it (infra/core/compatibility.py covers 1.{known[0]}-1.{known[-1]})"
            )
        else:
            problems += [
                f"{at}.addons.{addon} = {json.dumps(version)}: {why}"
                for addon, version in self.addons.items()
                if (why := addon_minor_problem(addon, version, self.version)) is not None
            ]
        missing_addons = [a for a in REQUIRED_ADDONS if a not in self.addons]
        if missing_addons:
            problems.append(
                f"{at}.addons = {json.dumps(dict(self.addons))}: versions required for "
                f"{', '.join(missing_addons)}"
            )
        return problems

    @property
    def open_to_internet(self) -> bool:
        """Whether any address on the internet may reach the API endpoint."""
        return self.endpoint_public_access and any(
            n.prefixlen == 0 for n in self.public_access_cidrs
        )
