"""The gateway's alerts and SLO recording rules, proven with Prometheus itself.

Every gateway alert fires and stays quiet under ``promtool test rules`` (cases built
from the config's targets, for the fixture stacks and, in the stack suite, every
committed stack); the burn-rate factors follow the SLO window.
"""

from __future__ import annotations

from pathlib import Path

from infra.core.alerting import RuleGroup
from tests.harness import typed_config
from tests.test_alert_rules import (
    Cases,
    Expected,
    Scenario,
    humanize_duration,
    promtool,
    promtool_tests,
    write_rules,
)
from workloads.gateway.alerts import (
    BURN_WINDOWS,
    COOLDOWNS,
    FAILED,
    FALLBACKS,
    LATENCY,
    REQUESTS,
    TTFT,
    burn_rate,
    gateway_rule_groups,
)
from workloads.gateway.config import GatewayConfig
from workloads.gateway.litellm import NAME

BASE = "https://example.com/runbooks"


def groups_for(cfg: GatewayConfig, models: list[str]) -> tuple[RuleGroup, ...]:
    return gateway_rule_groups(cfg, models, BASE)


def _latency(metric: str, model: str, ns: str, target: float, slow: bool) -> dict[str, str]:
    """Buckets at target/2, 2 x target and +Inf: slow puts every request above 2 x target
    (p95 = the highest finite bound, 2 x target), fast below target/2."""
    labels = f'namespace="{ns}", model_group="{model}", requested_model="{model}"'
    bounds = {f"{target / 2}": not slow, f"{2 * target}": not slow, "+Inf": True}
    return {
        f'{metric}{{{labels}, le="{le}"}}': "0+10x30" if counted else "0x30"
        for le, counted in bounds.items()
    }


