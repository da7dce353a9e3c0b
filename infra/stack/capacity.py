"""Capacity adds up, per GPU pool, before anything is created.

Karpenter launches a node only when its instance type fits the NodePool's remaining
``limits`` (``filterByRemainingResources`` in kubernetes-sigs/karpenter
pkg/controllers/provisioning/scheduling: the type's whole capacity, GPUs, vCPUs and
memory, is compared with what is left), so limits are spent in whole instances. Each
replica is counted on its own node of the smallest allowed type that holds it: the
hostname spread prefers one replica per node, and the smallest type is what Karpenter
picks when a replica is all that is pending. What a node offers its pods is
:func:`infra.core.instance_types.allocatable` minus the DaemonSets every GPU node runs.

Per pool:

- every model's replica fits some allowed instance type (its GPUs, CPU and memory);
- the limits hold at least one allowed instance (else Karpenter never launches a node);
- the minimum replicas of all its models plus the rollout surge (``MAX_SURGE`` replicas
  of the largest model, ``maxUnavailable`` being 0) plus the pool's ``warmSlots`` (one
  node of the largest replica's size each) fit the limits;
- each model's ``replicas.max`` is reachable with the other models at their minimum,
  unless the model opts in with ``replicas.allowUnschedulableMax`` (then a warning).

The same arithmetic holds the system node group (at ``minSize`` nodes of its smallest
type) against the controllers pinned to it (:func:`system_controllers`), and the CPU
pool's limits against its smallest instance type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from infra.core.gpu_catalog import GpuInstanceType, allowed_instance_types
from infra.core.instance_types import (
    GENERAL_INSTANCE_TYPES,
    InstanceType,
    allocatable,
    karpenter_memory_gib,
)
from infra.core.schema import NAMESPACE, ContainerResources, cores, gib
from infra.karpenter.controller import CONTROLLER_REPLICAS, CONTROLLER_RESOURCES
from infra.karpenter.node_pools import CPU_MIN_GENERATION
from infra.log_shipping.fluent_bit import FLUENT_BIT_RESOURCES
from workloads.serving.cold_start import instance_types_for
from workloads.serving.vllm import MAX_SURGE, container_resources

if TYPE_CHECKING:
    from infra.karpenter.config import GpuPoolConfig
    from infra.stack.config import PlatformConfig
    from workloads.serving.config import ModelConfig

NFD_WORKER: Final = (0.005, 64 / 1024)
"""(cores, GiB) of the GPU operator's node-feature-discovery worker, on every node (its
default requests in deployments/gpu-operator/charts/node-feature-discovery/values.yaml
of NVIDIA/gpu-operator v26.7.0)."""
EKS_DAEMONSETS: Final = (0.25, 0.25)
"""(cores, GiB) of the EKS add-ons' DaemonSets on every node, with headroom for
eks-pod-identity-agent: aws-node 25m (charts/aws-vpc-cni/values.yaml at v1.20.4),
kube-proxy 100m (EKS default), ebs-csi-node 3 containers of 10m/40Mi
(charts/aws-ebs-csi-driver at v1.51.1: node.resources); node-exporter and the GPU
operator's operands request nothing (their chart defaults are ``resources: {}``)."""


def node_daemonsets() -> tuple[float, float]:
    """(cores, GiB) the DaemonSets of every node request: Fluent Bit (ours), the NFD
    worker and the EKS add-ons."""
    requests = FLUENT_BIT_RESOURCES["requests"]
    return (
        cores(requests["cpu"]) + NFD_WORKER[0] + EKS_DAEMONSETS[0],
        gib(requests["memory"]) + NFD_WORKER[1] + EKS_DAEMONSETS[1],
    )


@dataclass(frozen=True)
class Replica:
    """One replica of a model: its requests and the node it occupies."""

    index: int
    """Position of the model in ``models``."""
    model: ModelConfig
    cpu: float
    memory_gib: float
    node: GpuInstanceType | None
    """Smallest allowed type that holds it; ``None`` when none does."""


