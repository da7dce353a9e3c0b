"""Log shipping: Fluent Bit on every node shipping container logs to CloudWatch Logs.

Pipeline (rendered by :func:`render_pipeline`, one DaemonSet pod per node):

1. ``tail`` reads ``/var/log/containers/*.log``; the built-in ``cri`` multiline parser
   rejoins lines containerd split (``P``/``F`` partial flags) and yields the fields
   ``time``, ``stream`` (``stdout``/``stderr``), ``_p`` and ``log``.
2. ``multiline`` (first filter, as upstream requires) joins Python tracebacks in ``log``
   with the built-in ``python`` parser: uncaught exceptions the interpreter prints (a
   server crashing at start-up, a dying worker). vLLM's own logger repeats its
   ``LEVEL date [file:line]`` prefix on every line of a logged traceback (its
   ``NewLineFormatter``), so those lines stay separate events that each carry the level.
3. ``kubernetes`` adds ``kubernetes.{namespace_name,pod_name,container_name,host,
   labels,...}`` and merges a JSON ``log`` into the record's top level (``Merge_Log``),
   dropping the raw string when it parsed (``Keep_Log Off``): a structured line
   ``{"event": "inference_request", "model": "m", "latency_ms": 1250}`` becomes
   searchable as ``event``, ``model`` and ``latency_ms`` in Logs Insights.
4. ``rewrite_tag`` re-tags records by namespace so each :class:`LogRoute` gets its own
   ``cloudwatch_logs`` output and log group.

Everything is buffered on the node's disk (``storage.type filesystem`` under a hostPath),
retried without limit and bounded per output by ``storage.total_limit_size``: a
CloudWatch outage or throttling delays logs instead of dropping them, until that bound
(then the oldest chunks go first).

Log groups are created here, not by Fluent Bit (``auto_create_group Off``), so that
retention and KMS are ours and Fluent Bit's role needs no ``logs:CreateLogGroup``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from infra.core import request_log as rl
from infra.core.arns import Arns
from infra.core.conventions import (
    GPU_TOLERATION,
    LOGGING_NAMESPACE,
    PROMETHEUS_SELECTOR_LABELS,
    SYSTEM_TOLERATION,
)
from infra.core.helm import Chart

# Upstream fluent/helm-charts `fluent-bit` rather than aws/eks-charts
# `aws-for-fluent-bit`: both ship the same core C `cloudwatch_logs` output, but the
# upstream chart is current (Fluent Bit 5.1.1 vs 4.2.2 in aws-for-fluent-bit 0.2.0, which
# had one release in ~18 months) and takes the whole pipeline as raw config text, so the
# multiline filter, rewrite_tag routing, filesystem storage and per-output
# `storage.total_limit_size`/`Retry_Limit` are rendered here instead of being forced
# through that chart's fixed key subset and free-text `extraOutputs`.
FLUENT_BIT_CHART: Final = Chart(
    "fluent-bit", "fluent-bit", LOGGING_NAMESPACE, "https://fluent.github.io/helm-charts"
)
CHART_VERSION: Final = "0.58.1"
"""Chart 0.58.1 runs Fluent Bit 5.1.1 (its appVersion); Pod Identity needs >= 4.0.0."""

# Chart fullname is the release name when it contains the chart name; pinned anyway so
# the DaemonSet, Service and ServiceAccount names never depend on that rule.
FULLNAME: Final = "fluent-bit"
SERVICE_ACCOUNT: Final = "fluent-bit"
METRICS_PORT: Final = 2020
METRICS_PATH: Final = "/api/v2/metrics/prometheus"
STATE_DIR: Final = "/var/fluent-bit/state"
"""hostPath holding the tail offsets DB and the filesystem buffer; survives pod restarts."""

SOURCE_TAG: Final = "kube"
"""Tag prefix of records as read from /var/log/containers (``kube.var.log.containers.*``)."""
OUTPUT_BUFFER_LIMIT: Final = "1G"
"""``storage.total_limit_size`` per output: disk a node may spend on undelivered logs."""

INFERENCE_GROUP: Final = "inference"
PLATFORM_GROUP: Final = "platform"


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class LogRoute:
    """One CloudWatch log group and the namespaces whose logs it receives."""

    group: str
    """Last part of the log group name ``/eks/<cluster>/<group>``; also tag and alias."""
    namespaces: tuple[str, ...] = ()
    """Namespaces routed here; empty for the catch-all route (every other namespace)."""

    def __post_init__(self) -> None:
        # The group becomes a Fluent Bit tag prefix: letters, digits and '-' only.
        if not re.fullmatch(r"[a-z][a-z0-9-]*", self.group):
            raise ValueError(
                f"group ({self.group!r}) must be lowercase letters, digits and '-', "
                "starting with a letter"
            )
        if self.group == SOURCE_TAG:
            raise ValueError(f"group ({self.group!r}) is reserved for the source tag")

    def tag(self) -> str:
        """Tag prefix its records carry when they reach the outputs."""
        return SOURCE_TAG if not self.namespaces else self.group

    def alias(self) -> str:
        """Output alias: the ``name`` label of ``fluentbit_output_*`` metrics."""
        return f"cw-{self.group}"


def default_routes(serving_namespace: str) -> tuple[LogRoute, ...]:
    """Model servers' logs to ``inference``, everything else to ``platform`` (seed 002)."""
    return (
        LogRoute(INFERENCE_GROUP, (serving_namespace,)),
        LogRoute(PLATFORM_GROUP),
    )


