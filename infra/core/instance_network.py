"""Network bandwidth of the GPU instance types: what a new replica streams weights and
pulls images at.

Baseline and burst ("up to") bandwidth in Gbps, from the network specifications of the
accelerated-computing instance types in the Amazon EC2 instance type guide
(https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html#ac_network), the values
``aws ec2 describe-instance-types`` reports as ``NetworkCards[].BaselineBandwidthInGbps``
and ``PeakBandwidthInGbps``. An instance below 16 vCPUs may burst for a limited time
on network I/O credits; a freshly launched instance starts with credits, so the
cold-start budget takes the burst rate at p50 and the baseline as the worst case.
Recheck with ``describe-instance-types`` when adding a family.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Bandwidth:
    """Network bandwidth of one instance type, Gbps."""

    baseline_gbps: float
    burst_gbps: float

    @property
    def baseline_gib_per_second(self) -> float:
        return self.baseline_gbps * 1e9 / 8 / 1024**3

    @property
    def burst_gib_per_second(self) -> float:
        return self.burst_gbps * 1e9 / 8 / 1024**3


def _ladder(family: str, sizes: Mapping[str, tuple[float, float]]) -> dict[str, Bandwidth]:
    return {f"{family}.{size}": Bandwidth(b, p) for size, (b, p) in sizes.items()}


_G5_G6: Final[dict[str, tuple[float, float]]] = {
    "xlarge": (2.5, 10),
    "2xlarge": (5, 10),
    "4xlarge": (10, 25),
    "8xlarge": (25, 25),
    "12xlarge": (40, 40),
    "16xlarge": (25, 25),
    "24xlarge": (50, 50),
    "48xlarge": (100, 100),
}

NETWORK_BANDWIDTH: Final[dict[str, Bandwidth]] = {
    **_ladder(
        "g4dn",
        {
            "xlarge": (5, 25),
            "2xlarge": (10, 25),
            "4xlarge": (20, 25),
            "8xlarge": (50, 50),
            "12xlarge": (50, 50),
            "16xlarge": (50, 50),
            "metal": (100, 100),
        },
    ),
    **_ladder("g5", _G5_G6),
    **_ladder("g6", _G5_G6),
    **_ladder(
        "g6e",
        {
            "xlarge": (2.5, 20),
            "2xlarge": (5, 20),
            "4xlarge": (20, 20),
            "8xlarge": (25, 25),
            "12xlarge": (100, 100),
            "16xlarge": (35, 35),
            "24xlarge": (200, 200),
            "48xlarge": (400, 400),
        },
    ),
    **_ladder("p4d", {"24xlarge": (400, 400)}),
    **_ladder("p4de", {"24xlarge": (400, 400)}),
    **_ladder("p5", {"4xlarge": (100, 100), "48xlarge": (3200, 3200)}),
    **_ladder("p5e", {"48xlarge": (3200, 3200)}),
    **_ladder("p5en", {"48xlarge": (3200, 3200)}),
}
"""Bandwidth by instance type (every type of ``infra.core.gpu_catalog``)."""


def bandwidth(instance_type: str) -> Bandwidth:
    """Bandwidth of ``instance_type``; ``KeyError`` names a type the table lacks."""
    try:
        return NETWORK_BANDWIDTH[instance_type]
    except KeyError:
        raise KeyError(
            f"no network bandwidth for {instance_type}: add it to "
            "infra/core/instance_network.py NETWORK_BANDWIDTH"
        ) from None
