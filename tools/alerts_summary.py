"""Offline-plan summary section: the platform's alert rules with their thresholds."""

from __future__ import annotations

from infra.observability.alert_rules import platform_rule_groups
from infra.stack.config import PlatformConfig
from tools.mock_runtime import Recorded


def alerts_summary(_resources: list[Recorded], cfg: PlatformConfig) -> list[str]:
    """Every alert as ``name severity for <duration>: <condition>`` (thresholds inline)."""
    lines = ["Alert rules (PrometheusRules in monitoring; cost alerts: see budgets):"]
    for group in platform_rule_groups(cfg.alert_inputs):
        lines += [f"  {r.name} {r.severity} for {r.for_}: {r.expr}" for r in group.alerts]
    return lines
