"""Environment baselines: a stack file cannot loosen a policy setting or level below its
baseline, an unstated setting takes the baseline's value, and the plan says where each
came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.stack.baseline import baseline_problems, effective_policy, load_baseline
from tests.harness import FIXTURE_STACKS, typed_config

STACK = next(s for s in FIXTURE_STACKS if "advisory" in typed_config(s).policy.enforcement.values())
"""A fixture stack that lowers a rule to advisory (so the floor case has something to bite)."""


def _root(tmp_path: Path, document: dict[str, Any], name: str = STACK) -> Path:
    folder = tmp_path / "policies" / "baselines"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(document))
    return tmp_path


def _policy_stated(key: str) -> Any:
    cfg = typed_config(STACK)
    field = next(n for n, f in type(cfg.policy).model_fields.items() if f.alias == key)
    assert field in cfg.policy.model_fields_set, f"fixture {STACK} must state {key}"
    return getattr(cfg.policy, field)


# (case, baseline document, exact problems for the fixture stack)
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("an empty baseline", {}, []),
    (
        "more zones than the stack file states",
        {"atLeast": {"minZones": 6}},
        [
            f"llm-platform:policy.minZones = {_policy_stated('minZones')}: looser than the "
            f"baseline policies/baselines/{STACK}.json (at least 6); tighten it here, or change "
            "the baseline in a reviewed pull request of its own"
        ],
    ),
    (
        "fewer GPUs per pool",
        {"atMost": {"maxGpusPerPool": 1}},
        [
            f"llm-platform:policy.maxGpusPerPool = {_policy_stated('maxGpusPerPool')}: looser "
            f"than the baseline policies/baselines/{STACK}.json (at most 1); tighten it here, "
            "or change the baseline in a reviewed pull request of its own"
        ],
    ),
    (
        "a rule the stack file made advisory",
        {"enforcement": {"*": "mandatory"}},
        [
            f"llm-platform:policy.enforcement.{rule} = advisory: below the baseline "
            f"policies/baselines/{STACK}.json (mandatory); raise it here, or change the "
            "baseline in a reviewed pull request of its own"
            for rule, level in sorted(typed_config(STACK).policy.enforcement.items())
            if level == "advisory"
        ],
    ),
]


@pytest.mark.parametrize(
    ("document", "problems"), [(d, p) for _, d, p in CASES], ids=[c for c, _, _ in CASES]
)
def test_a_stack_file_cannot_go_below_its_baseline(
    tmp_path: Path, document: dict[str, Any], problems: list[str]
) -> None:
    assert baseline_problems(typed_config(STACK), _root(tmp_path, document)) == problems


def test_an_unstated_setting_takes_the_baseline_value_and_says_so(tmp_path: Path) -> None:
    cfg = typed_config(STACK)
    assert "min_replicas" not in cfg.policy.model_fields_set
    root = _root(tmp_path, {"atLeast": {"minReplicas": 3}, "required": ["requirePinnedAmi"]})
    effective = effective_policy(cfg, root)
    assert (effective.policy.min_replicas, effective.policy.require_pinned_ami) == (3, True)
    assert effective.setting_sources["minReplicas"] == f"policies/baselines/{STACK}.json"
    assert effective.setting_sources["minZones"] == "stack file"
    assert effective.setting_sources["requireNatPerZone"] == "default"


def test_levels_come_from_the_stack_file_the_baseline_or_the_rule(tmp_path: Path) -> None:
    cfg = typed_config(STACK)
    lowered = next(r for r, lv in cfg.policy.enforcement.items() if lv == "advisory")
    root = _root(tmp_path, {"enforcement": {"*": "advisory"}})
    levels = effective_policy(cfg, root).levels
    assert levels[lowered] == ("advisory", "stack file")
    assert levels["gpu-pod-no-api-token"] == ("mandatory", "rule default")


def test_a_stack_without_its_own_baseline_gets_the_default(tmp_path: Path) -> None:
    root = _root(tmp_path, {"atLeast": {"minZones": 1}}, name="default")
    assert load_baseline(STACK, root).path == "policies/baselines/default.json"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"atleast": {}},
            "unknown key atleast; allowed: atLeast, atMost, enforcement, includes, required",
        ),
        (
            {"enforcement": {"no-such-rule": "mandatory"}},
            "enforcement.no-such-rule: no such policy rule",
        ),
        (
            {"enforcement": {"*": "strict"}},
            "enforcement.* = strict: one of mandatory, advisory, disabled",
        ),
        ({"atLeast": {"minZone": 3}}, "atLeast.minZone: not a policy setting"),
    ],
    ids=["unknown key", "unknown rule", "unknown level", "unknown setting"],
)
def test_a_broken_baseline_is_an_error(
    tmp_path: Path, document: dict[str, Any], message: str
) -> None:
    root = _root(tmp_path, document)
    assert baseline_problems(typed_config(STACK), root) == [
        f"policies/baselines/{STACK}.json: {message}"
    ]


def test_every_baseline_file_is_valid() -> None:
    from infra.stack.baseline import ROOT, baseline_problems_in

    files = sorted((ROOT / "policies" / "baselines").glob("*.json"))
    assert any(f.name == "default.json" for f in files)
    for f in files:
        assert baseline_problems_in(json.loads(f.read_text()), f.name) == []