@dataclass(frozen=True)
class Use:
    """Limits a set of nodes spends: GPUs, vCPUs and memory as Karpenter counts them."""

    gpus: int = 0
    vcpus: int = 0
    memory_gib: float = 0.0

    def plus(self, node: GpuInstanceType, count: int = 1) -> Use:
        return Use(
            self.gpus + count * node.gpus,
            self.vcpus + count * node.vcpus,
            self.memory_gib + count * karpenter_memory_gib(node.memory_gib),
        )

    def over(self, pool: GpuPoolConfig) -> list[tuple[str, int, str]]:
        """(limit key, limit, what is needed) for every limit this use exceeds."""
        return [
            (key, limit, need)
            for key, limit, used, need in (
                ("gpuLimit", pool.gpu_limit, self.gpus, f"{self.gpus} GPUs"),
                ("cpuLimit", pool.cpu_limit, self.vcpus, f"{self.vcpus} vCPUs"),
                (
                    "memoryLimitGiB",
                    pool.memory_limit_gib,
                    self.memory_gib,
                    f"{math.ceil(self.memory_gib)} GiB",
                ),
            )
            if used > limit
        ]


def _fits(replica_cpu: float, replica_gib: float, tp: int, node: GpuInstanceType) -> bool:
    cpu, memory = allocatable(node.vcpus, node.memory_gib)
    ds_cpu, ds_gib = node_daemonsets()
    return node.gpus >= tp and cpu - ds_cpu >= replica_cpu and memory - ds_gib >= replica_gib


def replicas(cfg: PlatformConfig, pool: GpuPoolConfig) -> list[Replica]:
    """One :class:`Replica` per enabled model of ``pool``."""
    types = allowed_instance_types(pool.instance_families, pool.instance_sizes)
    found = []
    for i, model in enumerate(cfg.models):
        if not model.enabled or model.gpu_pool != pool.name:
            continue
        requests = container_resources(model, cfg.serving)["requests"]
        cpu, memory = cores(requests["cpu"]), gib(requests["memory"])
        tp = model.tensor_parallel_size
        # Only the types whose GPUs hold the model (its pods' node affinity says so);
        # when none does, the GPU memory check reports it (infra/stack/checks.py).
        startable = instance_types_for(model.shape, types) or types
        nodes = [t for t in startable if _fits(cpu, memory, tp, t)]
        node = min(nodes, key=lambda t: (t.gpus, t.vcpus, t.memory_gib, t.name), default=None)
        found.append(Replica(i, model, cpu, memory, node))
    return found


def gpu_capacity_problems(cfg: PlatformConfig) -> list[str]:
    """Every capacity problem of the GPU pools (see the module docstring)."""
    problems = []
    for j, pool in enumerate(cfg.gpu_pools):
        problems += _pool_problems(cfg, j, pool)
    return problems


def gpu_capacity_warnings(cfg: PlatformConfig) -> list[str]:
    """Unreachable ``replicas.max`` the stack file accepted (``allowUnschedulableMax``)."""
    warnings = []
    for pool in cfg.gpu_pools:
        found = replicas(cfg, pool)
        if all(r.node is not None for r in found):
            warnings += [text for r, text in _unreachable_max(pool, found) if _opted_in(r)]
    return warnings


def _opted_in(replica: Replica) -> bool:
    return replica.model.replicas.allow_unschedulable_max


