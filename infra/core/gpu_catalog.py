"""NVIDIA GPU instance types the platform may schedule on.

One table serves config validation (is this a GPU family? does a model's tensor
parallelism fit?), the GPU memory fit check, the cost estimator and the policy pack.
Hardware figures are from the AWS EC2 accelerated-computing instance pages
(https://aws.amazon.com/ec2/instance-types/#Accelerated_Computing), checked 2026-11.
Only x86_64 NVIDIA families are listed: the EKS AL2023 NVIDIA and Bottlerocket NVIDIA
AMIs cover them, and ``karpenter.k8s.aws/instance-gpu-manufacturer In [nvidia]`` is
always added on top of this allowlist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInstanceType:
    """One EC2 instance type with NVIDIA GPUs."""

    name: str
    gpus: int
    gpu_model: str
    gpu_memory_gib: int
    """Memory of ONE GPU in GiB."""
    vcpus: int
    memory_gib: int

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def compute_capability(self) -> tuple[int, int]:
        """CUDA compute capability of its GPU (:data:`COMPUTE_CAPABILITY`)."""
        return COMPUTE_CAPABILITY[self.gpu_model]

    @property
    def supports_bfloat16(self) -> bool:
        """vLLM refuses ``--dtype bfloat16`` below compute capability 8.0
        (``_check_if_gpu_supports_dtype``: "Bfloat16 is only supported on GPUs with compute
        capability of at least 8.0")."""
        return self.compute_capability >= (8, 0)

    @property
    def size(self) -> str:
        return self.name.split(".", 1)[1]


COMPUTE_CAPABILITY: dict[str, tuple[int, int]] = {
    # NVIDIA, https://developer.nvidia.com/cuda-gpus (checked 2026-12-01).
    "T4": (7, 5),
    "A10G": (8, 6),
    "L4": (8, 9),
    "L40S": (8, 9),
    "A100": (8, 0),
    "H100": (9, 0),
    "H200": (9, 0),
}
"""CUDA compute capability per GPU model of :data:`GPU_INSTANCE_TYPES`."""


def _family(
    family: str, gpu_model: str, gpu_memory_gib: int, sizes: dict[str, tuple[int, int, int]]
) -> dict[str, GpuInstanceType]:
    """Expand ``{size: (gpus, vcpus, memory_gib)}`` into instance types."""
    return {
        f"{family}.{size}": GpuInstanceType(
            name=f"{family}.{size}",
            gpus=gpus,
            gpu_model=gpu_model,
            gpu_memory_gib=gpu_memory_gib,
            vcpus=vcpus,
            memory_gib=memory_gib,
        )
        for size, (gpus, vcpus, memory_gib) in sizes.items()
    }


_G_SIZES_16 = {  # g4dn / g5 / g6 share the single-GPU ladder and the 4/8-GPU sizes
    "xlarge": (1, 4, 16),
    "2xlarge": (1, 8, 32),
    "4xlarge": (1, 16, 64),
    "8xlarge": (1, 32, 128),
    "16xlarge": (1, 64, 256),
    "12xlarge": (4, 48, 192),
}

GPU_INSTANCE_TYPES: dict[str, GpuInstanceType] = {
    **_family("g4dn", "T4", 16, {**_G_SIZES_16, "metal": (8, 96, 384)}),
    **_family(
        "g5", "A10G", 24, {**_G_SIZES_16, "24xlarge": (4, 96, 384), "48xlarge": (8, 192, 768)}
    ),
    **_family("g6", "L4", 24, {**_G_SIZES_16, "24xlarge": (4, 96, 384), "48xlarge": (8, 192, 768)}),
    **_family(
        "g6e",
        "L40S",
        48,
        {
            "xlarge": (1, 4, 32),
            "2xlarge": (1, 8, 64),
            "4xlarge": (1, 16, 128),
            "8xlarge": (1, 32, 256),
            "16xlarge": (1, 64, 512),
            "12xlarge": (4, 48, 384),
            "24xlarge": (4, 96, 768),
            "48xlarge": (8, 192, 1536),
        },
    ),
    **_family("p4d", "A100", 40, {"24xlarge": (8, 96, 1152)}),
    **_family("p4de", "A100", 80, {"24xlarge": (8, 96, 1152)}),
    **_family("p5", "H100", 80, {"4xlarge": (1, 16, 256), "48xlarge": (8, 192, 2048)}),
    **_family("p5e", "H200", 141, {"48xlarge": (8, 192, 2048)}),
    **_family("p5en", "H200", 141, {"48xlarge": (8, 192, 2048)}),
}

GPU_FAMILIES: tuple[str, ...] = tuple(sorted({t.family for t in GPU_INSTANCE_TYPES.values()}))


def allowed_instance_types(
    families: tuple[str, ...], sizes: tuple[str, ...]
) -> list[GpuInstanceType]:
    """Instance types a pool admits: its families, restricted to ``sizes`` when given."""
    return sorted(
        (
            t
            for t in GPU_INSTANCE_TYPES.values()
            if t.family in families and (not sizes or t.size in sizes)
        ),
        key=lambda t: (t.family, t.gpus, t.vcpus),
    )


def non_gpu_families(at: str, families: tuple[str, ...]) -> list[str]:
    """One problem per entry of the family list at ``at`` that is no NVIDIA GPU family."""
    return [
        f"{at}[{j}] = {json.dumps(family)}: not an NVIDIA GPU family; allowed: "
        f"{', '.join(GPU_FAMILIES)}"
        for j, family in enumerate(families)
        if family not in GPU_FAMILIES
    ]


def unknown_sizes(at: str, families: tuple[str, ...], sizes: tuple[str, ...]) -> list[str]:
    """One problem per entry of the size list at ``at`` that no GPU family of ``families``
    offers (families that are no GPU family are reported by :func:`non_gpu_families`)."""
    known = [f for f in families if f in GPU_FAMILIES]
    offered = sorted(
        {t.size for t in GPU_INSTANCE_TYPES.values() if t.family in known},
        key=lambda size: min(
            (t.vcpus for t in GPU_INSTANCE_TYPES.values() if t.size == size), default=0
        ),
    )
    if not known:
        return []
    return [
        f"{at}[{j}] = {json.dumps(size)}: no {' or '.join(known)} instance has this size; "
        f"sizes: {', '.join(offered)}"
        for j, size in enumerate(sizes)
        if size not in offered
    ]
