"""Checks that span config sections; a section's own rules are in its ``check`` (the
root fields' in ``PlatformConfig.check``).

Each message names the offending key path.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from infra.core.arns import same_principal
from infra.core.compatibility import karpenter_range, kubernetes_minor
from infra.core.gpu_catalog import allowed_instance_types
from infra.core.images import image_digest
from infra.core.naming import IAM_ROLE_NAME_MAX, bucket_name_problem, model_role_name
from infra.core.schema import NAMESPACE, gib
from infra.stack.baseline import baseline_problems
from infra.stack.capacity import (
    cpu_pool_problems,
    gpu_capacity_problems,
    gpu_capacity_warnings,
    system_node_problems,
)
from infra.stack.stack_cost import price_problems
from infra.stack.warm_capacity import warm_slot_problems
from workloads.serving.gpu_memory import check_fit
from workloads.serving.host_memory import required_memory_gib

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig


def stack_problems(cfg: PlatformConfig) -> list[str]:
    """Every cross-section problem of ``cfg``."""
    return (
        _access(cfg)
        + _bucket(cfg)
        + _models(cfg)
        + _budget_targets(cfg)
        + _gpu_operator(cfg)
        + _gpu_memory_alert(cfg)
        + warm_slot_problems(cfg)
        + _data_volume_image(cfg)
        + _kubernetes_version(cfg)
        + _dtype(cfg)
        + gpu_capacity_problems(cfg)
        + system_node_problems(cfg)
        + cpu_pool_problems(cfg)
        + baseline_problems(cfg)
        + price_problems(cfg)
        + _gateway(cfg)
    )


def stack_warnings(cfg: PlatformConfig) -> list[str]:
    """What the plan and ``pulumi up`` print as warnings: accepted, but worth knowing."""
    warnings = gpu_capacity_warnings(cfg)
    image = cfg.serving.vllm_image
    if image_digest(image) is None:
        warnings.append(
            f"{NAMESPACE}:serving.vllmImage = {json.dumps(image)} is not pinned by digest: a "
            "new node runs whatever the tag points to when it pulls; pin it with python -m "
            f"tools pin-image {cfg.stack} (and set policy.requireImageDigest)"
        )
    return warnings


def _data_volume_image(cfg: PlatformConfig) -> list[str]:
    """A data volume snapshot must hold exactly the pinned serving image."""
    recorded = cfg.node_class.data_volume_image
    if recorded is None:
        return []
    pinned = cfg.serving.vllm_image
    if image_digest(pinned) is None:
        return [
            f"{NAMESPACE}:serving.vllmImage = {json.dumps(pinned)}: pin it by digest "
            "(...@sha256:<digest>) to start nodes from a data volume snapshot"
        ]
    if recorded != pinned:
        return [
            f"{NAMESPACE}:nodeClass.dataVolumeImage = {json.dumps(recorded)}: the snapshot "
            f"holds another image than serving.vllmImage ({pinned}); rebuild it with "
            "python -m tools image-snapshot build"
        ]
    return []


def _kubernetes_version(cfg: PlatformConfig) -> list[str]:
    """The cluster's Kubernetes minor against the pinned Karpenter release's range."""
    version, karpenter = cfg.cluster.version, cfg.karpenter.version
    supported = karpenter_range(karpenter)
    if supported is None:
        return [
            f"{NAMESPACE}:karpenter.version = {json.dumps(karpenter)}: no known Kubernetes "
            "range for this release line (add it to infra/core/compatibility.py from the "
            "release's pkg/providers/version/version.go)"
        ]
    low, high = supported
    if low <= kubernetes_minor(version) <= high:
        return []
    return [
        f"{NAMESPACE}:cluster.version = {json.dumps(version)}: Karpenter {karpenter} "
        f"(karpenter.version) supports Kubernetes 1.{low}-1.{high}"
    ]


def _dtype(cfg: PlatformConfig) -> list[str]:
    """bfloat16 only where every GPU a replica may land on supports it."""
    pools = {p.name: p for p in cfg.gpu_pools}
    problems = []
    for i, model in enumerate(cfg.models):
        pool = pools.get(model.gpu_pool)
        if model.dtype != "bfloat16" or pool is None:
            continue
        without = [
            t
            for t in allowed_instance_types(pool.instance_families, pool.instance_sizes)
            if t.gpus >= model.tensor_parallel_size and not t.supports_bfloat16
        ]
        if without:
            gpus = sorted({f"{t.gpu_model} ({t.family})" for t in without})
            problems.append(
                f'{NAMESPACE}:models[{i}].dtype = "bfloat16": pool {pool.name} may place it '
                f"on {', '.join(gpus)}, below compute capability 8.0, where vLLM refuses "
                "bfloat16; use dtype float16 or drop those families from the pool"
            )
    return problems


def _access(cfg: PlatformConfig) -> list[str]:
    """Who reaches the cluster: admins, the CI roles and the CI runner's network path."""
    problems: list[str] = []
    c, ci = cfg.cluster, cfg.ci
    # pulumi-eks creates the cluster with bootstrapClusterCreatorAdminPermissions (not
    # configurable): the creator already has an access entry, and a second one for the
    # same principal fails with ResourceInUseException
    # (https://github.com/pulumi/pulumi-eks/issues/2373).
    for i, arn in enumerate(c.admins):
        if same_principal(arn, ci.deploy_role_arn):
            problems.append(
                f"{NAMESPACE}:cluster.admins[{i}] = {json.dumps(arn)}: this is ci.deployRoleArn, "
                "which creates the cluster and so already gets an admin access entry from "
                "EKS; a second entry for it fails (ResourceInUseException). Remove it here"
            )
        if same_principal(arn, ci.preview_role_arn):
            problems.append(
                f"{NAMESPACE}:cluster.admins[{i}] = {json.dumps(arn)}: this is "
                "ci.previewRoleArn, which gets a read-only access entry; one principal has "
                "one access entry"
            )
    if ci.runner == "github-hosted" and not c.open_to_internet:
        problems.append(
            f'{NAMESPACE}:ci.runner = "github-hosted": GitHub-hosted runners have no fixed '
            "addresses, so they cannot reach an API endpoint that is "
            + (
                f"limited to {', '.join(map(str, c.public_access_cidrs))}"
                if c.endpoint_public_access
                else "private (cluster.endpointPublicAccess false)"
            )
            + "; use runner codebuild (a runner in the VPC)"
        )
    return problems


