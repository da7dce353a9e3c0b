"""Typed stack configuration: everything under the ``llm-platform:`` namespace.

``__main__.py`` collects the raw stack config and calls :func:`load_config` before it
registers any resource. Every other module receives the typed sections below, never
``pulumi.Config``. Keys are camelCase in ``Pulumi.<stack>.yaml`` (Pulumi convention) and
snake_case in Python. Each field documents its default; a stack file only states what
differs from it.

Validation happens in two passes that both report *all* problems at once:

1. field checks by pydantic (types, ranges, closed sets, unknown keys), and
2. cross-field checks (zones in the region, pool references, GPU fits, secrets).

Each problem is one line ``<key path> = <value>: <what is allowed>``; the value of a
secret is never printed.
"""

from __future__ import annotations

import ipaddress
import json
import re
import types
import typing
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal, Union

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from infra.arns import Arns, same_principal
from infra.conventions import PLATFORM_NAMESPACES
from infra.gpu_catalog import GPU_FAMILIES, allowed_instance_types
from infra.naming import IAM_ROLE_NAME_MAX, bucket_name_problem, model_bucket_name, model_role_name
from infra.nodepool_model import AMI_VERSION_EXAMPLES, ami_version_ok
from workloads.gpu_memory import ModelShape, check_fit
from workloads.host_memory import required_memory_gib

NAMESPACE = "llm-platform"

# --------------------------------------------------------------------------- errors


class ConfigError(pulumi.RunError):
    """Invalid stack configuration.

    A ``RunError`` is reported by the Pulumi CLI as its message alone, without a Python
    traceback; the offline plan prints the same message and exits 2.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"invalid stack configuration ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n" + "\n".join(f"  - {p}" for p in problems)
        )


# --------------------------------------------------------------------------- base types


class _Section(BaseModel):
    """Base of every config section: immutable, unknown keys rejected, camelCase keys."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        # The docstring under each field is its description (docs/configuration.md).
        use_attribute_docstrings=True,
    )


def _dns_label(value: str) -> str:
    """a DNS label: lowercase letters, digits and '-', starting with a letter, at most 40
    characters"""
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", value):
        raise ValueError(
            "must be a DNS label: lowercase letters, digits and '-', starting with a letter, "
            "at most 40 characters"
        )
    return value


def _duration(value: str) -> str:
    """a Go duration such as `30s`, `10m`, `720h` or `1h30m`"""
    if not re.fullmatch(r"(\d+(s|m|h))+", value):
        raise ValueError("must be a Go duration such as '30s', '10m', '720h' or '1h30m'")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
Duration = Annotated[str, AfterValidator(_duration)]
PositiveInt = Annotated[int, Field(ge=1)]
CapacityType = Literal["spot", "on-demand"]

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy API).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


# --------------------------------------------------------------------------- sections


class NetworkConfig(_Section):
    """VPC layout. Subnets are carved from ``cidr`` per zone (see ``infra.network``)."""

    cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/16")
    """VPC CIDR block (default ``10.0.0.0/16``)."""
    nat_gateways: Literal["single", "perZone"] = "perZone"
    """``perZone`` survives a zone outage; ``single`` saves ~USD 33/month per zone (dev)."""
    private_subnet_prefix: Annotated[int, Field(ge=16, le=24)] = 19
    """Prefix length of each private (node/pod) subnet: /19 = 8,190 pod IPs (default 19)."""
    public_subnet_prefix: Annotated[int, Field(ge=20, le=28)] = 24
    """Prefix length of each public (load balancer/NAT) subnet (default 24)."""


class SystemNodeGroupConfig(_Section):
    """On-demand managed node group for controllers (Karpenter cannot run on nodes it makes)."""

    instance_types: tuple[str, ...] = ("m7i.xlarge",)
    """Default ``m7i.xlarge`` x 2: the controllers pinned here request about 5 vCPU."""
    min_size: PositiveInt = 2
    """Fewest nodes (default 2)."""
    desired_size: PositiveInt = 2
    """Nodes at creation (default 2); drifts at run time, the program leaves it alone."""
    max_size: PositiveInt = 4
    """Most nodes (default 4)."""


AddonName = Literal[
    "vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver"
]
LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]


