"""Alertmanager config: amtool validates it and proves where each severity goes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.alerting import AlertRule
from infra.observability.alert_rules import platform_rule_groups
from infra.observability.alertmanager import (
    INHIBIT_EQUAL,
    PAGERDUTY_KEY,
    ROUTING,
    SLACK_KEY,
    alertmanager_config,
)
from tests.harness import SMALL, typed_config
from tests.test_alert_rules import PROMTOOL_TIMEOUT, tool

# kube-prometheus-stack 88.5.3 values.yaml, alertmanager.config: Helm merges our map over
# it, so every key it sets must be set by us too or the chart's value survives.
CHART_DEFAULT_KEYS = {"global", "inhibit_rules", "receivers", "route", "templates"}
CHART_DEFAULT_ROUTE_KEYS = {
    "group_by",
    "group_interval",
    "group_wait",
    "receiver",
    "repeat_interval",
    "routes",
}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The rendered config, with placeholder secret files where the operator mounts them."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / SLACK_KEY).write_text("https://hooks.slack.com/services/T000/B000/placeholder")
    (secrets / PAGERDUTY_KEY).write_text("placeholder-routing-key")
    path = tmp_path / "alertmanager.yaml"
    config = alertmanager_config(
        slack_channel="#llm-alerts", secrets_dir=str(secrets), info_slack_channel="#llm-info"
    )
    path.write_text(yaml.safe_dump(config))
    return path


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("amtool"), *args], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT
    )


def test_config_passes_amtool_check(config_file: Path) -> None:
    result = amtool("check-config", str(config_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 receivers" in result.stdout and "2 inhibit rules" in result.stdout


# One case per routing decision (ROUTING), plus the two helper alerts that go nowhere.
# The budget shares below 100% and GPU underutilisation are info alerts: they reach the
# info channel.
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=ModelServingDown"], "pagerduty,slack"),
        (["severity=warning", "alertname=GpuMemoryHigh"], "slack"),
        (["severity=info", "alertname=GpuUnderutilized"], "slack-info"),
        (["severity=info", "alertname=CostDailyOverBudgetShare", "budget=b"], "slack-info"),
        (["alertname=SomethingWithoutSeverity"], "slack"),
        (["severity=page", "alertname=UnknownSeverity"], "slack"),
        (["severity=none", "alertname=Watchdog"], "null"),
        (["severity=none", "alertname=InfoInhibitor"], "null"),
    ],
)
def test_routes_send_each_severity_to_its_receivers(
    config_file: Path, labels: list[str], receivers: str
) -> None:
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={config_file}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_every_severity_has_one_documented_decision() -> None:
    assert ROUTING == {
        "critical": ("pagerduty", "slack"),
        "warning": ("slack",),
        "info": ("slack-info",),
        "(none or other)": ("slack",),
    }
    config = alertmanager_config(slack_channel="#c", secrets_dir="/s")
    receivers = {r["name"] for r in config["receivers"]}
    assert {name for names in ROUTING.values() for name in names} <= receivers


def test_info_alerts_go_to_their_channel_once_a_day_without_resolves() -> None:
    config = alertmanager_config(slack_channel="#c", secrets_dir="/s", info_slack_channel="#i")
    (info,) = next(r for r in config["receivers"] if r["name"] == "slack-info")["slack_configs"]
    assert (info["channel"], info["send_resolved"]) == ("#i", False)
    route = next(r for r in config["route"]["routes"] if r["receiver"] == "slack-info")
    assert route["repeat_interval"] == "24h"
    default = alertmanager_config(slack_channel="#c", secrets_dir="/s")
    (info,) = next(r for r in default["receivers"] if r["name"] == "slack-info")["slack_configs"]
    assert info["channel"] == "#c"


def test_route_verification_can_fail(config_file: Path) -> None:
    """Guard: amtool really compares receivers (a critical alert is not Slack-only)."""
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={config_file}",
        "--verify.receivers=slack",
        "severity=critical",
    )
    assert result.returncode == 1


def test_a_misspelt_key_fails_amtool(tmp_path: Path, config_file: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(config_file.read_text().replace("routing_key_file", "routing_key_fil"))
    assert amtool("check-config", str(bad)).returncode == 1


def test_no_secret_in_the_config_only_file_references() -> None:
    config = alertmanager_config(slack_channel="#c", secrets_dir="/etc/alertmanager/secrets/s")
    (slack,) = next(r for r in config["receivers"] if r["name"] == "slack")["slack_configs"]
    (pager,) = next(r for r in config["receivers"] if r["name"] == "pagerduty")["pagerduty_configs"]
    assert slack["api_url_file"] == f"/etc/alertmanager/secrets/s/{SLACK_KEY}"
    assert pager["routing_key_file"] == f"/etc/alertmanager/secrets/s/{PAGERDUTY_KEY}"
    assert not {"api_url", "routing_key", "service_key"} & (set(slack) | set(pager))


def test_grouping_and_inhibition() -> None:
    config: dict[str, Any] = alertmanager_config(slack_channel="#c", secrets_dir="/s")
    assert config["route"]["group_by"] == ["alertname", "namespace", "model_name"]
    critical_over_warning, over_info = config["inhibit_rules"]
    assert critical_over_warning["source_matchers"] == ['severity = "critical"']
    assert critical_over_warning["target_matchers"] == ['severity = "warning"']
    assert over_info["target_matchers"] == ['severity = "info"']
    assert critical_over_warning["equal"] == over_info["equal"] == list(INHIBIT_EQUAL)


def _series_labels(rule: AlertRule) -> set[str]:
    """Labels that tell an alert's firing series apart: its outermost aggregation's
    ``by`` labels, or for a raw series the labels its description shows the on-call."""
    grouped = re.match(r"^\w+ by \(([^)]*)\)", rule.expr)
    if grouped:
        return {label.strip() for label in grouped.group(1).split(",")}
    return set(re.findall(r"\$labels\.(\w+)", rule.description)) - {"modelName"}


def test_a_critical_tier_silences_only_the_warning_of_its_own_series() -> None:
    """Alertmanager takes a label both alerts lack as equal: inhibition must compare
    every label that separates one alert's series, or a critical for one GPU (or one
    Service) silences the warnings of all others."""
    cfg = typed_config(SMALL)
    rules = [r for g in platform_rule_groups(cfg.alert_inputs) for r in g.rules]
    alerts = [r for r in rules if isinstance(r, AlertRule)]
    tiered = {r.name for r in alerts if r.severity == "critical"} & {
        r.name for r in alerts if r.severity == "warning"
    }
    assert tiered  # the test has something to check
    for rule in alerts:
        if rule.name in tiered:
            assert _series_labels(rule) <= set(INHIBIT_EQUAL), (rule.name, rule.severity)


def test_every_chart_default_key_is_overridden() -> None:
    config = alertmanager_config(slack_channel="#c", secrets_dir="/s")
    assert set(config) >= CHART_DEFAULT_KEYS
    assert set(config["route"]) >= CHART_DEFAULT_ROUTE_KEYS