def _bucket(cfg: PlatformConfig) -> list[str]:
    problem = bucket_name_problem(cfg.model_bucket)
    return [f"stack name {json.dumps(cfg.stack)}: {problem}"] if problem else []


def _models(cfg: PlatformConfig) -> list[str]:
    """Each model against its GPU pool, the cluster name and the serving settings."""
    problems: list[str] = []
    pools = {p.name: p for p in cfg.gpu_pools}
    for i, model in enumerate(cfg.models):
        at = f"{NAMESPACE}:models[{i}]"
        pool = pools.get(model.gpu_pool)
        if pool is None:
            problems.append(
                f"{at}.gpuPool = {json.dumps(model.gpu_pool)}: no such GPU pool; "
                f"defined: {', '.join(pools)}"
            )
            continue
        types_ = allowed_instance_types(pool.instance_families, pool.instance_sizes)
        most = max((t.gpus for t in types_), default=0)
        if types_ and model.tensor_parallel_size > most:
            problems.append(
                f"{at}.tensorParallelSize = {model.tensor_parallel_size}: pool "
                f"{pool.name} offers at most {most} GPUs per instance"
            )
            continue
        role = model_role_name(cfg.cluster.name, model.name)
        if len(role) > IAM_ROLE_NAME_MAX:
            problems.append(
                f"{at}.name = {json.dumps(model.name)}: its IAM role {role} would have "
                f"{len(role)} characters; IAM allows {IAM_ROLE_NAME_MAX} (shorten the model "
                "or cluster name)"
            )
        buffer = cfg.serving.streamer_buffer_gib
        need = required_memory_gib(model.tensor_parallel_size, buffer)
        if model.resources is not None and gib(model.resources.memory) < need:
            problems.append(
                f"{at}.resources.memory = {json.dumps(model.resources.memory)}: the server "
                f"needs {need}Gi while loading (streamer buffer {buffer}GiB x "
                f"{model.tensor_parallel_size} GPU(s) plus vLLM's processes and /dev/shm); "
                "raise it or lower serving.streamerBufferGiB"
            )
        too_big = check_fit(model.name, model.shape, types_)
        if too_big is not None:
            problems.append(f"{at}: {too_big}")
    return problems


