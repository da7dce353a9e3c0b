"""General-purpose x86_64 EC2 instance types: what the system node group may run on.

The system managed node group uses the ``AL2023_x86_64_STANDARD`` AMI, so only x86_64
types are listed; a name EC2 does not know fails the node group on the first
``pulumi up`` (``InvalidParameterException``) after the cluster already exists. Sizes,
vCPUs and memory are from the AWS instance type pages
(https://aws.amazon.com/ec2/instance-types/ and
https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html, ``co.html``, ``mo.html``),
checked 2026-12-01. To allow another family, add it with its sizes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class InstanceType:
    """One EC2 instance type: its vCPUs and memory."""

    name: str
    vcpus: int
    memory_gib: float


_BASE: Final = {"large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32}
_LADDER_5: Final = {**_BASE, "12xlarge": 48, "16xlarge": 64, "24xlarge": 96, "metal": 96}
_LADDER_6I: Final = {**_LADDER_5, "32xlarge": 128, "metal": 128}
_LADDER_6A: Final = {**_LADDER_6I, "48xlarge": 192, "metal": 192}
_LADDER_7I: Final = {
    **{k: v for k, v in _LADDER_5.items() if k != "metal"},
    "48xlarge": 192,
    "metal-24xl": 96,
    "metal-48xl": 192,
}
_LADDER_7A: Final = {
    "medium": 1,
    **{k: v for k, v in _LADDER_6A.items() if k != "metal"},
    "metal-48xl": 192,
}
_C5: Final = {
    **{k: v for k, v in _BASE.items() if k != "8xlarge"},
    "9xlarge": 36,
    "12xlarge": 48,
    "18xlarge": 72,
    "24xlarge": 96,
    "metal": 96,
}

# (family, GiB of memory per vCPU, sizes -> vCPUs)
_FAMILIES: Final = (
    ("m5", 4, _LADDER_5),
    ("m6i", 4, _LADDER_6I),
    ("m6a", 4, _LADDER_6A),
    ("m7i", 4, _LADDER_7I),
    ("m7a", 4, _LADDER_7A),
    ("c5", 2, _C5),
    ("c6i", 2, _LADDER_6I),
    ("c6a", 2, _LADDER_6A),
    ("c7i", 2, _LADDER_7I),
    ("c7a", 2, _LADDER_7A),
    ("r5", 8, _LADDER_5),
    ("r6i", 8, _LADDER_6I),
    ("r6a", 8, _LADDER_6A),
    ("r7i", 8, _LADDER_7I),
    ("r7a", 8, _LADDER_7A),
)

GENERAL_INSTANCE_TYPES: Final[dict[str, InstanceType]] = {
    f"{family}.{size}": InstanceType(f"{family}.{size}", vcpus, vcpus * per_vcpu)
    for family, per_vcpu, sizes in _FAMILIES
    for size, vcpus in sizes.items()
} | {
    # Burstable: same vCPUs from nano to large, memory doubling.
    f"t3.{size}": InstanceType(f"t3.{size}", vcpus, memory)
    for size, (vcpus, memory) in {
        "nano": (2, 0.5),
        "micro": (2, 1),
        "small": (2, 2),
        "medium": (2, 4),
        "large": (2, 8),
        "xlarge": (4, 16),
        "2xlarge": (8, 32),
    }.items()
}
"""x86_64 general-purpose, compute- and memory-optimised types by name."""


def unknown_instance_types(at: str, names: tuple[str, ...]) -> list[str]:
    """One problem per entry of the list at ``at`` that is no known x86_64 type."""
    families = sorted({n.split(".")[0] for n in GENERAL_INSTANCE_TYPES})
    problems = []
    for j, name in enumerate(names):
        if name in GENERAL_INSTANCE_TYPES:
            continue
        family = name.split(".")[0]
        sizes = [n.split(".", 1)[1] for n in GENERAL_INSTANCE_TYPES if n.startswith(f"{family}.")]
        why = (
            f"{family} has sizes {', '.join(sizes)}"
            if sizes
            else f"not an x86_64 family of infra/core/instance_types.py ({', '.join(families)})"
        )
        problems.append(f"{at}[{j}] = {json.dumps(name)}: no such instance type; {why}")
    return problems


# What a node offers its pods, as Karpenter computes it when it picks an instance type
# (aws/karpenter-provider-aws v1.14.1, pkg/providers/instancetype/types.go): memory minus
# ``vmMemoryOverheadPercent`` (chart default 0.075), then kube-reserved (11 MiB per pod
# + 255 MiB; CPU 6 % of the first core, 1 % of the second, 0.5 % of cores 3-4, 0.25 %
# above) and the kubelet's hard eviction threshold (100 Mi).
VM_MEMORY_OVERHEAD: Final = 0.075
EVICTION_GIB: Final = 100 / 1024


def karpenter_memory_gib(memory_gib: float) -> float:
    """Memory of an instance type as Karpenter counts it, against NodePool limits too
    (its ``Capacity``: the VM overhead subtracted)."""
    return memory_gib * (1 - VM_MEMORY_OVERHEAD)


def max_pods(vcpus: int) -> int:
    """Pods a node admits: the ENI-limited count (ENIs x (IPs per ENI - 1) + 2) of current
    Nitro sizes, taking the largest of each vCPU band (amazon-eks-ami
    templates/shared/runtime/eni-max-pods.txt) so kube-reserved is never underestimated
    for the common sizes."""
    if vcpus <= 2:
        return 29
    if vcpus <= 8:
        return 58
    if vcpus <= 48:
        return 234
    return 737


def kube_reserved_cpu(vcpus: int) -> float:
    """Cores the kubelet reserves on a node of ``vcpus``."""
    bands = ((1, 0.06), (1, 0.01), (2, 0.005))
    reserved, left = 0.0, float(vcpus)
    for width, share in bands:
        reserved += min(left, width) * share
        left = max(0.0, left - width)
    return reserved + left * 0.0025


def allocatable(vcpus: int, memory_gib: float) -> tuple[float, float]:
    """(cores, GiB) pods may request on a node of this size, before DaemonSets."""
    reserved_gib = (11 * max_pods(vcpus) + 255) / 1024
    memory = karpenter_memory_gib(memory_gib) - reserved_gib - EVICTION_GIB
    return vcpus - kube_reserved_cpu(vcpus), memory
