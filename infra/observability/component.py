"""Monitoring: kube-prometheus-stack with its CRDs, our alert rules and dashboards.

Creates, in the ``monitoring`` namespace:

- ``prometheus-operator-crds`` (its own release, so CRDs upgrade with the chart and every
  component's ServiceMonitors/PrometheusRules can depend on it) and
  ``kube-prometheus-stack`` with ``crds.enabled=false``;
- an encrypted gp3 StorageClass for the Prometheus and Alertmanager volumes;
- Secrets for the Grafana admin and the Alertmanager receivers (never in Helm values);
- one PrometheusRule per rule group of ``infra.observability.alert_rules``;
- one ConfigMap per dashboard of ``infra.observability.dashboards``, loaded by the Grafana sidecar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from infra.core.alerting import rule_file
from infra.core.conventions import (
    MODEL_LABEL,
    MONITORING_NAMESPACE,
    PROMETHEUS_RELEASE,
    PROMETHEUS_SELECTOR_LABELS,
    SYSTEM_NODE_LABELS,
    SYSTEM_TOLERATION,
)
from infra.core.helm import Chart
from infra.observability.alert_rules import AlertInputs, platform_rule_groups
from infra.observability.alertmanager import (
    PAGERDUTY_KEY,
    SECRETS_ROOT,
    SLACK_KEY,
    alertmanager_config,
)
from infra.observability.config import ObservabilityConfig
from infra.observability.dashboards import platform_dashboards

REPOSITORY: Final = "https://prometheus-community.github.io/helm-charts"
KPS_CHART: Final = Chart(
    "kube-prometheus-stack", PROMETHEUS_RELEASE, MONITORING_NAMESPACE, REPOSITORY
)
CRDS_CHART: Final = Chart(
    "prometheus-operator-crds", "prometheus-operator-crds", MONITORING_NAMESPACE, REPOSITORY
)

STORAGE_CLASS: Final = "monitoring-gp3"
GRAFANA_ADMIN_SECRET: Final = "grafana-admin"
ALERTMANAGER_SECRET: Final = "alertmanager-receivers"
ALERTMANAGER_PORT: Final = 9093
"""The chart's ``alertmanager.service.port`` (default)."""
DASHBOARD_LABEL: Final = {"grafana_dashboard": "1"}
"""kube-prometheus-stack sets ``grafana.sidecar.dashboards.label/labelValue`` to this."""
DASHBOARD_FOLDER_ANNOTATION: Final = "grafana_folder"
DASHBOARD_FOLDER: Final = "LLM Platform"
RETENTION_SIZE_SHARE: Final = 0.85
"""Share of the volume Prometheus may fill before it drops the oldest blocks."""


@dataclass(frozen=True)
class MonitoringArgs:
    """Inputs of :class:`Monitoring`."""

    config: ObservabilityConfig
    cluster_name: str
    """Added to every alert as the ``cluster`` label (Prometheus external label)."""
    environment: str
    alerts: AlertInputs
    daily_budget_usd: float
    """Daily share of the cluster budget, drawn on the cost dashboard."""
    gateway_namespace: str
    """Namespace of the LiteLLM gateway, whose metrics the gateway dashboard shows."""
    grafana_admin_password: pulumi.Input[str]
    slack_webhook_url: pulumi.Input[str]
    pagerduty_routing_key: pulumi.Input[str]
    volume_tags: Mapping[str, str] = field(default_factory=dict)
    """Cost tags of the EBS volumes the StorageClass provisions."""
    docker_hub_mirror: str | None = None
    """``<registry>/<prefix>`` of the stack's Docker Hub pull-through cache: Grafana, the
    chart's only Docker Hub image, is pulled from there (docs/architecture.md, "Images")."""
    image_cache: pulumi.Resource | None = None
    """The pull-through cache behind ``docker_hub_mirror``: the chart's release waits for
    it, so Grafana's first pull finds the rule and the nodes' right to fill it."""


def _volume(gib: int) -> dict[str, Any]:
    return {
        "volumeClaimTemplate": {
            "spec": {
                "storageClassName": STORAGE_CLASS,
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{gib}Gi"}},
            }
        }
    }


