"""Grafana dashboards as code: vLLM serving, the gateway, GPUs and cost.

Pure functions return Grafana dashboard JSON models; ``infra.observability.component``
ships each in a ConfigMap labelled for the kube-prometheus-stack Grafana sidecar, which
loads every ConfigMap carrying ``grafana_dashboard: "1"`` in any namespace. Queries use the
``prometheus`` datasource uid the chart provisions. Metric names are checked against
``tests/known_metrics.py`` by the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from infra.core.pricing import gpu_hourly_cost_expr

DATASOURCE: Final = {"type": "prometheus", "uid": "prometheus"}
"""kube-prometheus-stack ``grafana.sidecar.datasources.uid`` default."""
SCHEMA_VERSION: Final = 39
RATE: Final = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    """Grafana unit id: ``reqps``, ``s``, ``percentunit``, ``celsius``, ``watt``, ..."""
    queries: tuple[Query, ...]
    kind: str = "timeseries"


def _panel(panel: Panel, index: int, width: int) -> dict[str, Any]:
    per_row = 24 // width
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": (index % per_row) * width, "y": index // per_row * 8},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": q.expr,
                "legendFormat": q.legend,
            }
            for i, q in enumerate(panel.queries)
        ],
    }


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "refresh": 2,
        "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def dashboard(
    uid: str,
    title: str,
    panels: Sequence[Panel],
    *,
    variables: Sequence[dict[str, Any]] = (),
    width: int = 12,
    time_from: str = "now-6h",
) -> dict[str, Any]:
    """A dashboard model with ``panels`` laid out ``24 // width`` to a row."""
    return {
        "uid": uid,
        "title": title,
        "tags": ["llm-platform"],
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": time_from, "to": "now"},
        "refresh": "1m",
        "timezone": "browser",
        "templating": {"list": list(variables)},
        "panels": [_panel(p, i, width) for i, p in enumerate(panels)],
    }


def _quantiles(metric: str, where: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (model_name, le) "
            f"(rate({metric}_bucket{{{where}}}[{RATE}])))",
            f"p{round(q * 100)} {{{{model_name}}}}",
        )
        for q in (0.5, 0.95, 0.99)
    )


def vllm_dashboard(serving_namespace: str) -> dict[str, Any]:
    """Request rate, TTFT, end-to-end latency, queue, KV cache, tokens/s, errors per model."""
    where = f'namespace="{serving_namespace}", model_name=~"$model"'
    http = f'namespace="{serving_namespace}", handler=~"/v1/.+"'
    return dashboard(
        "llm-vllm",
        "LLM serving (vLLM)",
        [
            Panel(
                "Requests finished / s",
                "reqps",
                (
                    Query(
                        "sum by (model_name, finished_reason) "
                        f"(rate(vllm:request_success_total{{{where}}}[{RATE}]))",
                        "{{model_name}} {{finished_reason}}",
                    ),
                ),
            ),
            Panel(
                "Time to first token", "s", _quantiles("vllm:time_to_first_token_seconds", where)
            ),
            Panel("End-to-end latency", "s", _quantiles("vllm:e2e_request_latency_seconds", where)),
            Panel(
                "Queue time p95",
                "s",
                (
                    Query(
                        "histogram_quantile(0.95, sum by (model_name, le) "
                        f"(rate(vllm:request_queue_time_seconds_bucket{{{where}}}[{RATE}])))",
                        "{{model_name}}",
                    ),
                ),
            ),
            Panel(
                "Requests running / waiting",
                "short",
                (
                    Query(
                        f"sum by (model_name) (vllm:num_requests_running{{{where}}})",
                        "running {{model_name}}",
                    ),
                    Query(
                        f"sum by (model_name) (vllm:num_requests_waiting{{{where}}})",
                        "waiting {{model_name}}",
                    ),
                ),
            ),
            Panel(
                "KV cache usage",
                "percentunit",
                (
                    Query(
                        f"max by (model_name, pod) (vllm:kv_cache_usage_perc{{{where}}})",
                        "{{model_name}} {{pod}}",
                    ),
                ),
            ),
            Panel(
                "Tokens / s",
                "short",
                (
                    Query(
                        f"sum by (model_name) (rate(vllm:prompt_tokens_total{{{where}}}[{RATE}]))",
                        "prompt {{model_name}}",
                    ),
                    Query(
                        "sum by (model_name) "
                        f"(rate(vllm:generation_tokens_total{{{where}}}[{RATE}]))",
                        "generated {{model_name}}",
                    ),
                ),
            ),
            Panel(
                "Errors and preemptions / s",
                "short",
                (
                    Query(
                        f'sum by (service) (rate(http_requests_total{{{http}, status="5xx"}}'
                        f"[{RATE}]))",
                        "HTTP 5xx {{service}}",
                    ),
                    Query(
                        "sum by (model_name) "
                        f"(rate(vllm:num_preemptions_total{{{where}}}[{RATE}]))",
                        "preemptions {{model_name}}",
                    ),
                ),
            ),
        ],
        variables=[
            _variable(
                "model",
                "Model",
                f'label_values(vllm:num_requests_running{{namespace="{serving_namespace}"}}, '
                "model_name)",
            )
        ],
    )


