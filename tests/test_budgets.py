"""Budgets: one definition rendered as Kubecost alerts, AWS Budgets and PrometheusRules."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.alerting import AlertRule
from infra.cost.budgets import (
    Budget,
    cost_alerts,
    cost_rule_group,
    kubecost_alert_configs,
)
from tests.harness import SMALL, find, find_all, run_stack, typed_config
from tests.test_alert_rules import PROMTOOL_TIMEOUT
from tools.mock_runtime import Recorded

CLUSTER = Budget("all", "cluster", monthly_usd=7300, thresholds_percent=(50, 100))
NAMESPACE = Budget(
    "ns",
    "namespace",
    target="inference",
    monthly_usd=730,
    thresholds_percent=(100, 200),
    notify_emails=("a@example.com",),
)
MODEL = Budget("m1", "model", target="m1", monthly_usd=730, thresholds_percent=(100,))
BUDGETS = (CLUSTER, NAMESPACE, MODEL)
RUNBOOKS = "https://example.com/runbooks"


def test_budget_checks_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"^monthly_usd \(0\) must be > 0$"):
        Budget("b", "cluster", monthly_usd=0, thresholds_percent=(50,))
    with pytest.raises(
        ValueError,
        match=r"^thresholds_percent \(\(10, 20, 30, 40, 50\)\) allows at most 4 thresholds "
        r"\(AWS budget notification limit\)$",
    ):
        Budget("b", "cluster", monthly_usd=1, thresholds_percent=(10, 20, 30, 40, 50))
    with pytest.raises(
        ValueError,
        match=r"^target \(None\) must be None exactly when scope is cluster \(scope is model\)$",
    ):
        Budget("b", "model", monthly_usd=1, thresholds_percent=(50,))


def test_kubecost_alerts_one_per_threshold_at_the_daily_share() -> None:
    assert kubecost_alert_configs(BUDGETS, "c1") == {
        "alerts": [
            {
                "type": "budget",
                "threshold": 120.0,
                "window": "1d",
                "aggregation": "cluster",
                "filter": "c1",
            },
            {
                "type": "budget",
                "threshold": 240.0,
                "window": "1d",
                "aggregation": "cluster",
                "filter": "c1",
            },
            {
                "type": "budget",
                "threshold": 24.0,
                "window": "1d",
                "aggregation": "namespace",
                "filter": "inference",
                "ownerContact": ["a@example.com"],
            },
            {
                "type": "budget",
                "threshold": 48.0,
                "window": "1d",
                "aggregation": "namespace",
                "filter": "inference",
                "ownerContact": ["a@example.com"],
            },
            {
                "type": "budget",
                "threshold": 24.0,
                "window": "1d",
                "aggregation": "label:llm_platform_io_model",
                "filter": "m1",
            },
        ]
    }
    # The chart writes alerts.json inside single quotes: no value may contain one.
    assert "'" not in json.dumps(kubecost_alert_configs(BUDGETS, "c1"))


# --------------------------------------------------------------------------- AWS, per stack


def _cluster_budgets(stack: str) -> list[Any]:
    return [b for b in typed_config(stack).cost.budgets if b.scope == "cluster"]


def test_cluster_budget_is_an_aws_budget_on_the_cost_center_tag(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    budgets = find_all(fixture_resources, "aws:budgets/budget:Budget")
    assert len(budgets) == 1  # namespace/model budgets are not AWS billing concepts
    b = budgets[0].inputs
    (cluster,) = _cluster_budgets(fixture_stack)
    assert (b["name"], b["limitAmount"]) == (
        f"{fixture_stack}-{cluster.name}",
        f"{cluster.monthly_usd:.2f}",
    )
    assert (b["budgetType"], b["timeUnit"], b["limitUnit"]) == ("COST", "MONTHLY", "USD")
    cfg = typed_config(fixture_stack)
    assert b["costFilters"] == [
        {"name": "TagKeyValue", "values": [f"user:cost-center${cfg.tags['cost-center']}"]}
    ]
    topic = f"arn:aws:sns:{cfg.region}:{cfg.account_id}:{fixture_stack}-budget-alerts"
    assert [
        (
            n["notificationType"],
            n["threshold"],
            n["comparisonOperator"],
            n["thresholdType"],
            n["subscriberSnsTopicArns"],
        )
        for n in b["notifications"]
    ] == [
        ("ACTUAL", 50.0, "GREATER_THAN", "PERCENTAGE", [topic]),
        ("ACTUAL", 80.0, "GREATER_THAN", "PERCENTAGE", [topic]),
        ("ACTUAL", 100.0, "GREATER_THAN", "PERCENTAGE", [topic]),
        ("FORECASTED", 100.0, "GREATER_THAN", "PERCENTAGE", [topic]),
    ]
    # Activation waits for the tag to appear in billing data and only works from the
    # payer account: it is opt-in (``cost.activateCostAllocationTag``).
    assert not cfg.cost.activate_cost_allocation_tag or "cost-cost-center" in budgets[0].depends_on


def test_cost_allocation_tag_is_activated_only_when_asked_for() -> None:
    default = run_stack(SMALL)
    assert default.error is None
    tags = "aws:costexplorer/costAllocationTag:CostAllocationTag"
    assert not find_all(default.resources, tags)

    def activate(config: dict[str, Any]) -> None:
        config["llm-platform:cost"]["activateCostAllocationTag"] = True

    activated = run_stack(SMALL, activate)
    assert activated.error is None
    tag = find(activated.resources, tags, "cost-cost-center")
    assert tag.inputs == {"tagKey": "cost-center", "status": "Active"}
    (budget,) = find_all(activated.resources, "aws:budgets/budget:Budget")
    assert "cost-cost-center" in budget.depends_on


def test_budget_topic_is_encrypted_and_only_budgets_may_publish(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    topic = find(fixture_resources, "aws:sns/topic:Topic", "cost-alerts")
    assert topic.inputs["name"] == f"{fixture_stack}-budget-alerts"
    assert topic.inputs["kmsMasterKeyId"].startswith(f"arn:aws:kms:{cfg.region}:{cfg.account_id}:")
    key = find(fixture_resources, "aws:kms/key:Key", "cost-topic").inputs
    assert key["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key["policy"])["Statement"]}
    assert statements["AllowBudgetsToEncrypt"]["Principal"] == {"Service": "budgets.amazonaws.com"}
    assert statements["AllowBudgetsToEncrypt"]["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    policy = json.loads(
        find(fixture_resources, "aws:sns/topicPolicy:TopicPolicy", "cost-alerts").inputs["policy"]
    )
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "budgets.amazonaws.com"}
    assert statement["Action"] == "SNS:Publish"
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": cfg.account_id},
        "ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{cfg.account_id}:*"},
    }
    subscriptions = find_all(fixture_resources, "aws:sns/topicSubscription:TopicSubscription")
    emails = {e for b in _cluster_budgets(fixture_stack) for e in b.notify_emails}
    assert sorted(s.inputs["endpoint"] for s in subscriptions) == sorted(emails)
    assert {s.inputs["protocol"] for s in subscriptions} == {"email"}


# --------------------------------------------------------------------------- PrometheusRules

PROMTOOL = "promtool"


def _annotations(alert: AlertRule, value: float) -> dict[str, str]:
    template = '{{ $value | printf "%.2f" }}'
    return {
        "summary": alert.summary,
        "description": alert.description.replace(template, f"{value:.2f}"),
        "runbook_url": alert.runbook_url,
    }


def _expected(alert: AlertRule, value: float) -> dict[str, Any]:
    return {
        "exp_labels": {**alert.labels, "severity": alert.severity},
        "exp_annotations": _annotations(alert, value),
    }


def _alert(name: str, **labels: str) -> AlertRule:
    return next(
        a
        for a in cost_alerts(BUDGETS, RUNBOOKS)
        if a.name == name and all(a.labels.get(k) == v for k, v in labels.items())
    )


def _promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    """``promtool check rules`` on the cost rules, then ``test rules`` on ``tests`` with
    the alerts they name (promtool evaluates every rule at each step, over a day here;
    the cost group has no recording rules)."""
    rules = tmp_path / "rules.yaml"
    spec = cost_rule_group(BUDGETS, RUNBOOKS)
    assert not any("record" in r for g in spec["groups"] for r in g["rules"])
    rules.write_text(yaml.safe_dump(spec))
    names = {t["alertname"] for test in tests for t in test["alert_rule_test"]}
    tested_rules = tmp_path / "tested-rules.yaml"
    tested_rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {**g, "rules": [r for r in g["rules"] if r["alert"] in names]}
                    for g in spec["groups"]
                ]
            }
        )
    )
    spec_file = tmp_path / "tests.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {"rule_files": [tested_rules.name], "evaluation_interval": "1m", "tests": tests}
        )
    )
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        check=False,
        timeout=PROMTOOL_TIMEOUT,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", spec_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=PROMTOOL_TIMEOUT,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_cluster_daily_cost_fires_per_threshold(tmp_path: Path) -> None:
    # 6 USD/h = 144 USD/day: above 50% (120) of the 240/day share, below 100%.
    half = _alert("CostDailyOverBudgetShare", budget="all", threshold_percent="50")
    assert half.severity == "info"
    assert _alert("CostDailyOverBudgetShare", budget="all", threshold_percent="100").severity == (
        "warning"
    )
    _promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'node_total_hourly_cost{node="a"}', "values": "2+0x200"},
                    {"series": 'node_total_hourly_cost{node="b"}', "values": "4+0x200"},
                ],
                "alert_rule_test": [
                    # Not yet: the rule needs an hour above the threshold.
                    {"eval_time": "30m", "alertname": "CostDailyOverBudgetShare", "exp_alerts": []},
                    {
                        "eval_time": "90m",
                        "alertname": "CostDailyOverBudgetShare",
                        "exp_alerts": [_expected(half, 144)],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'node_total_hourly_cost{node="a"}', "values": "4+0x200"}
                ],
                "alert_rule_test": [
                    {"eval_time": "90m", "alertname": "CostDailyOverBudgetShare", "exp_alerts": []}
                ],
            },
        ],
    )


def _allocations(selector: str) -> list[dict[str, str]]:
    # 4 CPUs x 0.05 + 2 GiB x 0.01 + 1 GPU x 1.00 = 1.22 USD/h = 29.28 USD/day.
    return [
        {"series": f"container_cpu_allocation{{{selector}}}", "values": "4+0x200"},
        {
            "series": f"container_memory_allocation_bytes{{{selector}}}",
            "values": f"{2 * 1024**3}+0x200",
        },
        {"series": f"container_gpu_allocation{{{selector}}}", "values": "1+0x200"},
        {"series": 'node_cpu_hourly_cost{node="n1"}', "values": "0.05+0x200"},
        {"series": 'node_ram_hourly_cost{node="n1"}', "values": "0.01+0x200"},
        {"series": 'node_gpu_hourly_cost{node="n1"}', "values": "1+0x200"},
    ]


def test_namespace_and_model_daily_cost(tmp_path: Path) -> None:
    pod = 'namespace="inference",pod="m1-7d9f-abcde",container="vllm",node="n1"'
    namespace = _alert("CostDailyOverBudgetShare", budget="ns", threshold_percent="100")
    model = _alert("CostDailyOverBudgetShare", budget="m1")
    labelled = {
        "series": 'kube_pod_labels{namespace="inference",pod="m1-7d9f-abcde",'
        'label_llm_platform_io_model="m1"}',
        "values": "1+0x200",
    }
    _promtool(
        tmp_path,
        [
            {
                # 29.28/day: over the namespace's and the model's 24/day, under 200% (48).
                "interval": "1m",
                "input_series": [*_allocations(pod), labelled],
                "alert_rule_test": [
                    {
                        "eval_time": "90m",
                        "alertname": "CostDailyOverBudgetShare",
                        "exp_alerts": [_expected(namespace, 29.28), _expected(model, 29.28)],
                    }
                ],
            },
            {
                # Same pod in another namespace, labelled for another model: neither budget.
                "interval": "1m",
                "input_series": [
                    *_allocations(pod.replace("inference", "batch")),
                    {**labelled, "series": labelled["series"].replace('"m1"}', '"m2"}')},
                ],
                "alert_rule_test": [
                    {"eval_time": "90m", "alertname": "CostDailyOverBudgetShare", "exp_alerts": []}
                ],
            },
        ],
    )


def test_gpu_cost_spike(tmp_path: Path) -> None:
    spike = _alert("GpuCostSpike")
    day = 24 * 60
    _promtool(
        tmp_path,
        [
            {
                # Two GPUs at 1 USD/h for a day, then four: 4 > 1.5 x 2.
                "interval": "1m",
                "input_series": [
                    {"series": 'node_gpu_hourly_cost{node="a"}', "values": f"1+0x{day + 120}"},
                    {"series": 'node_gpu_count{node="a"}', "values": f"2+0x{day} 4+0x120"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": f"{day + 60}m",
                        "alertname": "GpuCostSpike",
                        "exp_alerts": [_expected(spike, 4)],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'node_gpu_hourly_cost{node="a"}', "values": f"1+0x{day + 120}"},
                    {"series": 'node_gpu_count{node="a"}', "values": f"2+0x{day} 3+0x120"},
                ],
                "alert_rule_test": [
                    {"eval_time": f"{day + 60}m", "alertname": "GpuCostSpike", "exp_alerts": []},
                ],
            },
        ],
    )


def test_rule_expressions_use_only_cost_model_and_ksm_metrics() -> None:
    names = set()
    for alert in cost_alerts(BUDGETS, RUNBOOKS):
        names |= set(
            re.findall(r"\b([a-z_]+(?:_cost|_allocation(?:_bytes)?|_count|_labels))\b", alert.expr)
        )
    assert names == {
        "node_total_hourly_cost",
        "node_cpu_hourly_cost",
        "node_ram_hourly_cost",
        "node_gpu_hourly_cost",
        "node_gpu_count",
        "container_cpu_allocation",
        "container_memory_allocation_bytes",
        "container_gpu_allocation",
        "kube_pod_labels",
    }
