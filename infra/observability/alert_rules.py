"""The platform's alert rules.

:func:`platform_rule_groups` turns the stack's thresholds into
:class:`~infra.core.alerting.RuleGroup` objects (rendered by
:func:`infra.core.alerting.rule_file`).

Cost alerts (daily spend against each budget, GPU cost spike) are budget-derived and live
with the budgets in ``infra.cost.budgets``. Metric names are checked against
``tests/known_metrics.py`` by the tests. Labels that only
exist after scraping (``namespace``, ``pod``, ``service``) come from the ServiceMonitor
target; vLLM and HTTP series are therefore selected by the serving namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.core.alerting import CRITICAL, WARNING, RuleGroup, Runbooks
from infra.observability.config import AlertThresholds

HPA_REPLICAS = "kube_horizontalpodautoscaler_status_current_replicas"
HPA_MAX = "kube_horizontalpodautoscaler_spec_max_replicas"
SCALING_WINDOW = "30m"
"""How long after its last step a scale-up may still be under way: a new replica's cold
start (at worst about ten minutes) plus KEDA's scale-up period between two steps."""


@dataclass(frozen=True)
class AlertInputs:
    """What the rules need from the stack config."""

    thresholds: AlertThresholds
    serving_namespace: str
    """Namespace of the vLLM Deployments (``serving.namespace``)."""
    runbook_base_url: str
    spot_fallback_pools: tuple[str, ...] = ()
    """GPU NodePools that allow spot and fall back to on-demand (``gpuPools``)."""