def gpu_dashboard() -> dict[str, Any]:
    """Utilisation, memory, temperature, power and XID errors per GPU (DCGM exporter)."""
    gpu = "{{instance}} gpu{{gpu}}"
    return dashboard(
        "llm-gpus",
        "GPUs (DCGM)",
        [
            Panel("GPU utilisation", "percent", (Query("DCGM_FI_DEV_GPU_UTIL", gpu),)),
            Panel(
                "GPU memory used",
                "percentunit",
                (Query("DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)", gpu),),
            ),
            Panel("Temperature", "celsius", (Query("DCGM_FI_DEV_GPU_TEMP", gpu),)),
            Panel("Power", "watt", (Query("DCGM_FI_DEV_POWER_USAGE", gpu),)),
            Panel("Last XID error", "none", (Query("DCGM_FI_DEV_XID_ERRORS", gpu),)),
            Panel(
                "GPUs requested by pods",
                "short",
                (
                    Query(
                        "sum by (namespace) "
                        '(kube_pod_container_resource_requests{resource="nvidia_com_gpu"})',
                        "{{namespace}}",
                    ),
                ),
            ),
        ],
    )


def cost_dashboard(daily_budget_usd: float) -> dict[str, Any]:
    """Node and GPU spend rates (Kubecost) against the cluster's daily budget."""
    gpu_per_hour = gpu_hourly_cost_expr()
    return dashboard(
        "llm-cost",
        "LLM platform cost",
        [
            Panel(
                "Spend per day at the current rate (USD)",
                "currencyUSD",
                (
                    Query("sum(node_total_hourly_cost) * 24", "all nodes"),
                    Query(f"{gpu_per_hour} * 24", "GPUs"),
                    Query(f"vector({daily_budget_usd})", "daily budget"),
                ),
            ),
            Panel(
                "Node cost per hour by instance type (USD)",
                "currencyUSD",
                (Query("sum by (instance_type) (node_total_hourly_cost)", "{{instance_type}}"),),
            ),
            Panel(
                "Spot share of node cost",
                "percentunit",
                (
                    Query(
                        "sum(node_total_hourly_cost * on (node) group_left() "
                        "max by (node) (kubecost_node_is_spot)) / sum(node_total_hourly_cost)",
                        "spot",
                    ),
                ),
            ),
            Panel(
                "GPUs allocated by namespace",
                "short",
                (Query("sum by (namespace) (container_gpu_allocation)", "{{namespace}}"),),
            ),
        ],
        time_from="now-7d",
    )


def gateway_dashboard(gateway_namespace: str) -> dict[str, Any]:
    """The LiteLLM gateway (its ``prometheus`` callback, v1.108.0 metric names): requests
    and errors by model, fallbacks, backend cooldowns, and p95 latency by the model that
    answered."""
    ns = f'namespace="{gateway_namespace}"'
    return dashboard(
        "llm-gateway",
        "LLM gateway (LiteLLM)",
        [
            Panel(
                "Requests by model",
                "reqps",
                (
                    Query(
                        "sum by (requested_model) "
                        f"(rate(litellm_proxy_total_requests_metric_total{{{ns}}}[{RATE}]))",
                        "{{requested_model}}",
                    ),
                ),
            ),
            Panel(
                "Errors by model and status",
                "reqps",
                (
                    Query(
                        "sum by (requested_model, exception_status) "
                        f"(rate(litellm_proxy_failed_requests_metric_total{{{ns}}}[{RATE}]))",
                        "{{requested_model}} {{exception_status}}",
                    ),
                ),
            ),
            Panel(
                "Fallbacks",
                "reqps",
                (
                    Query(
                        "sum by (requested_model, fallback_model) (rate("
                        f"litellm_deployment_successful_fallbacks_total{{{ns}}}[{RATE}]))",
                        "{{requested_model}} -> {{fallback_model}}",
                    ),
                    Query(
                        "sum by (requested_model, fallback_model) (rate("
                        f"litellm_deployment_failed_fallbacks_total{{{ns}}}[{RATE}]))",
                        "{{requested_model}} -> {{fallback_model}} failed",
                    ),
                ),
            ),
            # Not litellm_deployment_state, whose outage value never clears (see
            # workloads/gateway/alerts.py COOLDOWNS).
            Panel(
                "Backend cooldowns",
                "none",
                (
                    Query(
                        "sum by (litellm_model_name, api_base) (increase("
                        f"litellm_deployment_cooled_down_total{{{ns}}}[{RATE}]))",
                        "{{litellm_model_name}} {{api_base}}",
                    ),
                ),
            ),
            Panel(
                "p95 time to first token by model",
                "s",
                (
                    Query(
                        "histogram_quantile(0.95, sum by (model_group, le) (rate("
                        f"litellm_llm_api_time_to_first_token_metric_bucket{{{ns}}}[{RATE}])))",
                        "{{model_group}}",
                    ),
                ),
            ),
            Panel(
                "p95 end-to-end latency by model",
                "s",
                (
                    Query(
                        "histogram_quantile(0.95, sum by (model_group, le) (rate("
                        f"litellm_request_total_latency_metric_bucket{{{ns}}}[{RATE}])))",
                        "{{model_group}}",
                    ),
                ),
            ),
        ],
    )


def platform_dashboards(
    *, serving_namespace: str, daily_budget_usd: float, gateway_namespace: str
) -> dict[str, Any]:
    """Every dashboard, keyed by the short name its ConfigMap is named after."""
    return {
        "vllm": vllm_dashboard(serving_namespace),
        "gateway": gateway_dashboard(gateway_namespace),
        "gpus": gpu_dashboard(),
        "cost": cost_dashboard(daily_budget_usd),
    }