class ClusterConfig(_Section):
    """EKS control plane and system node group."""

    name: DnsLabel
    """EKS cluster name; also the Karpenter discovery tag value."""
    version: Annotated[str, Field(pattern=r"^1\.\d{2}$")] = "1.33"
    """Kubernetes minor version (default ``1.33``)."""
    admins: tuple[
        Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$")], ...
    ] = ()
    """IAM principals granted ``AmazonEKSClusterAdminPolicy`` through access entries."""
    endpoint_public_access: bool = False
    """Expose the API endpoint publicly (limited to ``public_access_cidrs``)."""
    public_access_cidrs: tuple[ipaddress.IPv4Network, ...] = ()
    """CIDRs allowed to reach a public endpoint; required when it is public."""
    log_types: tuple[LogType, ...] = (
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    )
    """Control-plane log types shipped to CloudWatch (default: all five)."""
    system_node_group: SystemNodeGroupConfig = SystemNodeGroupConfig()
    addons: dict[AddonName, Annotated[str, Field(pattern=r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")]] = {}
    """EKS add-on versions, e.g. ``vpc-cni: v1.20.4-eksbuild.1``. All five are required."""


IamRoleArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")]
GITHUB_HOSTED_LABEL = "ubuntu-24.04"


class CiConfig(_Section):
    """How CI deploys and previews the stack (README, "CI setup").

    The workflows read these values from the stack file (``python -m tools ci-settings``),
    so the roles they assume and the runner they use are reviewed with the stack."""

    deploy_role_arn: IamRoleArn
    """Role ``pulumi-up.yml`` assumes through GitHub OIDC. It runs the first ``pulumi up``
    (README, "First deploy of a new environment") and so creates the cluster: EKS gives it
    an admin access entry of its own, and it must not be in ``cluster.admins``."""
    preview_role_arn: IamRoleArn
    """Read-only role ``preview.yml`` assumes; it gets a read-only access entry
    (``AmazonEKSAdminViewPolicy``)."""
    runner: Literal["codebuild", "github-hosted"] = "codebuild"
    """Where the jobs run: ``codebuild``, an AWS CodeBuild-hosted GitHub Actions runner the
    stack creates in its private subnets, allowed to the API endpoint (default); or
    ``github-hosted``, only for an endpoint open to the internet (GitHub's runners have
    no fixed addresses)."""
    github_repository: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    """``owner/name`` of the repository whose workflow jobs the CodeBuild runner takes."""
    github_connection_arn: (
        Annotated[
            str,
            Field(
                pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:"
                r"\d{12}:connection/[0-9a-f-]+$"
            ),
        ]
        | None
    ) = None
    """The AWS CodeConnections connection to GitHub the CodeBuild runner authenticates
    with (made once per account by hand: README, "CI setup"); required for ``codebuild``."""
    allowed_actor_ids: tuple[Annotated[int, Field(ge=1)], ...] = ()
    """Numeric GitHub user ids whose workflow jobs the CodeBuild runner may take: the
    runner sits inside the VPC, next to the API endpoint, and a pull request from a fork
    can ask for its label. Required for ``codebuild``; ids from
    ``gh api users/<login> --jq .id``."""
    job_timeout_minutes: Annotated[int, Field(ge=30, le=720)] = 180
    """Longest a deploy job may run; the slowest first deploy (cluster, nodes, charts,
    model rollouts) takes about 90 minutes (default 180). The STS session of the job and
    the CodeBuild build timeout are derived from it."""


class KarpenterConfig(_Section):
    """Karpenter controller release."""

    version: Annotated[str, Field(pattern=r"^1\.\d+\.\d+$")] = "1.14.1"
    """Version of the ``karpenter`` and ``karpenter-crd`` charts, always the same (default
    ``1.14.1``, which supports Kubernetes 1.30-1.35)."""


class NodeClassConfig(_Section):
    """The GPU EC2NodeClass."""

    ami_family: Literal["al2023", "bottlerocket"] = "al2023"
    """AMI alias family; both ship the NVIDIA driver and container toolkit for GPU types."""
    ami_version: Annotated[str, Field(pattern=r"^(latest|v\d{8}|v\d+\.\d+\.\d+)$")] = "latest"
    """AMI alias version: ``latest`` (dev) or a pinned release such as ``v20251108`` (prod)."""
    root_volume_gib: Annotated[int, Field(ge=50, le=16384, alias="rootVolumeGiB")] = 200
    """Root (AL2023) or data (Bottlerocket) volume: vLLM images are 10+ GB, weights more."""
    data_volume_snapshot_id: Annotated[str, Field(pattern=r"^snap-[0-9a-f]{8,17}$")] | None = None
    """Optional EBS snapshot with pre-pulled images, attached as the Bottlerocket data
    volume (``bottlerocket`` only; default none)."""


class GpuPoolConfig(_Section):
    """One Karpenter GPU NodePool."""

    name: DnsLabel
    """NodePool name; models name it in ``gpuPool`` (``general`` is the CPU pool's)."""
    instance_families: Annotated[tuple[str, ...], Field(min_length=1)]
    """Allowed NVIDIA families, e.g. ``[g6e, g6]``; see ``infra.gpu_catalog``."""
    instance_sizes: tuple[str, ...] = ()
    """Optional size allowlist, e.g. ``[xlarge, 2xlarge, 12xlarge]`` (default: all sizes)."""
    capacity_types: Annotated[tuple[CapacityType, ...], Field(min_length=1)] = ("spot", "on-demand")
    """Karpenter prefers spot when both are allowed and falls back to on-demand."""
    gpu_limit: PositiveInt
    """Maximum GPUs the pool may hold at once (``limits.nvidia.com/gpu``)."""
    cpu_limit: PositiveInt = 1000
    """vCPUs the pool may hold at once (``limits.cpu``; default 1000)."""
    memory_limit_gib: Annotated[int, Field(ge=1, alias="memoryLimitGiB")] = 4000
    """Memory the pool may hold at once, GiB (``limits.memory``; default 4000)."""
    weight: Annotated[int, Field(ge=1, le=100)] | None = None
    """Karpenter's preference among pools that fit a pod (higher first; default none)."""
    consolidate_after: Duration = "30m"
    """Pool disruption uses ``WhenEmpty``: a node is removed only once empty this long."""
    expire_after: Duration = "720h"
    """Nodes are replaced after this long (``expireAfter``; default 720h = 30 days)."""
    termination_grace_period: Duration = "2h"
    """How long a draining node waits for its pods before it is terminated (default 2h)."""
    disruption_budget_nodes: Annotated[str, Field(pattern=r"^(\d+|\d{1,3}%)$")] = "10%"
    """Nodes Karpenter may disrupt at once: a count or a percentage (default 10%)."""


CPU_POOL_NAME = "general"
"""Name of the CPU NodePool (and so not available to ``gpuPools``)."""


class CpuPoolConfig(_Section):
    """The general-purpose CPU NodePool (named ``general``)."""

    instance_categories: Annotated[tuple[Literal["c", "m", "r"], ...], Field(min_length=1)] = (
        "c",
        "m",
        "r",
    )
    """EC2 instance categories: compute, general purpose, memory (default all three)."""
    capacity_types: Annotated[tuple[CapacityType, ...], Field(min_length=1)] = ("spot", "on-demand")
    """Karpenter prefers spot when both are allowed and falls back to on-demand."""
    cpu_limit: PositiveInt = 200
    """vCPUs the pool may hold at once (default 200)."""
    memory_limit_gib: Annotated[int, Field(ge=1, alias="memoryLimitGiB")] = 800
    """Memory the pool may hold at once, GiB (default 800)."""


class GpuOperatorConfig(_Section):
    """NVIDIA GPU operator release."""

    version: Annotated[str, Field(pattern=r"^v\d+\.\d+\.\d+$")] = "v26.7.0"
    """``gpu-operator`` chart version (default ``v26.7.0``)."""
    time_slicing_replicas: Annotated[int, Field(ge=2, le=16)] | None = None
    """Share each GPU between N pods (dev only; no memory isolation). Default off."""


class ReplicaRange(_Section):
    """Replicas of a model: KEDA scales between ``min`` and ``max``."""

    min: PositiveInt = 1
    """Replicas that always run (default 1)."""
    max: PositiveInt = 1
    """Most replicas the queue may scale to (default 1)."""


class ContainerResources(_Section):
    """CPU and memory of one container: requests, with the memory limit equal to the
    request and no CPU limit (a busy pod is never throttled while its node has spare CPU)."""

    cpu: Annotated[str, Field(pattern=r"^(\d+m|\d+(\.\d+)?)$")]
    """CPU request, e.g. ``500m`` or ``2``."""
    memory: Annotated[str, Field(pattern=r"^\d+(Mi|Gi)$")]
    """Memory request and limit, e.g. ``512Mi`` or ``4Gi``."""

    def render(self) -> dict[str, dict[str, str]]:
        """The Kubernetes ``resources`` block."""
        return {
            "requests": {"cpu": self.cpu, "memory": self.memory},
            "limits": {"memory": self.memory},
        }


class ModelConfig(_Section):
    """One vLLM-served model (``models:`` list)."""

    name: DnsLabel
    """Kubernetes name and S3 prefix (``models/<name>/``) of the model."""
    served_model_name: Annotated[str, Field(min_length=1)]
    """Name clients send in the OpenAI ``model`` field, e.g. ``Qwen/Qwen2.5-3B-Instruct``."""
    revision: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    """Weights revision served, e.g. the Hugging Face commit or a date (``2024-09-19``):
    replicas load ``models/<name>/<revision>/`` and start only once
    ``tools models sync`` finished it. Changing it is a zero-downtime rolling update;
    setting the previous value back is the rollback."""
    enabled: bool = True
    """Serve the model (default true); a disabled entry keeps its config and weights."""
    gpu_pool: DnsLabel
    """Name of the GPU pool (``gpuPools[].name``) the model runs on."""
    parameters_billions: Annotated[float, Field(gt=0, le=2000)]
    """Model size in billions of parameters (the GPU memory fit check and the startup
    window derive from it)."""
    num_layers: PositiveInt
    """Transformer layers (``num_hidden_layers`` in the model's config.json)."""
    num_kv_heads: PositiveInt
    """KV heads (``num_key_value_heads`` in config.json)."""
    head_dim: PositiveInt
    """Attention head size (``head_dim``, or hidden size / attention heads)."""
    dtype: Literal["bfloat16", "float16"] = "bfloat16"
    """Weights and activations dtype (vLLM ``--dtype``; default bfloat16)."""
    quantization: Literal["awq", "gptq", "fp8"] | None = None
    """Quantization of the checkpoint (vLLM ``--quantization``; default none)."""
    tensor_parallel_size: Literal[1, 2, 4, 8] = 1
    """GPUs per replica (vLLM ``--tensor-parallel-size``; default 1)."""
    replicas: ReplicaRange = ReplicaRange()
    max_model_len: Annotated[int, Field(ge=256, le=1_048_576)] = 8192
    """Longest context in tokens (vLLM ``--max-model-len``; default 8192)."""
    gpu_memory_utilization: Annotated[float, Field(ge=0.5, le=0.95)] = 0.90
    """Share of each GPU vLLM takes for weights and KV cache (default 0.90)."""
    max_num_seqs: Annotated[int, Field(ge=1, le=4096)] = 64
    """Sequences a replica runs at once (vLLM ``--max-num-seqs``; default 64)."""
    extra_args: tuple[str, ...] = ()
    """Further ``vllm serve`` flags, e.g. ``[--enable-prefix-caching]``."""
    resources: ContainerResources | None = None
    """CPU and memory of the server container; default 3 vCPU per GPU and the memory the
    server needs while loading (``workloads.host_memory``: 12Gi for one GPU with the
    default streamer buffer). A smaller memory is rejected: the pod would be OOM-killed
    while streaming weights."""

    @property
    def shape(self) -> ModelShape:
        """What the GPU memory fit check needs (``workloads.gpu_memory``)."""
        return ModelShape(
            parameters_billions=self.parameters_billions,
            num_layers=self.num_layers,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            dtype=self.dtype,
            quantization=self.quantization,
            tensor_parallel_size=self.tensor_parallel_size,
            max_model_len=self.max_model_len,
            max_num_seqs=self.max_num_seqs,
            gpu_memory_utilization=self.gpu_memory_utilization,
        )


class ServingConfig(_Section):
    """Settings shared by every served model."""

    namespace: DnsLabel = "inference"
    """Namespace of the model servers (default ``inference``)."""
    vllm_image: Annotated[str, Field(pattern=r"^[\w./-]+:v\d+\.\d+\.\d+$")] = (
        "vllm/vllm-openai:v0.33.0"
    )
    """vLLM OpenAI server image, pinned to a release tag (default ``v0.33.0``: the flags
    ``--shutdown-timeout`` and ``--load-format runai_streamer`` are used)."""
    allowed_client_namespaces: tuple[DnsLabel, ...] = ()
    """Namespaces whose pods may call the model Services (NetworkPolicy ingress)."""
    keda_version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "2.20.2"
    """KEDA chart version (default ``2.20.2``)."""
    drain_seconds: Annotated[int, Field(ge=5, le=600)] = 60
    """How long a stopping replica finishes in-flight requests (vLLM ``--shutdown-timeout``);
    the preStop delay and the pod's termination grace period derive from it (default 60)."""
    streamer_buffer_gib: Annotated[int, Field(ge=1, le=64, alias="streamerBufferGiB")] = 4
    """CPU buffer of the Run:ai streamer per GPU worker while weights load (vLLM
    ``memory_limit``; default 4 GiB). Must hold the largest tensor (about 1 GiB for 7B
    models, 2 GiB for 70B); the model containers' memory is sized from it
    (``workloads.host_memory``)."""
    queue_depth_per_replica: Annotated[int, Field(ge=1, le=1000)] = 8
    """KEDA target: waiting requests (``vllm:num_requests_waiting``) per replica before
    scaling out (default 8)."""


class AlertThresholds(_Section):
    """Alert thresholds (see ``infra.alert_rules``; each alert's ``for`` is fixed there)."""

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
    """Warn when more requests than this wait in a model's queues (default 20)."""
    pod_restarts_per_hour: PositiveInt = 3
    """Warn when a model container restarts more often than this in an hour (default 3)."""
    replicas_unavailable_for: Duration = "20m"
    """Warn when a model Deployment has unavailable replicas this long (default 20m);
    longer than the slowest model load, so scale-ups and rollouts stay quiet."""
    pending_gpu_pod_for: Duration = "15m"
    """Warn when a pod requesting GPUs stays Pending this long (default 15m: a GPU node
    launch plus a multi-GB image pull takes up to ~10 minutes)."""


class ObservabilityConfig(_Section):
    """kube-prometheus-stack, Alertmanager routing and dashboards (``infra.monitoring``)."""

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
    runbook_base_url: Annotated[str, Field(pattern=r"^https://\S+$")] | None = None
    """Where the runbooks are: each alert's ``runbook_url`` is ``<this>/<AlertName>.md``
    (default: ``docs/runbooks`` on ``main`` of ``ci.githubRepository``)."""
    thresholds: AlertThresholds = AlertThresholds()


class LoggingConfig(_Section):
    """Fluent Bit to CloudWatch Logs."""

    retention_days: int = 30
    """CloudWatch retention; one of the values CloudWatch accepts (default 30)."""
    kms_encryption: bool = True
    """Encrypt log groups with a platform KMS key (default on)."""


class BudgetConfig(_Section):
    """One cost budget (Kubecost alert, AWS Budget and PrometheusRule)."""

    name: DnsLabel
    """Budget name, unique per stack (AWS budgets get ``<stack>-<name>``)."""
    scope: Literal["cluster", "namespace", "model"]
    """What the budget covers: the whole cluster, one namespace or one model."""
    target: DnsLabel | None = None
    """Namespace or model name; required unless scope is ``cluster``."""
    monthly_usd: Annotated[float, Field(gt=0)]
    """The monthly amount in USD."""
    thresholds_percent: Annotated[
        tuple[Annotated[int, Field(ge=1, le=200)], ...], Field(min_length=1, max_length=4)
    ] = (50, 80, 100)
    """Alert thresholds in percent of ``monthlyUsd`` (default 50, 80, 100). At most four:
    an AWS budget takes five notifications, one of them the forecast at 100%."""
    notify_emails: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")], ...] = ()
    """Who gets the alerts: SNS email subscriptions and Kubecost ``ownerContact``."""


class CostConfig(_Section):
    """Kubecost, budgets and the cost estimator."""

    kubecost_version: Annotated[str, Field(pattern=r"^2\.8\.\d+$")] = "2.8.7"
    """``cost-analyzer`` chart version (default ``2.8.7``). Only 2.8.x: the last 2.x line that
    runs on an external Prometheus; 2.9 exists only as a step to 3.x (it requires federated
    storage) and 3.x is a different chart without Prometheus."""
    spot_discount: Annotated[float, Field(ge=0, lt=1)] = 0.6
    """Expected spot saving vs on-demand, for the *expected* (not worst-case) estimate."""
    budgets: Annotated[tuple[BudgetConfig, ...], Field(min_length=1)]
    activate_cost_allocation_tag: bool = False
    """Activate the ``cost-center`` cost-allocation tag, which the AWS budgets' tag filter
    needs (default off). AWS accepts the activation only from the payer (management)
    account, and only once the tag has shown up in billing data, up to 24 h after the
    first tagged resource: turn it on in one stack of the payer account, on an update
    after the first day (README, "Deploying"). See
    https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html"""
    kubecost_model_resources: ContainerResources = ContainerResources(cpu="500m", memory="2Gi")
    """Requests of the cost-model container (memory is also its limit)."""
    kubecost_frontend_resources: ContainerResources = ContainerResources(cpu="50m", memory="128Mi")
    """Requests of the frontend (nginx) container (memory is also its limit)."""


EnforcementLevel = Literal["mandatory", "advisory", "disabled"]


class PolicyConfig(_Section):
    """Environment limits of the policy pack (``policies/``).

    ``python -m tools policy-config`` renders them into ``policies/config.<stack>.json``
    for ``pulumi preview --policy-pack-config``; the offline plan derives the same
    document from the stack file. The budget the GPU spend rule checks is the smallest
    ``cost.budgets`` entry with scope ``cluster``.
    """

    max_gpus_per_pool: PositiveInt
    """Highest ``limits.nvidia.com/gpu`` a single GPU NodePool may set."""
    max_gpus_total: PositiveInt
    """Highest sum of the GPU limits of all GPU NodePools."""
    min_zones: Annotated[int, Field(ge=1, le=6)] = 2
    """Zones every GPU NodePool must span (default 2)."""
    spot_only: bool = False
    """Reject GPU pools that allow on-demand capacity (dev cost guard; default off)."""
    allowed_instance_families: Annotated[tuple[str, ...], Field(min_length=1)] = GPU_FAMILIES
    """GPU families pools may use (default: every family of ``infra.gpu_catalog``)."""
    allowed_instance_sizes: tuple[str, ...] = ()
    """Instance sizes pools may use (default empty: every size)."""
    required_tags: Annotated[tuple[str, ...], Field(min_length=1)] = (
        "cost-center",
        "environment",
        "owner",
        "project",
    )
    """Tag keys every taggable AWS resource must carry (default: the four the program sets)."""
    required_log_types: tuple[LogType, ...] = ("api", "audit", "authenticator")
    """EKS control-plane log types that must be on (default api, audit, authenticator)."""
    min_log_retention_days: PositiveInt = 7
    """Shortest CloudWatch log retention allowed (default 7 days)."""
    enforcement: dict[str, EnforcementLevel] = {}
    """Enforcement level per rule name, over the rule's default (every rule: mandatory)."""


class PlatformConfig(_Section):
    """The whole ``llm-platform:`` namespace of one stack."""

    stack: DnsLabel
    """Stack name (from Pulumi, not from the stack file); used in names and tags."""
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
    """AWS region (from ``aws:region``, the one place it is set)."""
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    """The AWS account the stack deploys into, quoted (``"444455556666"``). The program
    refuses to run with credentials of another account, and composes the ARNs of its
    resources from it so that every policy document is known at preview."""
    zones: Annotated[tuple[str, ...], Field(min_length=1, max_length=6)]
    """Availability zones of ``aws:region`` to run in, e.g. ``[us-east-1a, us-east-1b]``;
    subnets, NAT gateways and NodePools span them."""
    tags: dict[str, str]
    """Cost-allocation tags on every AWS resource; must include ``cost-center`` and ``owner``."""
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig
    karpenter: KarpenterConfig = KarpenterConfig()
    node_class: NodeClassConfig = NodeClassConfig()
    gpu_pools: Annotated[tuple[GpuPoolConfig, ...], Field(min_length=1)]
    cpu_pool: CpuPoolConfig = CpuPoolConfig()
    gpu_operator: GpuOperatorConfig = GpuOperatorConfig()
    serving: ServingConfig = ServingConfig()
    models: tuple[ModelConfig, ...] = ()
    observability: ObservabilityConfig = ObservabilityConfig()
    logging: LoggingConfig = LoggingConfig()
    cost: CostConfig
    policy: PolicyConfig
    ci: CiConfig
    slack_webhook_url: SecretStr | None = None
    """Secret. Alertmanager Slack incoming-webhook URL."""
    pagerduty_routing_key: SecretStr | None = None
    """Secret. PagerDuty Events API v2 integration (routing) key."""
    model_api_key: SecretStr | None = None
    """Secret. API key vLLM requires on every request (``--api-key``)."""
    grafana_admin_password: SecretStr | None = None
    """Secret. Grafana admin password."""

    @property
    def all_tags(self) -> dict[str, str]:
        """Tags applied to every taggable AWS resource."""
        return {"project": NAMESPACE, "environment": self.stack, **self.tags}

    @property
    def arns(self) -> Arns:
        """ARNs of the stack's account and region (``infra.arns``)."""
        return Arns(account_id=self.account_id, region=self.region)

    @property
    def runbook_base_url(self) -> str:
        """``observability.runbookBaseUrl``, or this repository's ``docs/runbooks``."""
        return self.observability.runbook_base_url or (
            f"https://github.com/{self.ci.github_repository}/blob/main/docs/runbooks"
        )

    @property
    def model_bucket(self) -> str:
        """Name of the stack's model bucket (``infra.naming``)."""
        return model_bucket_name(self.account_id, self.region, self.stack)

    @property
    def enabled_models(self) -> tuple[ModelConfig, ...]:
        return tuple(m for m in self.models if m.enabled)

    def gpu_pool(self, name: str) -> GpuPoolConfig:
        return next(p for p in self.gpu_pools if p.name == name)


SECRET_KEYS: tuple[str, ...] = tuple(
    to_camel(n) for n, f in PlatformConfig.model_fields.items() if "SecretStr" in str(f.annotation)
)
REQUIRED_SECRETS: tuple[str, ...] = (
    "slackWebhookUrl",
    "pagerdutyRoutingKey",
    "modelApiKey",
    "grafanaAdminPassword",
)
REQUIRED_TAGS: tuple[str, ...] = ("cost-center", "owner")
REQUIRED_ADDONS: tuple[str, ...] = typing.get_args(AddonName)
# Keys that come from Pulumi itself, not from the stack file's llm-platform namespace.
_INJECTED = ("stack", "region")


# --------------------------------------------------------------------------- loading


def load_config(
    raw: Mapping[str, Any], *, stack: str, region: str, secret_keys: frozenset[str]
) -> PlatformConfig:
    """Validate the raw ``llm-platform:`` config of a stack.

    ``raw`` maps keys without the namespace (``gpuPools``) to values as Pulumi passes
    them: structured values as JSON strings or already decoded. ``secret_keys`` holds
    the keys (without namespace) that were set with ``--secret``. Raises
    :class:`ConfigError` listing every problem.
    """
    data: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        if key in _INJECTED:
            source = "the stack name" if key == "stack" else "aws:region"
            problems.append(f"{NAMESPACE}:{key}: not a stack-file key; it comes from {source}")
            continue
        data[key] = _decode(value)
    for key in SECRET_KEYS:
        if key in data and key not in secret_keys:
            problems.append(
                f"{NAMESPACE}:{key} is set in clear text: it must be a secret "
                f"(pulumi config set --secret {NAMESPACE}:{key} <value>)"
            )
    if problems:
        raise ConfigError(problems)
    try:
        cfg = PlatformConfig.model_validate({**data, "stack": stack, "region": region})
    except ValidationError as exc:
        errors = exc.errors()
        # A list that failed because an item failed adds no information: drop it.
        locs = [tuple(e["loc"]) for e in errors]
        raise ConfigError(
            [
                _describe(err)
                for err, loc in zip(errors, locs, strict=True)
                if not any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs)
            ]
        ) from None
    problems = _cross_checks(cfg)
    if problems:
        raise ConfigError(problems)
    # Imported here: the renderers import this module.
    from infra.render_checks import render_problems

    problems = render_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_stack_config(
    values: Mapping[str, Any], *, stack: str, secret_keys: Collection[str]
) -> PlatformConfig:
    """:func:`load_config` from a stack's config as Pulumi passes it to a program.

    ``values`` has fully qualified keys (``llm-platform:gpuPools``, ``aws:region``);
    ``secret_keys`` likewise. Used by ``__main__.py`` (with the runtime config) and by
    the offline plan (with the stack file), so both read config the same way.
    """
    prefix = f"{NAMESPACE}:"
    region = values.get("aws:region")
    if not region:
        raise ConfigError(["aws:region: required (pulumi config set aws:region <region>)"])
    return load_config(
        {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)},
        stack=stack,
        region=str(region),
        secret_keys=frozenset(k.removeprefix(prefix) for k in secret_keys if k.startswith(prefix)),
    )


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to Python as JSON text; scalars stay strings."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _path(loc: tuple[int | str, ...]) -> str:
    out = f"{NAMESPACE}:{loc[0]}" if loc else NAMESPACE
    for part in loc[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    path = _path(loc)
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc[:-1]))
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if err["type"] == "missing":
        return f"{path}: required key is missing"
    value = err.get("input")
    shown = "<secret>" if loc and loc[0] in SECRET_KEYS else json.dumps(value, default=str)
    # Config lists are tuples inside the model; users wrote YAML lists.
    message = str(err["msg"]).removeprefix("Value error, ").replace("Tuple ", "List ")
    return f"{path} = {shown}: {message[:1].lower()}{message[1:]}"


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """camelCase keys of the section at ``loc`` (for 'unknown key' messages)."""
    model: Any = PlatformConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return sorted(str(f.alias) for n, f in model.model_fields.items() if n not in _INJECTED)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, tuple, Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()


