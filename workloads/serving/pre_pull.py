"""ImagePrePull: a DaemonSet that pulls the serving image onto every GPU node as soon as
the node is Ready.

A model replica can bind to a new node only once the device plugin advertises
``nvidia.com/gpu``; this DaemonSet needs no GPU, so its pull starts right away and runs
alongside the device plugin's start (the replica's own pull then joins the one in
flight: containerd fetches a blob once). On an image change it pulls the new image on
every GPU node at once (``maxUnavailable: 100%``), ahead of the replicas that roll there.

It pulls by tag (``infra.core.images.by_tag``), the replicas by tag and digest: through
the ECR pull-through cache only a pull by tag fills the cache with a new digest, so the
first node after a new pin gets it from here; a replica whose pull by digest came too
early finds the image on the node at its next try (kubelet back-off: seconds to a
minute or two, once per new pin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from infra.core.conventions import GPU_NODE_LABELS, GPU_TOLERATION
from infra.core.images import by_tag
from infra.core.ordering import after
from workloads.serving.pod_security import container_security_context, pod_security_context

PAUSE_IMAGE: Final = "registry.k8s.io/pause:3.10"
"""Keeps the pod (and so the image, which the kubelet then never garbage-collects
while a pod uses it) on the node; the pull itself is the init container."""
NAME: Final = "image-pre-pull"
TINY: Final = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "16Mi"}}


def render_pre_pull(namespace: str, image: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": NAME}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            "labels": labels,
            # Not awaited: after an image change every GPU node pulls 10+ GB before the
            # DaemonSet is ready, longer than Pulumi's rollout wait; the replicas' own
            # rollout (awaited) is what an update depends on.
            "annotations": {"pulumi.com/skipAwait": "true"},
        },
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "100%"},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": dict(GPU_NODE_LABELS),
                    "tolerations": [dict(GPU_TOLERATION)],
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "initContainers": [
                        {
                            "name": "pull",
                            "image": by_tag(image),
                            "command": ["true"],
                            "resources": TINY,
                            "securityContext": container_security_context(),
                        }
                    ],
                    "containers": [
                        {
                            "name": "pause",
                            "image": PAUSE_IMAGE,
                            "resources": TINY,
                            "securityContext": container_security_context(),
                        }
                    ],
                },
            },
        },
    }


@dataclass(frozen=True)
class ImagePrePullArgs:
    """Inputs of :class:`ImagePrePull`."""

    namespace: str
    image: str
    serving_namespace: pulumi.Resource | None = None
    image_cache: pulumi.Resource | None = None
    """The pull-through cache the image comes through (``infra.registry``), if any: its
    rule and the nodes' permission to fill it must exist before the first pull."""

    def __post_init__(self) -> None:
        if not self.image:
            raise ValueError("image ('') must name the serving image")


class ImagePrePull(pulumi.ComponentResource):
    """The pre-pull DaemonSet on the GPU nodes."""

    def __init__(
        self, name: str, args: ImagePrePullArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:serving:ImagePrePull", name, None, opts)
        obj = render_pre_pull(args.namespace, args.image)
        k8s.apps.v1.DaemonSet(
            f"{name}-daemonset",
            metadata=obj["metadata"],
            spec=obj["spec"],
            opts=after(self, args.serving_namespace, args.image_cache),
        )
        self.register_outputs({})
