"""GPU workload rules: a Deployment whose containers use GPUs requests them exactly,
lands on GPU nodes, is probed, has shared memory for tensor parallelism and never
drops a serving replica during a rollout.

A container "uses GPUs" when its ``resources.requests`` or ``resources.limits`` name
``nvidia.com/gpu``. Deployments without such a container are not checked.
"""

from __future__ import annotations

from typing import Any

from infra.core.conventions import GPU_RESOURCE, GPU_TAINT
from policies.core import Props, ResourceCheck, ResourceRule, Settings, at, items, whole_number

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
POD = ("spec", "template", "spec")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
SHM_PATH = "/dev/shm"


def gpu_containers(props: Props) -> list[tuple[str, dict[str, Any]]]:
    """``(label, container)`` of each container that requests or limits GPUs."""
    found = []
    for i, c in enumerate(items(props, *POD, "containers")):
        if any(
            at(c, "resources", kind, GPU_RESOURCE) is not None for kind in ("requests", "limits")
        ):
            found.append((f"spec.template.spec.containers[{i}] ({at(c, 'name')})", c))
    return found


def gpus_of(container: dict[str, Any]) -> int:
    """GPUs a container gets: its limit (requests default to it for extended resources)."""
    value = at(container, "resources", "limits", GPU_RESOURCE)
    if value is None:
        value = at(container, "resources", "requests", GPU_RESOURCE)
    return whole_number(value) or 0


def _count(value: Any) -> Any:
    """A GPU quantity as an int when it is a whole number (``2``, ``2.0``, ``"2"``)."""
    number = whole_number(value)
    return value if number is None else number


def check_requests_equal_limits(_t: str, props: Props, _s: Settings) -> list[str] | None:
    containers = gpu_containers(props)
    if not containers:
        return None
    problems = []
    for label, c in containers:
        request = at(c, "resources", "requests", GPU_RESOURCE)
        limit = at(c, "resources", "limits", GPU_RESOURCE)
        for kind, value in (("requests", request), ("limits", limit)):
            if value is None:
                problems.append(f'{label}: resources.{kind}["{GPU_RESOURCE}"] is not set')
        if request is not None and limit is not None and _count(request) != _count(limit):
            problems.append(
                f'{label}: resources.requests["{GPU_RESOURCE}"] = {_count(request)} differs from '
                f'resources.limits["{GPU_RESOURCE}"] = {_count(limit)}'
            )
    return problems


def _tolerates_gpu_taint(toleration: Any) -> bool:
    """Kubernetes toleration matching: same key, Exists or Equal with the same value, and
    the same effect (an empty effect tolerates every effect)."""
    operator = at(toleration, "operator") or "Equal"
    return (
        at(toleration, "key") == GPU_TAINT["key"]
        and (operator == "Exists" or at(toleration, "value") == GPU_TAINT["value"])
        and at(toleration, "effect") in (None, "", GPU_TAINT["effect"])
    )


def check_tolerates_gpu_taint(_t: str, props: Props, _s: Settings) -> list[str] | None:
    if not gpu_containers(props):
        return None
    if any(_tolerates_gpu_taint(t) for t in items(props, *POD, "tolerations")):
        return []
    taint = f"{GPU_TAINT['key']}={GPU_TAINT['value']}:{GPU_TAINT['effect']}"
    return [f"spec.template.spec.tolerations do not tolerate the GPU node taint {taint}"]


def check_probes(_t: str, props: Props, _s: Settings) -> list[str] | None:
    containers = gpu_containers(props)
    if not containers:
        return None
    problems = []
    for label, c in containers:
        missing = [p for p in PROBES if at(c, p) is None]
        if missing:
            problems.append(f"{label}: no {', '.join(missing)}")
    return problems


def check_shm(_t: str, props: Props, _s: Settings) -> list[str] | None:
    containers = gpu_containers(props)
    if not containers:
        return None
    memory_volumes = {
        at(v, "name")
        for v in items(props, *POD, "volumes")
        if at(v, "emptyDir", "medium") == "Memory"
    }
    problems = []
    for label, c in containers:
        gpus = gpus_of(c)
        if gpus <= 1:
            continue
        mounts = items(c, "volumeMounts")
        if not any(
            at(m, "mountPath") == SHM_PATH and at(m, "name") in memory_volumes for m in mounts
        ):
            problems.append(
                f"{label}: uses {gpus} GPUs (tensor parallel) but mounts no memory-backed "
                f"emptyDir at {SHM_PATH}; NCCL needs more than the 64 MiB default"
            )
    return problems


def check_max_unavailable(_t: str, props: Props, _s: Settings) -> list[str] | None:
    if not gpu_containers(props):
        return None
    strategy = at(props, "spec", "strategy", "type") or "RollingUpdate"
    if strategy != "RollingUpdate":
        return [f"spec.strategy.type = {strategy}: stops every replica before starting new ones"]
    value = at(props, "spec", "strategy", "rollingUpdate", "maxUnavailable")
    if value is None:
        return [
            "spec.strategy.rollingUpdate.maxUnavailable is not set (Kubernetes defaults to 25%): "
            "set 0 so a replica stops only once its replacement is ready"
        ]
    if whole_number(value) != 0 and value != "0%":
        return [
            f"spec.strategy.rollingUpdate.maxUnavailable = {value!r}: must be 0 so a replica "
            "stops only once its replacement is ready"
        ]
    return []


def _rule(name: str, description: str, check: ResourceCheck) -> ResourceRule:
    return ResourceRule(
        name=name,
        description=description,
        default_level="mandatory",
        types=frozenset({DEPLOYMENT}),
        check=check,
    )


RULES = (
    _rule(
        "gpu-container-requests-equal-limits",
        "GPU containers request exactly the GPUs they limit.",
        check_requests_equal_limits,
    ),
    _rule(
        "gpu-pod-tolerates-gpu-taint",
        "Pods with GPU containers tolerate the nvidia.com/gpu NoSchedule taint of GPU nodes.",
        check_tolerates_gpu_taint,
    ),
    _rule(
        "gpu-container-has-probes",
        "GPU containers have startup, readiness and liveness probes.",
        check_probes,
    ),
    _rule(
        "gpu-pod-has-shm-for-tensor-parallel",
        "GPU containers using more than one GPU mount a memory-backed emptyDir at /dev/shm.",
        check_shm,
    ),
    _rule(
        "gpu-deployment-max-unavailable-zero",
        "Deployments of GPU containers roll out with maxUnavailable 0.",
        check_max_unavailable,
    ),
)
