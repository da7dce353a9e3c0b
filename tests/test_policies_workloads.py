"""GPU workload rules on Deployments: GPU requests, taint toleration, probes, shm,
zero-downtime rollouts."""

from __future__ import annotations

import pytest
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE

from tests.policy_cases import Mutation, Props, changed, check

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HEALTH = {"httpGet": {"path": "/health", "port": 8000}}

# A vLLM Deployment with tensor parallelism 2, as the serving layer renders it.
VLLM: Props = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "m1", "namespace": "inference"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "m1"}},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": {
            "metadata": {"labels": {"app": "m1"}},
            "spec": {
                "containers": [
                    {
                        "name": "vllm",
                        "image": "vllm/vllm-openai:v0.11.2",
                        "resources": {
                            "requests": {"cpu": "4", "nvidia.com/gpu": 2},
                            "limits": {"nvidia.com/gpu": 2},
                        },
                        "startupProbe": {**HEALTH, "failureThreshold": 120},
                        "readinessProbe": {**HEALTH, "periodSeconds": 5},
                        "livenessProbe": {**HEALTH, "failureThreshold": 6},
                        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
                    }
                ],
                "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
                "tolerations": [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ],
            },
        },
    },
}

RULE_NAMES = (
    "gpu-container-requests-equal-limits",
    "gpu-pod-tolerates-gpu-taint",
    "gpu-container-has-probes",
    "gpu-pod-has-shm-for-tensor-parallel",
    "gpu-deployment-max-unavailable-zero",
)


def _container(p: Props) -> dict[str, object]:
    return p["spec"]["template"]["spec"]["containers"][0]


def _resources(p: Props, kind: str) -> dict[str, object]:
    return p["spec"]["template"]["spec"]["containers"][0]["resources"][kind]


@pytest.mark.parametrize("name", RULE_NAMES)
def test_the_rendered_vllm_deployment_passes(name: str) -> None:
    assert check(name, DEPLOYMENT, VLLM) == []


def _cpu_only(p: Props) -> None:
    _container(p)["resources"] = {"requests": {"cpu": "1"}}


@pytest.mark.parametrize("name", RULE_NAMES)
def test_deployments_without_gpus_are_not_checked(name: str) -> None:
    assert check(name, DEPLOYMENT, changed(VLLM, _cpu_only)) is None


C = "spec.template.spec.containers[0] (vllm)"

# (case, rule, mutation, exact messages)
VIOLATIONS: list[tuple[str, str, Mutation, list[str]]] = [
    (
        "GPU request below the limit",
        "gpu-container-requests-equal-limits",
        lambda p: _resources(p, "requests").update({"nvidia.com/gpu": 1}),
        [
            f'{C}: resources.requests["nvidia.com/gpu"] = 1 differs from '
            'resources.limits["nvidia.com/gpu"] = 2'
        ],
    ),
    (
        "GPU request missing",
        "gpu-container-requests-equal-limits",
        lambda p: _resources(p, "requests").pop("nvidia.com/gpu"),
        [f'{C}: resources.requests["nvidia.com/gpu"] is not set'],
    ),
    (
        "no tolerations",
        "gpu-pod-tolerates-gpu-taint",
        lambda p: p["spec"]["template"]["spec"].pop("tolerations"),
        [
            "spec.template.spec.tolerations do not tolerate the GPU node taint "
            "nvidia.com/gpu=true:NoSchedule"
        ],
    ),
    (
        "toleration for another value",
        "gpu-pod-tolerates-gpu-taint",
        lambda p: p["spec"]["template"]["spec"]["tolerations"][0].update(
            operator="Equal", value="false"
        ),
        [
            "spec.template.spec.tolerations do not tolerate the GPU node taint "
            "nvidia.com/gpu=true:NoSchedule"
        ],
    ),
    (
        "no startup probe",
        "gpu-container-has-probes",
        lambda p: _container(p).pop("startupProbe"),
        [f"{C}: no startupProbe"],
    ),
    (
        "neither readiness nor liveness probe",
        "gpu-container-has-probes",
        lambda p: (_container(p).pop("readinessProbe"), _container(p).pop("livenessProbe")),
        [f"{C}: no readinessProbe, livenessProbe"],
    ),
    (
        "shm volume on disk",
        "gpu-pod-has-shm-for-tensor-parallel",
        lambda p: p["spec"]["template"]["spec"]["volumes"][0]["emptyDir"].pop("medium"),
        [
            f"{C}: uses 2 GPUs (tensor parallel) but mounts no memory-backed emptyDir at "
            "/dev/shm; NCCL needs more than the 64 MiB default"
        ],
    ),
    (
        "shm not mounted",
        "gpu-pod-has-shm-for-tensor-parallel",
        lambda p: _container(p).pop("volumeMounts"),
        [
            f"{C}: uses 2 GPUs (tensor parallel) but mounts no memory-backed emptyDir at "
            "/dev/shm; NCCL needs more than the 64 MiB default"
        ],
    ),
    (
        "maxUnavailable 1",
        "gpu-deployment-max-unavailable-zero",
        lambda p: p["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1),
        [
            "spec.strategy.rollingUpdate.maxUnavailable = 1: must be 0 so a replica stops only "
            "once its replacement is ready"
        ],
    ),
    (
        "maxUnavailable left to the 25% default",
        "gpu-deployment-max-unavailable-zero",
        lambda p: p["spec"].pop("strategy"),
        [
            "spec.strategy.rollingUpdate.maxUnavailable is not set (Kubernetes defaults to 25%): "
            "set 0 so a replica stops only once its replacement is ready"
        ],
    ),
    (
        "Recreate strategy",
        "gpu-deployment-max-unavailable-zero",
        lambda p: p["spec"].update(strategy={"type": "Recreate"}),
        ["spec.strategy.type = Recreate: stops every replica before starting new ones"],
    ),
    (
        "pod template unknown at preview",
        "gpu-container-has-probes",
        lambda p: p["spec"].update(template=UNKNOWN_OBJECT_VALUE),
        ["spec.template cannot be verified at preview (unknown until apply)"],
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "messages"),
    [(n, m, msg) for _, n, m, msg in VIOLATIONS],
    ids=[c for c, *_ in VIOLATIONS],
)
def test_one_changed_field_violates(name: str, mutate: Mutation, messages: list[str]) -> None:
    assert check(name, DEPLOYMENT, changed(VLLM, mutate)) == messages


def _single_gpu(p: Props) -> None:
    for kind in ("requests", "limits"):
        _resources(p, kind).update({"nvidia.com/gpu": 1})
    _container(p).pop("volumeMounts")


def test_engine_doubles_count_as_whole_gpus() -> None:
    def doubles(p: Props) -> None:
        _resources(p, "requests").update({"nvidia.com/gpu": 2.0})
        p["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = 0.0

    deployment = changed(VLLM, doubles)
    for name in RULE_NAMES:
        assert check(name, DEPLOYMENT, deployment) == [], name


def test_a_single_gpu_container_needs_no_shm() -> None:
    assert (
        check("gpu-pod-has-shm-for-tensor-parallel", DEPLOYMENT, changed(VLLM, _single_gpu)) == []
    )


def test_an_equal_toleration_with_the_taint_value_passes() -> None:
    deployment = changed(
        VLLM,
        lambda p: p["spec"]["template"]["spec"].update(
            tolerations=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
        ),
    )
    assert check("gpu-pod-tolerates-gpu-taint", DEPLOYMENT, deployment) == []
