"""Every metric a rule or dashboard queries exists in the exporters we run.

The expressions are parsed with a real PromQL parser (promql-parser) and every vector
selector's metric name must be in ``tests.known_metrics.KNOWN_METRICS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest

from infra.core.alerting import RecordingRule
from infra.observability.alert_rules import platform_rule_groups
from infra.observability.dashboards import platform_dashboards
from tests.harness import typed_config
from tests.known_metrics import KNOWN_METRICS
from workloads.gateway.alerts import gateway_rule_groups

# Grafana substitutes these before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$model": "m1"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*\w+\)$")


def metric_names(expr: str) -> set[str]:
    """Names of every vector selector in ``expr`` (raises on a PromQL syntax error)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next(
                (m.value for m in node.matchers.matchers if m.name == "__name__"), None
            )
            assert name, f"selector without a metric name in {expr!r}"
            names.add(name)
            return
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None:
                walk(child)
        for arg in getattr(node, "args", None) or ():
            walk(arg)

    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    walk(promql_parser.parse(expr))
    return names


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        match = LABEL_VALUES.match(variable["query"]["query"])
        assert match, variable
        yield match["selector"]


def all_queries(stack: str) -> dict[str, str]:
    cfg = typed_config(stack)
    inputs = cfg.alert_inputs
    queries = {
        f"rule {r.name}/{r.severity}": r.expr
        for g in platform_rule_groups(inputs)
        for r in g.alerts
    }
    gateway = gateway_rule_groups(cfg.gateway, [m.name for m in cfg.enabled_models], "https://x")
    for group in gateway:
        for r in group.rules:
            where = (
                r.record if isinstance(r, RecordingRule) else f"{r.name}/{r.severity}/{r.labels}"
            )
            queries[f"rule {where}"] = r.expr
    boards = platform_dashboards(
        serving_namespace=cfg.serving.namespace,
        daily_budget_usd=100.0,
        gateway_namespace=cfg.gateway.namespace,
    )
    for key, board in boards.items():
        for i, query in enumerate(dashboard_queries(board)):
            queries[f"dashboard {key} #{i}"] = query
    return queries


def test_every_queried_metric_is_a_known_metric(fixture_stack: str) -> None:
    unknown = {
        where: sorted(metric_names(expr) - KNOWN_METRICS)
        for where, expr in all_queries(fixture_stack).items()
        if metric_names(expr) - KNOWN_METRICS
    }
    assert unknown == {}


def test_the_extractor_sees_through_functions_aggregations_and_joins() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="1"}[5m]))) > on (n) '
        "group_left() max by (n) (b offset 1d) and avg_over_time(sum(c)[1d:5m]) "
        '- {__name__="d"} unless -e'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d", "e"}


def test_a_misspelt_metric_is_caught() -> None:
    assert metric_names("vllm:gpu_cache_usage_perc > 0.9") - KNOWN_METRICS == {
        "vllm:gpu_cache_usage_perc"
    }


def test_invalid_promql_is_an_error() -> None:
    with pytest.raises(ValueError):
        metric_names("sum(rate(x[5m])")
