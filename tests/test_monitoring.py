"""Monitoring: the two releases, selectors, storage, secrets, rules and dashboards."""

from __future__ import annotations

import json
from typing import Any

from infra.core.alerting import rule_file
from infra.core.conventions import (
    MONITORING_NAMESPACE,
    PROMETHEUS_RELEASE,
    PROMETHEUS_SELECTOR_LABELS,
    SYSTEM_NODE_LABELS,
    SYSTEM_TOLERATION,
)
from infra.observability.alert_rules import platform_rule_groups
from infra.observability.alertmanager import PAGERDUTY_KEY, SLACK_KEY
from infra.observability.component import (
    ALERTMANAGER_SECRET,
    GRAFANA_ADMIN_SECRET,
    STORAGE_CLASS,
)
from tests.harness import cluster_name, find, find_all, typed_config
from tools.mock_runtime import Recorded, Secret

RELEASE = "kubernetes:helm.sh/v3:Release"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
REPO = "https://prometheus-community.github.io/helm-charts"


def kps(resources: tuple[Recorded, ...]) -> Recorded:
    return find(resources, RELEASE, "monitoring-kube-prometheus-stack")


def values(resources: tuple[Recorded, ...]) -> dict[str, Any]:
    return dict(kps(resources).inputs["values"])