def check_routes(routes: Sequence[LogRoute]) -> None:
    """Exactly one catch-all route, last; groups and namespaces used once each."""
    groups = [r.group for r in routes]
    if len(set(groups)) != len(groups):
        raise ValueError(f"routes ({', '.join(groups)}) must name each group once")
    if not routes or routes[-1].namespaces or any(not r.namespaces for r in routes[:-1]):
        raise ValueError(
            f"routes ({', '.join(groups)}) must end with exactly one catch-all route "
            "(no namespaces)"
        )
    namespaces = [n for r in routes for n in r.namespaces]
    if len(set(namespaces)) != len(namespaces):
        raise ValueError(f"routes send a namespace to two groups ({', '.join(namespaces)})")


def log_group_name(cluster_name: str, route: LogRoute) -> str:
    return f"/eks/{cluster_name}/{route.group}"


def control_plane_log_group_name(cluster_name: str) -> str:
    """The group EKS writes control-plane logs to; EKS creates it (without retention or
    encryption) unless it exists, so the program creates it before the cluster, as
    terraform-aws-eks does (``aws_cloudwatch_log_group.this`` in its main.tf). See
    https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html"""
    return f"/aws/eks/{cluster_name}/cluster"


# --------------------------------------------------------------------------- pipeline


def _section(kind: str, entries: Sequence[tuple[str, str | int]]) -> str:
    width = max(len(k) for k, _ in entries)
    return f"[{kind}]\n" + "".join(f"    {k.ljust(width)} {v}\n" for k, v in entries)


