"""GpuOperator: NVIDIA GPU operator for the GPU nodes Karpenter launches.

The EKS AL2023 NVIDIA and Bottlerocket NVIDIA AMIs (the only ones our EC2NodeClass
selects) ship the kernel driver and the NVIDIA container toolkit, so the operator's
driver and toolkit containers are off; it still brings GPU feature discovery, the
validator and the DCGM exporter whose metrics the GPU alerts and dashboards read.
Bottlerocket also ships the device plugin, so a second one must not run there.
Values keys: ``deployments/gpu-operator/values.yaml`` of NVIDIA/gpu-operator at the
pinned version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from infra.core.ami import AmiFamily
from infra.core.conventions import (
    GPU_OPERATOR_NAMESPACE,
    GPU_TOLERATION,
    PROMETHEUS_SELECTOR_LABELS,
    SYSTEM_NODE_LABELS,
    SYSTEM_TOLERATION,
)
from infra.core.helm import Chart
from infra.core.ordering import after
from infra.gpu_operator.config import GpuOperatorConfig

GPU_OPERATOR_CHART: Final = Chart(
    "gpu-operator", "gpu-operator", GPU_OPERATOR_NAMESPACE, "https://helm.ngc.nvidia.com/nvidia"
)
TIME_SLICING_CONFIG: Final = "time-slicing-config"
DCGM_SCRAPE_INTERVAL: Final = "15s"


def time_slicing_config(replicas: int) -> str:
    """Device-plugin config sharing each GPU between ``replicas`` pods (no isolation)."""
    return (
        "version: v1\n"
        "flags:\n"
        "  migStrategy: none\n"
        "sharing:\n"
        "  timeSlicing:\n"
        "    resources:\n"
        "      - name: nvidia.com/gpu\n"
        f"        replicas: {replicas}\n"
    )


def operator_values(config: GpuOperatorConfig, ami_family: AmiFamily) -> dict[str, Any]:
    """Helm values of the gpu-operator chart."""
    on_system_nodes = {
        "nodeSelector": dict(SYSTEM_NODE_LABELS),
        "tolerations": [dict(SYSTEM_TOLERATION)],
    }
    device_plugin: dict[str, Any] = {"enabled": ami_family != "bottlerocket"}
    if config.time_slicing_replicas is not None:
        device_plugin["config"] = {
            "create": True,
            "name": TIME_SLICING_CONFIG,
            "default": "any",
            "data": {"any": time_slicing_config(config.time_slicing_replicas)},
        }
    return {
        # The AMI's driver and toolkit are used; installing them again would fight them.
        # The validator needs no setting for that: it detects a pre-installed driver
        # (cmd/nvidia-validator), and skips plugin validation when the plugin is off.
        "driver": {"enabled": False},
        "toolkit": {"enabled": False},
        # CDI needs containerd's CDI support configured on the node; the EKS NVIDIA AMIs
        # wire the classic `nvidia` runtime instead.
        "cdi": {"enabled": False},
        "devicePlugin": device_plugin,
        # No MIG-capable setup is configured; the MIG manager would only idle on every node.
        "migManager": {"enabled": False},
        "dcgmExporter": {
            "enabled": True,
            "serviceMonitor": {
                "enabled": True,
                "interval": DCGM_SCRAPE_INTERVAL,
                "additionalLabels": dict(PROMETHEUS_SELECTOR_LABELS),
                # `instance` names the GPU's node, not the exporter pod's IP:port (the
                # chart's own example; ClusterPolicy dcgmExporter.serviceMonitor.relabelings
                # at v26.7.0), so alerts and panels say which node to look at.
                "relabelings": [
                    {
                        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                        "targetLabel": "instance",
                        "action": "replace",
                    }
                ],
            },
        },
        # Operand DaemonSets run on GPU nodes only (NFD labels select them); this list
        # replaces the chart default, so the GPU taint is listed again.
        "daemonsets": {"tolerations": [dict(GPU_TOLERATION)]},
        "operator": on_system_nodes,
        "node-feature-discovery": {
            "master": on_system_nodes,
            "gc": on_system_nodes,
            "worker": {"tolerations": [dict(GPU_TOLERATION), dict(SYSTEM_TOLERATION)]},
        },
    }


@dataclass(frozen=True)
class GpuOperatorArgs:
    """Inputs of :class:`GpuOperator`."""

    config: GpuOperatorConfig
    ami_family: AmiFamily
    monitoring_crds: pulumi.Resource | None = None
    """Release installing the ServiceMonitor CRD: the operator skips the DCGM
    ServiceMonitor silently when the CRD is missing at install time."""


class GpuOperator(pulumi.ComponentResource):
    """The gpu-operator Helm release. Pass the cluster's provider in ``opts``."""

    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: GpuOperatorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:gpu:GpuOperator", name, None, opts)
        self.release = GPU_OPERATOR_CHART.install(
            f"{name}-release",
            version=args.config.version,
            create_namespace=True,
            values=operator_values(args.config, args.ami_family),
            opts=after(self, args.monitoring_crds),
        )
        self.register_outputs({"release": self.release.name})
