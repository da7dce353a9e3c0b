"""The metric names our alert rules and dashboards may use, with where each comes from.

A Prometheus query over a misspelt or renamed metric is not an error: it returns nothing,
so the alert never fires and the panel stays empty. ``tests/test_metric_names.py`` parses
every PromQL expression we render and fails on any metric outside this allowlist. Add a
name here only after finding it in the exporter's source for the version we run.
"""

from __future__ import annotations

from typing import Final

# vLLM V1 engine, vllm/v1/metrics/loggers.py (checked in v0.11.2 and v0.33.0). Counters are
# declared without ``_total``; prometheus_client appends it. Labels: model_name, engine.
# Histograms expose _bucket/_sum/_count.
VLLM: Final = frozenset(
    {
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:num_preemptions_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:request_success_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:request_queue_time_seconds_bucket",
        # vllm/entrypoints/.../instrumentator/metrics.py: prometheus-fastapi-instrumentator
        # defaults, status grouped as "2xx"/"4xx"/"5xx"; labels handler, method, status.
        "http_requests_total",
    }
)

# dcgm-exporter, etc/dcp-metrics-included.csv (the collector file the GPU operator
# v25.10/v26.x configures; image 4.x). Labels: gpu, UUID, modelName, device, pci_bus_id,
# Hostname; the GPU's workload as exported_namespace/exported_pod/exported_container (the
# operator's ServiceMonitor does not honor labels), so `namespace` is the exporter's.
DCGM: Final = frozenset(
    {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_XID_ERRORS",  # gauge: the last XID seen, not a count
    }
)

# kube-state-metrics v2.20.0 (kube-prometheus-stack 88.5.3), docs/metrics/workload/*.md.
KUBE_STATE_METRICS: Final = frozenset(
    {
        "kube_pod_container_status_restarts_total",
        "kube_pod_status_phase",
        "kube_pod_container_resource_requests",
        "kube_deployment_status_replicas_unavailable",
        "kube_deployment_status_replicas_available",
        "kube_deployment_spec_replicas",
        # docs/metrics/workload/horizontalpodautoscaler-metrics.md; labels namespace and
        # horizontalpodautoscaler (the HPA's name).
        "kube_horizontalpodautoscaler_status_current_replicas",
        "kube_horizontalpodautoscaler_spec_max_replicas",
    }
)

# KEDA v2.20.2 operator, pkg/metricscollector/prommetrics.go (labels namespace,
# scaledObject; namespace arrives as exported_namespace, see the rule).
KEDA: Final = frozenset({"keda_scaled_object_errors_total"})

# Karpenter, kubernetes-sigs/karpenter (checked at v1.8.3 and v1.14.1):
# pkg/cloudprovider/metrics/cloudprovider.go
# (labels controller, method, provider, error) and pkg/controllers/metrics/nodepool/
# controller.go (labels nodepool, resource_type = the resource name, e.g. nvidia.com/gpu).
KARPENTER: Final = frozenset(
    {
        "karpenter_cloudprovider_errors_total",
        "karpenter_nodepools_usage",
        "karpenter_nodepools_limit",
        # v1.14.1 pkg/controllers/metrics/node/controller.go: one series per node and
        # resource, labels nodepool, capacity_type, resource_type, node_name, ...
        "karpenter_nodes_allocatable",
    }
)

# Fluent Bit 4.x/5.x, administration/monitoring.md (/api/v2/metrics/prometheus). Label
# ``name`` is the output's plugin name or alias.
FLUENT_BIT: Final = frozenset(
    {
        "fluentbit_output_errors_total",
        "fluentbit_output_retries_failed_total",
        "fluentbit_output_proc_records_total",
        "fluentbit_output_dropped_records_total",
    }
)

# Kubecost 2.x cost-model (opencost pkg/costmodel/metrics.go). Node metrics are labelled
# instance, node, instance_type, region, provider_id; node_gpu_hourly_cost is per GPU.
KUBECOST: Final = frozenset(
    {
        "node_total_hourly_cost",
        "node_gpu_hourly_cost",
        "node_gpu_count",
        "kubecost_node_is_spot",
        "container_gpu_allocation",
    }
)

# LiteLLM 1.108.0, litellm/integrations/prometheus.py (the `prometheus` callback; counters
# gain _total). Labels in litellm/types/integrations/prometheus.py: requested_model,
# model_group, exception_status, fallback_model, litellm_model_name, api_base, ...
# tests/test_gateway_proxy.py finds each of these on the real proxy's /metrics.
LITELLM: Final = frozenset(
    {
        "litellm_proxy_total_requests_metric_total",
        "litellm_proxy_failed_requests_metric_total",
        "litellm_deployment_successful_fallbacks_total",
        "litellm_deployment_failed_fallbacks_total",
        "litellm_deployment_cooled_down_total",
        "litellm_llm_api_time_to_first_token_metric_bucket",
        "litellm_request_total_latency_metric_bucket",
    }
)

# Prometheus itself: `up` per scrape target; and our own recording rules
# (workloads/gateway/alerts.py), which the gateway's alerts read.
PROMETHEUS: Final = frozenset(
    {
        "up",
        *(
            f"gateway:request_errors:ratio_rate{w}"
            for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
        ),
    }
)

KNOWN_METRICS: Final = (
    VLLM
    | DCGM
    | KUBE_STATE_METRICS
    | KEDA
    | KARPENTER
    | FLUENT_BIT
    | KUBECOST
    | LITELLM
    | PROMETHEUS
)
"""Every metric name a rule or dashboard may reference."""
