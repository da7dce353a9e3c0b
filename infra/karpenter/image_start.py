"""How GPU nodes start with the serving image on disk, per AMI family
(docs/architecture.md, "Cold start"): the image volume's performance and the node user
data.

- AL2023: SOCI parallel pull/unpack, enabled by nodeadm's ``FastImagePull`` feature
  gate in a ``NodeConfig`` (amazon-eks-ami nodeadm docs, "Enabling fast image pull";
  AL2023 >= v20250821), on a gp3 root volume with the throughput to unpack into; a
  pre-pull DaemonSet (``workloads.serving.pre_pull``) starts the pull when the node is
  Ready, alongside the device plugin.
- Bottlerocket with ``dataVolumeSnapshotId``: the data volume is created from a snapshot
  holding the pinned image, filled at ``volumeInitializationRate`` (Karpenter
  EC2NodeClass ``blockDeviceMappings[].ebs.volumeInitializationRate``, 100-300 MiB/s,
  checked in the v1.14.1 CRD). The snapshot was pulled with the default snapshotter,
  so SOCI stays off: containerd keeps unpacked images per snapshotter.
- Bottlerocket without a snapshot: SOCI parallel pull through the settings API
  (``settings.container-runtime.snapshotter = "soci"``,
  ``settings.container-runtime-plugins.soci-snapshotter``; Bottlerocket >= 1.44.0).

Values as in aws-samples/karpenter-blueprints ``blueprints/soci-snapshotter`` (16 MB
chunks and discarding unpacked layers are what it recommends for ECR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from infra.karpenter.config import NodeClassConfig

AL2023_FAST_IMAGE_PULL: Final = """\
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  featureGates:
    FastImagePull: true
"""

BOTTLEROCKET_SOCI: Final = """\
[settings.container-runtime]
snapshotter = "soci"

[settings.container-runtime-plugins.soci-snapshotter]
pull-mode = "parallel-pull-unpack"

[settings.container-runtime-plugins.soci-snapshotter.parallel-pull-unpack]
max-concurrent-downloads-per-image = 20
concurrent-download-chunk-size = "16mb"
max-concurrent-unpacks-per-image = 12
discard-unpacked-layers = true
"""


@dataclass(frozen=True)
class ImageVolume:
    """Performance of the volume images live on (gp3)."""

    iops: int
    throughput: int
    initialization_rate: int | None
    """Only for a volume created from a snapshot."""


def image_volume(cfg: NodeClassConfig) -> ImageVolume:
    return ImageVolume(
        iops=cfg.image_volume_iops,
        throughput=cfg.image_volume_throughput,
        initialization_rate=(
            cfg.volume_initialization_rate if cfg.data_volume_snapshot_id is not None else None
        ),
    )


def gpu_user_data(cfg: NodeClassConfig) -> str | None:
    """User data of the GPU node class, or ``None`` when it needs none."""
    if not cfg.uses_soci:
        return None
    return AL2023_FAST_IMAGE_PULL if cfg.ami_family == "al2023" else BOTTLEROCKET_SOCI
