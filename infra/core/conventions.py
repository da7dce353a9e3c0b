"""Names several components must agree on: namespaces, release names, labels, taints.

Each is defined once here so that, say, the Prometheus rule selector, the DCGM
ServiceMonitor label and the model ServiceMonitors can never drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

# Namespaces
KARPENTER_NAMESPACE: Final = "karpenter"
GPU_OPERATOR_NAMESPACE: Final = "gpu-operator"
MONITORING_NAMESPACE: Final = "monitoring"
LOGGING_NAMESPACE: Final = "logging"
KEDA_NAMESPACE: Final = "keda"
KUBECOST_NAMESPACE: Final = "kubecost"
PLATFORM_NAMESPACES: Final = (
    KARPENTER_NAMESPACE,
    GPU_OPERATOR_NAMESPACE,
    MONITORING_NAMESPACE,
    LOGGING_NAMESPACE,
    KEDA_NAMESPACE,
    KUBECOST_NAMESPACE,
)
"""Namespaces the platform's controllers own; the serving namespace must be another."""

# kube-prometheus-stack selects PrometheusRules and ServiceMonitors by this label
# (``release: <release name>`` while ``*SelectorNilUsesHelmValues`` stays true).
PROMETHEUS_RELEASE: Final = "kube-prometheus-stack"
PROMETHEUS_SELECTOR_LABELS: Final = {"release": PROMETHEUS_RELEASE}
PROMETHEUS_NAME: Final = f"{PROMETHEUS_RELEASE}-prometheus"
"""The chart's Prometheus object and its Service: ``<fullname>-prometheus``
(``templates/_helpers.tpl`` ``prometheus.crname``), fullname being the release name
when that contains the chart name."""
PROMETHEUS_URL: Final = f"http://{PROMETHEUS_NAME}.{MONITORING_NAMESPACE}.svc:9090"


def namespaces_peer(names: Sequence[str]) -> dict[str, Any]:
    """A NetworkPolicy peer: every pod of the namespaces ``names``."""
    return {
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": sorted(names)}
            ]
        }
    }


def prometheus_peer() -> dict[str, Any]:
    """A NetworkPolicy peer: the Prometheus pods only, not the rest of the monitoring
    namespace (Grafana, Alertmanager, the operator's jobs). The labels are the ones the
    chart's Service selects them by (kube-prometheus-stack 88.5.3,
    ``templates/prometheus/service.yaml``)."""
    return {
        **namespaces_peer([MONITORING_NAMESPACE]),
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "prometheus",
                "operator.prometheus.io/name": PROMETHEUS_NAME,
            }
        },
    }


# System node group: on-demand nodes for controllers (Karpenter cannot run on nodes it
# launches). Tainted so that only workloads that opt in land there.
SYSTEM_NODE_LABELS: Final = {"llm-platform.io/node-role": "system"}
SYSTEM_TAINT: Final = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}
SYSTEM_TOLERATION: Final = {
    "key": "CriticalAddonsOnly",
    "operator": "Exists",
    "effect": "NoSchedule",
}

# GPU nodes (Karpenter GPU NodePools): only pods that tolerate the taint land there.
GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_NODE_LABELS: Final = {"llm-platform.io/accelerator": "nvidia"}
GPU_TAINT: Final = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION: Final = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}

# Well-known node labels that NodePool requirements select on
# (https://karpenter.sh/docs/concepts/scheduling/#well-known-labels).
NODEPOOL_LABEL: Final = "karpenter.sh/nodepool"
ZONE_LABEL: Final = "topology.kubernetes.io/zone"
CAPACITY_TYPE_LABEL: Final = "karpenter.sh/capacity-type"
"""``spot`` or ``on-demand``: Karpenter labels every node it launches with it."""
ARCH_LABEL: Final = "kubernetes.io/arch"
OS_LABEL: Final = "kubernetes.io/os"
INSTANCE_FAMILY_LABEL: Final = "karpenter.k8s.aws/instance-family"
INSTANCE_SIZE_LABEL: Final = "karpenter.k8s.aws/instance-size"
INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"
INSTANCE_CATEGORY_LABEL: Final = "karpenter.k8s.aws/instance-category"
INSTANCE_GENERATION_LABEL: Final = "karpenter.k8s.aws/instance-generation"
GPU_MANUFACTURER_LABEL: Final = "karpenter.k8s.aws/instance-gpu-manufacturer"

# Tags on every taggable AWS resource. The AWS budgets filter on the cost-center tag
# (one value per environment); the config requires it and the owner, the program adds
# project and environment.
COST_CENTER_TAG: Final = "cost-center"
OWNER_TAG: Final = "owner"
PROJECT_TAG: Final = "project"
ENVIRONMENT_TAG: Final = "environment"

# Served models: every vLLM pod carries this label with the model's name. Cost budgets of
# scope "model" select pods by it (Kubecost label aggregation; kube-state-metrics exposes it
# as ``kube_pod_labels{label_llm_platform_io_model=...}`` once allowlisted).
MODEL_LABEL: Final = "llm-platform.io/model"

WARM_SLOT_PRIORITY_CLASS: Final = "llm-platform-warm-slot"
"""PriorityClass of the warm-slot placeholders (``workloads.serving.warm_capacity``):
what marks a GPU Deployment as capacity held for models rather than a model (the
policy pack's ``model-min-replicas`` skips them)."""
