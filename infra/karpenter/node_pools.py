"""GPU and general-purpose Karpenter capacity: EC2NodeClasses and NodePools from config.

Capacity type: every GPU pool lists its allowed capacity types in one
``karpenter.sh/capacity-type`` requirement. When a pool allows both ``spot`` and
``on-demand``, Karpenter launches spot and falls back to on-demand within the same
pool when no spot offering is available ("If a NodePool is compatible with multiple
capacity types, Karpenter will prioritize reserved capacity, followed by spot, then
finally on-demand", docs/concepts/nodepools.md). One pool per workload class keeps a
single ``nvidia.com/gpu`` limit per class, which the policy pack and cost estimator
rely on; a separate weighted on-demand pool would split that limit in two. A stack
may still add a second pool with ``capacityTypes: [on-demand]`` and a lower ``weight``.

Disruption: GPU pools only consolidate *empty* nodes (``WhenEmpty`` after
``consolidateAfter``), so a serving replica is never moved to a cheaper node (and an
on-demand node taken in a spot shortage stays until it empties or expires); a loading
replica also carries ``karpenter.sh/do-not-disrupt`` while it may be starting. Drift and
``expireAfter`` recycle nodes (AMI updates), evicting replicas through their PDB, within
``terminationGracePeriod``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from infra.core.ami import AmiFamily
from infra.core.conventions import (
    ARCH_LABEL,
    CAPACITY_TYPE_LABEL,
    GPU_MANUFACTURER_LABEL,
    GPU_NODE_LABELS,
    GPU_TAINT,
    INSTANCE_CATEGORY_LABEL,
    INSTANCE_FAMILY_LABEL,
    INSTANCE_GENERATION_LABEL,
    INSTANCE_SIZE_LABEL,
    OS_LABEL,
    ZONE_LABEL,
)
from infra.core.gpu_catalog import allowed_instance_types
from infra.core.ordering import after
from infra.karpenter.config import CPU_POOL_NAME, CpuPoolConfig, GpuPoolConfig, NodeClassConfig
from infra.karpenter.image_start import ImageVolume, gpu_user_data, image_volume
from infra.karpenter.nodepool import (
    NODECLASS_API_VERSION,
    NODECLASS_KIND,
    NODEPOOL_API_VERSION,
    BlockDevice,
    Disruption,
    DisruptionBudget,
    EC2NodeClass,
    Limits,
    NodePool,
    Requirement,
    Taint,
    render_node_class,
    render_node_pool,
)

DISCOVERY_TAG: Final = "karpenter.sh/discovery"
GPU_NODE_CLASS: Final = "gpu"
CPU_NODE_CLASS: Final = "general"
CPU_VOLUME_GIB: Final = 50
"""CPU nodes run ordinary images; the GPU volume size (``nodeClass.rootVolumeGiB``) would
only add cost (gp3 is billed per provisioned GiB)."""
BOTTLEROCKET_OS_VOLUME_GIB: Final = 4
"""Bottlerocket's OS_LABEL volume (upstream default); images and logs live on the data volume."""
# CPU pool: Nitro generations only (gen 4 and older include Xen types with fewer ENIs).
CPU_MIN_GENERATION: Final = "4"
CPU_CONSOLIDATE_AFTER: Final = "5m"
CPU_TERMINATION_GRACE_PERIOD: Final = "2h"
DEFAULT_BUDGET: Final = "10%"


def node_volumes(
    ami_family: AmiFamily,
    size_gib: int,
    snapshot_id: str | None = None,
    performance: ImageVolume | None = None,
) -> tuple[BlockDevice, ...]:
    """Encrypted gp3 volumes; ``size_gib`` (and ``performance``) go where container
    images live.

    AL2023 keeps everything on ``/dev/xvda``. Bottlerocket has a small OS_LABEL volume
    (``/dev/xvda``) and a data volume (``/dev/xvdb``) for images, which may be created
    from a snapshot holding pre-pulled images.
    """

    def images(device: str, snapshot: str | None) -> BlockDevice:
        if performance is None:
            return BlockDevice(device, size_gib, snapshot_id=snapshot)
        return BlockDevice(
            device,
            size_gib,
            snapshot_id=snapshot,
            iops=performance.iops,
            throughput=performance.throughput,
            volume_initialization_rate=performance.initialization_rate,
        )

    if ami_family == "bottlerocket":
        return (
            BlockDevice("/dev/xvda", BOTTLEROCKET_OS_VOLUME_GIB),
            images("/dev/xvdb", snapshot_id),
        )
    if snapshot_id is not None:
        raise ValueError(
            f"snapshot_id ({snapshot_id!r}) needs ami_family bottlerocket: AL2023 has no "
            "separate image data volume"
        )
    return (images("/dev/xvda", None),)


