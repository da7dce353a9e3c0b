"""Alert rules: typed objects, and Prometheus itself proving each one fires and stays quiet.

Every alert has typed cases below: a scenario (input series) where it fires, with the
exact labels and description Prometheus must produce, and one where it stays quiet.
Series values derive from the thresholds, so ``promtool test rules`` runs here for the
fixture stack's thresholds and for changed ones, and (``tests/test_stacks.py``) for
those of each committed stack. promtool missing is a failure, not a skip.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.alerting import AlertRule, RecordingRule, RuleGroup, Severity, rule_file
from infra.cost.budgets import Budget, cost_alerts
from infra.observability.alert_rules import AlertInputs, platform_rule_groups
from infra.observability.config import AlertThresholds
from tests.harness import FIXTURE_STACKS, SMALL, typed_config
from workloads.gateway.alerts import gateway_rule_groups

PROMTOOL_TIMEOUT = 120
"""Seconds one promtool run may take."""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make setup` (Debian package prometheus)")
    return path


# --------------------------------------------------------------------- Go template helpers
# Prometheus renders annotations with Go templates; these mirror the three functions our
# descriptions use (prometheus/template/template.go) for the value ranges in the cases.


def go_value(v: float) -> str:
    """``{{ $value }}``: Go's shortest float formatting."""
    return str(int(v)) if float(v).is_integer() else repr(v)


def humanize(v: float) -> str:
    prefix = ""
    for p in ("k", "M", "G", "T"):
        if abs(v) < 1000:
            break
        prefix, v = p, v / 1000
    return f"{v:.4g}{prefix}"


def humanize_percentage(v: float) -> str:
    return f"{v * 100:.4g}%"


def humanize_duration(v: float) -> str:
    seconds, minutes = int(v) % 60, int(v) // 60 % 60
    if int(v) // 3600:
        raise AssertionError("cases keep durations below an hour")
    return f"{minutes}m {seconds}s" if minutes else f"{v:.4g}s"


