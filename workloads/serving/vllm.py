"""VllmModel: one served model (vLLM OpenAI server) with the objects that keep it up.

Everything rendered comes from pure functions below (tests call them directly); the
component only turns them into resources. vLLM facts used here (v0.33 source):
``vllm serve <model>`` is the image entrypoint; ``/health`` answers 200, 503 when the
engine died, and refuses connections until the model is loaded; ``--shutdown-timeout``
drains in-flight requests on SIGTERM (0 aborts them); ``--load-format runai_streamer``
streams safetensors straight from ``s3://`` with the pod's AWS credentials.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.core.arns import Arns
from infra.core.conventions import (
    GPU_RESOURCE,
    GPU_TOLERATION,
    INSTANCE_TYPE_LABEL,
    MODEL_LABEL,
    NODEPOOL_LABEL,
    PROMETHEUS_SELECTOR_LABELS,
    PROMETHEUS_URL,
    ZONE_LABEL,
    prometheus_peer,
)
from infra.core.iam import pod_identity
from infra.core.naming import model_manifest_key, model_prefix, model_role_name, revision_prefix
from infra.core.ordering import ClusterRef, after
from infra.core.schema import ContainerResources
from workloads.serving import compile_cache
from workloads.serving.cold_start import (
    READINESS_PERIOD_SECONDS,
    STARTUP_PERIOD_SECONDS,
    StartupSettings,
)
from workloads.serving.config import ModelConfig, ServingConfig
from workloads.serving.host_memory import required_memory_gib, shm_gib, streamer_memory_limit_bytes
from workloads.serving.pod_security import harden_deployment

PORT: Final = 8000
MAX_SURGE: Final = 1
"""Extra replicas a rollout starts (``maxUnavailable`` is 0): the pool must hold them."""
REVISION_ANNOTATION: Final = "llm-platform.io/revision"
API_KEY_SECRET: Final = "vllm-api-key"
API_KEY_KEY: Final = "api-key"


@dataclass(frozen=True)
class ProbeTimings:
    """Probe settings; all probes hit ``/health`` on the server port."""

    startup_failure_threshold: int
    startup_period_seconds: int = STARTUP_PERIOD_SECONDS
    readiness_period_seconds: int = READINESS_PERIOD_SECONDS
    readiness_failure_threshold: int = 2
    liveness_period_seconds: int = 20
    liveness_failure_threshold: int = 6
    """Lenient: a busy engine that answers slowly for two minutes is not restarted."""

    @property
    def startup_window_seconds(self) -> int:
        return self.startup_failure_threshold * self.startup_period_seconds


def probe_timings(startup: StartupSettings) -> ProbeTimings:
    """Startup window from the model's cold-start budget (``workloads.serving.cold_start``)."""
    return ProbeTimings(startup_failure_threshold=startup.startup_failure_threshold)


@dataclass(frozen=True)
class DrainTimings:
    """Shutdown sequence of a replica, all derived from ``serving.drainSeconds``.

    1. preStop sleep: the pod is already out of the Service's endpoints, but kube-proxy
       and clients may still send to it for a moment; it keeps serving.
    2. SIGTERM: vLLM stops and drains in-flight requests for up to ``shutdown_timeout``.
    3. The kubelet kills what is left at ``grace_period`` (> 1 + 2, with a margin).
    """

    pre_stop_seconds: int
    shutdown_timeout_seconds: int
    grace_period_seconds: int


def drain_timings(drain_seconds: int) -> DrainTimings:
    pre_stop = max(5, drain_seconds // 4)
    return DrainTimings(
        pre_stop_seconds=pre_stop,
        shutdown_timeout_seconds=drain_seconds,
        grace_period_seconds=pre_stop + drain_seconds + 15,
    )


def container_resources(model: ModelConfig, serving: ServingConfig) -> dict[str, Any]:
    """Requests = limits for GPUs (the scheduler needs both); memory limit = request,
    by default what the server needs while loading (``workloads.serving.host_memory``)."""
    memory = required_memory_gib(model.tensor_parallel_size, serving.streamer_buffer_gib)
    res = model.resources or ContainerResources(
        cpu=str(3 * model.tensor_parallel_size), memory=f"{memory}Gi"
    )
    gpus = {GPU_RESOURCE: str(model.tensor_parallel_size)}
    rendered = res.render()
    return {"requests": {**rendered["requests"], **gpus}, "limits": {**rendered["limits"], **gpus}}


def shm_size(model: ModelConfig) -> str:
    """/dev/shm for NCCL between tensor-parallel workers (it counts against memory)."""
    return f"{shm_gib(model.tensor_parallel_size)}Gi"


def model_uri(bucket: str, model: ModelConfig) -> str:
    """The revision the replicas serve: ``s3://<bucket>/models/<name>/<revision>/``."""
    return f"s3://{bucket}/{revision_prefix(model.name, model.revision)}"


WEIGHTS_WAIT_SECONDS: Final = 300
"""How long the weights gate waits for a revision's completion marker before it fails
(the pod then restarts it with back-off, and never starts vLLM meanwhile)."""
WEIGHTS_GATE_RESOURCES: Final = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "256Mi"},
}