def render_pipeline(cluster_name: str, region: str, routes: Sequence[LogRoute]) -> dict[str, str]:
    """The chart's ``config`` value: classic-format ``service``, ``inputs``, ``filters``,
    ``outputs`` and ``customParsers`` text.

    The chart runs each string through Helm's ``tpl``; nothing here uses ``{{``.
    """
    check_routes(routes)
    service = _section(
        "SERVICE",
        [
            ("Daemon", "Off"),
            ("Flush", 1),
            # Fluent Bit's own exit grace; the pod's default 30 s covers it.
            ("Grace", 10),
            ("Log_Level", "info"),
            ("Parsers_File", "/fluent-bit/etc/parsers.conf"),
            ("HTTP_Server", "On"),
            ("HTTP_Listen", "0.0.0.0"),
            ("HTTP_Port", METRICS_PORT),
            ("Health_Check", "On"),
            ("HC_Errors_Count", 5),
            ("HC_Retry_Failure_Count", 5),
            ("HC_Period", 60),
            # Unlimited retries back off to at most 5 minutes, so delivery resumes
            # within minutes of CloudWatch recovering (default cap 2000 s).
            ("scheduler.base", 5),
            ("scheduler.cap", 300),
            ("storage.path", f"{STATE_DIR}/flb-storage/"),
            ("storage.sync", "normal"),
            ("storage.checksum", "off"),
            # Chunks (~2 MB) held in memory; the rest waits on disk.
            ("storage.max_chunks_up", 64),
            ("storage.backlog.mem_limit", "16M"),
            ("storage.metrics", "On"),
            ("storage.delete_irrecoverable_chunks", "On"),
        ],
    )
    inputs = _section(
        "INPUT",
        [
            ("Name", "tail"),
            ("Alias", "containers"),
            ("Tag", f"{SOURCE_TAG}.*"),
            ("Path", "/var/log/containers/*.log"),
            # EKS nodes run containerd: CRI format only, no Docker JSON files.
            ("multiline.parser", "cri"),
            ("DB", f"{STATE_DIR}/flb_kube.db"),
            ("DB.locking", "true"),
            # JSON lines longer than the 32k default (long prompts) are read, not skipped;
            # a line past 256k is skipped rather than stalling the file.
            ("Buffer_Max_Size", "256k"),
            ("Skip_Long_Lines", "On"),
            ("Refresh_Interval", 10),
            ("storage.type", "filesystem"),
        ],
    )
    match = f"{SOURCE_TAG}.*"
    filters = [
        _section(
            "FILTER",
            [
                ("Name", "multiline"),
                ("Alias", "tracebacks"),
                ("Match", match),
                ("multiline.key_content", "log"),
                ("multiline.parser", "python"),
                ("Emitter_Name", "multiline_emitter"),
                ("Emitter_Storage.type", "filesystem"),
                ("Emitter_Mem_Buf_Limit", "16M"),
            ],
        ),
        _section(
            "FILTER",
            [
                ("Name", "kubernetes"),
                ("Alias", "metadata"),
                ("Match", match),
                ("Kube_Tag_Prefix", f"{SOURCE_TAG}.var.log.containers."),
                ("Merge_Log", "On"),
                ("Keep_Log", "Off"),
                ("K8S-Logging.Parser", "On"),
                ("K8S-Logging.Exclude", "On"),
                ("Labels", "On"),
                # Annotations are large (last-applied configs) and rarely searched; the
                # fluentbit.io/* ones above are read whether or not they are copied.
                ("Annotations", "Off"),
                # Pods with many labels exceed the 32k default; metadata would be lost.
                ("Buffer_Size", "256k"),
            ],
        ),
    ]
    rules = [
        (
            "Rule",
            f"$kubernetes['namespace_name'] ^({'|'.join(map(re.escape, r.namespaces))})$ "
            f"{r.tag()}.$TAG false",
        )
        for r in routes
        if r.namespaces
    ]
    if rules:
        # New tags never match `kube.*`, so re-emitted records skip these filters
        # (upstream rejects a rule whose new tag its own Match would catch).
        filters.append(
            _section(
                "FILTER",
                [
                    ("Name", "rewrite_tag"),
                    ("Alias", "routes"),
                    ("Match", match),
                    *rules,
                    ("Emitter_Name", "route_emitter"),
                    ("Emitter_Storage.type", "filesystem"),
                    ("Emitter_Mem_Buf_Limit", "16M"),
                ],
            )
        )
    outputs = [
        _section(
            "OUTPUT",
            [
                ("Name", "cloudwatch_logs"),
                ("Alias", route.alias()),
                ("Match", f"{route.tag()}.*"),
                ("region", region),
                ("log_group_name", log_group_name(cluster_name, route)),
                # One stream per pod container; if metadata is missing the stream is
                # the prefix plus the tag, which still names the pod's log file.
                (
                    "log_stream_template",
                    "$kubernetes['namespace_name'].$kubernetes['pod_name']."
                    "$kubernetes['container_name']",
                ),
                ("log_stream_prefix", "unknown."),
                ("auto_create_group", "Off"),
                ("Retry_Limit", "no_limits"),
                ("storage.total_limit_size", OUTPUT_BUFFER_LIMIT),
            ],
        )
        for route in routes
    ]
    return {
        "service": service,
        "inputs": inputs,
        "filters": "\n".join(filters),
        "outputs": "\n".join(outputs),
        # Pods pick the stock parsers (json, ...) through fluentbit.io/parser.
        "customParsers": "",
    }


