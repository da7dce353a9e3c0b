"""The Karpenter sections: ``karpenter`` (controller), ``nodeClass``, ``gpuPools`` and
``cpuPool``."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field

from infra.core.ami import (
    AMI_VERSION_EXAMPLES,
    FAST_IMAGE_PULL_SINCE,
    AmiFamily,
    ami_version_ok,
    release_at_least,
)
from infra.core.gpu_catalog import non_gpu_families, unknown_sizes
from infra.core.schema import CapacityType, DnsLabel, Duration, PositiveInt, Section, repeated

CPU_POOL_NAME = "general"
"""Name of the CPU NodePool (and so not available to ``gpuPools``)."""


class KarpenterConfig(Section):
    """Karpenter controller release."""

    version: Annotated[str, Field(pattern=r"^1\.\d+\.\d+$")] = "1.14.1"
    """Version of the ``karpenter`` and ``karpenter-crd`` charts, always the same (default
    ``1.14.1``, which supports Kubernetes 1.26-1.36: ``infra/core/compatibility.py``)."""


class NodeClassConfig(Section):
    """The GPU EC2NodeClass."""

    ami_family: AmiFamily = "al2023"
    """AMI alias family; both ship the NVIDIA driver and container toolkit for GPU types."""
    ami_version: Annotated[str, Field(pattern=r"^(latest|v\d{8}|v\d+\.\d+\.\d+)$")] = "latest"
    """AMI alias version: ``latest`` (dev) or a pinned release such as ``v20251108`` (prod)."""
    root_volume_gib: Annotated[int, Field(ge=50, le=16384, alias="rootVolumeGiB")] = 200
    """Root (AL2023) or data (Bottlerocket) volume: vLLM images are 10+ GB, weights more."""
    data_volume_snapshot_id: Annotated[str, Field(pattern=r"^snap-[0-9a-f]{8,17}$")] | None = None
    """Optional EBS snapshot with pre-pulled images, attached as the Bottlerocket data
    volume (``bottlerocket`` only; default none). Build it with ``python -m tools
    image-snapshot build``; it must hold the pinned serving image (``dataVolumeImage``)."""
    data_volume_image: str | None = None
    """The image reference, pinned by digest, that ``dataVolumeSnapshotId`` holds, as
    ``tools image-snapshot build`` recorded it; must equal ``serving.vllmImage``."""
    volume_initialization_rate: Annotated[int, Field(ge=100, le=300)] = 300
    """MiB/s at which EBS fills the data volume from its snapshot (Karpenter
    ``volumeInitializationRate``; without it blocks load lazily on first read; default
    300, the maximum; billed per GiB initialized)."""
    fast_image_pull: bool = True
    """SOCI parallel pull and unpack of images not on a snapshot: AL2023's nodeadm
    ``FastImagePull`` feature gate, Bottlerocket's ``soci-snapshotter`` settings; a pinned
    ``amiVersion`` must have them: AL2023 v20251016 or Bottlerocket v1.44.0 and later
    (default true)."""
    image_volume_throughput: Annotated[
        int, Field(ge=125, le=1000, alias="imageVolumeThroughputMiBps")
    ] = 600
    """gp3 throughput (MiB/s) of the volume images are unpacked to (AL2023 root,
    Bottlerocket data): parallel pull buffers layers on disk (default 600, the SOCI
    blueprint's starting point; gp3's own default is 125)."""
    image_volume_iops: Annotated[int, Field(ge=3000, le=16000)] = 3000
    """gp3 IOPS of that volume (default 3000, gp3's baseline; at most 4 x the throughput
    ratio allows: 0.25 MiB/s per IOPS)."""

    @property
    def uses_soci(self) -> bool:
        """Whether nodes pull images with SOCI: ``fastImagePull``, except on a Bottlerocket
        data volume from a snapshot (its images were unpacked by the default snapshotter)."""
        return self.fast_image_pull and (
            self.ami_family == "al2023" or self.data_volume_snapshot_id is None
        )

    def check(self, at: str) -> list[str]:
        problems: list[str] = []
        if not ami_version_ok(self.ami_family, self.ami_version):
            problems.append(
                f"{at}.amiVersion = {json.dumps(self.ami_version)}: not a release of "
                f"{self.ami_family}; expected latest or a tag such as "
                f"{AMI_VERSION_EXAMPLES[self.ami_family]}"
            )
        elif self.uses_soci and not release_at_least(
            self.ami_version, since := FAST_IMAGE_PULL_SINCE[self.ami_family]
        ):
            problems.append(
                f"{at}.amiVersion = {json.dumps(self.ami_version)}: fastImagePull needs "
                f"{self.ami_family} {since} or later (its SOCI parallel pull); pin that "
                "release or a later one, or set fastImagePull false"
            )
        if self.data_volume_snapshot_id is not None and self.ami_family != "bottlerocket":
            problems.append(
                f"{at}.dataVolumeSnapshotId = {json.dumps(self.data_volume_snapshot_id)}: "
                "only with amiFamily bottlerocket (AL2023 has no separate image data volume)"
            )
        # A snapshot on AL2023 is reported above; its image is not a second problem.
        on_bottlerocket = self.ami_family == "bottlerocket"
        if (self.data_volume_snapshot_id is None) != (self.data_volume_image is None) and (
            on_bottlerocket or self.data_volume_snapshot_id is None
        ):
            problems.append(
                f"{at}.dataVolumeImage = {json.dumps(self.data_volume_image)}: set together "
                "with dataVolumeSnapshotId (both as tools image-snapshot build prints them)"
            )
        if self.image_volume_throughput > self.image_volume_iops / 4:
            problems.append(
                f"{at}.imageVolumeThroughputMiBps = {self.image_volume_throughput}: gp3 allows "
                f"at most 0.25 MiB/s per IOPS ({self.image_volume_iops // 4} with "
                f"imageVolumeIops {self.image_volume_iops})"
            )
        return problems


class GpuPoolConfig(Section):
    """One Karpenter GPU NodePool."""

    name: DnsLabel
    """NodePool name; models name it in ``gpuPool`` (``general`` is the CPU pool's)."""
    instance_families: Annotated[tuple[str, ...], Field(min_length=1)]
    """Allowed NVIDIA families, e.g. ``[g6e, g6]``; see ``infra.core.gpu_catalog``."""
    instance_sizes: tuple[str, ...] = ()
    """Optional size allowlist, e.g. ``[xlarge, 2xlarge, 12xlarge]`` (default: all sizes)."""
    capacity_types: Annotated[tuple[CapacityType, ...], Field(min_length=1)] = ("spot", "on-demand")
    """Karpenter prefers spot when both are allowed and falls back to on-demand."""
    gpu_limit: PositiveInt
    """Maximum GPUs the pool may hold at once (``limits.nvidia.com/gpu``)."""
    cpu_limit: PositiveInt = 1000
    """vCPUs the pool may hold at once (``limits.cpu``; default 1000)."""
    memory_limit_gib: Annotated[int, Field(ge=1, alias="memoryLimitGiB")] = 4000
    """Memory the pool may hold at once, GiB (``limits.memory``; default 4000)."""
    weight: Annotated[int, Field(ge=1, le=100)] | None = None
    """Karpenter's preference among pools that fit a pod (higher first; default none)."""
    consolidate_after: Duration = "30m"
    """Pool disruption uses ``WhenEmpty``: a node is removed only once empty this long."""
    expire_after: Duration = "720h"
    """Nodes are replaced after this long (``expireAfter``; default 720h = 30 days)."""
    termination_grace_period: Duration = "2h"
    """How long a draining node waits for its pods before it is terminated (default 2h)."""
    disruption_budget_nodes: Annotated[str, Field(pattern=r"^(\d+|\d{1,3}%)$")] = "10%"
    """Nodes Karpenter may disrupt at once: a count or a percentage (default 10%)."""
    warm_slots: Annotated[int, Field(ge=0, le=16)] = 0
    """Warm capacity: placeholder pods, each the size of the pool's largest model replica,
    that keep that many GPU nodes up with the serving image pulled. A new replica
    preempts one and skips node launch, device plugin and image (docs/architecture.md,
    "Cold start"); Karpenter then replaces the placeholder's node. Costs the nodes it
    holds (the plan's cost table; default 0: off)."""

    def check(self, at: str) -> list[str]:
        problems = non_gpu_families(f"{at}.instanceFamilies", self.instance_families)
        problems += unknown_sizes(
            f"{at}.instanceSizes", self.instance_families, self.instance_sizes
        )
        problems += repeated(f"{at}.instanceFamilies", self.instance_families)
        problems += repeated(f"{at}.instanceSizes", self.instance_sizes)
        problems += repeated(f"{at}.capacityTypes", self.capacity_types)
        if self.disruption_budget_nodes.endswith("%") and (
            int(self.disruption_budget_nodes[:-1]) > 100
        ):
            problems.append(
                f"{at}.disruptionBudgetNodes = {json.dumps(self.disruption_budget_nodes)}: a "
                "percentage of the pool's nodes, at most 100%"
            )
        if self.name == CPU_POOL_NAME:
            problems.append(f"{at}.name = {json.dumps(self.name)}: reserved for the CPU NodePool")
        return problems


class CpuPoolConfig(Section):
    """The general-purpose CPU NodePool (named ``general``)."""

    instance_categories: Annotated[tuple[Literal["c", "m", "r"], ...], Field(min_length=1)] = (
        "c",
        "m",
        "r",
    )
    """EC2 instance categories: compute, general purpose, memory (default all three)."""
    capacity_types: Annotated[tuple[CapacityType, ...], Field(min_length=1)] = ("spot", "on-demand")
    """Karpenter prefers spot when both are allowed and falls back to on-demand."""
    cpu_limit: PositiveInt = 200
    """vCPUs the pool may hold at once (default 200)."""
    memory_limit_gib: Annotated[int, Field(ge=1, alias="memoryLimitGiB")] = 800
    """Memory the pool may hold at once, GiB (default 800)."""
