"""The ``observability`` section: kube-prometheus-stack, Alertmanager and alert thresholds."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from infra.core.schema import ContainerResources, Duration, PositiveInt, Section


class AlertThresholds(Section):
    """Alert thresholds (see ``infra.observability.alert_rules``; each alert's ``for`` is
    fixed there)."""

    p99_latency_seconds: Annotated[float, Field(gt=0)] = 10.0
    """Warn when a model's P99 end-to-end request latency exceeds this (default 10 s)."""
    error_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.05
    """Warn when this share of a model's ``/v1`` requests answer 5xx (default 0.05)."""
    error_ratio_critical: Annotated[float, Field(gt=0, lt=1)] = 0.20
    """Page when this share answers 5xx (default 0.20); must exceed ``errorRatio``."""
    gpu_memory_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.95
    """Warn when used / (used + free) framebuffer exceeds this (default 0.95). vLLM
    pre-allocates ``gpuMemoryUtilization`` of each GPU, so this must be above every
    model's value."""
    gpu_temperature_celsius: Annotated[int, Field(ge=50, le=100)] = 85
    """Warn above this GPU temperature (default 85 C)."""
    gpu_temperature_critical_celsius: Annotated[int, Field(ge=50, le=110)] = 92
    """Page above this GPU temperature (default 92 C); must exceed the warning level."""
    gpu_underutilized_percent: Annotated[int, Field(ge=1, le=100)] = 10
    """Info (cost) alert when a GPU's 1-hour average utilisation stays below this (10 %)."""
    kv_cache_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.90
    """Warn when a replica's KV-cache usage stays above this (default 0.90)."""
    queue_backlog: PositiveInt = 20
    """Warn when more requests than this wait in a model's queues while its autoscaler
    adds no replica: at its maximum, or not scaling for 30 minutes (default 20)."""
    pod_restarts_per_hour: PositiveInt = 3
    """Warn when a model container restarts more often than this in an hour (default 3)."""
    replicas_unavailable_for: Duration = "20m"
    """Warn when a model Deployment has unavailable replicas this long (default 20m);
    longer than the slowest model load, so scale-ups and rollouts stay quiet."""
    pending_gpu_pod_for: Duration = "15m"
    """Warn when a pod requesting GPUs stays Pending this long (default 15m: a GPU node
    launch plus a multi-GB image pull takes up to ~10 minutes)."""
    on_demand_gpu_for: Duration = "6h"
    """Tell the info channel when a GPU pool that prefers spot has held on-demand GPUs this
    long (default 6h): WhenEmpty consolidation never moves a busy node back to spot, so a
    spot shortage can leave on-demand prices running until the node empties or expires."""

    def check(self, at: str) -> list[str]:
        problems: list[str] = []
        if self.error_ratio_critical <= self.error_ratio:
            problems.append(
                f"{at}.errorRatioCritical = {self.error_ratio_critical}: must be above "
                f"errorRatio ({self.error_ratio})"
            )
        if self.gpu_temperature_critical_celsius <= self.gpu_temperature_celsius:
            problems.append(
                f"{at}.gpuTemperatureCriticalCelsius = {self.gpu_temperature_critical_celsius}: "
                f"must be above gpuTemperatureCelsius ({self.gpu_temperature_celsius})"
            )
        return problems


class ObservabilityConfig(Section):
    """kube-prometheus-stack, Alertmanager routing and dashboards
    (``infra.observability.component``)."""

    kube_prometheus_stack_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "88.5.3"
    """``kube-prometheus-stack`` chart version (default 88.5.3: operator v0.93.1)."""
    prometheus_operator_crds_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "31.0.1"
    """``prometheus-operator-crds`` chart version; its appVersion must equal the operator
    version of the kube-prometheus-stack chart (default 31.0.1: v0.93.1)."""
    prometheus_replicas: Annotated[int, Field(ge=1, le=3)] = 1
    """Prometheus replicas; each scrapes everything and keeps its own volume (default 1)."""
    alertmanager_replicas: Annotated[int, Field(ge=1, le=3)] = 1
    """Alertmanager replicas, clustered (default 1)."""
    retention: Annotated[str, Field(pattern=r"^\d+[dh]$")] = "15d"
    """How long Prometheus keeps samples (default ``15d``). A size cap of 85 % of the
    volume applies as well, so a full disk drops old data instead of crashing."""
    storage_gib: Annotated[int, Field(ge=10, le=4096, alias="storageGiB")] = 50
    """Size of each Prometheus replica's gp3 volume (default 50 GiB)."""
    alertmanager_storage_gib: Annotated[
        int, Field(ge=1, le=100, alias="alertmanagerStorageGiB")
    ] = 5
    """Size of each Alertmanager replica's gp3 volume (silences, notification log; 5 GiB)."""
    storage_reclaim_policy: Literal["Delete", "Retain"] = "Retain"
    """What happens to monitoring volumes when their claim is deleted (default ``Retain``:
    metrics history survives an accidental release deletion; ``Delete`` for throwaway
    stacks)."""
    scrape_interval: Duration = "30s"
    """Default scrape and rule evaluation interval (default ``30s``)."""
    prometheus_resources: ContainerResources = ContainerResources(cpu="500m", memory="2Gi")
    alertmanager_resources: ContainerResources = ContainerResources(cpu="50m", memory="128Mi")
    grafana_resources: ContainerResources = ContainerResources(cpu="100m", memory="256Mi")
    slack_channel: Annotated[str, Field(pattern=r"^#[\w-]+$")] = "#llm-platform-alerts"
    """Slack channel of warning and critical alerts (the webhook is ``slackWebhookUrl``)."""
    info_slack_channel: Annotated[str, Field(pattern=r"^#[\w-]+$")] | None = None
    """Slack channel of info alerts (budget shares below 100%, GPU underutilisation),
    posted once a day per alert without resolve messages (default: ``slackChannel``)."""
    runbook_base_url: Annotated[str, Field(pattern=r"^https://\S+$")] | None = None
    """Where the runbooks are: each alert's ``runbook_url`` is ``<this>/<AlertName>.md``
    (default: ``docs/runbooks`` on ``main`` of ``ci.githubRepository``)."""
    thresholds: AlertThresholds = AlertThresholds()
