"""Kubecost (cost-analyzer 2.8.x) on the cluster's own Prometheus.

The chart's bundled Prometheus and Grafana are off. What the bundled Prometheus would
have done for Kubecost is added to OUR Prometheus (kube-prometheus-stack) as native
custom resources carrying its selector label: a ServiceMonitor for the cost-model metrics
and a PrometheusRule with the chart's recording rules. The budgets' cost alerts ride in
the same component (they query the cost-model metrics it makes available).

Values checked against ``kubecost/kubecost@v2.8.7:cost-analyzer/values.yaml`` and its
templates (``cost-analyzer-service-template.yaml``: port ``tcp-model`` 9003, selector
labels ``app.kubernetes.io/name``, ``app.kubernetes.io/instance``, ``app``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from infra.core.conventions import (
    CAPACITY_TYPE_LABEL,
    GPU_NODE_LABELS,
    KUBECOST_NAMESPACE,
    PROMETHEUS_SELECTOR_LABELS,
    PROMETHEUS_URL,
    SYSTEM_NODE_LABELS,
    SYSTEM_TOLERATION,
)
from infra.core.helm import Chart
from infra.core.ordering import after
from infra.cost.budgets import Budget, cost_rule_group, kubecost_alert_configs
from infra.cost.config import CostConfig

KUBECOST_CHART: Final = Chart(
    "cost-analyzer", "kubecost", KUBECOST_NAMESPACE, "https://kubecost.github.io/cost-analyzer/"
)
"""With release name ``kubecost`` the chart names its Service ``kubecost-cost-analyzer``."""
RELEASE = KUBECOST_CHART.release
COST_MODEL_PORT = "tcp-model"

# Recording rules of the chart's bundled Prometheus (values.yaml
# ``prometheus.serverFiles."recording_rules.yml"`` @ v2.8.7); savings and right-sizing
# views query them.
RECORDING_RULES: list[dict[str, Any]] = [
    {
        "name": "CPU",
        "rules": [
            {
                "expr": 'sum(rate(container_cpu_usage_seconds_total{container!=""}[5m]))',
                "record": "cluster:cpu_usage:rate5m",
            },
            {
                "expr": 'rate(container_cpu_usage_seconds_total{container!=""}[5m])',
                "record": "cluster:cpu_usage_nosum:rate5m",
            },
            {
                "expr": 'avg(irate(container_cpu_usage_seconds_total{container!="POD", '
                'container!=""}[5m])) by (container,pod,namespace)',
                "record": "kubecost_container_cpu_usage_irate",
            },
            {
                "expr": 'sum(container_memory_working_set_bytes{container!="POD",container!=""})'
                " by (container,pod,namespace)",
                "record": "kubecost_container_memory_working_set_bytes",
            },
            {
                "expr": 'sum(container_memory_working_set_bytes{container!="POD",container!=""})',
                "record": "kubecost_cluster_memory_working_set_bytes",
            },
        ],
    },
    {
        "name": "Savings",
        "rules": [
            {
                "expr": f'sum(avg(kube_pod_owner{{owner_kind{op}"DaemonSet"}}) by (pod) * '
                f"sum({metric}) by (pod)){per_node}",
                "record": record,
                "labels": {"daemonset": daemonset},
            }
            for record, metric in (
                ("kubecost_savings_cpu_allocation", "container_cpu_allocation"),
                ("kubecost_savings_memory_allocation_bytes", "container_memory_allocation_bytes"),
            )
            for op, per_node, daemonset in (
                ("!=", "", "false"),
                ("=", " / sum(kube_node_info)", "true"),
            )
        ],
    },
]


def kubecost_values(
    config: CostConfig,
    *,
    cluster_name: str,
    region: str,
    budgets: Sequence[Budget],
    storage_class: str,
) -> dict[str, Any]:
    """Helm values of the cost-analyzer release."""
    on_system_nodes = {"nodeSelector": dict(SYSTEM_NODE_LABELS), "tolerations": [SYSTEM_TOLERATION]}
    (gpu_label, gpu_value), *_ = GPU_NODE_LABELS.items()
    return {
        "global": {
            "prometheus": {"enabled": False, "fqdn": PROMETHEUS_URL},
            "grafana": {"enabled": False, "proxy": False},
            "notifications": {"alertConfigs": kubecost_alert_configs(budgets, cluster_name)},
        },
        # The cluster id Kubecost reports (and budget alerts of scope cluster filter on);
        # the chart reads it from here even when its own Prometheus is off.
        "prometheus": {"server": {"global": {"external_labels": {"cluster_id": cluster_name}}}},
        "kubecostProductConfigs": {
            "clusterName": cluster_name,
            "currencyCode": "USD",
            "awsSpotDataRegion": region,
            "spotLabel": CAPACITY_TYPE_LABEL,
            "spotLabelValue": "spot",
            "gpuLabel": gpu_label,
            "gpuLabelValue": gpu_value,
        },
        # The chart's PVC names no class by default, and EKS has no default StorageClass:
        # the claim would stay Pending and the release time out
        # (``persistentVolume.storageClass`` in cost-analyzer/values.yaml).
        "persistentVolume": {"storageClass": storage_class},
        "kubecostModel": {"resources": config.kubecost_model_resources.render()},
        "kubecostFrontend": {"resources": config.kubecost_frontend_resources.render()},
        **on_system_nodes,
        "forecasting": on_system_nodes,
        # kube-prometheus-stack runs KSM v2, which our Prometheus scrapes: Kubecost emits
        # only the few KSM v1 metrics it needs (per opencost pkg/metrics/kubemetrics.go:
        # pod owner and labels, node capacity, allocatable, labels and conditions, which
        # KSM v2 has too, so a sum over them counts twice: max or avg them), instead of
        # a second copy of every pod and deployment series that doubles sums and alerts
        # (kubecost/docs architecture/ksm-metrics.md, "External KSM
        # deployments resulting in duplicated metrics"; EMIT_KSM_V1_METRICS[_ONLY] in
        # cost-analyzer-deployment-template.yaml at v2.8.7).
        "kubecostMetrics": {"emitKsmV1Metrics": False, "emitKsmV1MetricsOnly": True},
        # Ours, below, carry the label our Prometheus selects by; the chart's would not.
        "serviceMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
    }


def cost_model_service_monitor_spec() -> dict[str, Any]:
    """ServiceMonitor spec for the cost-model metrics (as the chart's own template)."""
    return {
        "endpoints": [
            {
                "port": COST_MODEL_PORT,
                "path": "/metrics",
                "scheme": "http",
                "interval": "1m",
                "scrapeTimeout": "30s",
                # cost-model exports node/namespace/pod labels of its own; keep them.
                "honorLabels": True,
            }
        ],
        "namespaceSelector": {"matchNames": [KUBECOST_NAMESPACE]},
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": KUBECOST_CHART.chart,
                "app.kubernetes.io/instance": RELEASE,
                "app": "cost-analyzer",
            }
        },
    }


