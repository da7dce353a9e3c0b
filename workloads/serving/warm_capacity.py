"""WarmCapacity: placeholder pods that keep GPU nodes up, with the serving image pulled,
for replicas to start on (``gpuPools[].warmSlots``; off by default).

Each placeholder requests what the pool's largest model replica requests, runs the
serving image itself (so the image is on the node) doing nothing, and has a priority
below every other pod: a pending model replica preempts it at once (grace period 0),
and the evicted placeholder goes Pending again, so Karpenter launches its next node
while the replica starts. Kubernetes facts used: PriorityClass ``preemptionPolicy:
Never`` keeps the placeholder from preempting anyone itself; pods without a
``priorityClassName`` get priority 0 (scheduling.k8s.io/v1 docs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from infra.core.conventions import GPU_TOLERATION, WARM_SLOT_PRIORITY_CLASS
from infra.core.ordering import after
from workloads.serving.pod_security import container_security_context, pod_security_context
from workloads.serving.vllm import pool_affinity

PRIORITY_CLASS: Final = WARM_SLOT_PRIORITY_CLASS
PRIORITY: Final = -10
"""Below the default 0 of every other pod, so any pending pod may preempt a placeholder."""
SLOT_LABEL: Final = "llm-platform.io/warm-slot"


@dataclass(frozen=True)
class WarmSlots:
    """The placeholders of one GPU pool."""

    pool: str
    count: int
    resources: Mapping[str, Mapping[str, str]]
    """Requests and limits of the pool's largest model replica."""
    sized_for: str
    """The model whose replica the slots are sized for."""
    instance_types: tuple[str, ...] = ()
    """The types that model is held to (its replicas' node affinity; empty: any of the
    pool's), so a slot keeps a node the replica can use."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"warm slots of pool {self.pool} ({self.count}) must be >= 1")


def render_priority_class() -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": PRIORITY_CLASS},
        "value": PRIORITY,
        "preemptionPolicy": "Never",
        "globalDefault": False,
        "description": "Warm GPU capacity placeholders; every model replica preempts them.",
    }


def _exec_probe(period: int) -> dict[str, Any]:
    return {"exec": {"command": ["true"]}, "periodSeconds": period}


def render_placeholder(slots: WarmSlots, namespace: str, image: str) -> dict[str, Any]:
    """The Deployment holding ``slots.count`` nodes of ``slots.pool``."""
    labels = {"app.kubernetes.io/name": "warm-slot", SLOT_LABEL: slots.pool}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"warm-{slots.pool}",
            "namespace": namespace,
            "labels": labels,
            # Nothing waits for placeholders: `pulumi up` need not wait for their nodes.
            "annotations": {"pulumi.com/skipAwait": "true"},
        },
        "spec": {
            "replicas": slots.count,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": PRIORITY_CLASS,
                    "terminationGracePeriodSeconds": 0,
                    "tolerations": [dict(GPU_TOLERATION)],
                    "affinity": pool_affinity(slots.pool, slots.instance_types),
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "containers": [
                        {
                            "name": "placeholder",
                            # The serving image, so that it is on the node a replica gets.
                            "image": image,
                            "command": ["sleep", "infinity"],
                            "resources": {k: dict(v) for k, v in slots.resources.items()},
                            "securityContext": container_security_context(),
                            # The policy pack wants a memory /dev/shm on every multi-GPU
                            # container; a placeholder writes nothing to it.
                            "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
                            # The policy pack wants probes on every GPU container.
                            "startupProbe": _exec_probe(10),
                            "readinessProbe": _exec_probe(30),
                            "livenessProbe": _exec_probe(60),
                        }
                    ],
                    "volumes": [
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
                    ],
                },
            },
        },
    }


@dataclass(frozen=True)
class WarmCapacityArgs:
    """Inputs of :class:`WarmCapacity`."""

    slots: tuple[WarmSlots, ...]
    namespace: str
    image: str
    serving_namespace: pulumi.Resource | None = None
    node_pools: pulumi.Resource | None = None
    image_cache: pulumi.Resource | None = None
    """The pull-through cache the image comes through (``infra.registry``), if any: its
    rule and the nodes' permission to fill it must exist before the first pull."""

    def __post_init__(self) -> None:
        if not self.slots:
            raise ValueError("slots must not be empty: create WarmCapacity only with warm slots")


class WarmCapacity(pulumi.ComponentResource):
    """A PriorityClass and one placeholder Deployment per pool with warm slots."""

    def __init__(
        self, name: str, args: WarmCapacityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:serving:WarmCapacity", name, None, opts)
        priority = render_priority_class()
        priority_class = k8s.scheduling.v1.PriorityClass(
            f"{name}-priority",
            metadata=priority["metadata"],
            value=priority["value"],
            preemption_policy=priority["preemptionPolicy"],
            global_default=priority["globalDefault"],
            description=priority["description"],
            opts=pulumi.ResourceOptions(parent=self),
        )
        for slots in args.slots:
            obj = render_placeholder(slots, args.namespace, args.image)
            k8s.apps.v1.Deployment(
                f"{name}-{slots.pool}",
                metadata=obj["metadata"],
                spec=obj["spec"],
                opts=after(
                    self, args.serving_namespace, args.node_pools, args.image_cache, priority_class
                ),
            )
        self.register_outputs({"pools": [s.pool for s in args.slots]})