def test_crds_and_stack_are_separate_pinned_releases(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    crds = find(fixture_resources, RELEASE, "monitoring-crds")
    stack_release = kps(fixture_resources)
    assert (crds.inputs["name"], crds.inputs["chart"], crds.inputs["version"]) == (
        "prometheus-operator-crds",
        "prometheus-operator-crds",
        "31.0.1",
    )
    assert (stack_release.inputs["name"], stack_release.inputs["chart"]) == (
        PROMETHEUS_RELEASE,
        "kube-prometheus-stack",
    )
    assert stack_release.inputs["version"] == "88.5.3"
    for release in (crds, stack_release):
        assert release.inputs["repositoryOpts"]["repo"] == REPO
        assert release.inputs["namespace"] == MONITORING_NAMESPACE
    assert values(fixture_resources)["crds"] == {"enabled": False}
    assert stack_release.inputs["skipCrds"] is True
    assert "monitoring-crds" in stack_release.depends_on
    # Deleting the CRD release must not cascade to every ServiceMonitor and rule.
    assert crds.inputs["values"]["crds"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_our_rules_and_monitors_carry_the_label_prometheus_selects(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    spec = values(fixture_resources)["prometheus"]["prometheusSpec"]
    for key in ("ruleSelector", "serviceMonitorSelector", "podMonitorSelector"):
        assert spec[key] == {"matchLabels": PROMETHEUS_SELECTOR_LABELS}, key
    for key in ("ruleNamespaceSelector", "serviceMonitorNamespaceSelector"):
        assert spec[key] == {}, key  # every namespace
    custom = [
        r for r in fixture_resources if r.type.startswith("kubernetes:monitoring.coreos.com/v1:")
    ]
    assert {r.type.rsplit(":", 1)[-1] for r in custom} >= {"PrometheusRule", "ServiceMonitor"}
    for r in custom:
        labels = r.inputs["metadata"]["labels"]
        assert labels.items() >= PROMETHEUS_SELECTOR_LABELS.items(), r.name
        assert "monitoring-crds" in r.depends_on, r.name


def test_prometheus_rules_are_the_rendered_rule_groups(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    groups = platform_rule_groups(typed_config(fixture_stack).alert_inputs)
    rules = [r for r in find_all(fixture_resources, RULE) if r.parent == "monitoring"]
    assert [r.inputs["spec"] for r in rules] == sorted(
        (rule_file([g]) for g in groups), key=lambda s: s["groups"][0]["name"]
    )
    assert all(r.inputs["metadata"]["namespace"] == MONITORING_NAMESPACE for r in rules)


def test_retention_storage_and_replicas_follow_config(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    o = typed_config(fixture_stack).observability
    retention, size = o.retention, f"{o.storage_gib}Gi"
    retention_size = f"{int(o.storage_gib * 0.85)}GiB"  # 85 % of the volume
    prometheus, alertmanager = o.prometheus_replicas, o.alertmanager_replicas
    v = values(fixture_resources)
    spec = v["prometheus"]["prometheusSpec"]
    assert (spec["retention"], spec["retentionSize"], spec["replicas"]) == (
        retention,
        retention_size,
        prometheus,
    )
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim == {
        "storageClassName": STORAGE_CLASS,
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    am = v["alertmanager"]["alertmanagerSpec"]
    assert am["replicas"] == alertmanager
    assert am["storage"]["volumeClaimTemplate"]["spec"]["storageClassName"] == STORAGE_CLASS
    # Only Prometheus, the replicas and Grafana (its Alertmanager datasource) reach
    # Alertmanager's API; the chart's policy admits the first two.
    policy = v["alertmanager"]["networkPolicy"]
    assert policy["enabled"] is True and "egress" not in policy
    (grafana,) = policy["additionalIngress"]
    assert grafana == {
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "grafana"}}}],
        "ports": [{"port": 9093, "protocol": "TCP"}],
    }
    assert v["grafana"].get("sidecar", {}).get("datasources", {}).get("alertmanager") is None
    # A PDB with one replica would block every node drain.
    assert v["prometheus"]["podDisruptionBudget"]["enabled"] is (prometheus > 1)
    assert v["alertmanager"]["podDisruptionBudget"]["enabled"] is (alertmanager > 1)
    cpu, memory = o.prometheus_resources.cpu, o.prometheus_resources.memory
    assert spec["resources"] == {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"memory": memory},
    }
    assert spec["externalLabels"] == {
        "cluster": cluster_name(fixture_stack),
        "environment": fixture_stack,
    }


def test_gp3_storage_class_is_encrypted_and_zonal(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    sc = find(fixture_resources, "kubernetes:storage.k8s.io/v1:StorageClass", "monitoring-gp3")
    assert sc.inputs["metadata"]["name"] == STORAGE_CLASS
    assert sc.inputs["provisioner"] == "ebs.csi.aws.com"
    assert sc.inputs["parameters"]["type"] == "gp3"
    assert sc.inputs["parameters"]["encrypted"] == "true"
    assert sc.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert (
        sc.inputs["reclaimPolicy"]
        == typed_config(fixture_stack).observability.storage_reclaim_policy
    )


def test_controllers_run_on_system_nodes(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    v = values(fixture_resources)
    for part in (
        v["prometheusOperator"],
        v["prometheusOperator"]["admissionWebhooks"]["patch"],
        v["kube-state-metrics"],
        v["prometheus"]["prometheusSpec"],
        v["alertmanager"]["alertmanagerSpec"],
        v["grafana"],
    ):
        assert part["nodeSelector"] == SYSTEM_NODE_LABELS
        assert part["tolerations"] == [SYSTEM_TOLERATION]
    for unreachable_on_eks in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert v[unreachable_on_eks] == {"enabled": False}


def test_secrets_stay_out_of_helm_values(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    v = values(fixture_resources)
    grafana = v["grafana"]
    assert "adminPassword" not in grafana
    assert grafana["admin"] == {
        "existingSecret": GRAFANA_ADMIN_SECRET,
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    admin = find(fixture_resources, SECRET, "monitoring-grafana-admin")
    assert admin.inputs["metadata"] == {"name": GRAFANA_ADMIN_SECRET, "namespace": "monitoring"}
    assert isinstance(admin.inputs["stringData"], Secret)
    assert set(admin.inputs["stringData"].value) == {"admin-user", "admin-password"}

    receivers = find(fixture_resources, SECRET, "monitoring-alertmanager-receivers")
    assert receivers.inputs["metadata"]["name"] == ALERTMANAGER_SECRET
    assert set(receivers.inputs["stringData"].value) == {SLACK_KEY, PAGERDUTY_KEY}
    am = v["alertmanager"]
    assert am["alertmanagerSpec"]["secrets"] == [ALERTMANAGER_SECRET]
    files = {
        c.get("api_url_file") or c.get("routing_key_file")
        for r in am["config"]["receivers"]
        for c in r.get("slack_configs", []) + r.get("pagerduty_configs", [])
    }
    mounted = f"/etc/alertmanager/secrets/{ALERTMANAGER_SECRET}"
    assert files == {f"{mounted}/{SLACK_KEY}", f"{mounted}/{PAGERDUTY_KEY}"}
    assert "offline-placeholder" not in json.dumps(v)
    channel = typed_config(fixture_stack).observability.slack_channel
    assert am["config"]["receivers"][1]["slack_configs"][0]["channel"] == channel


def test_dashboards_are_configmaps_the_grafana_sidecar_loads(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    sidecar = values(fixture_resources)["grafana"]["sidecar"]["dashboards"]
    assert (sidecar["enabled"], sidecar["label"], sidecar["labelValue"]) == (
        True,
        "grafana_dashboard",
        "1",
    )
    assert sidecar["searchNamespace"] == "ALL"
    maps = [
        r
        for r in find_all(fixture_resources, CONFIGMAP)
        if r.name.startswith("monitoring-dashboard")
    ]
    assert [r.name for r in maps] == [
        "monitoring-dashboard-cost",
        "monitoring-dashboard-gateway",
        "monitoring-dashboard-gpus",
        "monitoring-dashboard-vllm",
    ]
    for r in maps:
        assert r.inputs["metadata"]["labels"] == {sidecar["label"]: sidecar["labelValue"]}
        assert r.inputs["metadata"]["annotations"] == {sidecar["folderAnnotation"]: "LLM Platform"}
        (document,) = r.inputs["data"].values()
        board = json.loads(document)
        assert board["uid"].startswith("llm-") and board["panels"]


def test_vllm_dashboard_has_the_required_panels(fixture_resources: tuple[Recorded, ...]) -> None:
    board = json.loads(
        next(
            iter(
                find(fixture_resources, CONFIGMAP, "monitoring-dashboard-vllm")
                .inputs["data"]
                .values()
            )
        )
    )
    titles = [p["title"] for p in board["panels"]]
    assert titles == [
        "Requests finished / s",
        "Time to first token",
        "End-to-end latency",
        "Queue time p95",
        "Requests running / waiting",
        "KV cache usage",
        "Tokens / s",
        "Errors and preemptions / s",
    ]
    latency = board["panels"][2]["targets"]
    assert [t["legendFormat"].split()[0] for t in latency] == ["p50", "p95", "p99"]


def test_kube_state_metrics_exposes_the_model_label(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    """Model-scope cost rules join kube_pod_labels on label_llm_platform_io_model."""
    ksm = values(fixture_resources)["kube-state-metrics"]
    assert ksm["metricLabelsAllowlist"] == ["pods=[llm-platform.io/model]"]


def test_storage_class_tags_every_volume_with_the_cost_tags(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    sc = find(fixture_resources, "kubernetes:storage.k8s.io/v1:StorageClass", "monitoring-gp3")
    tags = typed_config(fixture_stack).all_tags
    specs = {k: v for k, v in sc.inputs["parameters"].items() if k.startswith("tagSpecification_")}
    assert sorted(specs.values()) == sorted(f"{k}={v}" for k, v in tags.items())
    assert sorted(specs) == [f"tagSpecification_{i}" for i in range(1, len(tags) + 1)]
