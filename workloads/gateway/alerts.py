"""The gateway's alerts and SLO recording rules (a PrometheusRule of the gateway).

Metric names and labels are LiteLLM's ``prometheus`` callback at v1.108.0
(``litellm/integrations/prometheus.py``, labels in ``litellm/types/integrations/
prometheus.py``); counters gain ``_total`` from prometheus_client. The real-process test
scrapes the proxy and finds every name used here. Series carry ``namespace`` (and
``job``, the Service) from the ServiceMonitor target.

The availability SLO follows the multi-window, multi-burn-rate alerts of the Google SRE
workbook ("Alerting on SLOs", table 5-8): page when 2 % of the window's error budget
burns within an hour or 5 % within six, warn at 10 % within a day or three; each long
window paired with a short one (1/12 of it) so the alert resets soon after recovery.
Burn rates scale with ``gateway.sloWindow`` (14.4, 6, 3, 1 for 30 days).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from infra.core.alerting import RecordingRule, RuleGroup, Runbooks, Severity
from infra.core.durations import seconds
from workloads.gateway.config import GatewayConfig
from workloads.gateway.litellm import NAME

REQUESTS = "litellm_proxy_total_requests_metric_total"
FAILED = "litellm_proxy_failed_requests_metric_total"
FALLBACKS = "litellm_deployment_successful_fallbacks_total"
FAILED_FALLBACKS = "litellm_deployment_failed_fallbacks_total"
COOLDOWNS = "litellm_deployment_cooled_down_total"
"""Incremented (``router_utils/cooldown_callbacks.py``) for each failing call that finds
a deployment past its allowed fails, so one episode may count several; labelled with the
route (``litellm_model_name``) and its ``api_base``. Not ``litellm_deployment_state``:
the cooldown writes its 2 (complete outage) under those labels, while a later success
writes 0 under the provider's model name and the full URL, so the 2 stays until the
proxy restarts (seen on the real proxy, ``tests/test_gateway_proxy.py``)."""
TTFT = "litellm_llm_api_time_to_first_token_metric_bucket"
"""Streamed requests only."""
LATENCY = "litellm_request_total_latency_metric_bucket"
ERROR_RATIO = "gateway:request_errors:ratio_rate{window}"
"""Recording rule: share of requests answered with a server error over ``window``."""


@dataclass(frozen=True)
class BurnWindow:
    """One multi-window burn-rate condition: ``budget_share`` of the error budget spent
    within ``long``, confirmed by ``short``."""

    severity: Severity
    budget_share: float
    long: str
    short: str


BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow("critical", 0.02, "1h", "5m"),
    BurnWindow("critical", 0.05, "6h", "30m"),
    BurnWindow("warning", 0.10, "1d", "2h"),
    BurnWindow("warning", 0.10, "3d", "6h"),
)


def burn_rate(cfg: GatewayConfig, window: BurnWindow) -> float:
    """How many times faster than sustainable the budget burns in ``window``."""
    return round(window.budget_share * seconds(cfg.slo_window) / seconds(window.long), 2)


UNAVAILABLE: Final = "5..|408|429"
"""Failures the gateway's availability counts (LiteLLM labels each with its exception's
status, integrations/prometheus.py at 1.108.0): server errors, timeouts
(``litellm.Timeout``: 408) and "no deployments available" while every deployment of a
route is cooling down (``RouterRateLimitError``: 429, types/router.py); not a client's
own errors (401 wrong key, 400 bad request). No client rate limits are configured, so a
429 is always the gateway's."""


def gateway_rule_groups(
    cfg: GatewayConfig, models: Sequence[str], runbook_base_url: str
) -> tuple[RuleGroup, ...]:
    """Availability, fallbacks, backend state and per-model latency of the gateway."""
    ns = f'namespace="{cfg.namespace}"'
    budget = round(1 - cfg.availability_target, 6)

    alert = Runbooks(runbook_base_url).rule

    windows = sorted({w for b in BURN_WINDOWS for w in (b.long, b.short)}, key=seconds)
    recording = tuple(
        RecordingRule(
            ERROR_RATIO.format(window=w),
            f'sum(rate({FAILED}{{{ns}, exception_status=~"{UNAVAILABLE}"}}[{w}])) '
            f"/ sum(rate({REQUESTS}{{{ns}}}[{w}]))",
        )
        for w in windows
    )
    slo = tuple(
        alert(
            "GatewayErrorBudgetBurn",
            severity,
            "2m" if severity == "critical" else "15m",
            " or ".join(
                f"({ERROR_RATIO.format(window=b.long)} > {burn_rate(cfg, b)} * {budget} "
                f"and {ERROR_RATIO.format(window=b.short)} > {burn_rate(cfg, b)} * {budget})"
                for b in BURN_WINDOWS
                if b.severity == severity
            ),
            "Gateway burning its error budget",
            "{{ $value | humanizePercentage }} of gateway requests fail (server errors, "
            "timeouts, no backend): "
            f"at this rate the {cfg.availability_target:.1%} availability budget of "
            f"{cfg.slo_window} runs out early.",
        )
        for severity in ("critical", "warning")
    )
    health = (
        alert(
            "GatewayDown",
            "critical",
            "3m",
            f'(sum(up{{{ns}, job="{NAME}"}}) or vector(0)) == 0',
            "Gateway unavailable",
            "No gateway replica answers Prometheus: clients cannot reach any model.",
        ),
        alert(
            "GatewayFallbacksSustained",
            "warning",
            "10m",
            f"sum by (requested_model, fallback_model) (rate({FALLBACKS}{{{ns}}}[5m])) > 0",
            "Gateway keeps failing over",
            "Requests for {{ $labels.requested_model }} have failed over to "
            "{{ $labels.fallback_model }} for 10 minutes "
            "({{ $value | humanize }}/s): the primary is degraded.",
        ),
        # Cooled down again and again: the backend fails as soon as each cooldown ends,
        # so cooldowns keep counting in every 5-minute window for 5 minutes. One episode
        # (however many calls it counts) leaves its window within the `for`.
        alert(
            "GatewayBackendOutage",
            "warning",
            "5m",
            f"sum by (litellm_model_name, api_base) (increase({COOLDOWNS}{{{ns}}}[5m])) > 0",
            "Gateway sees a model backend down",
            "The gateway keeps cooling backend {{ $labels.api_base }} "
            "({{ $labels.litellm_model_name }}) down: calls fail again as soon as each "
            "cooldown ends.",
        ),
    )
    latency = tuple(
        alert(
            name,
            "warning",
            "10m",
            f"histogram_quantile(0.95, sum by (model_group, le) "
            f'(rate({metric}{{{ns}, model_group="{model}"}}[5m]))) > {target}',
            summary,
            f"p95 {what} of {{{{ $labels.model_group }}}} through the gateway is "
            f"{{{{ $value | humanizeDuration }}}} (target {target}s).",
            model_group=model,
        )
        for model in models
        for name, metric, target, summary, what in (
            (
                "GatewayTimeToFirstTokenP95High",
                TTFT,
                cfg.route(model).ttft_p95_target_seconds,
                "Model slow to first token",
                "time to first token",
            ),
            (
                "GatewayLatencyP95High",
                LATENCY,
                cfg.route(model).latency_p95_target_seconds,
                "Model slow end to end",
                "end-to-end latency",
            ),
        )
    )
    return (
        RuleGroup("llm-platform.gateway-slo", (*recording, *slo)),
        RuleGroup("llm-platform.gateway", (*health, *latency)),
    )