def platform_rule_groups(inputs: AlertInputs) -> tuple[RuleGroup, ...]:
    """Every platform alert, grouped by area, with the stack's thresholds filled in."""
    t = inputs.thresholds
    ns = f'namespace="{inputs.serving_namespace}"'

    rule = Runbooks(inputs.runbook_base_url).rule

    gpu_where = "GPU {{ $labels.gpu }} ({{ $labels.modelName }}) on {{ $labels.instance }}"
    error_ratio = (
        f'sum by (namespace, service) (rate(http_requests_total{{{ns}, handler=~"/v1/.+", '
        f'status="5xx"}}[5m])) / sum by (namespace, service) (rate(http_requests_total{{{ns}, '
        f'handler=~"/v1/.+"}}[5m]))'
    )
    gpu = RuleGroup(
        "llm-platform.gpu",
        (
            rule(
                "GpuMemoryHigh",
                "warning",
                "10m",
                "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)"
                f" > {t.gpu_memory_ratio}",
                "GPU memory almost full",
                f"{gpu_where} uses {{{{ $value | humanizePercentage }}}} of its memory "
                f"(threshold {t.gpu_memory_ratio:.0%}).",
            ),
            rule(
                "GpuTemperatureHigh",
                "warning",
                "5m",
                f"DCGM_FI_DEV_GPU_TEMP > {t.gpu_temperature_celsius}",
                "GPU running hot",
                f"{gpu_where} is at {{{{ $value }}}} C "
                f"(warning above {t.gpu_temperature_celsius} C).",
            ),
            rule(
                "GpuTemperatureHigh",
                "critical",
                "2m",
                f"DCGM_FI_DEV_GPU_TEMP > {t.gpu_temperature_critical_celsius}",
                "GPU overheating",
                f"{gpu_where} is at {{{{ $value }}}} C "
                f"(critical above {t.gpu_temperature_critical_celsius} C); it will throttle.",
            ),
            rule(
                "GpuXidError",
                "warning",
                "0m",
                # The field holds the last XID seen and keeps it: alert when it changes.
                "DCGM_FI_DEV_XID_ERRORS > 0 and changes(DCGM_FI_DEV_XID_ERRORS[15m]) > 0",
                "GPU reported an XID error",
                f"{gpu_where} reported XID {{{{ $value }}}}; 48, 63, 64, 74, 79, 94 and 95 "
                "mean the node should be drained and replaced.",
            ),
            rule(
                "GpuUnderutilized",
                "info",
                "1h",
                f"avg_over_time(DCGM_FI_DEV_GPU_UTIL[1h]) < {t.gpu_underutilized_percent}",
                "GPU mostly idle (cost)",
                f"{gpu_where} averaged {{{{ $value | humanize }}}}% utilisation for 2 hours "
                f"(below {t.gpu_underutilized_percent}%): fewer replicas or a smaller GPU "
                "would do.",
            ),
        ),
    )
    inference = RuleGroup(
        "llm-platform.inference",
        (
            rule(
                "InferenceLatencyP99High",
                "warning",
                "10m",
                "histogram_quantile(0.99, sum by (namespace, model_name, le) "
                f"(rate(vllm:e2e_request_latency_seconds_bucket{{{ns}}}[5m])))"
                f" > {t.p99_latency_seconds}",
                "Model P99 latency above target",
                "P99 end-to-end latency of model {{ $labels.model_name }} is "
                f"{{{{ $value | humanizeDuration }}}} (threshold {t.p99_latency_seconds}s).",
            ),
            *(
                rule(
                    "InferenceErrorRatioHigh",
                    severity,
                    "5m",
                    f"{error_ratio} > {ratio}",
                    "Model answering with server errors",
                    "{{ $value | humanizePercentage }} of /v1 requests to "
                    "{{ $labels.namespace }}/{{ $labels.service }} failed with 5xx "
                    f"(threshold {ratio:.0%}).",
                )
                for severity, ratio in (
                    (WARNING, t.error_ratio),
                    (CRITICAL, t.error_ratio_critical),
                )
            ),
            rule(
                "VllmKvCacheSaturated",
                "warning",
                "15m",
                "max by (namespace, model_name, pod) "
                f"(vllm:kv_cache_usage_perc{{{ns}}}) > {t.kv_cache_ratio}",
                "vLLM KV cache nearly full",
                "KV cache of {{ $labels.model_name }} in {{ $labels.pod }} is "
                "{{ $value | humanizePercentage }} full: requests get preempted; add "
                "replicas or lower max sequences.",
            ),
            # Not while the autoscaler is adding replicas: a scale-up queues for a whole
            # cold start (node, image, weights), longer than `for`. Quiet only while the
            # model's HPA is below its maximum and changed its size within the last
            # SCALING_WINDOW; an HPA that holds below its maximum (a scaler that cannot
            # read Prometheus, a target never reached) does not keep it quiet. KEDA names
            # a ScaledObject's HPA keda-hpa-<name> (keda.sh/docs/2.20/reference/
            # scaledobject-spec, horizontalPodAutoscalerConfig.name); the ScaledObject
            # and the Service the series are scraped through share the model's name.
            # max by: a kube-state-metrics rollout briefly doubles its series.
            rule(
                "VllmRequestQueueBacklog",
                "warning",
                "10m",
                f"sum by (namespace, service, model_name) (vllm:num_requests_waiting{{{ns}}})"
                f" > {t.queue_backlog} unless on (namespace, service) label_replace(("
                f"max by (namespace, horizontalpodautoscaler) ({HPA_REPLICAS}{{{ns}}}) < "
                f"max by (namespace, horizontalpodautoscaler) ({HPA_MAX}{{{ns}}})) and "
                f"(max by (namespace, horizontalpodautoscaler) (changes({HPA_REPLICAS}{{{ns}}}"
                f"[{SCALING_WINDOW}])) > 0), "
                '"service", "$1", "horizontalpodautoscaler", "keda-hpa-(.+)")',
                "Requests queueing for a model",
                "{{ $value }} requests wait for model {{ $labels.model_name }} "
                f"(threshold {t.queue_backlog}) and its autoscaler adds no replica.",
            ),
            rule(
                "ModelPodRestarting",
                "warning",
                "5m",
                f"increase(kube_pod_container_status_restarts_total{{{ns}}}[1h])"
                f" > {t.pod_restarts_per_hour}",
                "Model container restarting",
                "Container {{ $labels.container }} of {{ $labels.namespace }}/"
                "{{ $labels.pod }} restarted {{ $value | humanize }} times in an hour.",
            ),
            rule(
                "ModelReplicasUnavailable",
                "warning",
                t.replicas_unavailable_for,
                f"kube_deployment_status_replicas_unavailable{{{ns}}} > 0",
                "Model Deployment has unavailable replicas",
                "{{ $value }} replicas of {{ $labels.namespace }}/{{ $labels.deployment }} "
                f"have not been ready for {t.replicas_unavailable_for}.",
            ),
            rule(
                "ModelServingDown",
                "critical",
                "5m",
                f"kube_deployment_status_replicas_available{{{ns}}} == 0"
                f" and kube_deployment_spec_replicas{{{ns}}} > 0",
                "Model has no ready replica",
                "{{ $labels.namespace }}/{{ $labels.deployment }} has no available replica: "
                "the model is not serving.",
            ),
            rule(
                "GpuPodPending",
                "warning",
                t.pending_gpu_pod_for,
                'max by (namespace, pod) (kube_pod_status_phase{phase="Pending"}) == 1'
                " and on (namespace, pod) max by (namespace, pod) "
                '(kube_pod_container_resource_requests{resource="nvidia_com_gpu"}) > 0',
                "GPU pod cannot be scheduled",
                "{{ $labels.namespace }}/{{ $labels.pod }} requests GPUs and has been Pending "
                f"for {t.pending_gpu_pod_for}: check Karpenter and the GPU pool limits.",
            ),
            # KEDA 2.20 pkg/metricscollector/prommetrics.go: one increment per failed
            # metric read of a ScaledObject (0 once it reads). Its `namespace` label
            # becomes exported_namespace: the chart's ServiceMonitor does not honor
            # labels, so the target's namespace (keda) wins.
            rule(
                "ModelAutoscalerFailing",
                "warning",
                "10m",
                "sum by (exported_namespace, scaledObject) (increase(keda_scaled_object_errors_"
                f'total{{exported_namespace="{inputs.serving_namespace}"}}[5m])) > 0',
                "Model autoscaler cannot read its metric",
                "KEDA cannot read the requests in flight of {{ $labels.exported_namespace }}/"
                "{{ $labels.scaledObject }} from Prometheus: after three failed polls the "
                "model keeps its current size, whatever the load.",
            ),
        ),
    )
    platform = RuleGroup(
        "llm-platform.platform",
        (
            rule(
                "KarpenterCannotLaunchNodes",
                "warning",
                "20m",
                "sum by (error) (increase("
                'karpenter_cloudprovider_errors_total{method="Create"}[10m])) > 0',
                "Karpenter keeps failing to launch nodes",
                "Karpenter's instance launches have failed for 20 minutes "
                "(error {{ $labels.error }}): no capacity for the allowed instance types, "
                "or a quota or permission problem.",
            ),
            rule(
                "GpuNodePoolAtLimit",
                "warning",
                "15m",
                'karpenter_nodepools_usage{resource_type="nvidia.com/gpu"}'
                ' >= karpenter_nodepools_limit{resource_type="nvidia.com/gpu"}',
                "GPU NodePool at its GPU limit",
                "NodePool {{ $labels.nodepool }} holds {{ $value }} GPUs, its limit: "
                "new GPU pods stay Pending until the limit is raised.",
            ),
            *(
                (
                    rule(
                        "GpuOnDemandFallbackSustained",
                        "info",
                        t.on_demand_gpu_for,
                        # karpenter_nodes_allocatable: one series per node, labelled with
                        # its nodepool and capacity_type (kubernetes-sigs/karpenter v1.14.1
                        # pkg/controllers/metrics/node/controller.go).
                        "sum by (nodepool) (karpenter_nodes_allocatable{"
                        'resource_type="nvidia.com/gpu", capacity_type="on-demand", '
                        f'nodepool=~"{"|".join(inputs.spot_fallback_pools)}"}}) > 0',
                        "GPU pool still on on-demand capacity",
                        "NodePool {{ $labels.nodepool }} prefers spot but has held "
                        f"{{{{ $value }}}} on-demand GPUs for {t.on_demand_gpu_for}: busy "
                        "nodes never move back to spot by themselves.",
                    ),
                )
                if inputs.spot_fallback_pools
                else ()
            ),
            rule(
                "FluentBitOutputErrors",
                "warning",
                "15m",
                "sum by (namespace, pod, name) (rate(fluentbit_output_errors_total[5m])) > 0",
                "Fluent Bit cannot deliver logs",
                "Output {{ $labels.name }} of {{ $labels.pod }} has been failing for "
                "15 minutes; logs are buffered on the node.",
            ),
            rule(
                "FluentBitRecordsDropped",
                "warning",
                "0m",
                # Our outputs retry without limit, so loss shows as dropped records (the
                # filesystem buffer full); retries_failed covers a finite Retry_Limit.
                "sum by (namespace, pod, name) "
                "(increase(fluentbit_output_dropped_records_total[10m])) > 0 "
                "or sum by (namespace, pod, name) "
                "(increase(fluentbit_output_retries_failed_total[10m])) > 0",
                "Fluent Bit dropped logs",
                "Output {{ $labels.name }} of {{ $labels.pod }} lost logs in the last 10 "
                "minutes ({{ $value | humanize }} records or chunks).",
            ),
        ),
    )
    return (gpu, inference, platform)