FLUENT_BIT_RESOURCES: Final = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
"""Fluent Bit's pod on every node (the node capacity checks count its requests)."""


def render_values(cluster_name: str, region: str, routes: Sequence[LogRoute]) -> dict[str, Any]:
    """Helm values of the fluent-bit chart (keys checked against chart 0.58.1)."""
    state = {"name": "state", "hostPath": {"path": STATE_DIR, "type": "DirectoryOrCreate"}}
    return {
        "fullnameOverride": FULLNAME,
        "kind": "DaemonSet",
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
        "rbac": {"create": True},
        # Every node, including GPU and system nodes; and it must fit on a node already
        # full of model servers.
        "tolerations": [dict(GPU_TOLERATION), dict(SYSTEM_TOLERATION)],
        "priorityClassName": "system-node-critical",
        "resources": FLUENT_BIT_RESOURCES,
        "metricsPort": METRICS_PORT,
        # Replaces the chart's list: containerd nodes have no /var/lib/docker/containers.
        "daemonSetVolumes": [
            {"name": "varlog", "hostPath": {"path": "/var/log"}},
            {"name": "etcmachineid", "hostPath": {"path": "/etc/machine-id", "type": "File"}},
            state,
        ],
        "daemonSetVolumeMounts": [
            {"name": "varlog", "mountPath": "/var/log", "readOnly": True},
            {"name": "etcmachineid", "mountPath": "/etc/machine-id", "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
        ],
        "config": render_pipeline(cluster_name, region, routes),
        # Rendered as our own ServiceMonitor (see LogShipping): the chart's renders only when
        # the CRD already exists at install time and would silently be skipped otherwise.
        "serviceMonitor": {"enabled": False},
        # The chart's `helm test` pod pulls busybox:latest; nothing runs helm test.
        "testFramework": {"enabled": False},
    }


def render_service_monitor() -> dict[str, Any]:
    """ServiceMonitor for the chart's Service (port ``http``), selected by Prometheus."""
    return {
        "metadata": {
            "name": FULLNAME,
            "namespace": LOGGING_NAMESPACE,
            "labels": dict(PROMETHEUS_SELECTOR_LABELS),
        },
        "spec": {
            # The chart's fluent-bit.selectorLabels on its Service.
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": FLUENT_BIT_CHART.chart,
                    "app.kubernetes.io/instance": FLUENT_BIT_CHART.release,
                }
            },
            "namespaceSelector": {"matchNames": [LOGGING_NAMESPACE]},
            "endpoints": [{"port": "http", "path": METRICS_PATH, "interval": "30s"}],
        },
    }


# --------------------------------------------------------------------------- IAM / KMS


