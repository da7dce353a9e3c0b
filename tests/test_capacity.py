"""Capacity adds up per GPU pool before anything is created (issue 15, point 1).

One case per check, each mutating the small fixture stack and asserting the exact
problem lines; nothing is registered when a check fails.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.instance_types import allocatable, karpenter_memory_gib, kube_reserved_cpu
from infra.stack.capacity import gpu_capacity_warnings, node_daemonsets, replicas
from tests.harness import FIXTURES, SMALL, rejected, run_stack, typed_config
from tools.__main__ import main as cli

NS = "llm-platform"
Config = dict[str, Any]
CFG = typed_config(SMALL)
POOL = CFG.gpu_pools[0]
FIRST, SECOND = CFG.models[0].name, CFG.models[1].name
LIMITS = f"cpuLimit {POOL.cpu_limit}, memoryLimitGiB {POOL.memory_limit_gib}"


def _pool(c: Config) -> dict[str, Any]:
    return c[f"{NS}:gpuPools"][0]


def _models(c: Config, *ranges: dict[str, Any]) -> Config:
    """Set the models' replica ranges, in order (returns the config, for chaining)."""
    for model, replica_range in zip(c[f"{NS}:models"], ranges, strict=True):
        model["replicas"] = replica_range
    return c


ONE = {"min": 1, "max": 1}
ACCEPTED = (
    f"{NS}:models[0].replicas.max = 4: pool {POOL.name} holds at most 3 replicas of "
    f"{FIRST} (one per g5.xlarge) with the other models at their minimum (gpuLimit "
    f"{POOL.gpu_limit}, {LIMITS}); accepted by replicas.allowUnschedulableMax"
)
SYSTEM = CFG.cluster.system_node_group


def _system(c: Config) -> dict[str, Any]:
    return c[f"{NS}:cluster"]["systemNodeGroup"]


# (case id, mutation of the fixture stack's config, the exact problem lines)
CASES: list[tuple[str, Callable[[Config], object], list[str]]] = [
    (
        "tensor parallelism above the pool's GPU limit",
        lambda c: (_pool(c).update(gpuLimit=2), c[f"{NS}:models"][0].update(tensorParallelSize=4)),
        [
            f"{NS}:models[0].tensorParallelSize = 4: one replica needs 4 GPUs, more than "
            f"gpuPools[0].gpuLimit (2) of pool {POOL.name}"
        ],
    ),
    (
        "replica requests no allowed instance can hold",
        lambda c: c[f"{NS}:models"][0].update(resources={"cpu": "60", "memory": "12Gi"}),
        [
            f"{NS}:models[0]: one replica requests 60 vCPUs, 12 GiB and 1 GPU(s); no instance "
            f"type of pool {POOL.name} holds it (largest: g6.12xlarge with 47.46 vCPUs and "
            "174.3 GiB for pods after kubelet and DaemonSet reservations); lower "
            "models[].resources or allow larger sizes"
        ],
    ),
    (
        "pool limits below the smallest allowed instance",
        lambda c: _pool(c).update(cpuLimit=2),
        [
            f"{NS}:gpuPools[0]: gpuLimit {POOL.gpu_limit}, cpuLimit 2 and memoryLimitGiB "
            f"{POOL.memory_limit_gib} hold no allowed instance type, so Karpenter never "
            "launches a node (smallest: g5.xlarge with 1 GPUs, 4 vCPUs, 14.8 GiB as Karpenter "
            "counts it); raise the limits or allow a smaller size"
        ],
    ),
    (
        "minimum replicas plus the rollout surge above the GPU limit",
        lambda c: (_pool(c).update(gpuLimit=2), _models(c, ONE, ONE)),
        [
            f"{NS}:gpuPools[0].gpuLimit = 2: the pool's models need 3 GPUs in whole instances "
            f"at their minimum replicas plus the rollout surge ({FIRST} 1 x g5.xlarge, "
            f"{SECOND} 1 x g5.xlarge, rollout surge 1 x g5.xlarge ({FIRST})); raise gpuLimit "
            "or lower replicas.min"
        ],
    ),
    (
        "minimum replicas plus the rollout surge above the memory limit",
        lambda c: (_pool(c).update(memoryLimitGiB=40), _models(c, ONE, ONE)),
        [
            f"{NS}:gpuPools[0].memoryLimitGiB = 40: the pool's models need 45 GiB in whole "
            f"instances at their minimum replicas plus the rollout surge ({FIRST} 1 x "
            f"g5.xlarge, {SECOND} 1 x g5.xlarge, rollout surge 1 x g5.xlarge ({FIRST})); "
            "raise memoryLimitGiB or lower replicas.min"
        ],
    ),
    (
        "a tensor-parallel replica spends a whole multi-GPU instance",
        lambda c: (
            _models(c, ONE, ONE),
            c[f"{NS}:models"][0].update(tensorParallelSize=2),
            _pool(c).update(cpuLimit=128, memoryLimitGiB=512),
        ),
        [
            f"{NS}:gpuPools[0].gpuLimit = 4: the pool's models need 9 GPUs in whole instances "
            f"at their minimum replicas plus the rollout surge ({FIRST} 1 x g5.12xlarge, "
            f"{SECOND} 1 x g5.xlarge, rollout surge 1 x g5.12xlarge ({FIRST})); raise gpuLimit "
            "or lower replicas.min"
        ],
    ),
    (
        "maximum replicas the pool can never hold",
        lambda c: _models(c, {"min": 1, "max": 4}, ONE),
        [
            f"{NS}:models[0].replicas.max = 4: pool {POOL.name} holds at most 3 replicas of "
            f"{FIRST} (one per g5.xlarge) with the other models at their minimum (gpuLimit "
            f"{POOL.gpu_limit}, {LIMITS}); lower it to 3, raise the pool's limits, or set "
            "replicas.allowUnschedulableMax: true"
        ],
    ),
    (
        "system node group too small for the controllers pinned to it",
        lambda c: _system(c).update(instanceTypes=["m7i.large"]),
        [
            f"{NS}:cluster.systemNodeGroup.minSize = {SYSTEM.min_size}: the controllers "
            "pinned to the system nodes request 6.35 vCPUs and 12.1 GiB (karpenter 2 x 1 "
            "vCPU/1 GiB, prometheus 1 x 0.5 vCPU/2 GiB, alertmanager 1 x 0.05 vCPU/0.12 GiB, "
            "grafana 1 x 0.1 vCPU/0.25 GiB, gateway 2 x 1 vCPU/2 GiB, kubecost-model 1 x 0.5 "
            "vCPU/2 GiB, "
            "kubecost-frontend 1 x 0.05 vCPU/0.12 GiB, kubecost-forecasting 1 x 0.2 vCPU/0.29 "
            "GiB, keda 3 x 0.1 vCPU/0.098 GiB, gpu-operator 1 x 0.2 vCPU/0.098 GiB, nfd-master "
            "1 x 0.1 vCPU/0.12 GiB, nfd-gc 1 x 0.01 vCPU/0.12 GiB, coredns 2 x 0.1 vCPU/0.068 "
            "GiB, ebs-csi-controller 2 x 0.07 vCPU/0.27 GiB); one m7i.large node offers 1.57 "
            "vCPUs and 6.3 GiB to them after kubelet and DaemonSet reservations; raise minSize "
            "or use a larger type"
        ],
    ),
    (
        "one system node for two Karpenter replicas",
        lambda c: _system(c).update(instanceTypes=["m7i.4xlarge"], minSize=1, desiredSize=1),
        [
            f"{NS}:cluster.systemNodeGroup.minSize = 1: Karpenter's 2 replicas must run on "
            "different system nodes (the chart's required pod anti-affinity); at least 2"
        ],
    ),
    (
        "a controller larger than a system node",
        lambda c: c[f"{NS}:observability"].update(
            prometheusResources={"cpu": "4", "memory": "8Gi"}
        ),
        [
            f'{NS}:cluster.systemNodeGroup.instanceTypes = ["{SYSTEM.instance_types[0]}"]: one '
            "prometheus replica requests 4 vCPUs and 8 GiB; one m7i.xlarge node offers 3.56 "
            "vCPUs and 13.4 GiB to them after kubelet and DaemonSet reservations"
        ],
    ),
    (
        "CPU pool limits below its smallest instance",
        lambda c: c[f"{NS}:cpuPool"].update(memoryLimitGiB=1),
        [
            f"{NS}:cpuPool: cpuLimit {CFG.cpu_pool.cpu_limit} and memoryLimitGiB 1 hold none "
            "of its instance types, so Karpenter never launches a node (smallest with room "
            "beside the DaemonSets: c7a.medium with 1 vCPUs, 1.9 GiB as Karpenter counts it); "
            "raise them"
        ],
    ),
]