def minutes(duration: str) -> int:
    units = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}
    return math.ceil(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", duration)))


# --------------------------------------------------------------------- typed cases


@dataclass(frozen=True)
class Expected:
    """One alert Prometheus must produce: its severity, labels and rendered description."""

    severity: Severity
    labels: dict[str, str]
    description: str


@dataclass(frozen=True)
class Scenario:
    series: dict[str, str]
    """Series selector -> promtool value notation (``'1x30'``, ``'0+5x60'``), 1m apart."""
    eval_minutes: int
    alerts: tuple[Expected, ...] = ()
    """Empty: the alert stays quiet."""


@dataclass(frozen=True)
class Cases:
    fires: tuple[Scenario, ...]
    quiet: tuple[Scenario, ...]


GPU = {"gpu": "0", "UUID": "GPU-5d3c", "modelName": "NVIDIA L4", "instance": "10.0.1.5:9400"}
GPU_SEL = ",".join(f'{k}="{v}"' for k, v in GPU.items())
GPU_AT = "GPU 0 (NVIDIA L4) on 10.0.1.5:9400"
MODEL = 'namespace="inference",model_name="m1",pod="m1-7d9f",engine="0"'
FLUENT_OUTPUT = "cw-inference"


def _gpu_memory(used_mib: int) -> dict[str, str]:
    """A 24,000 MiB GPU with ``used_mib`` in use."""
    return {
        f"DCGM_FI_DEV_FB_USED{{{GPU_SEL}}}": f"{used_mib}x20",
        f"DCGM_FI_DEV_FB_FREE{{{GPU_SEL}}}": f"{24000 - used_mib}x20",
    }


E2E = "vllm:e2e_request_latency_seconds_bucket"
TTFT = "vllm:time_to_first_token_seconds_bucket"
"""vLLM latency histograms (per model; ``le`` buckets in seconds)."""


def _latency(bound: float, histogram: str = E2E) -> dict[str, str]:
    """All requests take between ``bound`` and ``2 * bound`` seconds, as ``histogram``
    records them: its P99 is ``1.99 * bound``."""
    base = f'{histogram}{{namespace="inference",model_name="m1",'
    return {
        f'{base}le="{bound:g}"}}': "0x30",
        f'{base}le="{2 * bound:g}"}}': "0+60x30",
        f'{base}le="+Inf"}}': "0+60x30",
    }


def _http(ratio: float) -> dict[str, str]:
    base = 'http_requests_total{namespace="inference",service="m1",handler="/v1/completions",'
    return {
        f'{base}method="POST",status="5xx"}}': f"0+{100 * ratio:g}x30",
        f'{base}method="POST",status="2xx"}}': f"0+{100 * (1 - ratio):g}x30",
    }


def _error(severity: Severity, ratio: float, threshold: float) -> Expected:
    return Expected(
        severity,
        {"namespace": "inference", "service": "m1"},
        f"{humanize_percentage(ratio)} of /v1 requests to inference/m1 failed with 5xx "
        f"(threshold {threshold:.0%}).",
    )


def _temperature(celsius: int) -> dict[str, str]:
    return {f"DCGM_FI_DEV_GPU_TEMP{{{GPU_SEL}}}": f"{celsius}x20"}


def _deployment(available: int, spec: int) -> dict[str, str]:
    sel = 'namespace="inference",deployment="m1"'
    return {
        f"kube_deployment_status_replicas_available{{{sel}}}": f"{available}x20",
        f"kube_deployment_spec_replicas{{{sel}}}": f"{spec}x20",
    }


def _pods(pending_gpu: bool) -> dict[str, str]:
    def pod(name: str, phase: str, resource: str) -> dict[str, str]:
        sel = f'namespace="inference",pod="{name}"'
        return {
            f'kube_pod_status_phase{{{sel},phase="Pending"}}': f"{int(phase == 'Pending')}x30",
            f'kube_pod_status_phase{{{sel},phase="Running"}}': f"{int(phase == 'Running')}x30",
            f'kube_pod_container_resource_requests{{{sel},container="vllm",'
            f'resource="{resource}",unit="integer"}}': "1x30",
        }

    return {
        **pod("m1-running", "Running", "nvidia_com_gpu"),
        **pod("tool-pending", "Pending", "cpu"),
        **(pod("m1-pending", "Pending", "nvidia_com_gpu") if pending_gpu else {}),
    }


def _on_demand_cases(i: AlertInputs) -> dict[str, Cases]:
    """GpuOnDemandFallbackSustained, rendered only for a stack with a spot-first pool."""
    if not i.spot_fallback_pools:
        return {}
    t = i.thresholds
    held = minutes(t.on_demand_gpu_for)
    pool = i.spot_fallback_pools[0]

    def node(name: str, capacity: str, nodepool: str = pool) -> str:
        return (
            f'karpenter_nodes_allocatable{{node_name="{name}",nodepool="{nodepool}",'
            f'capacity_type="{capacity}",resource_type="nvidia.com/gpu"}}'
        )

    span = f"1x{held + 30}"
    return {
        "GpuOnDemandFallbackSustained": Cases(
            fires=(
                Scenario(
                    {node("n1", "on-demand"): span, node("n2", "on-demand"): span},
                    held + 10,
                    (
                        Expected(
                            "info",
                            {"nodepool": pool},
                            f"NodePool {pool} prefers spot but has held 2 on-demand GPUs for "
                            f"{t.on_demand_gpu_for}: busy nodes never move back to spot by "
                            "themselves.",
                        ),
                    ),
                ),
            ),
            quiet=(
                # Spot nodes, a pool that is on-demand only, and a short fallback.
                Scenario(
                    {
                        node("n1", "spot"): span,
                        node("n2", "on-demand", nodepool="ondemand-only"): span,
                    },
                    held + 10,
                ),
                Scenario({node("n1", "on-demand"): f"1x{held // 2} _x{held}"}, held + 10),
            ),
        ),
    }


def alert_cases(i: AlertInputs) -> dict[str, Cases]:
    """The promtool cases of every alert, keyed by alert name."""
    t = i.thresholds
    mid_error = (t.error_ratio + t.error_ratio_critical) / 2
    high_error = (t.error_ratio_critical + 1) / 2
    kv = (t.kv_cache_ratio + 1) / 2
    queue = 2 * t.queue_backlog + 2
    waiting = f'vllm:num_requests_waiting{{{MODEL},service="m1"}}'
    hpa = 'namespace="inference",horizontalpodautoscaler="keda-hpa-m1"'
    keda_errors = (
        'keda_scaled_object_errors_total{namespace="keda",exported_namespace="inference",'
        'scaledObject="m1"}'
    )
    hpa_current = f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}"
    hpa_max = f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}"
    restarts = 2 * t.pod_restarts_per_hour + 2
    unavailable_for = minutes(t.replicas_unavailable_for)
    pending_for = minutes(t.pending_gpu_pod_for)
    idle = t.gpu_underutilized_percent // 2
    used = round(24000 * (t.gpu_memory_ratio + 1) / 2)
    restart_sel = (
        'kube_pod_container_status_restarts_total{namespace="inference",pod="m1-7d9f",'
        'container="vllm"}'
    )
    fluent = f'namespace="logging",pod="fluent-bit-x2k4",name="{FLUENT_OUTPUT}"'
    fluent_labels = {"namespace": "logging", "pod": "fluent-bit-x2k4", "name": FLUENT_OUTPUT}
    karpenter = (
        'karpenter_cloudprovider_errors_total{controller="nodeclaim.lifecycle",'
        'method="Create",provider="aws",error="InsufficientCapacityError"}'
    )
    pool = 'nodepool="gpu-a",resource_type="nvidia.com/gpu"'
    return {
        "GpuMemoryHigh": Cases(
            fires=(
                Scenario(
                    _gpu_memory(used),
                    15,
                    (
                        Expected(
                            "warning",
                            GPU,
                            f"{GPU_AT} uses {humanize_percentage(used / 24000)} of its memory "
                            f"(threshold {t.gpu_memory_ratio:.0%}).",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario(_gpu_memory(round(24000 * (t.gpu_memory_ratio - 0.05))), 15),),
        ),
        "GpuTemperatureHigh": Cases(
            fires=(
                Scenario(
                    _temperature(t.gpu_temperature_celsius + 1),
                    10,
                    (
                        Expected(
                            "warning",
                            GPU,
                            f"{GPU_AT} is at {t.gpu_temperature_celsius + 1} C "
                            f"(warning above {t.gpu_temperature_celsius} C).",
                        ),
                    ),
                ),
                Scenario(
                    _temperature(t.gpu_temperature_critical_celsius + 1),
                    10,
                    (
                        Expected(
                            "warning",
                            GPU,
                            f"{GPU_AT} is at {t.gpu_temperature_critical_celsius + 1} C "
                            f"(warning above {t.gpu_temperature_celsius} C).",
                        ),
                        Expected(
                            "critical",
                            GPU,
                            f"{GPU_AT} is at {t.gpu_temperature_critical_celsius + 1} C "
                            f"(critical above {t.gpu_temperature_critical_celsius} C); it will "
                            "throttle.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario(_temperature(t.gpu_temperature_celsius - 5), 10),),
        ),
        "GpuXidError": Cases(
            fires=(
                Scenario(
                    {f"DCGM_FI_DEV_XID_ERRORS{{{GPU_SEL}}}": "0x5 79x10"},
                    10,
                    (
                        Expected(
                            "warning",
                            GPU,
                            f"{GPU_AT} reported XID 79; 48, 63, 64, 74, 79, 94 and 95 mean the "
                            "node should be drained and replaced.",
                        ),
                    ),
                ),
            ),
            # An XID from long ago stays in the gauge: it must not alert again.
            quiet=(Scenario({f"DCGM_FI_DEV_XID_ERRORS{{{GPU_SEL}}}": "79x40"}, 30),),
        ),
        "GpuUnderutilized": Cases(
            fires=(
                Scenario(
                    {f"DCGM_FI_DEV_GPU_UTIL{{{GPU_SEL}}}": f"{idle}x150"},
                    130,
                    (
                        Expected(
                            "info",
                            GPU,
                            f"{GPU_AT} averaged {humanize(idle)}% utilisation for 2 hours "
                            f"(below {t.gpu_underutilized_percent}%): fewer replicas or a "
                            "smaller GPU would do.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario({f"DCGM_FI_DEV_GPU_UTIL{{{GPU_SEL}}}": "60x150"}, 130),),
        ),
        "InferenceLatencyP99High": Cases(
            fires=(
                Scenario(
                    _latency(t.p99_latency_seconds),
                    20,
                    (
                        Expected(
                            "warning",
                            {"namespace": "inference", "model_name": "m1"},
                            "P99 end-to-end latency of model m1 is "
                            f"{humanize_duration(1.99 * t.p99_latency_seconds)} "
                            f"(threshold {t.p99_latency_seconds}s).",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario(_latency(t.p99_latency_seconds / 2), 20),),
        ),
        "InferenceErrorRatioHigh": Cases(
            fires=(
                Scenario(_http(mid_error), 15, (_error("warning", mid_error, t.error_ratio),)),
                Scenario(
                    _http(high_error),
                    15,
                    (
                        _error("warning", high_error, t.error_ratio),
                        _error("critical", high_error, t.error_ratio_critical),
                    ),
                ),
            ),
            quiet=(Scenario(_http(t.error_ratio / 2), 15),),
        ),
        "VllmKvCacheSaturated": Cases(
            fires=(
                Scenario(
                    {f"vllm:kv_cache_usage_perc{{{MODEL}}}": f"{kv}x30"},
                    20,
                    (
                        Expected(
                            "warning",
                            {"namespace": "inference", "model_name": "m1", "pod": "m1-7d9f"},
                            f"KV cache of m1 in m1-7d9f is {humanize_percentage(kv)} full: "
                            "requests get preempted; add replicas or lower max sequences.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario({f"vllm:kv_cache_usage_perc{{{MODEL}}}": "0.3x30"}, 20),),
        ),
        "VllmRequestQueueBacklog": Cases(
            fires=tuple(
                Scenario(
                    {waiting: f"{queue}x60", hpa_current: current, hpa_max: "4x60"},
                    at,
                    (
                        Expected(
                            "warning",
                            {"namespace": "inference", "service": "m1", "model_name": "m1"},
                            f"{go_value(queue)} requests wait for model m1 (threshold "
                            f"{t.queue_backlog}) and its autoscaler adds no replica.",
                        ),
                    ),
                )
                for current, at in (
                    ("4x60", 15),  # at its maximum
                    ("2x60", 15),  # holding below it: nothing scales
                    # Stopped below it: quiet for 30 minutes after the last step, then
                    # the alert's 10 minutes.
                    ("1x5 2x5 3x50", 55),
                )
            ),
            quiet=(
                Scenario(
                    {waiting: f"{t.queue_backlog}x20", hpa_current: "4x20", hpa_max: "4x20"}, 15
                ),
                # Scaling up: a replica more every few minutes, each a cold start away;
                # and still within 30 minutes of its last step.
                Scenario(
                    {waiting: f"{queue}x20", hpa_current: "1x5 2x5 3x10", hpa_max: "4x20"}, 15
                ),
                Scenario(
                    {waiting: f"{queue}x60", hpa_current: "1x5 2x5 3x50", hpa_max: "4x60"}, 45
                ),
            ),
        ),
        "ModelPodRestarting": Cases(
            fires=(
                Scenario(
                    {restart_sel: f"0+{restarts / 60}x80"},
                    70,
                    (
                        Expected(
                            "warning",
                            {"namespace": "inference", "pod": "m1-7d9f", "container": "vllm"},
                            f"Container vllm of inference/m1-7d9f restarted "
                            f"{humanize(restarts)} times in an hour.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario({restart_sel: "0x20 1x60"}, 70),),
        ),
        "ModelReplicasUnavailable": Cases(
            fires=(
                Scenario(
                    {
                        'kube_deployment_status_replicas_unavailable{namespace="inference",'
                        'deployment="m1"}': f"1x{unavailable_for + 10}"
                    },
                    unavailable_for + 5,
                    (
                        Expected(
                            "warning",
                            {"namespace": "inference", "deployment": "m1"},
                            "1 replicas of inference/m1 have not been ready for "
                            f"{t.replicas_unavailable_for}.",
                        ),
                    ),
                ),
            ),
            # A replica loading for less than the threshold (a scale-up) stays quiet.
            quiet=(
                Scenario(
                    {
                        'kube_deployment_status_replicas_unavailable{namespace="inference",'
                        'deployment="m1"}': f"0x5 1x{unavailable_for - 2}"
                    },
                    unavailable_for,
                ),
            ),
        ),
        "ModelServingDown": Cases(
            fires=(
                Scenario(
                    _deployment(0, 2),
                    10,
                    (
                        Expected(
                            "critical",
                            {"namespace": "inference", "deployment": "m1"},
                            "inference/m1 has no available replica: the model is not serving.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario(_deployment(2, 2), 10), Scenario(_deployment(0, 0), 10)),
        ),
        "ModelAutoscalerFailing": Cases(
            fires=(
                # Prometheus unreachable: a failed read every 15 s poll.
                Scenario(
                    {keda_errors: "0 0+4x30"},
                    20,
                    (
                        Expected(
                            "warning",
                            {"exported_namespace": "inference", "scaledObject": "m1"},
                            "KEDA cannot read the requests in flight of inference/m1 from "
                            "Prometheus: after three failed polls the model keeps its current "
                            "size, whatever the load.",
                        ),
                    ),
                ),
            ),
            quiet=(
                Scenario({keda_errors: "0x30"}, 20),
                # A few failed reads during a Prometheus restart, then none.
                Scenario({keda_errors: "0 3 5x30"}, 20),
            ),
        ),
        "GpuPodPending": Cases(
            fires=(
                Scenario(
                    _pods(pending_gpu=True),
                    pending_for + 5,
                    (
                        Expected(
                            "warning",
                            {"namespace": "inference", "pod": "m1-pending"},
                            "inference/m1-pending requests GPUs and has been Pending for "
                            f"{t.pending_gpu_pod_for}: check Karpenter and the GPU pool limits.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario(_pods(pending_gpu=False), pending_for + 5),),
        ),
        "KarpenterCannotLaunchNodes": Cases(
            fires=(
                Scenario(
                    {karpenter: "0+1x60"},
                    40,
                    (
                        Expected(
                            "warning",
                            {"error": "InsufficientCapacityError"},
                            "Karpenter's instance launches have failed for 20 minutes (error "
                            "InsufficientCapacityError): no capacity for the allowed instance "
                            "types, or a quota or permission problem.",
                        ),
                    ),
                ),
            ),
            # Errors that stopped (the fallback capacity type worked) stay quiet.
            quiet=(Scenario({karpenter: "0+1x10 10x50"}, 40),),
        ),
        **_on_demand_cases(i),
        "GpuNodePoolAtLimit": Cases(
            fires=(
                Scenario(
                    {
                        f"karpenter_nodepools_usage{{{pool}}}": "4x30",
                        f"karpenter_nodepools_limit{{{pool}}}": "4x30",
                    },
                    20,
                    (
                        Expected(
                            "warning",
                            {"nodepool": "gpu-a", "resource_type": "nvidia.com/gpu"},
                            "NodePool gpu-a holds 4 GPUs, its limit: new GPU pods stay "
                            "Pending until the limit is raised.",
                        ),
                    ),
                ),
            ),
            quiet=(
                Scenario(
                    {
                        f"karpenter_nodepools_usage{{{pool}}}": "2x30",
                        f"karpenter_nodepools_limit{{{pool}}}": "4x30",
                    },
                    20,
                ),
            ),
        ),
        "FluentBitOutputErrors": Cases(
            fires=(
                Scenario(
                    {f"fluentbit_output_errors_total{{{fluent}}}": "0+1x40"},
                    30,
                    (
                        Expected(
                            "warning",
                            fluent_labels,
                            "Output cw-inference of fluent-bit-x2k4 has been failing for 15 "
                            "minutes; logs are buffered on the node.",
                        ),
                    ),
                ),
            ),
            quiet=(Scenario({f"fluentbit_output_errors_total{{{fluent}}}": "5x40"}, 30),),
        ),
        "FluentBitRecordsDropped": Cases(
            fires=(
                Scenario(
                    {f"fluentbit_output_retries_failed_total{{{fluent}}}": "0x10 3x30"},
                    15,
                    (
                        Expected(
                            "warning",
                            fluent_labels,
                            "Output cw-inference of fluent-bit-x2k4 lost logs in the last 10 "
                            "minutes (3 records or chunks).",
                        ),
                    ),
                ),
                Scenario(
                    {f"fluentbit_output_dropped_records_total{{{fluent}}}": "0x10 120x30"},
                    15,
                    (
                        Expected(
                            "warning",
                            fluent_labels,
                            "Output cw-inference of fluent-bit-x2k4 lost logs in the last 10 "
                            "minutes (120 records or chunks).",
                        ),
                    ),
                ),
            ),
            quiet=(
                Scenario(
                    {
                        f"fluentbit_output_retries_failed_total{{{fluent}}}": "3x40",
                        f"fluentbit_output_dropped_records_total{{{fluent}}}": "120x40",
                    },
                    30,
                ),
            ),
        ),
    }


def promtool_test_file(
    groups: tuple[RuleGroup, ...], cases: dict[str, Cases], rules: str = "rules.yaml"
) -> dict[str, Any]:
    """A ``promtool test rules`` document on the rule file ``rules``: one test group per
    scenario."""
    alerts = {(r.name, r.severity): r for g in groups for r in g.alerts}

    def expected(name: str, e: Expected) -> dict[str, Any]:
        rule = alerts[(name, e.severity)]
        return {
            "exp_labels": {**e.labels, "severity": e.severity},
            "exp_annotations": {
                "summary": rule.summary,
                "description": e.description,
                "runbook_url": rule.runbook_url,
            },
        }

    return {
        "rule_files": [rules],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in sc.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": f"{sc.eval_minutes}m",
                        "alertname": name,
                        "exp_alerts": [expected(name, e) for e in sc.alerts],
                    }
                ],
            }
            for name, c in sorted(cases.items())
            for sc in (*c.fires, *c.quiet)
        ],
    }


def write_rules(directory: Path, groups: tuple[RuleGroup, ...]) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_file(groups), sort_keys=False))
    return path


def rules_of(groups: tuple[RuleGroup, ...], alert: str) -> tuple[RuleGroup, ...]:
    """``groups`` cut to ``alert``'s rules and the recording rules they read (also
    through other recording rules), in their groups and order."""
    rules = [r for g in groups for r in g.rules]
    exprs = [r.expr for r in rules if isinstance(r, AlertRule) and r.name == alert]
    kept: set[int] = set()
    while True:
        read = {
            id(r)
            for r in rules
            if isinstance(r, RecordingRule)
            and id(r) not in kept
            and any(re.search(rf"(?<![\w:]){re.escape(r.record)}(?![\w:])", e) for e in exprs)
        }
        if not read:
            break
        kept |= read
        exprs += [r.expr for r in rules if id(r) in read]

    def keep(r: AlertRule | RecordingRule) -> bool:
        return r.name == alert if isinstance(r, AlertRule) else id(r) in kept

    cut = ((g, tuple(r for r in g.rules if keep(r))) for g in groups)
    return tuple(dataclasses.replace(g, rules=rules) for g, rules in cut if rules)


def promtool_tests(
    groups: tuple[RuleGroup, ...], cases: dict[str, Cases], directory: Path
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` on every case, in one run: a rule file and a test file per
    alert. promtool evaluates every rule of a test file's rule files at each step of each
    of its test groups, so cut this way a scenario evaluates the rules it asks about,
    not all of them (several times faster on a stack's rules, same verdicts)."""
    files = []
    for name in sorted(cases):
        rules = directory / f"rules-{name}.yaml"
        rules.write_text(yaml.safe_dump(rule_file(rules_of(groups, name)), sort_keys=False))
        tests = directory / f"tests-{name}.yaml"
        tests.write_text(
            yaml.safe_dump(promtool_test_file(groups, {name: cases[name]}, rules.name))
        )
        files.append(str(tests))
    return promtool("test", "rules", *files, cwd=directory)


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=PROMTOOL_TIMEOUT,
    )


def assert_every_alert_has_a_firing_and_a_quiet_case(inputs: AlertInputs) -> None:
    groups = platform_rule_groups(inputs)
    cases = alert_cases(inputs)
    rules = {(r.name, r.severity) for g in groups for r in g.alerts}
    assert set(cases) == {name for name, _ in rules}
    fired = {(n, e.severity) for n, c in cases.items() for sc in c.fires for e in sc.alerts}
    assert fired == rules
    for name, c in cases.items():
        assert c.fires and all(sc.alerts for sc in c.fires), name
        assert c.quiet and not any(sc.alerts for sc in c.quiet), name


def assert_rules_pass_promtool_check(inputs: AlertInputs, directory: Path) -> None:
    groups = platform_rule_groups(inputs)
    path = write_rules(directory, groups)
    result = promtool("check", "rules", str(path), cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(g.rules) for g in groups)
    assert f"SUCCESS: {count} rules found" in result.stdout


def assert_every_alert_fires_and_stays_quiet_under_promtool(
    inputs: AlertInputs, directory: Path
) -> None:
    result = promtool_tests(platform_rule_groups(inputs), alert_cases(inputs), directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


INPUTS = typed_config(SMALL).alert_inputs
"""The fixture stack's alert inputs (documented default thresholds)."""
CHANGED = dataclasses.replace(
    INPUTS,
    thresholds=AlertThresholds(
        p99_latency_seconds=4.5,
        error_ratio=0.02,
        error_ratio_critical=0.3,
        queue_backlog=7,
        pod_restarts_per_hour=5,
        pending_gpu_pod_for="25m",
        replicas_unavailable_for="30m",
        gpu_temperature_celsius=80,
        gpu_temperature_critical_celsius=86,
        gpu_memory_ratio=0.97,
        kv_cache_ratio=0.8,
        gpu_underutilized_percent=20,
        on_demand_gpu_for="3h",
    ),
    spot_fallback_pools=("gpu-a", "gpu-b"),
)
"""Every threshold changed: the cases follow the thresholds, not fixed numbers."""
THRESHOLDS = [pytest.param(INPUTS, id="fixture"), pytest.param(CHANGED, id="changed")]


@pytest.mark.parametrize("inputs", THRESHOLDS)
def test_every_alert_has_a_firing_and_a_quiet_case(inputs: AlertInputs) -> None:
    assert_every_alert_has_a_firing_and_a_quiet_case(inputs)


@pytest.mark.parametrize("inputs", THRESHOLDS)
def test_rendered_rules_pass_promtool_check(inputs: AlertInputs, tmp_path: Path) -> None:
    assert_rules_pass_promtool_check(inputs, tmp_path)


@pytest.mark.parametrize("inputs", THRESHOLDS)
def test_every_alert_fires_and_stays_quiet_under_promtool(
    inputs: AlertInputs, tmp_path: Path
) -> None:
    assert_every_alert_fires_and_stays_quiet_under_promtool(inputs, tmp_path)


def test_a_wrong_expectation_fails_under_promtool(tmp_path: Path) -> None:
    """Guard that the promtool run really compares alerts (a quiet case that fires fails)."""
    groups = platform_rule_groups(INPUTS)
    write_rules(tmp_path, groups)
    cases = alert_cases(INPUTS)
    firing = cases["GpuPodPending"].fires[0]
    broken = {
        "GpuPodPending": Cases(fires=(), quiet=(Scenario(firing.series, firing.eval_minutes),))
    }
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(promtool_test_file(groups, broken)))
    result = promtool("test", "rules", str(tests), cwd=tmp_path)
    assert result.returncode == 1
    assert "GpuPodPending" in result.stdout + result.stderr


def _inputs(**thresholds: Any) -> AlertInputs:
    return AlertInputs(
        thresholds=AlertThresholds(**thresholds),
        serving_namespace="serve",
        runbook_base_url="https://example.com/runbooks",
    )


def _rule(inputs: AlertInputs, name: str, severity: Severity = "warning") -> AlertRule:
    return next(
        r
        for g in platform_rule_groups(inputs)
        for r in g.alerts
        if (r.name, r.severity) == (name, severity)
    )


def test_thresholds_and_namespace_come_from_the_inputs() -> None:
    inputs = _inputs(p99_latency_seconds=4.5, queue_backlog=7, pending_gpu_pod_for="25m")
    latency = _rule(inputs, "InferenceLatencyP99High")
    assert latency.expr.endswith(" > 4.5")
    assert 'vllm:e2e_request_latency_seconds_bucket{namespace="serve"}' in latency.expr
    backlog = _rule(inputs, "VllmRequestQueueBacklog").expr
    assert " > 7 unless on (namespace, service) label_replace(" in backlog
    assert backlog.count('{namespace="serve"}') == 4
    assert _rule(inputs, "GpuPodPending").for_ == "25m"
    assert latency.runbook_url == "https://example.com/runbooks/InferenceLatencyP99High.md"


def test_rule_renders_the_prometheus_fields() -> None:
    rendered = _rule(_inputs(), "ModelServingDown", "critical").render()
    assert set(rendered) == {"alert", "expr", "for", "labels", "annotations"}
    assert rendered["labels"] == {"severity": "critical"}
    assert set(rendered["annotations"]) == {"summary", "description", "runbook_url"}


GOOD = {
    "name": "GpuHot",
    "expr": "DCGM_FI_DEV_GPU_TEMP > 80",
    "for_": "5m",
    "severity": "warning",
    "summary": "GPU hot",
    "description": "{{ $value }}",
    "runbook_url": "https://example.com/r#gpuhot",
}
BAD_RULES: list[tuple[dict[str, Any], str]] = [
    ({"name": "gpu_hot"}, r"^name \('gpu_hot'\) must be CamelCase letters and digits$"),
    ({"for_": "5 minutes"}, r"^for_ \('5 minutes'\) must be a duration such as '5m' or '1h'$"),
    ({"severity": "page"}, r"^severity \('page'\) must be one of critical, warning, info$"),
    ({"expr": " "}, r"^expr of GpuHot must not be empty$"),
    (
        {"summary": "{{ $labels.gpu }} hot"},
        r"^summary \('\{\{ \$labels\.gpu \}\} hot'\) must be a fixed, non-empty line$",
    ),
    (
        {"runbook_url": "http://x"},
        r"^runbook_url \('http://x'\) must be an https:// URL$",
    ),
    (
        {"labels": {"severity": "critical"}},
        r"^labels of GpuHot must not set severity \(use severity\)$",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD_RULES)
def test_alert_rule_rejects_bad_fields(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlertRule(**{**GOOD, **change})


def test_rule_group_rejects_repeated_rules_and_rule_file_repeated_groups() -> None:
    rule = AlertRule(**GOOD)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^rules of group g\.x repeat GpuHot/warning$"):
        RuleGroup("g.x", (rule, rule))
    with pytest.raises(ValueError, match=r"^rules of group g\.x must not be empty$"):
        RuleGroup("g.x", ())
    group = RuleGroup("g.x", (rule,))
    with pytest.raises(ValueError, match=r"^rule group names must be unique; repeated: g\.x$"):
        rule_file([group, group])


def test_case_helpers_follow_go_formatting() -> None:
    assert [go_value(40.0), go_value(2.5)] == ["40", "2.5"]
    assert [humanize(394.52), humanize(2958.9), humanize(3.0)] == ["394.5", "2.959k", "3"]
    assert [humanize_percentage(0.975), humanize_duration(19.9), humanize_duration(79.6)] == [
        "97.5%",
        "19.9s",
        "1m 19s",
    ]
    assert [minutes("20m"), minutes("1h30m"), minutes("90s")] == [20, 90, 2]


def test_every_alert_runbook_link_resolves_to_a_page() -> None:
    runbooks = Path(__file__).resolve().parent.parent / "docs" / "runbooks"
    rules = []
    # The fixtures together render every alert (some only exist for some stacks, e.g.
    # GpuOnDemandFallbackSustained for a pool that falls back from spot to on-demand).
    for stack in FIXTURE_STACKS:
        cfg = typed_config(stack)
        base = cfg.runbook_base_url
        assert base == f"https://github.com/{cfg.ci.github_repository}/blob/main/docs/runbooks"
        mine = [r for g in platform_rule_groups(cfg.alert_inputs) for r in g.alerts]
        budgets = [Budget.from_config(b) for b in cfg.cost.budgets]
        mine += cost_alerts(budgets, base)
        models = [m.name for m in cfg.enabled_models]
        mine += [r for g in gateway_rule_groups(cfg.gateway, models, base) for r in g.alerts]
        for rule in mine:
            assert rule.runbook_url.startswith(f"{base}/"), rule.name
            page = runbooks / rule.runbook_url.removeprefix(f"{base}/")
            assert page.is_file(), f"{rule.name}: no runbook {page.name} in docs/runbooks/"
            assert page.read_text().startswith(f"# {rule.name}\n"), page.name
        rules += mine
    assert {"GpuCostSpike", "GatewayDown", "GpuOnDemandFallbackSustained"} <= {
        r.name for r in rules
    }
    # Every page belongs to an alert, and the index lists every page.
    pages = {p.stem for p in runbooks.glob("*.md")} - {"README"}
    assert pages == {r.name for r in rules}
    index = (runbooks / "README.md").read_text()
    assert all(f"]({name}.md)" in index for name in pages)