def fluent_bit_policy(group_arns: Sequence[str]) -> dict[str, Any]:
    """What Fluent Bit's role may do: write streams of exactly these log groups.

    ``cloudwatch_logs`` 5.1.1 calls CreateLogStream and PutLogEvents (CreateLogGroup
    and PutRetentionPolicy only with ``auto_create_group``, which is off);
    DescribeLogStreams lets an operator's tooling check streams under the same role.
    Both ARN spellings are listed: CloudWatch Logs checks the group as ``<arn>:*``
    and the stream as ``<arn>:log-stream:<name>``.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WritePlatformLogGroups",
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogStream",
                    "logs:DescribeLogStreams",
                    "logs:PutLogEvents",
                ],
                "Resource": sorted(
                    [*group_arns, *(f"{arn}:*" for arn in group_arns)],
                ),
            }
        ],
    }


def log_key_policy(arns: Arns, group_arns: Sequence[str]) -> dict[str, Any]:
    """Key policy of the log groups' KMS key.

    The account keeps administering the key through IAM (the AWS default statement);
    CloudWatch Logs of this region may use it only for these log groups (encryption
    context ``aws:logs:arn``), so the key cannot encrypt any other group.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersKeyThroughIam",
                "Effect": "Allow",
                "Principal": {"AWS": arns.root},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchLogsForPlatformLogGroups",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{arns.region}.amazonaws.com"},
                "Action": [
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnEquals": {"kms:EncryptionContext:aws:logs:arn": sorted(group_arns)}
                },
            },
        ],
    }


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class SavedQuery:
    """A CloudWatch Logs Insights query saved under ``<cluster>/<name>``."""

    name: str
    groups: tuple[str, ...]
    """Route groups it searches."""
    query: str


SLOW_REQUEST_MS: Final = 5000
"""Seed 002's threshold for the slow-request query."""

# Field contract the queries rely on (see docs/architecture.md, "Logging"):
# - kubernetes.namespace_name / pod_name / container_name: kubernetes filter;
# - log: the raw line when it was not JSON (Keep_Log Off drops it when it was);
# - level: structured log lines; the request fields (infra.core.request_log): top-level
#   keys of the gateway's one JSON line per request, merged by Merge_Log.
_REQUEST_FILTER = f'filter {rl.EVENT_KEY} = "{rl.EVENT}"'


def saved_queries(routes: Sequence[LogRoute]) -> tuple[SavedQuery, ...]:
    """Seed 002's three Insights queries, on the fields this pipeline produces."""
    every = tuple(r.group for r in routes)
    return (
        SavedQuery(
            name="recent-errors",
            groups=every,
            # Structured logs carry a level; plain lines (vLLM, uvicorn, tracebacks
            # joined by the multiline filter) only their text.
            query="\n".join(
                [
                    "fields @timestamp, kubernetes.namespace_name, kubernetes.pod_name, "
                    "kubernetes.container_name, level, log, @message",
                    '| filter level in ["error", "ERROR", "critical", "CRITICAL"] '
                    "or log like /(?i)(error|exception|traceback)/",
                    "| sort @timestamp desc",
                    "| limit 100",
                ]
            ),
        ),
        SavedQuery(
            name="slow-requests-by-model",
            groups=every,
            # Requests answered by another model than the one asked for failed over.
            query="\n".join(
                [
                    f"fields @timestamp, {rl.MODEL}, {rl.SERVED_BY}, {rl.STATUS}, "
                    f"{rl.LATENCY_MS}, {rl.TTFT_MS}, {rl.REQUEST_ID}",
                    f"| {_REQUEST_FILTER} and {rl.LATENCY_MS} > {SLOW_REQUEST_MS}",
                    f"| stats avg({rl.LATENCY_MS}) as avg_latency_ms, max({rl.LATENCY_MS}) as "
                    f"max_latency_ms, avg({rl.TTFT_MS}) as avg_ttft_ms, count(*) as requests "
                    f"by {rl.MODEL}, {rl.SERVED_BY}",
                    "| sort avg_latency_ms desc",
                ]
            ),
        ),
        SavedQuery(
            name="token-usage-per-hour-by-model",
            groups=every,
            query="\n".join(
                [
                    f"fields @timestamp, {rl.SERVED_BY}, {rl.INPUT_TOKENS}, {rl.OUTPUT_TOKENS}",
                    f"| {_REQUEST_FILTER}",
                    f"| stats sum({rl.INPUT_TOKENS}) as input_tokens_total, "
                    f"sum({rl.OUTPUT_TOKENS}) as output_tokens_total, count(*) as requests "
                    f"by bin(1h), {rl.SERVED_BY}",
                ]
            ),
        ),
    )


# --------------------------------------------------------------------------- component