def _pool_problems(cfg: PlatformConfig, j: int, pool: GpuPoolConfig) -> list[str]:
    at = f"{NAMESPACE}:gpuPools[{j}]"
    types = allowed_instance_types(pool.instance_families, pool.instance_sizes)
    if not types:
        return []  # the pool's own check reports its families and sizes
    problems = []
    launchable = [t for t in types if not Use().plus(t).over(pool)]
    if not launchable:
        smallest = min(types, key=lambda t: (t.gpus, t.vcpus, t.memory_gib, t.name))
        problems.append(
            f"{at}: gpuLimit {pool.gpu_limit}, cpuLimit {pool.cpu_limit} and memoryLimitGiB "
            f"{pool.memory_limit_gib} hold no allowed instance type, so Karpenter never "
            f"launches a node (smallest: {smallest.name} with {smallest.gpus} GPUs, "
            f"{smallest.vcpus} vCPUs, {karpenter_memory_gib(smallest.memory_gib):.1f} GiB as "
            "Karpenter counts it); raise the limits or allow a smaller size"
        )
    found = replicas(cfg, pool)
    for r in found:
        tp = r.model.tensor_parallel_size
        if tp > max(t.gpus for t in types):
            continue  # reported with the model (it names the pool's largest instance)
        if tp > pool.gpu_limit:
            problems.append(
                f"{NAMESPACE}:models[{r.index}].tensorParallelSize = {tp}: one replica needs "
                f"{tp} GPUs, more than gpuPools[{j}].gpuLimit ({pool.gpu_limit}) of pool "
                f"{pool.name}"
            )
        elif r.node is None:
            widest = max((t for t in types if t.gpus >= tp), key=lambda t: (t.vcpus, t.name))
            cpu, memory = allocatable(widest.vcpus, widest.memory_gib)
            ds_cpu, ds_gib = node_daemonsets()
            problems.append(
                f"{NAMESPACE}:models[{r.index}]: one replica requests {r.cpu:g} vCPUs, "
                f"{r.memory_gib:g} GiB and {tp} GPU(s); no instance type of pool {pool.name} "
                f"holds it (largest: {widest.name} with {cpu - ds_cpu:.2f} vCPUs and "
                f"{memory - ds_gib:.1f} GiB for pods after kubelet and DaemonSet "
                "reservations); lower models[].resources or allow larger sizes"
            )
    unsized = any(r.node is None or r.model.replicas.min > r.model.replicas.max for r in found)
    if problems or not found or unsized:
        return problems  # the sums need every replica placed and a valid range
    # A pool that cannot hold the minimum cannot hold any maximum either: one report.
    return _minimum_problems(at, pool, found) or [
        text for r, text in _unreachable_max(pool, found) if not _opted_in(r)
    ]


def _node(r: Replica) -> GpuInstanceType:
    assert r.node is not None  # callers pass replicas that fit
    return r.node


def _minimum_problems(at: str, pool: GpuPoolConfig, found: Sequence[Replica]) -> list[str]:
    """The models at their minimum plus the rollout surge of the largest one."""
    largest = max(found, key=lambda r: (_node(r).gpus, _node(r).vcpus, -r.index))
    use = Use()
    for r in found:
        use = use.plus(_node(r), r.model.replicas.min)
    use = use.plus(_node(largest), MAX_SURGE)
    parts = [f"{r.model.name} {r.model.replicas.min} x {_node(r).name}" for r in found]
    parts.append(f"rollout surge {MAX_SURGE} x {_node(largest).name} ({largest.model.name})")
    what, lower = "minimum replicas plus the rollout surge", "replicas.min"
    if pool.warm_slots:  # each placeholder holds a node of the largest replica's size
        use = use.plus(_node(largest), pool.warm_slots)
        parts.append(f"warm slots {pool.warm_slots} x {_node(largest).name}")
        what, lower = f"{what} plus the warm slots", f"{lower} or warmSlots"
    return [
        f"{at}.{key} = {limit}: the pool's models need {need} in whole instances at their "
        f"{what} ({', '.join(parts)}); raise {key} or lower {lower}"
        for key, limit, need in use.over(pool)
    ]