# Runs in the vLLM image itself (already on the node for the server; its
# vllm-openai-base stage installs boto3, see docker/Dockerfile in vllm-project/vllm), with
# the pod's Pod Identity credentials (EKS's pod identity webhook injects them into init
# containers too: pkg/handler, testdata rawPodWithInitContainer, in
# aws/amazon-eks-pod-identity-webhook). The manifest is written last by `tools models sync`
# (tools/models.py), so its presence means the revision is complete; every file it lists
# is checked again (size) so a manifest never vouches for a deleted object. Presence is
# read by listing the prefix: the model role's ListBucket is scoped to it, and S3 answers
# a GET of a missing key with 403, not 404, to a caller that cannot list there.
WEIGHTS_GATE_SCRIPT: Final = """\
import json, os, sys, time
import boto3
bucket, key = os.environ["WEIGHTS_BUCKET"], os.environ["WEIGHTS_MANIFEST"]
prefix = key.rsplit("/", 1)[0] + "/"
s3 = boto3.client("s3")
def listing():
    sizes = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        sizes.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return sizes
deadline = time.monotonic() + int(os.environ["WEIGHTS_WAIT_SECONDS"])
while key not in (sizes := listing()):
    if time.monotonic() > deadline:
        sys.exit(f"s3://{bucket}/{key} not found: revision not synced (tools models sync)")
    time.sleep(10)
manifest = json.load(s3.get_object(Bucket=bucket, Key=key)["Body"])
for f in manifest["files"]:
    size = sizes.get(prefix + f["path"])
    if size != f["size"]:
        sys.exit(f"s3://{bucket}/{prefix}{f['path']}: {size} bytes, manifest says {f['size']}")
print(f"s3://{bucket}/{prefix}: {len(manifest['files'])} files complete")
"""


def region_env(region: str) -> list[dict[str, str]]:
    """The bucket's region for every S3 client in the pod. EKS Pod Identity injects only
    the credentials' URI and token file, and IMDS is out of reach (hop limit 1); the
    streamer's C++ client would sign for us-east-1 without it (run-ai/runai-model-
    streamer cpp/s3/client/client.cc sets a region only when one is given)."""
    return [
        {"name": "AWS_REGION", "value": region},
        {"name": "AWS_DEFAULT_REGION", "value": region},
    ]


def render_weights_gate(
    model: ModelConfig, serving: ServingConfig, bucket: str, *, region: str
) -> dict[str, Any]:
    """Init container: the server starts only on a revision that is completely synced."""
    return {
        "name": "weights",
        "image": serving.vllm_image,
        "command": ["python3", "-c", WEIGHTS_GATE_SCRIPT],
        "env": [
            *region_env(region),
            {"name": "WEIGHTS_BUCKET", "value": bucket},
            {"name": "WEIGHTS_MANIFEST", "value": model_manifest_key(model.name, model.revision)},
            {"name": "WEIGHTS_WAIT_SECONDS", "value": str(WEIGHTS_WAIT_SECONDS)},
        ],
        "resources": WEIGHTS_GATE_RESOURCES,
    }