def gateway_cases(cfg: GatewayConfig, models: list[str]) -> dict[str, Cases]:
    ns = cfg.namespace
    down = f'up{{namespace="{ns}", job="{NAME}", instance="10.0.1.7:4000"}}'
    fallback = (
        f'{FALLBACKS}{{namespace="{ns}", requested_model="m1", fallback_model="m2", '
        'exception_status="500"}'
    )

    def cooled(instance: str, status: str = "500") -> str:
        return (
            f'{COOLDOWNS}{{namespace="{ns}", litellm_model_name="m1", '
            'api_base="http://m1.inference.svc:8000/v1", model_id="abc", '
            f'api_provider="hosted_vllm", exception_status="{status}", instance="{instance}"}}'
        )

    replica, other = "10.0.1.7:4000", "10.0.2.9:4000"
    budget = 1 - cfg.availability_target
    burn_description = (
        "{value} of gateway requests fail (server errors, timeouts, no backend): at this rate the "
        f"{cfg.availability_target:.1%} availability budget of {cfg.slo_window} runs out early."
    )

    def requests(
        failed_per_minute: int, total_per_minute: int, minutes: int, status: str = "500"
    ) -> dict[str, str]:
        return {
            f'{FAILED}{{namespace="{ns}", requested_model="m1", exception_status="{status}"}}': (
                f"0+{failed_per_minute}x{minutes}"
            ),
            f'{FAILED}{{namespace="{ns}", requested_model="m1", exception_status="401"}}': (
                f"0+{total_per_minute}x{minutes}"
            ),
            f'{REQUESTS}{{namespace="{ns}", requested_model="m1", status_code="200"}}': (
                f"0+{total_per_minute}x{minutes}"
            ),
        }

    # Just above the slowest warning burn rate, below every paging one.
    slow_burn = min(burn_rate(cfg, w) for w in BURN_WINDOWS if w.severity == "warning")
    fast_pages = min(burn_rate(cfg, w) for w in BURN_WINDOWS if w.severity == "critical")
    slow_failures = int(budget * (slow_burn + fast_pages) / 2 * 100_000)
    warning_only = slow_failures / 100_000
    cases: dict[str, Cases] = {
        "GatewayDown": Cases(
            fires=(
                Scenario(
                    {down: "0x10"},
                    8,
                    (
                        Expected(
                            "critical",
                            {},
                            "No gateway replica answers Prometheus: clients cannot reach "
                            "any model.",
                        ),
                    ),
                ),
                # No target at all (the Deployment is gone) is down as well.
                Scenario(
                    {'up{namespace="other", job="x"}': "1x10"},
                    8,
                    (
                        Expected(
                            "critical",
                            {},
                            "No gateway replica answers Prometheus: clients cannot reach "
                            "any model.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario({down: "1x10"}, 8),),
        ),
        "GatewayFallbacksSustained": Cases(
            fires=(
                Scenario(
                    {fallback: "0+60x30"},
                    25,
                    (
                        Expected(
                            "warning",
                            {"requested_model": "m1", "fallback_model": "m2"},
                            "Requests for m1 have failed over to m2 for 10 minutes (1/s): the "
                            "primary is degraded.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario({fallback: "5x30"}, 25),),
        ),
        "GatewayBackendOutage": Cases(
            fires=(
                # Cooled down again every minute: server errors, then timeouts. A series
                # appears with its first count (LiteLLM creates it on the first
                # increment).
                Scenario(
                    {cooled(replica): "_ 1+1x8 9x12", cooled(replica, "408"): "_x9 1+1x12"},
                    14,
                    (
                        Expected(
                            "warning",
                            {
                                "litellm_model_name": "m1",
                                "api_base": "http://m1.inference.svc:8000/v1",
                            },
                            "The gateway keeps cooling backend http://m1.inference.svc:8000/v1 "
                            "(m1) down: calls fail again as soon as each cooldown ends.",
                        ),
                    ),
                ),
            ),
            quiet=(
                # One episode of several failed calls, on both replicas: it leaves the
                # 5-minute window before the alert's 5 minutes are up.
                *(
                    Scenario({cooled(replica): "_ 1 3x20", cooled(other): "_ 2 4x20"}, at)
                    for at in (6, 7)
                ),
                # Cooled down every minute, ten minutes ago.
                Scenario({cooled(replica): "_ 1+1x5 6x25"}, 20),
            ),
        ),
        "GatewayErrorBudgetBurn": Cases(
            fires=(
                # Every request fails: both tiers burn.
                Scenario(
                    requests(60, 60, 80),
                    75,
                    (
                        Expected("critical", {}, burn_description.format(value="100%")),
                        Expected("warning", {}, burn_description.format(value="100%")),
                    ),
                ),
                # A route cooling down answers 429 (RouterRateLimitError), a hung backend
                # 408 (litellm.Timeout): the clients see failures, so the budget burns.
                *(
                    Scenario(
                        requests(60, 60, 80, status),
                        75,
                        (
                            Expected("critical", {}, burn_description.format(value="100%")),
                            Expected("warning", {}, burn_description.format(value="100%")),
                        ),
                    )
                    for status in ("429", "408")
                ),
                # A slow burn warns without paging.
                Scenario(
                    requests(slow_failures, 100_000, 200),
                    180,
                    (
                        Expected(
                            "warning",
                            {},
                            burn_description.format(value=f"{warning_only * 100:.4g}%"),
                        ),
                    ),
                ),
            ),
            # Client errors (401) are not the gateway's failures.
            quiet=(Scenario(requests(0, 60, 80), 75),),
        ),
    }
    for name, metric, what, target_of in (
        ("GatewayTimeToFirstTokenP95High", TTFT, "time to first token", "ttft"),
        ("GatewayLatencyP95High", LATENCY, "end-to-end latency", "latency"),
    ):
        fires, quiet = [], []
        for model in models:
            route = cfg.route(model)
            target = (
                route.ttft_p95_target_seconds
                if target_of == "ttft"
                else route.latency_p95_target_seconds
            )
            fires.append(
                Scenario(
                    _latency(metric, model, ns, target, slow=True),
                    25,
                    (
                        Expected(
                            "warning",
                            {"model_group": model},
                            f"p95 {what} of {model} through the gateway is "
                            f"{humanize_duration(2 * target)} (target {target}s).",
                        ),
                    ),
                )
            )
            quiet.append(Scenario(_latency(metric, model, ns, target, slow=False), 25))
        cases[name] = Cases(fires=tuple(fires), quiet=tuple(quiet))
    return cases


def assert_gateway_rules_fire_and_stay_quiet(
    cfg: GatewayConfig, models: list[str], directory: Path
) -> None:
    groups = groups_for(cfg, models)
    cases = gateway_cases(cfg, models)
    alerts = {(r.name, r.severity) for g in groups for r in g.alerts}
    fired = {(n, e.severity) for n, c in cases.items() for sc in c.fires for e in sc.alerts}
    assert fired == alerts
    path = write_rules(directory, groups)
    checked = promtool("check", "rules", str(path), cwd=directory)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = promtool_tests(groups, cases, directory)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gateway_alerts_fire_and_stay_quiet_under_promtool(
    fixture_stack: str, tmp_path: Path
) -> None:
    cfg = typed_config(fixture_stack)
    models = [m.name for m in cfg.enabled_models]
    assert_gateway_rules_fire_and_stay_quiet(cfg.gateway, models, tmp_path)


def test_targets_and_slo_come_from_the_config(tmp_path: Path) -> None:
    cfg = GatewayConfig.model_validate(
        {
            "namespace": "gw",
            "availabilityTarget": 0.995,
            "sloWindow": "168h",
            "routes": [{"model": "m1", "ttftP95TargetSeconds": 1.5, "latencyP95TargetSeconds": 8}],
        }
    )
    assert [burn_rate(cfg, w) for w in BURN_WINDOWS] == [3.36, 1.4, 0.7, 0.23]
    rules = {
        (r.name, r.labels.get("model_group")): r
        for g in groups_for(cfg, ["m1", "m2"])
        for r in g.alerts
    }
    assert rules[("GatewayTimeToFirstTokenP95High", "m1")].expr.endswith(" > 1.5")
    assert rules[("GatewayLatencyP95High", "m1")].expr.endswith(" > 8.0")
    assert rules[("GatewayLatencyP95High", "m2")].expr.endswith(" > 4.5")
    assert 'namespace="gw"' in rules[("GatewayDown", None)].expr
    assert_gateway_rules_fire_and_stay_quiet(cfg, ["m1", "m2"], tmp_path)


def test_a_wrong_expectation_fails_under_promtool(tmp_path: Path) -> None:
    cfg = GatewayConfig()
    groups = groups_for(cfg, ["m1"])
    firing = gateway_cases(cfg, ["m1"])["GatewayFallbacksSustained"].fires[0]
    broken = {
        "GatewayFallbacksSustained": Cases(
            fires=(), quiet=(Scenario(firing.series, firing.eval_minutes),)
        )
    }
    assert promtool_tests(groups, broken, tmp_path).returncode == 1