def _unreachable_max(pool: GpuPoolConfig, found: Sequence[Replica]) -> list[tuple[Replica, str]]:
    """Models whose ``replicas.max`` cannot all run, the others being at their minimum."""
    out = []
    for r in found:
        others = Use()
        for o in found:
            if o is not r:
                others = others.plus(_node(o), o.model.replicas.min)
        reachable = r.model.replicas.max
        while reachable > 0 and others.plus(_node(r), reachable).over(pool):
            reachable -= 1
        if reachable >= r.model.replicas.max:
            continue
        at = f"{NAMESPACE}:models[{r.index}].replicas.max"
        limits = (
            f"gpuLimit {pool.gpu_limit}, cpuLimit {pool.cpu_limit}, memoryLimitGiB "
            f"{pool.memory_limit_gib}"
        )
        text = (
            f"{at} = {r.model.replicas.max}: pool {pool.name} holds at most {reachable} "
            f"replicas of {r.model.name} (one per {_node(r).name}) with the other models at "
            f"their minimum ({limits})"
        )
        if _opted_in(r):
            out.append((r, f"{text}; accepted by replicas.allowUnschedulableMax"))
        else:
            out.append(
                (
                    r,
                    f"{text}; lower it to {reachable}, raise the pool's limits, or set "
                    "replicas.allowUnschedulableMax: true",
                )
            )
    return out


# --------------------------------------------------------------------------- system nodes


@dataclass(frozen=True)
class Controller:
    """Replicas of one controller pinned to the system node group."""

    name: str
    replicas: int
    cpu: float
    memory_gib: float

    def render(self) -> str:
        return f"{self.name} {self.replicas} x {self.cpu:g} vCPU/{self.memory_gib:.2g} GiB"


def _of(name: str, replicas: int, resources: ContainerResources) -> Controller:
    return Controller(name, replicas, cores(resources.cpu), gib(resources.memory))


def system_controllers(cfg: PlatformConfig) -> list[Controller]:
    """What the platform pins to the system nodes (their ``CriticalAddonsOnly`` taint keeps
    everything else off): requests we set, else the pinned charts' defaults."""
    o, c = cfg.observability, cfg.cost
    karpenter = CONTROLLER_RESOURCES["requests"]
    return [
        Controller(
            "karpenter", CONTROLLER_REPLICAS, cores(karpenter["cpu"]), gib(karpenter["memory"])
        ),
        _of("prometheus", o.prometheus_replicas, o.prometheus_resources),
        _of("alertmanager", o.alertmanager_replicas, o.alertmanager_resources),
        _of("grafana", 1, o.grafana_resources),
        # The gateway runs on the system nodes too (workloads/gateway: system node selector).
        _of("gateway", cfg.gateway.replicas, cfg.gateway.resources),
        _of("kubecost-model", 1, c.kubecost_model_resources),
        _of("kubecost-frontend", 1, c.kubecost_frontend_resources),
        # forecasting.resources.requests of cost-analyzer/values.yaml (200m/300Mi at v2.4.2,
        # the newest release read; assumed unchanged at the pinned 2.8.x).
        Controller("kubecost-forecasting", 1, 0.2, 300 / 1024),
        # keda/values.yaml of kedacore/charts v2.20.2: resources.{operator,metricServer,
        # webhooks}.requests 100m/100Mi, one replica each.
        Controller("keda", 3, 0.1, 100 / 1024),
        # deployments/gpu-operator/values.yaml (operator) and its node-feature-discovery
        # subchart (master, gc) of NVIDIA/gpu-operator v26.7.0.
        Controller("gpu-operator", 1, 0.2, 100 / 1024),
        Controller("nfd-master", 1, 0.1, 128 / 1024),
        Controller("nfd-gc", 1, 0.01, 128 / 1024),
        # EKS add-ons: CoreDNS's two replicas request 100m/70Mi (EKS default); the EBS CSI
        # controller's two replicas 7 containers of 10m/40Mi each (charts/aws-ebs-csi-driver
        # v1.51.1: controller.resources, which every sidecar defaults to).
        # prometheus-operator and kube-state-metrics request nothing by default.
        Controller("coredns", 2, 0.1, 70 / 1024),
        Controller("ebs-csi-controller", 2, 0.07, 280 / 1024),
    ]