def node_class(
    name: str,
    cfg: NodeClassConfig,
    *,
    cluster_name: str,
    role: str,
    tags: Mapping[str, str],
    volume_gib: int,
    snapshot_id: str | None = None,
    performance: ImageVolume | None = None,
    user_data: str | None = None,
) -> EC2NodeClass:
    """An EC2NodeClass discovering the cluster's private subnets and security group."""
    discovery = {DISCOVERY_TAG: cluster_name}
    return EC2NodeClass(
        name=name,
        ami_family=cfg.ami_family,
        ami_version=cfg.ami_version,
        role=role,
        subnet_selector=discovery,
        security_group_selector=discovery,
        block_devices=node_volumes(cfg.ami_family, volume_gib, snapshot_id, performance),
        tags=tags,
        user_data=user_data,
    )


def gpu_node_class(
    cfg: NodeClassConfig, *, cluster_name: str, role: str, tags: Mapping[str, str]
) -> EC2NodeClass:
    """The GPU EC2NodeClass: the image volume and user data of ``infra.karpenter.image_start``."""
    return node_class(
        GPU_NODE_CLASS,
        cfg,
        cluster_name=cluster_name,
        role=role,
        tags=tags,
        volume_gib=cfg.root_volume_gib,
        snapshot_id=cfg.data_volume_snapshot_id,
        performance=image_volume(cfg),
        user_data=gpu_user_data(cfg),
    )


def gpu_node_pool(pool: GpuPoolConfig, zones: tuple[str, ...]) -> NodePool:
    """The NodePool of one ``gpuPools`` entry."""
    # Without a size allowlist, the sizes the catalog knows for these families: Karpenter
    # can then never launch a type whose GPU count the fit check, the cost estimate and
    # the offline plan do not know.
    sizes = pool.instance_sizes or tuple(
        sorted({t.size for t in allowed_instance_types(pool.instance_families, ())})
    )
    return NodePool(
        name=pool.name,
        node_class=GPU_NODE_CLASS,
        requirements=(
            Requirement(CAPACITY_TYPE_LABEL, "In", pool.capacity_types),
            Requirement(ZONE_LABEL, "In", zones),
            Requirement(INSTANCE_FAMILY_LABEL, "In", pool.instance_families),
            Requirement(INSTANCE_SIZE_LABEL, "In", sizes),
            Requirement(GPU_MANUFACTURER_LABEL, "In", ("nvidia",)),
            Requirement(ARCH_LABEL, "In", ("amd64",)),
            Requirement(OS_LABEL, "In", ("linux",)),
        ),
        labels=GPU_NODE_LABELS,
        taints=(Taint(GPU_TAINT["key"], "NoSchedule", GPU_TAINT["value"]),),
        limits=Limits(cpu=pool.cpu_limit, memory_gib=pool.memory_limit_gib, gpus=pool.gpu_limit),
        disruption=Disruption(
            consolidation_policy="WhenEmpty",
            consolidate_after=pool.consolidate_after,
            budgets=(DisruptionBudget(nodes=pool.disruption_budget_nodes),),
        ),
        expire_after=pool.expire_after,
        termination_grace_period=pool.termination_grace_period,
        weight=pool.weight,
    )