def storage_class_parameters(tags: Mapping[str, str]) -> dict[str, str]:
    """EBS CSI driver parameters: gp3 (3,000 IOPS baseline at any size), encrypted, and
    the stack's cost tags on every volume it provisions (``tagSpecification_<n>``, see
    https://github.com/kubernetes-sigs/aws-ebs-csi-driver/blob/master/docs/tagging.md),
    so the volumes count towards the budgets that filter on those tags."""
    tagged = {
        f"tagSpecification_{i}": f"{key}={value}"
        for i, (key, value) in enumerate(sorted(tags.items()), start=1)
    }
    return {"type": "gp3", "encrypted": "true", "csi.storage.k8s.io/fstype": "ext4", **tagged}


def _grafana_image(docker_hub_mirror: str | None) -> dict[str, Any]:
    """Grafana's image (grafana chart ``image.registry``/``image.repository``, default
    ``docker.io`` ``grafana/grafana``) through the Docker Hub cache; the tag stays the
    chart's appVersion."""
    if docker_hub_mirror is None:
        return {}
    registry, _, prefix = docker_hub_mirror.partition("/")
    return {"image": {"registry": registry, "repository": f"{prefix}/grafana/grafana"}}


def kube_prometheus_stack_values(
    cfg: ObservabilityConfig,
    *,
    cluster_name: str,
    environment: str,
    docker_hub_mirror: str | None = None,
) -> dict[str, Any]:
    """Helm values of kube-prometheus-stack (keys checked against chart 88.5.3)."""
    on_system = {"nodeSelector": dict(SYSTEM_NODE_LABELS), "tolerations": [SYSTEM_TOLERATION]}
    selector = {"matchLabels": dict(PROMETHEUS_SELECTOR_LABELS)}
    retention_size = int(cfg.storage_gib * RETENTION_SIZE_SHARE)
    return {
        # The CRDs come from the prometheus-operator-crds release.
        "crds": {"enabled": False},
        # EKS runs these control-plane parts out of reach: their scrape targets and
        # "...Down" alerts would only ever fail.
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeEtcd": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "prometheusOperator": {
            **on_system,
            "admissionWebhooks": {"patch": dict(on_system)},
        },
        "kube-state-metrics": {
            **on_system,
            # kube_pod_labels carries no pod label unless allowlisted; model-scope cost
            # rules join on the model label (label_llm_platform_io_model).
            "metricLabelsAllowlist": [f"pods=[{MODEL_LABEL}]"],
        },
        "prometheus": {
            "podDisruptionBudget": {"enabled": cfg.prometheus_replicas > 1},
            "prometheusSpec": {
                **on_system,
                "replicas": cfg.prometheus_replicas,
                "retention": cfg.retention,
                "retentionSize": f"{retention_size}GiB",
                "scrapeInterval": cfg.scrape_interval,
                "evaluationInterval": cfg.scrape_interval,
                "externalLabels": {"cluster": cluster_name, "environment": environment},
                "resources": cfg.prometheus_resources.render(),
                "storageSpec": _volume(cfg.storage_gib),
                # Explicit selectors (all namespaces): every component labels its
                # ServiceMonitors, PodMonitors and PrometheusRules with these.
                "ruleSelector": selector,
                "serviceMonitorSelector": selector,
                "podMonitorSelector": selector,
                "ruleNamespaceSelector": {},
                "serviceMonitorNamespaceSelector": {},
                "podMonitorNamespaceSelector": {},
            },
        },
        "alertmanager": {
            "podDisruptionBudget": {"enabled": cfg.alertmanager_replicas > 1},
            # Without it any pod in the cluster could reach Alertmanager's API, which
            # needs no login, and silence alerts. The chart's policy admits Prometheus,
            # the other replicas and the config reloader; Grafana reads alerts through
            # its Alertmanager datasource, on by default (kube-prometheus-stack 88.5.3
            # values.yaml alertmanager.networkPolicy, grafana.sidecar.datasources).
            "networkPolicy": {
                "enabled": True,
                "additionalIngress": [
                    {
                        "from": [
                            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "grafana"}}}
                        ],
                        "ports": [{"port": ALERTMANAGER_PORT, "protocol": "TCP"}],
                    }
                ],
            },
            "config": alertmanager_config(
                slack_channel=cfg.slack_channel,
                info_slack_channel=cfg.info_slack_channel or cfg.slack_channel,
                secrets_dir=f"{SECRETS_ROOT}/{ALERTMANAGER_SECRET}",
            ),
            "alertmanagerSpec": {
                **on_system,
                "replicas": cfg.alertmanager_replicas,
                "resources": cfg.alertmanager_resources.render(),
                "storage": _volume(cfg.alertmanager_storage_gib),
                "secrets": [ALERTMANAGER_SECRET],
            },
        },
        "grafana": {
            **on_system,
            **_grafana_image(docker_hub_mirror),
            "resources": cfg.grafana_resources.render(),
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "admin-user",
                "passwordKey": "admin-password",
            },
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": next(iter(DASHBOARD_LABEL)),
                    "labelValue": DASHBOARD_LABEL["grafana_dashboard"],
                    "searchNamespace": "ALL",
                    "folderAnnotation": DASHBOARD_FOLDER_ANNOTATION,
                    "provider": {"foldersFromFilesStructure": True},
                }
            },
        },
    }