def vllm_args(
    model: ModelConfig,
    bucket: str,
    drain: DrainTimings,
    serving: ServingConfig,
    startup: StartupSettings,
) -> list[str]:
    """Arguments of ``vllm serve`` (the image's entrypoint)."""
    # vLLM hands both to the streamer as RUNAI_STREAMER_MEMORY_LIMIT and
    # RUNAI_STREAMER_CONCURRENCY (vllm/model_executor/model_loader/runai_streamer_loader.py).
    loader = {
        "memory_limit": streamer_memory_limit_bytes(serving.streamer_buffer_gib),
        "concurrency": startup.streamer_concurrency,
    }
    args = [
        model_uri(bucket, model),
        "--served-model-name",
        model.served_model_name,
        "--load-format",
        "runai_streamer",
        # Bounds the streamer's CPU buffer (the container's memory is sized from it) and
        # sets its S3 streams for the pool's bandwidth (workloads.serving.cold_start).
        "--model-loader-extra-config",
        json.dumps(loader, sort_keys=True),
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--tensor-parallel-size",
        str(model.tensor_parallel_size),
        "--max-model-len",
        str(model.max_model_len),
        "--gpu-memory-utilization",
        str(model.gpu_memory_utilization),
        "--max-num-seqs",
        str(model.max_num_seqs),
        "--dtype",
        model.dtype,
        "--shutdown-timeout",
        str(drain.shutdown_timeout_seconds),
    ]
    if model.quantization is not None:
        args += ["--quantization", model.quantization]
    return [*args, *model.extra_args]


def model_labels(model: ModelConfig) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": model.name,
        MODEL_LABEL: model.name,
    }


def pool_affinity(pool: str, instance_types: Sequence[str] = ()) -> dict[str, Any]:
    """Pod affinity to the nodes of one GPU NodePool, and to ``instance_types`` of it when
    given: Karpenter picks a type by CPU, memory and GPU count, not GPU memory, so a pool
    that mixes GPUs could otherwise launch one the model does not fit. Karpenter layers a
    pod's node affinity on the NodePool's requirements when it provisions
    (https://karpenter.sh/docs/concepts/scheduling/, "Node affinity")."""
    expressions = [{"key": NODEPOOL_LABEL, "operator": "In", "values": [pool]}]
    if instance_types:
        expressions.append(
            {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": list(instance_types)}
        )
    term = {"matchExpressions": expressions}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


def _health_probe(period: int, failures: int, timeout: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def render_deployment(
    model: ModelConfig,
    serving: ServingConfig,
    bucket: str,
    service_account: str,
    startup: StartupSettings,
    instance_types: Sequence[str] = (),
    *,
    region: str,
) -> dict[str, Any]:
    """The model server Deployment (``apps/v1``); ``instance_types``: the only types of
    its pool a replica fits (empty: every type of the pool); ``region``: the bucket's."""
    labels = model_labels(model)
    probes = probe_timings(startup)
    drain = drain_timings(serving.drain_seconds)
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": model.name, "namespace": serving.namespace, "labels": labels},
        "spec": {
            "replicas": model.replicas.min,
            "selector": {"matchLabels": labels},
            # Zero-downtime reload: a new replica must be Ready before an old one stops,
            # and a new replica that never becomes Ready never takes traffic.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": MAX_SURGE},
            },
            # A replica's worst case before its container starts plus the startup window:
            # a slow but healthy start is never ProgressDeadlineExceeded.
            "progressDeadlineSeconds": startup.progress_deadline_seconds,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        # Karpenter leaves a loading replica alone while it may still be
                        # starting: a duration counted from the pod's status.startTime,
                        # before its image pull and weights gate (pkg/utils/pod/
                        # scheduling.go), so the whole progress deadline. After it,
                        # drift and expiry evict replicas through the PDB, one at a time.
                        # "true" would be worse: never evicted, every replica on nodes
                        # that expire together would be force-deleted together when the
                        # pool's terminationGracePeriod ends (karpenter v1.14.1
                        # website/content/en/docs/concepts/disruption.md, "Pod-Level
                        # Controls" and "TerminationGracePeriod").
                        "karpenter.sh/do-not-disrupt": f"{startup.progress_deadline_seconds}s",
                        REVISION_ANNOTATION: model.revision,
                    },
                },
                "spec": {
                    "serviceAccountName": service_account,
                    "initContainers": [render_weights_gate(model, serving, bucket, region=region)],
                    "terminationGracePeriodSeconds": drain.grace_period_seconds,
                    "tolerations": [dict(GPU_TOLERATION)],
                    "affinity": pool_affinity(model.gpu_pool, instance_types),
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": ZONE_LABEL,
                            # A preference, not a rule: with DoNotSchedule a replica whose
                            # zone has no GPU capacity (InsufficientInstanceCapacity) stays
                            # Pending while the other zones could host it. Karpenter treats
                            # ScheduleAnyway as a requirement first and relaxes it when no
                            # offering satisfies it (karpenter.sh/v1.14/concepts/scheduling,
                            # "Preferences"), so replicas still spread while zones have
                            # capacity. minDomains applies only to DoNotSchedule; the default
                            # nodeAffinityPolicy Honor counts only nodes of the model's pool.
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": labels},
                        },
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": labels},
                        },
                    ],
                    "containers": [
                        {
                            "name": "vllm",
                            "image": serving.vllm_image,
                            # Restores the compile cache, then runs `vllm serve <args>`.
                            "command": compile_cache.command(),
                            "args": vllm_args(model, bucket, drain, serving, startup),
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "env": [
                                {
                                    "name": "VLLM_API_KEY",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": API_KEY_SECRET,
                                            "key": API_KEY_KEY,
                                        }
                                    },
                                },
                                # Weights come from S3 only; never fall back to the Hub.
                                {"name": "HF_HUB_OFFLINE", "value": "1"},
                                *region_env(region),
                                # The API server gives up on its engine after 600 s by
                                # default (vllm/envs.py, v1/engine/core_client.py at
                                # v0.33.0), inside a startup window that may be longer:
                                # it would exit and compile again from scratch.
                                {
                                    "name": "VLLM_ENGINE_READY_TIMEOUT_S",
                                    "value": str(startup.startup_window_seconds),
                                },
                                *compile_cache.cache_env(
                                    model.name,
                                    bucket,
                                    serving.vllm_image,
                                    startup.startup_window_seconds,
                                    f"http://127.0.0.1:{PORT}/health",
                                ),
                            ],
                            "resources": container_resources(model, serving),
                            "startupProbe": _health_probe(
                                probes.startup_period_seconds,
                                probes.startup_failure_threshold,
                                5,
                            ),
                            "readinessProbe": _health_probe(
                                probes.readiness_period_seconds,
                                probes.readiness_failure_threshold,
                                3,
                            ),
                            "livenessProbe": _health_probe(
                                probes.liveness_period_seconds,
                                probes.liveness_failure_threshold,
                                10,
                            ),
                            "lifecycle": {
                                "preStop": {"sleep": {"seconds": drain.pre_stop_seconds}}
                            },
                            "volumeMounts": [
                                {"name": "shm", "mountPath": "/dev/shm"},
                                compile_cache.cache_mount(),
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "shm",
                            "emptyDir": {"medium": "Memory", "sizeLimit": shm_size(model)},
                        },
                        compile_cache.cache_volume(),
                    ],
                },
            },
        },
    }
    # Restricted Pod Security, read-only root filesystem, no API token.
    return harden_deployment(deployment)