def cpu_node_pool(cfg: CpuPoolConfig, zones: tuple[str, ...]) -> NodePool:
    """The general-purpose NodePool: untainted, consolidated when underused."""
    return NodePool(
        name=CPU_POOL_NAME,
        node_class=CPU_NODE_CLASS,
        requirements=(
            Requirement(CAPACITY_TYPE_LABEL, "In", cfg.capacity_types),
            Requirement(ZONE_LABEL, "In", zones),
            Requirement(INSTANCE_CATEGORY_LABEL, "In", cfg.instance_categories),
            Requirement(INSTANCE_GENERATION_LABEL, "Gt", (CPU_MIN_GENERATION,)),
            Requirement(ARCH_LABEL, "In", ("amd64",)),
            Requirement(OS_LABEL, "In", ("linux",)),
        ),
        limits=Limits(cpu=cfg.cpu_limit, memory_gib=cfg.memory_limit_gib),
        disruption=Disruption(
            consolidation_policy="WhenEmptyOrUnderutilized",
            consolidate_after=CPU_CONSOLIDATE_AFTER,
            budgets=(DisruptionBudget(nodes=DEFAULT_BUDGET),),
        ),
        termination_grace_period=CPU_TERMINATION_GRACE_PERIOD,
    )


@dataclass(frozen=True)
class NodePoolsArgs:
    """Inputs of :class:`NodePools`."""

    cluster_name: str
    """Value of the ``karpenter.sh/discovery`` tag on node subnets and security group."""
    node_role: str
    """Name of the Karpenter node IAM role (``Karpenter.node_role_name``)."""
    zones: tuple[str, ...]
    node_class: NodeClassConfig
    gpu_pools: tuple[GpuPoolConfig, ...]
    cpu_pool: CpuPoolConfig
    tags: Mapping[str, str] = field(default_factory=dict)
    """Cost tags, put on every instance and volume Karpenter launches."""
    karpenter: pulumi.Resource | None = None
    """The Karpenter component: its CRD release, and its controller, which on destroy
    must outlive the NodePools to remove their nodes and finalizers."""

    def __post_init__(self) -> None:
        # The pools' own rules are checked with the config (``GpuPoolConfig.check``).
        # Build every model now: a bad value fails here, before any resource exists.
        self.node_classes()
        self.node_pools()

    def node_classes(self) -> tuple[EC2NodeClass, ...]:
        return (
            gpu_node_class(
                self.node_class, cluster_name=self.cluster_name, role=self.node_role, tags=self.tags
            ),
            node_class(
                CPU_NODE_CLASS,
                self.node_class,
                cluster_name=self.cluster_name,
                role=self.node_role,
                tags=self.tags,
                volume_gib=CPU_VOLUME_GIB,
            ),
        )

    def node_pools(self) -> tuple[NodePool, ...]:
        return (
            *(gpu_node_pool(p, self.zones) for p in self.gpu_pools),
            cpu_node_pool(self.cpu_pool, self.zones),
        )


class NodePools(pulumi.ComponentResource):
    """EC2NodeClasses and NodePools as ``CustomResource`` objects.

    Pass the cluster's Kubernetes provider in ``opts``.
    """

    node_pool_names: list[str]

    def __init__(
        self, name: str, args: NodePoolsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # The type token predates the class name; it is part of every URN below.
        super().__init__("llm-platform:karpenter:GpuNodePools", name, None, opts)
        classes: dict[str, k8s.apiextensions.CustomResource] = {}
        for nc in args.node_classes():
            classes[nc.name] = k8s.apiextensions.CustomResource(
                f"{name}-nodeclass-{nc.name}",
                api_version=NODECLASS_API_VERSION,
                kind=NODECLASS_KIND,
                metadata={"name": nc.name},
                spec=render_node_class(nc),
                opts=after(self, args.karpenter),
            )
        self.node_pool_names = []
        for pool in args.node_pools():
            k8s.apiextensions.CustomResource(
                f"{name}-nodepool-{pool.name}",
                api_version=NODEPOOL_API_VERSION,
                kind="NodePool",
                metadata={"name": pool.name},
                spec=render_node_pool(pool),
                # Deleted before its node class, which Karpenter keeps while nodes use it.
                opts=after(self, args.karpenter, classes[pool.node_class]),
            )
            self.node_pool_names.append(pool.name)
        self.register_outputs({"node_pool_names": self.node_pool_names})