class Monitoring(pulumi.ComponentResource):
    """kube-prometheus-stack, the platform's alert rules, Alertmanager routing, dashboards."""

    crd_release: k8s.helm.v3.Release
    storage_class_name: pulumi.Output[str]
    """The encrypted, cost-tagged gp3 StorageClass every chart volume uses."""
    """Release installing the monitoring.coreos.com CRDs: ``depends_on`` it for CRs."""
    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:monitoring:Monitoring", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": MONITORING_NAMESPACE},
            opts=child,
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[namespace])

        # Not the cluster default: other workloads choose their own class. gp3 because
        # EKS's gp2 class is neither encrypted nor default on new clusters.
        storage = k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": STORAGE_CLASS},
            provisioner="ebs.csi.aws.com",
            parameters=storage_class_parameters(args.volume_tags),
            reclaim_policy=cfg.storage_reclaim_policy,
            # EBS volumes are zonal: create them where the pod is scheduled.
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=child,
        )
        grafana_admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": MONITORING_NAMESPACE},
            type="Opaque",
            string_data={
                "admin-user": "admin",
                "admin-password": pulumi.Output.secret(args.grafana_admin_password),
            },
            opts=in_namespace,
        )
        receivers = k8s.core.v1.Secret(
            f"{name}-alertmanager-receivers",
            metadata={"name": ALERTMANAGER_SECRET, "namespace": MONITORING_NAMESPACE},
            type="Opaque",
            string_data={
                SLACK_KEY: pulumi.Output.secret(args.slack_webhook_url),
                PAGERDUTY_KEY: pulumi.Output.secret(args.pagerduty_routing_key),
            },
            opts=in_namespace,
        )

        self.crd_release = CRDS_CHART.install(
            f"{name}-crds",
            version=cfg.prometheus_operator_crds_version,
            # Deleting the release must not delete every ServiceMonitor and rule with it.
            values={"crds": {"annotations": {"helm.sh/resource-policy": "keep"}}},
            opts=in_namespace,
        )
        self.release = KPS_CHART.install(
            f"{name}-kube-prometheus-stack",
            version=cfg.kube_prometheus_stack_version,
            skip_crds=True,
            timeout=900,
            values=kube_prometheus_stack_values(
                cfg,
                cluster_name=args.cluster_name,
                environment=args.environment,
                docker_hub_mirror=args.docker_hub_mirror,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    self.crd_release,
                    storage,
                    grafana_admin,
                    receivers,
                    *([args.image_cache] if args.image_cache is not None else []),
                ],
            ),
        )

        for group in platform_rule_groups(args.alerts):
            short = group.name.removeprefix("llm-platform.")
            k8s.apiextensions.CustomResource(
                f"{name}-rules-{short}",
                api_version="monitoring.coreos.com/v1",
                kind="PrometheusRule",
                metadata={
                    "name": f"llm-platform-{short}",
                    "namespace": MONITORING_NAMESPACE,
                    "labels": dict(PROMETHEUS_SELECTOR_LABELS),
                },
                spec=rule_file([group]),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.crd_release]),
            )

        dashboards = platform_dashboards(
            serving_namespace=args.alerts.serving_namespace,
            daily_budget_usd=args.daily_budget_usd,
            gateway_namespace=args.gateway_namespace,
        )
        for key, model in dashboards.items():
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{key}",
                metadata={
                    "name": f"llm-platform-dashboard-{key}",
                    "namespace": MONITORING_NAMESPACE,
                    "labels": dict(DASHBOARD_LABEL),
                    "annotations": {DASHBOARD_FOLDER_ANNOTATION: DASHBOARD_FOLDER},
                },
                data={f"llm-platform-{key}.json": json.dumps(model, indent=1, sort_keys=True)},
                opts=in_namespace,
            )

        # An Output, so what takes it (Kubecost's volume) is created after the class.
        self.storage_class_name = storage.metadata.name
        self.register_outputs({"crd_release": self.crd_release.name, "release": self.release.name})