def _budget_targets(cfg: PlatformConfig) -> list[str]:
    models = [m.name for m in cfg.models]
    return [
        f"{NAMESPACE}:cost.budgets[{i}].target = {json.dumps(b.target)}: no such model; "
        f"defined: {', '.join(models)}"
        for i, b in enumerate(cfg.cost.budgets)
        if b.scope == "model" and b.target not in models
    ]


def _gpu_operator(cfg: PlatformConfig) -> list[str]:
    replicas = cfg.gpu_operator.time_slicing_replicas
    if cfg.node_class.ami_family != "bottlerocket" or not replicas:
        return []
    return [
        f"{NAMESPACE}:gpuOperator.timeSlicingReplicas = {replicas}: needs the GPU operator's "
        "device plugin, which Bottlerocket replaces with its own (set time-slicing in "
        "Bottlerocket settings, or use amiFamily al2023)"
    ]


def _gpu_memory_alert(cfg: PlatformConfig) -> list[str]:
    # vLLM reserves gpuMemoryUtilization of every GPU at start-up: a lower threshold
    # would fire for every healthy replica.
    ratio = cfg.observability.thresholds.gpu_memory_ratio
    reserved = [m for m in cfg.enabled_models if m.gpu_memory_utilization >= ratio]
    if not reserved:
        return []
    return [
        f"{NAMESPACE}:observability.thresholds.gpuMemoryRatio = {ratio}: must be above the "
        "gpuMemoryUtilization vLLM reserves ("
        + ", ".join(f"{m.name}: {m.gpu_memory_utilization}" for m in reserved)
        + ")"
    ]


def _gateway(cfg: PlatformConfig) -> list[str]:
    """Gateway routes name enabled models; its namespaces are its own."""
    at = f"{NAMESPACE}:gateway"
    models = {m.name: m for m in cfg.models}
    enabled = sorted(m.name for m in cfg.enabled_models)

    def unknown(path: str, name: str) -> list[str]:
        if name in models and models[name].enabled:
            return []
        why = "is disabled" if name in models else "is not in models"
        return [
            f"{path} = {json.dumps(name)}: model {name} {why}; routes and fallbacks name "
            f"enabled models ({', '.join(enabled) or 'none'})"
        ]

    problems: list[str] = []
    for i, route in enumerate(cfg.gateway.routes):
        problems += unknown(f"{at}.routes[{i}].model", route.model)
        for j, fallback in enumerate(route.fallbacks):
            problems += unknown(f"{at}.routes[{i}].fallbacks[{j}]", fallback)
    taken = {cfg.serving.namespace: "serving.namespace"}
    if cfg.gateway.namespace in taken:
        problems.append(
            f"{at}.namespace = {json.dumps(cfg.gateway.namespace)}: the model servers' "
            "namespace (serving.namespace); the gateway needs its own"
        )
    taken[cfg.gateway.namespace] = "gateway.namespace"
    problems += [
        f"{at}.allowedClientNamespaces[{i}] = {json.dumps(ns)}: that is {taken[ns]}; "
        "clients run in namespaces of their own"
        for i, ns in enumerate(cfg.gateway.allowed_client_namespaces)
        if ns in taken
    ]
    return problems
