"""Warm GPU capacity: placeholders that preempt cleanly, sized for the pool's largest
model, costed in the plan, and rejected when they leave the models no room."""

from __future__ import annotations

import copy
from typing import Any

from infra.core.conventions import GPU_RESOURCE
from infra.core.gpu_catalog import allowed_instance_types
from infra.core.pricing import HOURS_PER_MONTH, on_demand_price
from infra.core.schema import ConfigError
from infra.stack.registry import serving_image
from infra.stack.warm_capacity import warm_slot_spend, warm_slots
from policies.workloads import check_shm
from tests.harness import FIXTURE_STACKS, find_all, fixture_where, run_stack, typed_config
from tests.policy_cases import check
from tools.cost_summary import cost_lines
from tools.mock_runtime import Recorded
from workloads.serving.cold_start import instance_types_for
from workloads.serving.vllm import container_resources, pool_affinity
from workloads.serving.warm_capacity import (
    PRIORITY_CLASS,
    WarmSlots,
    render_placeholder,
    render_priority_class,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
WARM = fixture_where(lambda c: any(p.warm_slots for p in c.gpu_pools), "a pool with warm slots")
COLD = fixture_where(lambda c: not any(p.warm_slots for p in c.gpu_pools), "no warm slots")


def _one_gpu_placeholders(count: int) -> dict[str, Any]:
    """The placeholder Deployment of ``count`` one-GPU slots of pool ``gpu``."""
    gpu = {GPU_RESOURCE: "1"}
    slots = WarmSlots(
        pool="gpu", count=count, resources={"requests": gpu, "limits": gpu}, sized_for="m"
    )
    return render_placeholder(slots, "inference", "repo/vllm:v1")


def test_placeholders_are_preempted_by_every_pod_and_preempt_nobody() -> None:
    priority = render_priority_class()
    assert priority["value"] < 0 and priority["preemptionPolicy"] == "Never"
    assert priority["globalDefault"] is False
    deployment = _one_gpu_placeholders(2)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["priorityClassName"] == PRIORITY_CLASS
    assert pod["terminationGracePeriodSeconds"] == 0
    (container,) = pod["containers"]
    # The serving image, so a replica that takes the node finds it pulled.
    assert (container["image"], container["command"]) == ("repo/vllm:v1", ["sleep", "infinity"])
    assert container["resources"]["limits"] == {GPU_RESOURCE: "1"}
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["gpu"]


def test_fixture_slots_are_sized_for_the_pools_largest_model(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    placeholders = {
        d.inputs["metadata"]["name"]: d.inputs
        for d in find_all(fixture_resources, DEPLOYMENT)
        if d.name.startswith("warm-capacity-")
    }
    expected = {f"warm-{s.pool}": s for s in warm_slots(cfg)}
    assert sorted(placeholders) == sorted(expected)
    for name, slots in expected.items():
        pool = next(p for p in cfg.gpu_pools if p.name == slots.pool)
        models = [m for m in cfg.enabled_models if m.gpu_pool == pool.name]
        largest = max(models, key=lambda m: (m.tensor_parallel_size, m.parameters_billions))
        (container,) = placeholders[name]["spec"]["template"]["spec"]["containers"]
        assert container["resources"] == container_resources(largest, cfg.serving)
        assert placeholders[name]["spec"]["replicas"] == pool.warm_slots
        assert container["image"] == serving_image(cfg)  # on the node for the replica


def test_no_warm_slots_no_placeholders() -> None:
    assert not warm_slots(typed_config(COLD))


def test_slots_cost_their_cheapest_node_in_the_plans_cost_table() -> None:
    cfg = typed_config(WARM)
    (spend,) = warm_slot_spend(cfg)
    pool = next(p for p in cfg.gpu_pools if p.name == spend.pool)
    model = next(m for m in cfg.enabled_models if m.gpu_pool == pool.name)
    types = instance_types_for(
        model.shape, allowed_instance_types(pool.instance_families, pool.instance_sizes)
    )
    cheapest = min(on_demand_price(t.name, cfg.region) for t in types)
    assert spend.worst_case_monthly_usd == round(pool.warm_slots * cheapest * HOURS_PER_MONTH, 2)
    assert spend.expected_monthly_usd < spend.worst_case_monthly_usd  # the pool allows spot
    text = "\n".join(cost_lines(cfg))
    assert f"warm slots {pool.name}: {pool.warm_slots} x {spend.instance_type}" in text
    assert f"{spend.worst_case_monthly_usd:,.2f}" in text


def _set_slots(index: int, slots: int) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        config["llm-platform:gpuPools"][index]["warmSlots"] = slots

    return mutate


def test_slots_that_crowd_out_the_models_are_rejected() -> None:
    """Counted with the pool's capacity (infra/stack/capacity.py), a node per slot."""
    cfg = typed_config(FIXTURE_STACKS[0])
    pool = cfg.gpu_pools[0]
    run = run_stack(FIXTURE_STACKS[0], _set_slots(0, 16))
    assert isinstance(run.error, ConfigError)
    (problem,) = run.error.problems
    assert problem.startswith(f"llm-platform:gpuPools[0].gpuLimit = {pool.gpu_limit}: ")
    assert "minimum replicas plus the rollout surge plus the warm slots" in problem
    assert ", warm slots 16 x " in problem
    assert problem.endswith("raise gpuLimit or lower replicas.min or warmSlots")
    assert not run.resources


def test_a_multi_gpu_placeholder_passes_the_pack_and_keeps_the_models_types() -> None:
    """The pack's shm rule holds for every GPU container; a slot is held to the instance
    types its model is (the replica's node affinity), so it keeps a node the model fits."""
    resources = {"requests": {GPU_RESOURCE: "2"}, "limits": {GPU_RESOURCE: "2"}}
    slots = WarmSlots("p", 1, resources, sized_for="m", instance_types=("g6e.12xlarge",))
    placeholder = render_placeholder(slots, "inference", "image:v1")
    assert check_shm(DEPLOYMENT, placeholder, {}) in (None, [])
    pod = placeholder["spec"]["template"]["spec"]
    assert pod["affinity"] == pool_affinity("p", ("g6e.12xlarge",))


def test_a_single_warm_slot_is_no_model_below_the_replica_minimum() -> None:
    """The pack's model-min-replicas counts serving Deployments; a placeholder of one
    slot is capacity, not a model with one replica (prod's minimum is 2)."""
    deployment = _one_gpu_placeholders(1)
    settings = {"minReplicas": 2}
    assert check("model-min-replicas", DEPLOYMENT, deployment, settings) is None
    # The same pods without the placeholder's priority class would be a model.
    model = copy.deepcopy(deployment)
    del model["spec"]["template"]["spec"]["priorityClassName"]
    assert check("model-min-replicas", DEPLOYMENT, model, settings) == [
        "spec.replicas = 1: below the environment minimum of 2"
    ]