def render_service(model: ModelConfig, namespace: str) -> dict[str, Any]:
    labels = model_labels(model)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": model.name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }


def service_url(model: str, namespace: str) -> str:
    """Base URL of a model's Service (its OpenAI API is under ``/v1``)."""
    return f"http://{model}.{namespace}.svc:{PORT}"


def render_pdb(model: ModelConfig, namespace: str) -> dict[str, Any]:
    """Voluntary evictions (node drains) keep at least one replica serving when there are
    two or more; a single-replica model (dev) may be evicted rather than block drains."""
    budget = {"minAvailable": 1} if model.replicas.min >= 2 else {"maxUnavailable": 1}
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": model.name, "namespace": namespace, "labels": model_labels(model)},
        "spec": {"selector": {"matchLabels": model_labels(model)}, **budget},
    }


def render_service_monitor(model: ModelConfig, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": model.name,
            "namespace": namespace,
            "labels": {**model_labels(model), **PROMETHEUS_SELECTOR_LABELS},
        },
        "spec": {
            "selector": {"matchLabels": model_labels(model)},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }


def render_network_policy(
    model: ModelConfig, namespace: str, clients: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Only ``clients`` (NetworkPolicy peers: the gateway's pods) and Prometheus reach
    the server.

    vLLM's ``--api-key`` guards ``/v1`` only; ``/metrics`` and ``/health`` are open, so
    the network decides who can reach the port at all.
    """
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": model.name, "namespace": namespace, "labels": model_labels(model)},
        "spec": {
            "podSelector": {"matchLabels": model_labels(model)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [*map(dict, clients), prometheus_peer()],
                    "ports": [{"protocol": "TCP", "port": PORT}],
                }
            ],
        },
    }


FALLBACK_FAILURES: Final = 3
"""Failed queue polls (15 s apart) before KEDA falls back to a fixed replica count."""


def in_flight_query(model: ModelConfig, namespace: str) -> str:
    """Requests a model's replicas are running or queueing, in all (one selector for
    both gauges: still a number when one of them has no series)."""
    return (
        f'sum({{__name__=~"vllm:num_requests_(running|waiting)", namespace="{namespace}", '
        f'model_name="{model.served_model_name}"}})'
    )


def target_in_flight(model: ModelConfig, serving: ServingConfig) -> int:
    """In-flight requests per replica KEDA aims for (its AverageValue threshold)."""
    return max(1, math.floor(serving.target_concurrency_share * model.max_num_seqs))


def render_scaled_object(
    model: ModelConfig, serving: ServingConfig, startup: StartupSettings
) -> dict[str, Any]:
    """KEDA scales replicas on requests in flight: one replica per
    :func:`target_in_flight` running or waiting requests, between the model's min and
    max, adding one replica per p50 cold start (``StartupSettings.scale_up_period_seconds``)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {
            "name": model.name,
            "namespace": serving.namespace,
            "labels": model_labels(model),
        },
        "spec": {
            "scaleTargetRef": {"name": model.name},
            "minReplicaCount": model.replicas.min,
            "maxReplicaCount": model.replicas.max,
            "pollingInterval": 15,
            # When Prometheus cannot answer FALLBACK_FAILURES polls in a row, KEDA feeds the
            # HPA a metric for `replicas` instead of none; currentReplicasIfHigher keeps a
            # busy model at its current size (never below min) rather than guessing the
            # queue. Fallback needs an AverageValue (at 2.20 also Value) trigger and
            # is not available for cpu/memory triggers (keda-docs 2.20,
            # reference/scaledobject-spec.md "fallback").
            "fallback": {
                "failureThreshold": FALLBACK_FAILURES,
                "replicas": model.replicas.min,
                "behavior": "currentReplicasIfHigher",
            },
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        # A new replica takes a cold start to serve: add one per p50
                        # cold start, and keep it for a while instead of flapping GPU nodes.
                        "scaleUp": {
                            "stabilizationWindowSeconds": 0,
                            "policies": [
                                {
                                    "type": "Pods",
                                    "value": 1,
                                    "periodSeconds": startup.scale_up_period_seconds,
                                }
                            ],
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": 900,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                        },
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": PROMETHEUS_URL,
                        "query": in_flight_query(model, serving.namespace),
                        "threshold": str(target_in_flight(model, serving)),
                    },
                }
            ],
        },
    }