@pytest.mark.parametrize(
    ("mutate", "problems"), [(m, p) for _, m, p in CASES], ids=[i for i, _, _ in CASES]
)
def test_capacity_checks(mutate: Callable[[Config], object], problems: list[str]) -> None:
    assert rejected(SMALL, mutate) == problems


def test_an_unreachable_maximum_may_be_accepted_explicitly_and_is_warned_about() -> None:
    run = run_stack(
        SMALL,
        lambda c: _models(c, {"min": 1, "max": 4, "allowUnschedulableMax": True}, ONE),
    )
    assert run.error is None
    # The fixture's image is not pinned by digest: that is the plan's other warning.
    assert [w for w in run.warnings if "serving.vllmImage" not in w] == [ACCEPTED]


def test_the_plan_prints_an_accepted_unreachable_maximum_as_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load((FIXTURES / f"Pulumi.{SMALL}.yaml").read_text())
    _models(document["config"], {"min": 1, "max": 4, "allowUnschedulableMax": True}, ONE)
    (tmp_path / f"Pulumi.{SMALL}.yaml").write_text(yaml.safe_dump(document))
    code = cli(["plan", SMALL, "--stack-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert f"warning: {ACCEPTED}" in out.splitlines()


def test_the_fixture_stacks_have_no_capacity_warning(fixture_stack: str) -> None:
    assert gpu_capacity_warnings(typed_config(fixture_stack)) == []


def test_a_default_replica_lands_on_the_smallest_single_gpu_type() -> None:
    found = replicas(CFG, POOL)
    assert [(r.model.name, r.node and r.node.name) for r in found] == [
        (FIRST, "g5.xlarge"),
        (SECOND, "g5.xlarge"),
    ]


def test_node_allocatable_follows_karpenter() -> None:
    # pkg/providers/instancetype/types.go: 6 % of the first core, 1 % of the second,
    # 0.5 % of cores 3-4, 0.25 % above; memory minus 7.5 %, 11 MiB x pods + 255 MiB, 100 Mi.
    assert kube_reserved_cpu(1) == pytest.approx(0.06)
    assert kube_reserved_cpu(4) == pytest.approx(0.08)
    assert kube_reserved_cpu(48) == pytest.approx(0.19)
    assert karpenter_memory_gib(16) == pytest.approx(14.8)
    cpu, memory = allocatable(4, 16)
    assert (cpu, memory) == (pytest.approx(3.92), pytest.approx(14.8 - (11 * 58 + 355) / 1024))
    assert node_daemonsets() == (pytest.approx(0.355), pytest.approx(0.4375))
