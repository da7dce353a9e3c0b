"""Alert rules as typed objects and their Prometheus rule-file form.

:func:`rule_file` renders :class:`RuleGroup` objects into the ``{"groups": [...]}``
document that is both the ``spec`` of a ``PrometheusRule`` and a file ``promtool check
rules`` / ``promtool test rules`` read, so what the tests prove is what the cluster runs.
The platform alerts (``infra.observability.alert_rules``), the cost alerts
(``infra.cost.budgets``) and the gateway's alerts and SLO recording rules
(``workloads.gateway.alerts``) are built from these types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from infra.core.durations import is_prometheus_duration

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
WARNING: Severity = "warning"
CRITICAL: Severity = "critical"

_ALERT_NAME = re.compile(r"[A-Z][A-Za-z0-9]+")
_GROUP_NAME = re.compile(r"[a-z][a-z0-9.-]+")


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule. ``name`` is the ``alertname``; a rule may exist once per severity
    (a warning and a critical tier share a name, so Alertmanager's inhibition silences the
    warning while the critical fires)."""

    name: str
    expr: str
    for_: str
    """How long ``expr`` must hold before the alert fires (Prometheus duration)."""
    severity: Severity
    summary: str
    """One line, no template: the Slack title and PagerDuty summary."""
    description: str
    """May use ``{{ $labels.x }}`` and ``{{ $value }}`` (Go templates)."""
    runbook_url: str
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels, e.g. which budget and threshold a cost alert stands for."""

    def __post_init__(self) -> None:
        if "severity" in self.labels:
            raise ValueError(f"labels of {self.name} must not set severity (use severity)")
        if not _ALERT_NAME.fullmatch(self.name):
            raise ValueError(f"name ({self.name!r}) must be CamelCase letters and digits")
        if not is_prometheus_duration(self.for_):
            raise ValueError(f"for_ ({self.for_!r}) must be a duration such as '5m' or '1h'")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity ({self.severity!r}) must be one of {', '.join(SEVERITIES)}")
        if not self.expr.strip():
            raise ValueError(f"expr of {self.name} must not be empty")
        if not self.summary or "{{" in self.summary:
            raise ValueError(f"summary ({self.summary!r}) must be a fixed, non-empty line")
        if not self.runbook_url.startswith("https://"):
            raise ValueError(f"runbook_url ({self.runbook_url!r}) must be an https:// URL")

    def render(self) -> dict[str, Any]:
        """The rule as Prometheus (and the PrometheusRule CRD) spell it."""
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {**self.labels, "severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": self.runbook_url,
            },
        }


_RECORD_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*(:[a-zA-Z0-9_]+)+")


@dataclass(frozen=True)
class RecordingRule:
    """A recording rule: ``expr`` evaluated and stored as the series ``record``
    (``level:metric:operations``, the Prometheus naming convention)."""

    record: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _RECORD_NAME.fullmatch(self.record):
            raise ValueError(f"record ({self.record!r}) must be level:metric:operations")
        if not self.expr.strip():
            raise ValueError(f"expr of {self.record} must not be empty")

    def render(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {"record": self.record, "expr": self.expr}
        if self.labels:
            rendered["labels"] = dict(self.labels)
        return rendered


@dataclass(frozen=True)
class RuleGroup:
    """A named group of rules, evaluated together at the Prometheus evaluation interval."""

    name: str
    rules: tuple[AlertRule | RecordingRule, ...]

    def __post_init__(self) -> None:
        if not _GROUP_NAME.fullmatch(self.name):
            raise ValueError(f"name ({self.name!r}) must be lowercase letters, digits, '.', '-'")
        if not self.rules:
            raise ValueError(f"rules of group {self.name} must not be empty")
        keys = [
            (r.name, r.severity, tuple(sorted(r.labels.items())))
            if isinstance(r, AlertRule)
            else (r.record, "record", tuple(sorted(r.labels.items())))
            for r in self.rules
        ]
        dupes = sorted({f"{n}/{s}" for n, s, labels in keys if keys.count((n, s, labels)) > 1})
        if dupes:
            raise ValueError(f"rules of group {self.name} repeat {', '.join(dupes)}")

    @property
    def alerts(self) -> tuple[AlertRule, ...]:
        """The alerting rules of the group (without its recording rules)."""
        return tuple(r for r in self.rules if isinstance(r, AlertRule))

    def render(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [r.render() for r in self.rules]}


def rule_file(groups: Sequence[RuleGroup]) -> dict[str, Any]:
    """The rule-file document: a PrometheusRule ``spec`` and a promtool input alike."""
    names = [g.name for g in groups]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"rule group names must be unique; repeated: {', '.join(dupes)}")
    return {"groups": [g.render() for g in groups]}


def runbook_url(base_url: str, alert: str) -> str:
    """Where an alert's runbook is: ``<base>/<AlertName>.md`` (``docs/runbooks/``)."""
    return f"{base_url.rstrip('/')}/{alert}.md"


@dataclass(frozen=True)
class Runbooks:
    """Where a set of alerts has its runbooks; :meth:`rule` links each alert to its page."""

    base_url: str

    def rule(
        self,
        name: str,
        severity: Severity,
        for_: str,
        expr: str,
        summary: str,
        description: str,
        **labels: str,
    ) -> AlertRule:
        """An :class:`AlertRule` whose ``runbook_url`` is ``<base_url>/<name>.md``."""
        return AlertRule(
            name=name,
            expr=expr,
            for_=for_,
            severity=severity,
            summary=summary,
            description=description,
            runbook_url=runbook_url(self.base_url, name),
            labels=labels,
        )