def model_read_policy(bucket_arn: str, model: ModelConfig) -> str:
    """Read-only access to ``models/<name>/`` of the model bucket, nothing else."""
    prefix = model_prefix(model.name)
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadModelObjects",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject"],
                    "Resource": [f"{bucket_arn}/{prefix}*"],
                },
                {
                    "Sid": "ListModelPrefix",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": [bucket_arn],
                    "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}*"]}},
                },
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class VllmModelArgs:
    """Inputs of :class:`VllmModel`."""

    model: ModelConfig
    serving: ServingConfig
    cluster: ClusterRef
    bucket_name: pulumi.Input[str]
    arns: Arns
    """ARNs of the stack's account and region (the weights policy names the bucket)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    namespace: pulumi.Resource | None = None
    """What makes the serving namespace and its API key Secret (``ServingNamespace``)."""
    monitoring_crds: pulumi.Resource | None = None
    """Release installing the ServiceMonitor CRD."""
    keda_crds: pulumi.Resource | None = None
    """Release installing the ScaledObject CRD."""
    node_pools: pulumi.Resource | None = None
    """The NodePools a replica is scheduled on."""
    gpu_operator: pulumi.Resource | None = None
    """The GPU operator, whose device plugin advertises ``nvidia.com/gpu`` on new nodes."""
    image_cache: pulumi.Resource | None = None
    """The pull-through cache the image comes through (``infra.registry``), if any: its
    rule and the nodes' permission to fill it must exist before the first pull."""
    startup: StartupSettings | None = None
    """Probe window, deadlines and scale-up period from the model's cold-start budget
    (``infra.stack.cold_start.model_startup``); required."""
    instance_types: tuple[str, ...] = ()
    """The only instance types of the pool the model fits (empty: all of them;
    ``infra.stack.cold_start.required_instance_types``)."""
    clients: tuple[Mapping[str, Any], ...] = ()
    """NetworkPolicy peers that may call the server besides Prometheus (the gateway)."""

    def __post_init__(self) -> None:
        if not self.model.enabled:
            raise ValueError(f"model ({self.model.name}) is disabled; do not create it")
        if self.startup is None:
            raise ValueError(f"model ({self.model.name}): startup settings are required")

    @property
    def startup_settings(self) -> StartupSettings:
        assert self.startup is not None  # checked in __post_init__
        return self.startup


