"""Kubecost: cost-analyzer values, and what our Prometheus gets for it, in each fixture stack."""

from __future__ import annotations

from typing import Any

from infra.core.conventions import KUBECOST_NAMESPACE, PROMETHEUS_SELECTOR_LABELS, PROMETHEUS_URL
from infra.cost.kubecost import RECORDING_RULES, cost_model_service_monitor_spec
from tests.harness import find, find_all, typed_config
from tools.mock_runtime import Recorded

RELEASE = "kubernetes:helm.sh/v3:Release"
MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def _values(resources: tuple[Recorded, ...]) -> dict[str, Any]:
    return find(resources, RELEASE, "kubecost-release").inputs["values"]


def test_release_is_pinned_2_8_with_an_explicit_name(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    release = find(fixture_resources, RELEASE, "kubecost-release").inputs
    assert (release["name"], release["chart"], release["version"]) == (
        "kubecost",
        "cost-analyzer",
        "2.8.7",
    )
    assert release["repositoryOpts"] == {"repo": "https://kubecost.github.io/cost-analyzer/"}
    assert (release["namespace"], release["createNamespace"]) == (KUBECOST_NAMESPACE, True)


def test_kubecost_uses_our_prometheus_not_its_own(fixture_resources: tuple[Recorded, ...]) -> None:
    values = _values(fixture_resources)
    assert values["global"]["prometheus"] == {"enabled": False, "fqdn": PROMETHEUS_URL}
    assert values["global"]["grafana"] == {"enabled": False, "proxy": False}
    assert values["serviceMonitor"] == {"enabled": False}
    assert values["prometheusRule"] == {"enabled": False}
    # Our Prometheus has KSM v2's series already: no second copy from the cost model.
    assert values["kubecostMetrics"] == {"emitKsmV1Metrics": False, "emitKsmV1MetricsOnly": True}


def test_product_configs_spot_gpu_and_cluster(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    values = _values(fixture_resources)
    cfg = typed_config(fixture_stack)
    assert values["kubecostProductConfigs"] == {
        "clusterName": cfg.cluster.name,
        "currencyCode": "USD",
        "awsSpotDataRegion": cfg.region,
        "spotLabel": "karpenter.sh/capacity-type",
        "spotLabelValue": "spot",
        "gpuLabel": "llm-platform.io/accelerator",
        "gpuLabelValue": "nvidia",
    }
    assert values["prometheus"]["server"]["global"]["external_labels"] == {
        "cluster_id": cfg.cluster.name
    }


def test_resources_and_placement_from_config(fixture_resources: tuple[Recorded, ...]) -> None:
    values = _values(fixture_resources)
    assert values["kubecostModel"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi"},
        "limits": {"memory": "2Gi"},
    }
    assert values["kubecostFrontend"]["resources"]["limits"] == {"memory": "128Mi"}
    for placed in (values, values["forecasting"]):
        assert placed["nodeSelector"] == {"llm-platform.io/node-role": "system"}
        assert placed["tolerations"] == [
            {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}
        ]


def test_budget_alerts_come_from_the_stack_budgets(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    alerts = _values(fixture_resources)["global"]["notifications"]["alertConfigs"]["alerts"]
    budgets = typed_config(fixture_stack).cost.budgets
    assert len(alerts) == sum(len(b.thresholds_percent) for b in budgets)
    assert {a["type"] for a in alerts} == {"budget"}
    assert "enabled" not in _values(fixture_resources)["global"]["notifications"]["alertConfigs"]


def test_our_prometheus_scrapes_cost_model_and_gets_recording_rules(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    (monitor,) = [
        m
        for m in find_all(fixture_resources, MONITOR)
        if m.inputs["metadata"]["namespace"] == KUBECOST_NAMESPACE
    ]
    assert monitor.inputs["metadata"] == {
        "name": "kubecost-cost-model",
        "namespace": KUBECOST_NAMESPACE,
        "labels": PROMETHEUS_SELECTOR_LABELS,
    }
    assert monitor.inputs["spec"] == cost_model_service_monitor_spec()
    (endpoint,) = monitor.inputs["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["honorLabels"]) == (
        "tcp-model",
        "/metrics",
        True,
    )
    rules = {r.name: r for r in find_all(fixture_resources, RULE) if r.parent == "kubecost"}
    assert set(rules) == {"kubecost-recording-rules", "kubecost-cost-alerts"}
    for rule in rules.values():
        assert rule.inputs["metadata"]["labels"] == PROMETHEUS_SELECTOR_LABELS
        assert "kubecost-release" in rule.depends_on
    recorded = [r["record"] for g in RECORDING_RULES for r in g["rules"]]
    assert recorded == [
        "cluster:cpu_usage:rate5m",
        "cluster:cpu_usage_nosum:rate5m",
        "kubecost_container_cpu_usage_irate",
        "kubecost_container_memory_working_set_bytes",
        "kubecost_cluster_memory_working_set_bytes",
        "kubecost_savings_cpu_allocation",
        "kubecost_savings_cpu_allocation",
        "kubecost_savings_memory_allocation_bytes",
        "kubecost_savings_memory_allocation_bytes",
    ]
    assert rules["kubecost-recording-rules"].inputs["spec"] == {"groups": RECORDING_RULES}