def system_node_problems(cfg: PlatformConfig) -> list[str]:
    """The system node group at ``minSize`` holds the controllers pinned to it."""
    sng = cfg.cluster.system_node_group
    at = f"{NAMESPACE}:cluster.systemNodeGroup"
    if not all(n in GENERAL_INSTANCE_TYPES for n in sng.instance_types):
        return []  # the section reports unknown types
    smallest = min(
        (GENERAL_INSTANCE_TYPES[n] for n in sng.instance_types),
        key=lambda t: (t.vcpus, t.memory_gib, t.name),
    )
    cpu, memory = allocatable(smallest.vcpus, smallest.memory_gib)
    ds_cpu, ds_gib = node_daemonsets()
    node_cpu, node_gib = cpu - ds_cpu, memory - ds_gib
    offer = (
        f"one {smallest.name} node offers {node_cpu:.2f} vCPUs and {node_gib:.1f} GiB to "
        "them after kubelet and DaemonSet reservations"
    )
    problems = []
    if sng.min_size < CONTROLLER_REPLICAS:
        problems.append(
            f"{at}.minSize = {sng.min_size}: Karpenter's {CONTROLLER_REPLICAS} replicas must "
            "run on different system nodes (the chart's required pod anti-affinity); at "
            f"least {CONTROLLER_REPLICAS}"
        )
    controllers = system_controllers(cfg)
    too_big = [c for c in controllers if c.cpu > node_cpu or c.memory_gib > node_gib]
    problems += [
        f"{at}.instanceTypes = {json.dumps(list(sng.instance_types))}: one {c.name} replica "
        f"requests {c.cpu:g} vCPUs and {c.memory_gib:.2g} GiB; {offer}"
        for c in too_big
    ]
    need_cpu = sum(c.replicas * c.cpu for c in controllers)
    need_gib = sum(c.replicas * c.memory_gib for c in controllers)
    if not too_big and (need_cpu > sng.min_size * node_cpu or need_gib > sng.min_size * node_gib):
        problems.append(
            f"{at}.minSize = {sng.min_size}: the controllers pinned to the system nodes "
            f"request {need_cpu:.2f} vCPUs and {need_gib:.1f} GiB ("
            + ", ".join(c.render() for c in controllers)
            + f"); {offer}; raise minSize or use a larger type"
        )
    return problems


def cpu_pool_problems(cfg: PlatformConfig) -> list[str]:
    """The CPU pool's limits hold at least one of its instance types with room left after
    the DaemonSets every node runs."""
    pool = cfg.cpu_pool
    ds_cpu, ds_gib = node_daemonsets()

    def room(t: InstanceType) -> bool:
        cpu, memory = allocatable(t.vcpus, t.memory_gib)
        return cpu > ds_cpu and memory > ds_gib

    types = [t for t in cpu_pool_types(pool.instance_categories) if room(t)]
    fits = [
        t
        for t in types
        if t.vcpus <= pool.cpu_limit and karpenter_memory_gib(t.memory_gib) <= pool.memory_limit_gib
    ]
    if fits or not types:
        return []
    smallest = min(types, key=lambda t: (t.vcpus, t.memory_gib, t.name))
    return [
        f"{NAMESPACE}:cpuPool: cpuLimit {pool.cpu_limit} and memoryLimitGiB "
        f"{pool.memory_limit_gib} hold none of its instance types, so Karpenter never launches "
        f"a node (smallest with room beside the DaemonSets: {smallest.name} with "
        f"{smallest.vcpus} vCPUs, {karpenter_memory_gib(smallest.memory_gib):.1f} GiB as "
        "Karpenter counts it); raise them"
    ]


def cpu_pool_types(categories: Sequence[str]) -> list[InstanceType]:
    """Types of :data:`GENERAL_INSTANCE_TYPES` the CPU NodePool's requirements admit
    (its categories, generation above ``CPU_MIN_GENERATION``)."""
    return [
        t
        for t in GENERAL_INSTANCE_TYPES.values()
        if t.name[0] in categories and int(t.name[1]) > int(CPU_MIN_GENERATION)
    ]