class VllmModel(pulumi.ComponentResource):
    """Deployment, Service, PDB, ServiceMonitor, NetworkPolicy, ScaledObject and a
    read-only Pod Identity role for one model. Pass the cluster's provider in ``opts``."""

    service_url: str
    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: VllmModelArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:serving:VllmModel", name, None, opts)
        model, serving, startup = args.model, args.serving, args.startup_settings
        namespace = serving.namespace
        in_namespace = after(self, args.namespace)

        access = pod_identity(
            f"{name}-role",
            cluster=args.cluster,
            namespace=namespace,
            service_account=f"vllm-{model.name}",
            tags=args.tags,
            parent=self,
            role_name=model_role_name(args.cluster.name, model.name),
            association_name=f"{name}-identity",
        )
        role, identity = access.role, access.association
        read_weights = aws.iam.RolePolicy(
            f"{name}-read-weights",
            role=role.id,
            policy=pulumi.Output.from_input(args.bucket_name).apply(
                lambda bucket: model_read_policy(args.arns.s3_bucket(bucket), model)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        cache_access = aws.iam.RolePolicy(
            f"{name}-compile-cache",
            role=role.id,
            policy=pulumi.Output.from_input(args.bucket_name).apply(
                lambda bucket: compile_cache.cache_policy(args.arns.s3_bucket(bucket), model.name)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={"name": f"vllm-{model.name}", "namespace": namespace},
            # Pod Identity brings its own projected token; nothing here calls the API.
            automount_service_account_token=False,
            opts=in_namespace,
        )

        deployment = pulumi.Output.from_input(args.bucket_name).apply(
            lambda bucket: render_deployment(
                model,
                serving,
                bucket,
                f"vllm-{model.name}",
                startup,
                args.instance_types,
                region=args.arns.region,
            )
        )
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=deployment["metadata"],
            spec=deployment["spec"],
            # Credentials and their rights must exist before the first replica reads
            # weights (the weights gate) and its compile cache.
            opts=after(
                self,
                args.namespace,
                args.node_pools,
                args.gpu_operator,
                args.image_cache,
                service_account,
                identity,
                read_weights,
                cache_access,
                # KEDA owns the replica count once the Deployment exists.
                ignore_changes=["spec.replicas"],
                # `pulumi up` waits for the rollout: up to replicas.max replicas, each
                # a cold start (node, image, weights, compile) one after another; the
                # provider's 10-minute default would fail a healthy rollout.
                custom_timeouts=pulumi.CustomTimeouts(
                    create=startup.rollout_timeout, update=startup.rollout_timeout
                ),
            ),
        )
        for kind, obj, crds in (
            ("service", render_service(model, namespace), None),
            ("pdb", render_pdb(model, namespace), None),
            (
                "network-policy",
                render_network_policy(model, namespace, args.clients),
                None,
            ),
            ("monitor", render_service_monitor(model, namespace), args.monitoring_crds),
            ("scaler", render_scaled_object(model, serving, startup), args.keda_crds),
        ):
            self._object(f"{name}-{kind}", obj, after(self, args.namespace, crds))

        self.service_url = service_url(model.name, namespace)
        self.role_arn = role.arn
        self.register_outputs({"service_url": self.service_url, "role_arn": self.role_arn})

    def _object(
        self, resource_name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions
    ) -> None:
        """A rendered object as the typed resource the engine and the policies expect."""
        typed: dict[str, Any] = {
            "v1/Service": k8s.core.v1.Service,
            "policy/v1/PodDisruptionBudget": k8s.policy.v1.PodDisruptionBudget,
            "networking.k8s.io/v1/NetworkPolicy": k8s.networking.v1.NetworkPolicy,
        }
        key = f"{obj['apiVersion']}/{obj['kind']}"
        if key in typed:
            typed[key](resource_name, metadata=obj["metadata"], spec=obj["spec"], opts=opts)
        else:
            k8s.apiextensions.CustomResource(
                resource_name,
                api_version=obj["apiVersion"],
                kind=obj["kind"],
                metadata=obj["metadata"],
                spec=obj["spec"],
                opts=opts,
            )