@dataclass(frozen=True)
class KubecostArgs:
    """Inputs of :class:`Kubecost`."""

    config: CostConfig
    cluster_name: str
    region: str
    storage_class: pulumi.Input[str]
    """StorageClass of Kubecost's volume (created by Monitoring; an Output orders it)."""
    runbook_base_url: str
    """Where the cost alerts' runbooks are (``PlatformConfig.runbook_base_url``)."""
    monitoring_crds: pulumi.Resource | None = None
    """What installs the ServiceMonitor/PrometheusRule CRDs (prometheus-operator-crds)."""

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return tuple(Budget.from_config(b) for b in self.config.budgets)


class Kubecost(pulumi.ComponentResource):
    """cost-analyzer release plus what our Prometheus needs for it, and the cost alerts."""

    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: KubecostArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:cost:Kubecost", name, None, opts)
        release = KUBECOST_CHART.install(
            f"{name}-release",
            version=args.config.kubecost_version,
            create_namespace=True,
            values=pulumi.Output.from_input(args.storage_class).apply(
                lambda storage_class: kubecost_values(
                    args.config,
                    cluster_name=args.cluster_name,
                    region=args.region,
                    budgets=args.budgets,
                    storage_class=storage_class,
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        after_crds = after(self, release, args.monitoring_crds)

        def metadata(role: str) -> dict[str, Any]:
            return {
                "name": f"{RELEASE}-{role}",
                "namespace": KUBECOST_NAMESPACE,
                "labels": dict(PROMETHEUS_SELECTOR_LABELS),
            }

        k8s.apiextensions.CustomResource(
            f"{name}-cost-model",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=metadata("cost-model"),
            spec=cost_model_service_monitor_spec(),
            opts=after_crds,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-recording-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=metadata("recording-rules"),
            spec={"groups": RECORDING_RULES},
            opts=after_crds,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-cost-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=metadata("cost-alerts"),
            spec=cost_rule_group(args.budgets, args.runbook_base_url),
            opts=after_crds,
        )
        self.release = release
        self.register_outputs({"release_status": release.status})