def _cross_checks(cfg: PlatformConfig) -> list[str]:
    """Checks that span fields; each message names the offending key path."""
    problems: list[str] = []
    ns = NAMESPACE

    for i, zone in enumerate(cfg.zones):
        if not re.fullmatch(re.escape(cfg.region) + r"[a-z]", zone):
            problems.append(
                f"{ns}:zones[{i}] = {json.dumps(zone)}: not a zone of region {cfg.region} "
                f"(expected {cfg.region}a, {cfg.region}b, ...)"
            )
    if len(set(cfg.zones)) != len(cfg.zones):
        problems.append(f"{ns}:zones = {json.dumps(list(cfg.zones))}: zones must be unique")

    missing_tags = [t for t in REQUIRED_TAGS if not cfg.tags.get(t)]
    if missing_tags:
        problems.append(
            f"{ns}:tags = {json.dumps(cfg.tags)}: cost tags {', '.join(missing_tags)} are required"
        )

    c = cfg.cluster
    # pulumi-eks creates the cluster with bootstrapClusterCreatorAdminPermissions (not
    # configurable): the creator already has an access entry, and a second one for the
    # same principal fails with ResourceInUseException
    # (https://github.com/pulumi/pulumi-eks/issues/2373).
    for i, arn in enumerate(c.admins):
        if same_principal(arn, cfg.ci.deploy_role_arn):
            problems.append(
                f"{ns}:cluster.admins[{i}] = {json.dumps(arn)}: this is ci.deployRoleArn, "
                "which creates the cluster and so already gets an admin access entry from "
                "EKS; a second entry for it fails (ResourceInUseException). Remove it here"
            )
        if same_principal(arn, cfg.ci.preview_role_arn):
            problems.append(
                f"{ns}:cluster.admins[{i}] = {json.dumps(arn)}: this is ci.previewRoleArn, "
                "which gets a read-only access entry; one principal has one access entry"
            )
    problems += _duplicates("cluster.admins", list(c.admins))
    if same_principal(cfg.ci.preview_role_arn, cfg.ci.deploy_role_arn):
        problems.append(
            f"{ns}:ci.previewRoleArn = {json.dumps(cfg.ci.preview_role_arn)}: must differ "
            "from ci.deployRoleArn (previews run read-only)"
        )
    if cfg.ci.runner == "codebuild":
        if cfg.ci.github_connection_arn is None:
            problems.append(
                f"{ns}:ci.githubConnectionArn: required for runner codebuild (the CodeBuild "
                'connection to GitHub, made once per account: README, "CI setup")'
            )
        if not cfg.ci.allowed_actor_ids:
            problems.append(
                f"{ns}:ci.allowedActorIds = []: runner codebuild needs the GitHub user ids "
                "whose jobs may run inside the VPC (a fork's pull request could ask for it)"
            )
    if cfg.ci.runner == "github-hosted" and not open_to_internet(c):
        problems.append(
            f'{ns}:ci.runner = "github-hosted": GitHub-hosted runners have no fixed '
            "addresses, so they cannot reach an API endpoint that is "
            + (
                f"limited to {', '.join(map(str, c.public_access_cidrs))}"
                if c.endpoint_public_access
                else "private (cluster.endpointPublicAccess false)"
            )
            + "; use runner codebuild (a runner in the VPC)"
        )
    if c.endpoint_public_access and not c.public_access_cidrs:
        problems.append(
            f"{ns}:cluster.publicAccessCidrs = []: a public endpoint needs at least one CIDR "
            "(never 0.0.0.0/0 implicitly)"
        )
    missing_addons = [a for a in REQUIRED_ADDONS if a not in c.addons]
    if missing_addons:
        problems.append(
            f"{ns}:cluster.addons = {json.dumps(dict(c.addons))}: versions required for "
            f"{', '.join(missing_addons)}"
        )
    sng = c.system_node_group
    if not sng.min_size <= sng.desired_size <= sng.max_size:
        problems.append(
            f"{ns}:cluster.systemNodeGroup = {json.dumps(sng.model_dump(by_alias=True))}: "
            "must satisfy minSize <= desiredSize <= maxSize"
        )

    if cfg.logging.retention_days not in LOG_RETENTION_DAYS:
        problems.append(
            f"{ns}:logging.retentionDays = {cfg.logging.retention_days}: CloudWatch allows "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
        )

    bucket_problem = bucket_name_problem(cfg.model_bucket)
    if bucket_problem:
        problems.append(f"stack name {json.dumps(cfg.stack)}: {bucket_problem}")

    if cfg.serving.namespace in PLATFORM_NAMESPACES:
        problems.append(
            f"{ns}:serving.namespace = {json.dumps(cfg.serving.namespace)}: a platform "
            f"namespace; use another (platform namespaces: {', '.join(PLATFORM_NAMESPACES)})"
        )

    problems += _duplicates("gpuPools", [p.name for p in cfg.gpu_pools])
    problems += _duplicates("models", [m.name for m in cfg.models])
    problems += _duplicates("cost.budgets", [b.name for b in cfg.cost.budgets])

    for i, pool in enumerate(cfg.gpu_pools):
        at = f"{ns}:gpuPools[{i}]"
        problems += _non_gpu_families(f"{at}.instanceFamilies", pool.instance_families)
        if all(f in GPU_FAMILIES for f in pool.instance_families) and not allowed_instance_types(
            pool.instance_families, pool.instance_sizes
        ):
            problems.append(
                f"{at}.instanceSizes = {json.dumps(list(pool.instance_sizes))}: no instance "
                f"type of {', '.join(pool.instance_families)} has these sizes"
            )
        for key, values in (
            ("instanceFamilies", pool.instance_families),
            ("instanceSizes", pool.instance_sizes),
            ("capacityTypes", pool.capacity_types),
        ):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                problems.append(
                    f"{at}.{key} = {json.dumps(list(values))}: repeats {', '.join(repeated)}; "
                    "list each once"
                )
        if pool.disruption_budget_nodes.endswith("%") and (
            int(pool.disruption_budget_nodes[:-1]) > 100
        ):
            problems.append(
                f"{at}.disruptionBudgetNodes = {json.dumps(pool.disruption_budget_nodes)}: a "
                "percentage of the pool's nodes, at most 100%"
            )

    nc = cfg.node_class
    if not ami_version_ok(nc.ami_family, nc.ami_version):
        problems.append(
            f"{ns}:nodeClass.amiVersion = {json.dumps(nc.ami_version)}: not a release of "
            f"{nc.ami_family}; expected latest or a tag such as "
            f"{AMI_VERSION_EXAMPLES[nc.ami_family]}"
        )
    if nc.data_volume_snapshot_id is not None and nc.ami_family != "bottlerocket":
        problems.append(
            f"{ns}:nodeClass.dataVolumeSnapshotId = {json.dumps(nc.data_volume_snapshot_id)}: "
            "only with amiFamily bottlerocket (AL2023 has no separate image data volume)"
        )
    for i, pool in enumerate(cfg.gpu_pools):
        if pool.name == CPU_POOL_NAME:
            problems.append(
                f"{ns}:gpuPools[{i}].name = {json.dumps(pool.name)}: reserved for the CPU NodePool"
            )

    pools = {p.name: p for p in cfg.gpu_pools}
    for i, model in enumerate(cfg.models):
        at = f"{ns}:models[{i}]"
        if model.replicas.min > model.replicas.max:
            problems.append(
                f"{at}.replicas = {json.dumps(model.replicas.model_dump())}: min must be <= max"
            )
        target_pool = pools.get(model.gpu_pool)
        if target_pool is None:
            problems.append(
                f"{at}.gpuPool = {json.dumps(model.gpu_pool)}: no such GPU pool; "
                f"defined: {', '.join(pools)}"
            )
            continue
        types_ = allowed_instance_types(target_pool.instance_families, target_pool.instance_sizes)
        most = max((t.gpus for t in types_), default=0)
        if types_ and model.tensor_parallel_size > most:
            problems.append(
                f"{at}.tensorParallelSize = {model.tensor_parallel_size}: pool "
                f"{target_pool.name} offers at most {most} GPUs per instance"
            )
            continue
        role = model_role_name(cfg.cluster.name, model.name)
        if len(role) > IAM_ROLE_NAME_MAX:
            problems.append(
                f"{at}.name = {json.dumps(model.name)}: its IAM role {role} would have "
                f"{len(role)} characters; IAM allows {IAM_ROLE_NAME_MAX} (shorten the model "
                "or cluster name)"
            )
        need = required_memory_gib(model.tensor_parallel_size, cfg.serving.streamer_buffer_gib)
        if model.resources is not None and _gib(model.resources.memory) < need:
            problems.append(
                f"{at}.resources.memory = {json.dumps(model.resources.memory)}: the server "
                f"needs {need}Gi while loading (streamer buffer "
                f"{cfg.serving.streamer_buffer_gib}GiB x {model.tensor_parallel_size} GPU(s) "
                "plus vLLM's processes and /dev/shm); raise it or lower "
                "serving.streamerBufferGiB"
            )
        too_big = check_fit(model.name, model.shape, types_)
        if too_big is not None:
            problems.append(f"{at}: {too_big}")

    for i, budget in enumerate(cfg.cost.budgets):
        at = f"{ns}:cost.budgets[{i}]"
        if budget.scope == "cluster" and budget.target is not None:
            problems.append(
                f"{at}.target = {json.dumps(budget.target)}: a cluster budget has no target"
            )
        if budget.scope != "cluster" and budget.target is None:
            problems.append(f"{at}.target: required for scope {budget.scope}")
        if budget.scope == "model" and budget.target not in {m.name for m in cfg.models}:
            problems.append(
                f"{at}.target = {json.dumps(budget.target)}: no such model; "
                f"defined: {', '.join(m.name for m in cfg.models)}"
            )
    if not any(b.scope == "cluster" for b in cfg.cost.budgets):
        problems.append(f"{ns}:cost.budgets: a budget with scope cluster is required")

    if cfg.node_class.ami_family == "bottlerocket" and cfg.gpu_operator.time_slicing_replicas:
        problems.append(
            f"{ns}:gpuOperator.timeSlicingReplicas = {cfg.gpu_operator.time_slicing_replicas}: "
            "needs the GPU operator's device plugin, which Bottlerocket replaces with its own "
            "(set time-slicing in Bottlerocket settings, or use amiFamily al2023)"
        )

    th = cfg.observability.thresholds
    at = f"{ns}:observability.thresholds"
    if th.error_ratio_critical <= th.error_ratio:
        problems.append(
            f"{at}.errorRatioCritical = {th.error_ratio_critical}: must be above "
            f"errorRatio ({th.error_ratio})"
        )
    if th.gpu_temperature_critical_celsius <= th.gpu_temperature_celsius:
        problems.append(
            f"{at}.gpuTemperatureCriticalCelsius = {th.gpu_temperature_critical_celsius}: "
            f"must be above gpuTemperatureCelsius ({th.gpu_temperature_celsius})"
        )
    # vLLM reserves gpuMemoryUtilization of every GPU at start-up: a lower threshold
    # would fire for every healthy replica.
    reserved = [m for m in cfg.enabled_models if m.gpu_memory_utilization >= th.gpu_memory_ratio]
    if reserved:
        problems.append(
            f"{at}.gpuMemoryRatio = {th.gpu_memory_ratio}: must be above the "
            "gpuMemoryUtilization vLLM reserves ("
            + ", ".join(f"{m.name}: {m.gpu_memory_utilization}" for m in reserved)
            + ")"
        )
    problems += _non_gpu_families(
        f"{ns}:policy.allowedInstanceFamilies", cfg.policy.allowed_instance_families
    )
    # Imported here: the rule modules import the cost estimator, which imports this module.
    from policies.rules import RULE_NAMES

    for rule in cfg.policy.enforcement:
        if rule not in RULE_NAMES:
            problems.append(
                f"{ns}:policy.enforcement.{rule}: no such policy rule; rules: "
                f"{', '.join(RULE_NAMES)}"
            )

    for key in REQUIRED_SECRETS:
        if getattr(cfg, _snake(key)) is None:
            problems.append(
                f"{ns}:{key}: required secret is not set "
                f"(pulumi config set --secret {ns}:{key} <value>)"
            )

    return problems


def open_to_internet(cluster: ClusterConfig) -> bool:
    """Whether any address on the internet may reach the cluster's API endpoint."""
    return cluster.endpoint_public_access and any(
        n.prefixlen == 0 for n in cluster.public_access_cidrs
    )


def _gib(quantity: str) -> float:
    """A ``512Mi``/``4Gi`` memory quantity in GiB."""
    return int(quantity[:-2]) / (1024 if quantity.endswith("Mi") else 1)


def _non_gpu_families(path: str, families: tuple[str, ...]) -> list[str]:
    return [
        f"{path}[{j}] = {json.dumps(family)}: not an NVIDIA GPU family; allowed: "
        f"{', '.join(GPU_FAMILIES)}"
        for j, family in enumerate(families)
        if family not in GPU_FAMILIES
    ]


def _duplicates(key: str, names: list[str]) -> list[str]:
    dupes = sorted({n for n in names if names.count(n) > 1})
    return [f"{NAMESPACE}:{key}: duplicate name {json.dumps(n)}" for n in dupes]
