"""Cold-start budget: the phase table, the budget arithmetic, what derives from it, the
goal for every committed model, and the generated README table and figures document."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from infra.core.gpu_catalog import GPU_INSTANCE_TYPES
from infra.core.instance_network import NETWORK_BANDWIDTH, bandwidth
from infra.stack.cold_start import model_budgets, model_instance_types, model_startup, node_start
from infra.stack.files import stack_names, typed_stack_config
from tests.harness import FIXTURE_STACKS, model_8b, typed_config
from tools import cold_start_summary
from workloads.serving.cold_start import (
    PHASE_FIGURES,
    STARTUP_MARGIN,
    STARTUP_PERIOD_SECONDS,
    STREAMER_MAX_CONCURRENCY,
    STREAMER_MAX_GIB_PER_SECOND,
    STREAMER_MIN_CONCURRENCY,
    STREAMER_STREAM_GIB_PER_SECOND,
    NodeStart,
    cold_start_budget,
    startup_settings,
    streamer_concurrency,
)
from workloads.serving.config import ModelConfig
from workloads.serving.gpu_memory import weights_gib_per_gpu
from workloads.serving.vllm import drain_timings

GOAL_TYPES = ("g6e.xlarge", "g6.xlarge")
GOAL_P50, GOAL_WORST, GOAL_WARM_P50 = 180, 420, 90


def _model(**overrides: Any) -> ModelConfig:
    return model_8b(**overrides)


AL2023 = NodeStart(ami_family="al2023")


def _budget(model: ModelConfig, instance: str, **kwargs: Any) -> Any:
    defaults: dict[str, Any] = {"node": AL2023, "image_gib": 10.0, "concurrency": 24}
    return cold_start_budget(
        model.name, model.shape, GPU_INSTANCE_TYPES[instance], **(defaults | kwargs)
    )


def test_every_figure_has_a_source_and_an_ordered_range() -> None:
    for key, figure in PHASE_FIGURES.items():
        assert figure.source and figure.basis, key
        assert figure.p50_seconds >= 0 and figure.worst_seconds >= 0, key
        if figure.worst_seconds:  # derived phases (weights, probes, snapshot) carry 0s
            assert figure.p50_seconds <= figure.worst_seconds, key


def test_every_catalog_type_has_a_bandwidth() -> None:
    assert set(NETWORK_BANDWIDTH) == set(GPU_INSTANCE_TYPES)
    for name, bw in NETWORK_BANDWIDTH.items():
        assert 0 < bw.baseline_gbps <= bw.burst_gbps, name
    with pytest.raises(KeyError, match=r"no network bandwidth for x1\.large"):
        bandwidth("x1.large")


def test_budget_is_the_sum_of_its_phases_with_device_plugin_and_image_overlapping() -> None:
    budget = _budget(_model(), "g6.xlarge")
    keys = [p.key for p in budget.phases]
    assert keys[:2] == ["schedule", "node"]
    assert budget.p50_seconds == pytest.approx(sum(p.p50_seconds for p in budget.phases))
    assert budget.worst_seconds == pytest.approx(sum(p.worst_seconds for p in budget.phases))
    overlap = budget.before_container[2]
    plugin, image = PHASE_FIGURES["device_plugin_al2023"], PHASE_FIGURES["image_soci_al2023"]
    # The image measured for the blueprint's 10.04 GiB, scaled to 10 GiB.
    scale = 10.0 / (10_778_400_361 / 1024**3)
    assert overlap.p50_seconds == pytest.approx(max(plugin.p50_seconds, image.p50_seconds * scale))
    assert overlap.worst_seconds == max(plugin.worst_seconds, image.worst_seconds * scale)
    # The worst case is a cache miss (first replica of a revision), p50 a cache hit.
    compile_ = next(p for p in budget.container if p.key == "compile_cold")
    assert compile_.p50_seconds == PHASE_FIGURES["compile_cached"].p50_seconds
    assert compile_.worst_seconds == PHASE_FIGURES["compile_cold"].worst_seconds


def test_weights_stream_at_the_instance_bandwidth_burst_at_p50_and_baseline_worst() -> None:
    model = _model()
    gib = weights_gib_per_gpu(model.shape)
    for instance in ("g6.xlarge", "g6e.12xlarge"):
        weights = next(p for p in _budget(model, instance).phases if p.key == "weights")
        bw = bandwidth(instance)
        streamer = min(24 * STREAMER_STREAM_GIB_PER_SECOND, STREAMER_MAX_GIB_PER_SECOND)
        assert weights.p50_seconds == pytest.approx(gib / min(streamer, bw.burst_gib_per_second))
        assert weights.worst_seconds == pytest.approx(
            gib / min(streamer, bw.baseline_gib_per_second)
        )
    slow = next(p for p in _budget(model, "g6.xlarge", concurrency=2).phases if p.key == "weights")
    assert slow.p50_seconds == pytest.approx(gib / (2 * STREAMER_STREAM_GIB_PER_SECOND))


def test_streamer_concurrency_saturates_the_fastest_allowed_instance() -> None:
    types = GPU_INSTANCE_TYPES
    # g6.xlarge bursts to 10 Gbps: 1.16 GiB/s needs 10 streams of 0.124 GiB/s.
    assert streamer_concurrency([types["g6.xlarge"]]) == 10
    assert streamer_concurrency([types["g6.xlarge"], types["g6e.xlarge"]]) == math.ceil(
        bandwidth("g6e.xlarge").burst_gib_per_second / STREAMER_STREAM_GIB_PER_SECOND
    )
    # Past the benchmark's maximum more streams do not help; below its default, use it.
    assert streamer_concurrency([types["p5.48xlarge"]]) <= STREAMER_MAX_CONCURRENCY
    assert streamer_concurrency([types["g4dn.xlarge"]]) >= STREAMER_MIN_CONCURRENCY


def test_snapshot_image_costs_its_volume_initialization_in_the_worst_case() -> None:
    node = NodeStart(
        ami_family="bottlerocket", image_on_snapshot=True, volume_initialization_mib_per_second=200
    )
    budget = _budget(_model(), "g6.xlarge", node=node, image_gib=12.0)
    overlap = budget.before_container[2]
    assert overlap.worst_seconds == pytest.approx(12.0 * 1024 / 200)
    assert budget.p50_seconds < _budget(_model(), "g6.xlarge").p50_seconds


def test_warm_slot_skips_node_device_plugin_and_image() -> None:
    warm = _budget(_model(), "g6.xlarge", warm_slot=True)
    cold = _budget(_model(), "g6.xlarge")
    assert [p.key for p in warm.before_container] == ["preempt_warm_slot", "weights_gate"]
    assert warm.container == cold.container


def test_settings_cover_the_slowest_budget() -> None:
    model = _model(replicas={"min": 1, "max": 3})
    budgets = [_budget(model, t) for t in GOAL_TYPES]
    settings = startup_settings(budgets, max_replicas=3, drain_grace_seconds=90, concurrency=24)
    container = max(b.container_worst_seconds for b in budgets)
    assert settings.startup_window_seconds == STARTUP_PERIOD_SECONDS * math.ceil(
        container * STARTUP_MARGIN / STARTUP_PERIOD_SECONDS
    )
    assert settings.startup_failure_threshold * STARTUP_PERIOD_SECONDS == (
        settings.startup_window_seconds
    )
    # A start that uses its whole startup window, after the worst wait for node and
    # image, is still within the progress deadline.
    before = max(b.before_container_worst_seconds for b in budgets)
    assert settings.progress_deadline_seconds >= before + settings.startup_window_seconds
    assert settings.progress_deadline_seconds >= max(b.worst_seconds for b in budgets)
    # A rollout replaces up to max replicas one at a time, each draining its old one.
    assert settings.rollout_timeout_seconds == 3 * (settings.progress_deadline_seconds + 90)
    assert settings.rollout_timeout == f"{math.ceil(settings.rollout_timeout_seconds / 60)}m"
    assert max(b.p50_seconds for b in budgets) <= settings.scale_up_period_seconds
    assert settings.scale_up_period_seconds % 15 == 0


def test_settings_need_a_budget() -> None:
    with pytest.raises(ValueError, match=r"^no budget: the model fits none"):
        startup_settings([], max_replicas=1, drain_grace_seconds=90, concurrency=8)


def test_startup_window_stays_within_bounds() -> None:
    huge = _model(parametersBillions=400.0, numLayers=120, tensorParallelSize=8)
    budget = _budget(huge, "p5.48xlarge")
    settings = startup_settings([budget], max_replicas=1, drain_grace_seconds=90, concurrency=32)
    assert 300 <= settings.startup_window_seconds <= 3600


def test_stack_settings_derive_from_the_loaded_config() -> None:
    for stack in FIXTURE_STACKS:
        cfg = typed_config(stack)
        for model in cfg.enabled_models:
            budgets = model_budgets(cfg, model)
            assert [b.instance_type for b in budgets] == [
                t.name for t in model_instance_types(cfg, model)
            ]
            assert startup_settings(
                budgets,
                max_replicas=model.replicas.max,
                drain_grace_seconds=drain_timings(cfg.serving.drain_seconds).grace_period_seconds,
                concurrency=streamer_concurrency(model_instance_types(cfg, model)),
            ) == model_startup(cfg, model)


def test_plan_section_lists_every_phase_on_every_instance_type() -> None:
    cfg = typed_config(FIXTURE_STACKS[0])
    lines = cold_start_summary.budget_lines(cfg)
    text = "\n".join(lines)
    for model in cfg.enabled_models:
        budgets = model_budgets(cfg, model)
        header = next(line for line in lines if line.strip().startswith("phase") and all(
            b.instance_type in line for b in budgets))  # fmt: skip
        assert header
        for phase in budgets[0].phases:
            assert phase.title in text
        settings = model_startup(cfg, model)
        assert f"progressDeadlineSeconds {settings.progress_deadline_seconds}" in text


# --- the goal, for every committed model ---------------------------------------------


def _committed_goal_budgets(warm_slot: bool) -> list[Any]:
    budgets = []
    for stack in stack_names():
        cfg = typed_stack_config(stack)
        for model in cfg.enabled_models:
            if model.parameters_billions > 8.1 or model.quantization or model.dtype != "bfloat16":
                continue  # the goal is stated for 8B bf16 (smaller models start faster)
            for name in GOAL_TYPES:
                budgets.append(
                    cold_start_budget(
                        model.name,
                        model.shape,
                        GPU_INSTANCE_TYPES[name],
                        node=node_start(cfg),
                        image_gib=cfg.serving.image_size_gib,
                        concurrency=streamer_concurrency([GPU_INSTANCE_TYPES[name]]),
                        warm_slot=warm_slot,
                    )
                )
    assert budgets, "no committed 8B-or-smaller bf16 model"
    return budgets


@pytest.mark.stacks
def test_goal_p50_of_a_new_replica_on_a_new_node() -> None:
    for budget in _committed_goal_budgets(warm_slot=False):
        assert budget.p50_seconds <= GOAL_P50, (budget.model, budget.instance_type)


@pytest.mark.stacks
def test_goal_p50_with_a_warm_slot() -> None:
    for budget in _committed_goal_budgets(warm_slot=True):
        assert budget.p50_seconds <= GOAL_WARM_P50, (budget.model, budget.instance_type)


@pytest.mark.stacks
@pytest.mark.xfail(
    strict=True,
    reason="not met with the published worst cases (docs/cold-start.md): node 100 s, GPU "
    "operator device plugin 126 s, process start 95 s, compile without cache 130 s and "
    "graph capture 65 s alone exceed 420 s; strict, so a better figure must lift this mark",
)
def test_goal_worst_case_of_a_new_replica_on_a_new_node() -> None:
    for budget in _committed_goal_budgets(warm_slot=False):
        assert budget.worst_seconds <= GOAL_WORST, (budget.model, budget.instance_type)


@pytest.mark.stacks
def test_every_committed_model_has_its_budget_in_the_plan() -> None:
    for stack in stack_names():
        cfg = typed_stack_config(stack)
        text = "\n".join(cold_start_summary.budget_lines(cfg))
        for model in cfg.enabled_models:
            assert f"  {model.name} (" in text, (stack, model.name)
            for budget in model_budgets(cfg, model):
                assert budget.instance_type in text


# --- generated documents ----------------------------------------------------------------


@pytest.mark.stacks
def test_readme_rows_are_what_the_budget_gives() -> None:
    readme = cold_start_summary.README.read_text()
    block = re.search(
        re.escape(cold_start_summary.BEGIN) + r"(.*?)" + re.escape(cold_start_summary.END),
        readme,
        re.S,
    )
    assert block, "README lacks the cold-start block (python -m tools cold-start --write)"
    generated = cold_start_summary.readme_block(stack_names())
    rows = [
        line for line in block.group(1).splitlines() if line.startswith("| ") and "|--" not in line
    ]
    assert len(rows) > 1
    # Every row shown is current (a recipe run that adds a model may leave rows out).
    for row in rows:
        assert row in generated, f"stale README row (python -m tools cold-start --write): {row}"


def test_figures_document_is_current() -> None:
    assert cold_start_summary.FIGURES_DOC.read_text() == cold_start_summary.figures_doc(), (
        "docs/cold-start.md is out of date: python -m tools cold-start --write"
    )
