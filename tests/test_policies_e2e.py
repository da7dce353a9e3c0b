"""End to end: a stack config changed in one place makes the offline plan fail naming
the rule. The mutations apply to the fixture stacks (``tests/fixtures/``) whose config
they fit (a rule set advisory, a spot-only policy); that the committed stacks pass clean
is checked by ``tests/test_stacks.py``.

Cases whose resources another layer renders run once that layer is on main: until then
the stack has none of the resources the rule checks, and the case is skipped naming
the missing type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.stack.config import PlatformConfig
from tests.harness import FIXTURE_STACKS, FIXTURES, fixture_where, planned, typed_config
from tools import plan as plan_tool

pytestmark = pytest.mark.e2e
"""A full plan per case: ``make test E2E=1`` runs them, ``make test`` does not (the rules
themselves are tested on rendered resources in ``tests/test_policies_*.py``)."""

NS = "llm-platform"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
BUDGET = "aws:budgets/budget:Budget"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
Config = dict[str, Any]
Applies = Callable[[PlatformConfig], bool]
ENDPOINT_RULE = "eks-endpoint-not-open-to-world"
LEVEL = r"\w+ \([^)]+\)"
"""The summary's level column: the level and where it came from."""


def _pool(c: Config) -> dict[str, Any]:
    return c[f"{NS}:gpuPools"][0]


def _policy(c: Config) -> dict[str, Any]:
    return c[f"{NS}:policy"]


def _second_pool_over_cap(c: Config) -> None:
    extra = {**_pool(c), "name": "gpu-extra", "gpuLimit": 1}
    _pool(c)["gpuLimit"] = _policy(c)["maxGpusTotal"]
    c[f"{NS}:gpuPools"].append(extra)


def _open_endpoint(c: Config) -> None:
    c[f"{NS}:cluster"].update(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"])


def _strict_open_endpoint(c: Config) -> None:
    _open_endpoint(c)
    _policy(c)["enforcement"].update({"eks-endpoint-not-open-to-world": "mandatory"})


def _any(_cfg: PlatformConfig) -> bool:
    return True


def _enforces_endpoint(cfg: PlatformConfig) -> bool:
    return cfg.policy.enforcement.get(ENDPOINT_RULE, "mandatory") == "mandatory"


def _advisory_endpoint(cfg: PlatformConfig) -> bool:
    return cfg.policy.enforcement.get(ENDPOINT_RULE) == "advisory"


def _spot_only(cfg: PlatformConfig) -> bool:
    return cfg.policy.spot_only


# (case, the fixture stacks it applies to, type the rule needs in the plan or None,
#  mutation, rule that must fail)
CASES: list[tuple[str, Applies, str | None, Callable[[Config], object], str]] = [
    (
        "a cost tag the stack does not set",
        _any,
        None,
        lambda c: _policy(c).update(
            requiredTags=["cost-center", "environment", "owner", "project", "team"]
        ),
        "cost-tags-required",
    ),
    (
        "audit logs off",
        _any,
        None,
        lambda c: c[f"{NS}:cluster"].update(logTypes=["api", "authenticator"]),
        "eks-control-plane-logging-enabled",
    ),
    (
        "API endpoint open to the internet",
        _enforces_endpoint,
        None,
        _open_endpoint,
        ENDPOINT_RULE,
    ),
    (
        "an advisory endpoint rule made strict",
        _advisory_endpoint,
        None,
        _strict_open_endpoint,
        ENDPOINT_RULE,
    ),
    (
        "pool GPU limit above the environment maximum",
        _any,
        NODEPOOL,
        lambda c: _pool(c).update(gpuLimit=_policy(c)["maxGpusPerPool"] + 1),
        "gpu-nodepool-requires-gpu-limit",
    ),
    (
        "pools together above the cap",
        _any,
        NODEPOOL,
        _second_pool_over_cap,
        "gpu-total-within-cap",
    ),
    (
        "a family outside the allowlist",
        _any,
        NODEPOOL,
        lambda c: _policy(c).update(allowedInstanceFamilies=[_pool(c)["instanceFamilies"][0]]),
        "gpu-nodepool-allowed-instance-types",
    ),
    (
        "a size outside the allowlist",
        _any,
        NODEPOOL,
        lambda c: _pool(c).update(instanceSizes=[*_pool(c)["instanceSizes"], "48xlarge"]),
        "gpu-nodepool-allowed-instance-types",
    ),
    (
        "on-demand only GPU pool",
        _any,
        NODEPOOL,
        lambda c: _pool(c).update(capacityTypes=["on-demand"]),
        "gpu-nodepool-allows-spot",
    ),
    (
        "on-demand fallback in a spot-only environment",
        _spot_only,
        NODEPOOL,
        lambda c: _pool(c).update(capacityTypes=["spot", "on-demand"]),
        "gpu-nodepool-allows-spot",
    ),
    (
        "more zones required than the stack has",
        _any,
        NODEPOOL,
        lambda c: _policy(c).update(minZones=len(c[f"{NS}:zones"]) + 1),
        "gpu-nodepool-spans-zones",
    ),
    (
        "a namespace budget below its models at max replicas",
        _any,
        DEPLOYMENT,
        lambda c: c[f"{NS}:cost"]["budgets"].append(
            {
                "name": "tight",
                "scope": "namespace",
                "target": c.get(f"{NS}:serving", {}).get("namespace", "inference"),
                "monthlyUsd": 1,
                "notifyEmails": ["a@example.com"],
            }
        ),
        "cost-worst-case-within-budgets",
    ),
    (
        "a stack whose CPU pool limit alone exceeds its cluster budget",
        _any,
        NODEPOOL,
        lambda c: c[f"{NS}:cpuPool"].update(cpuLimit=100000, memoryLimitGiB=400000),
        "cost-worst-case-within-budgets",
    ),
    (
        "an AMI left at latest where the environment pins it",
        _any,
        NODECLASS,
        lambda c: (
            c[f"{NS}:nodeClass"].update(amiVersion="latest"),
            _policy(c).update(requirePinnedAmi=True),
        ),
        "node-ami-pinned",
    ),
    (
        "one NAT gateway where the environment wants one per zone",
        _any,
        None,
        lambda c: (
            c.setdefault(f"{NS}:network", {}).update(natGateways="single"),
            _policy(c).update(requireNatPerZone=True),
        ),
        "network-nat-per-zone",
    ),
    (
        "a model below the environment's minimum replicas",
        _any,
        DEPLOYMENT,
        lambda c: _policy(c).update(
            minReplicas=max(m["replicas"]["max"] for m in c[f"{NS}:models"]) + 1
        ),
        "model-min-replicas",
    ),
    (
        "spot only where the environment requires an on-demand fallback",
        _any,
        NODEPOOL,
        lambda c: (
            _pool(c).update(capacityTypes=["spot"]),
            _policy(c).update(requireOnDemandFallback=True, spotOnly=False),
        ),
        "gpu-capacity-has-on-demand-fallback",
    ),
    (
        "log retention below the minimum",
        _any,
        LOG_GROUP,
        lambda c: (
            c[f"{NS}:logging"].update(retentionDays=3),
            _policy(c).update(minLogRetentionDays=7),
        ),
        "log-group-has-retention",
    ),
]


def _params() -> list[Any]:
    """Each case on the fixture stacks it fits: those that fit any stack on one of them,
    in turn (a plan takes a second), those that need a particular config on each fixture
    that has it."""
    params = []
    for i, (case, applies, needs, mutate, rule) in enumerate(CASES):
        stacks = [s for s in FIXTURE_STACKS if applies(typed_config(s))]
        if applies is _any:
            stacks = [stacks[i % len(stacks)]]
        params += [pytest.param(s, needs, mutate, rule, id=f"{s}: {case}") for s in stacks]
    return params


PARAMS = _params()


def test_every_case_applies_to_a_fixture_stack() -> None:
    cases = {str(p.id).split(": ", 1)[1] for p in PARAMS}
    assert cases == {case for case, *_ in CASES}
    # Both fixtures are mutated.
    assert {str(p.id).split(": ", 1)[0] for p in PARAMS} == set(FIXTURE_STACKS)


def _plan_mutated(stack: str, mutate: Callable[[Config], object], tmp_path: Path) -> Any:
    document = yaml.safe_load((FIXTURES / f"Pulumi.{stack}.yaml").read_text())
    mutate(document["config"])
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return plan_tool.plan(stack, stack_dir=tmp_path, out_root=tmp_path / "out", log=lambda _: None)


@pytest.mark.parametrize(("fixture_stack", "needs", "mutate", "rule"), PARAMS)
def test_one_change_makes_the_plan_fail_naming_the_rule(
    fixture_stack: str,
    needs: str | None,
    mutate: Callable[[Config], object],
    rule: str,
    tmp_path: Path,
) -> None:
    stack = fixture_stack
    if needs is not None and not any(r.type == needs for r in planned(stack)):
        pytest.skip(f"stack {stack} renders no {needs} yet (its layer is not on main)")
    result = _plan_mutated(stack, mutate, tmp_path)
    assert result.exit_code == 1
    assert any(v.startswith(f"{rule}: ") for v in result.mandatory_violations), (
        result.mandatory_violations
    )
    summary = (tmp_path / "out" / stack / "summary.txt").read_text()
    # Decided from config values, so the first preview of a new stack fails it already.
    assert re.search(rf"^  {rule} +{LEVEL} +MANDATORY x\d+ +MANDATORY x\d+$", summary, re.M), (
        summary
    )


def test_there_are_at_least_10_mutations() -> None:
    assert len(CASES) >= 10


def test_an_advisory_violation_is_reported_but_does_not_fail_the_plan(tmp_path: Path) -> None:
    stack = fixture_where(_advisory_endpoint, f"{ENDPOINT_RULE} advisory")
    result = _plan_mutated(stack, _open_endpoint, tmp_path)
    assert result.exit_code == 0
    assert result.mandatory_violations == []
    summary = (tmp_path / "out" / stack / "summary.txt").read_text()
    assert re.search(rf"^  {ENDPOINT_RULE} +{LEVEL} +advisory x1 +advisory x1$", summary, re.M)
    assert "publicAccessCidrs includes 0.0.0.0/0" in summary


def test_plan_cli_prints_the_violated_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = fixture_where(_enforces_endpoint, f"{ENDPOINT_RULE} mandatory")
    document = yaml.safe_load((FIXTURES / f"Pulumi.{stack}.yaml").read_text())
    _open_endpoint(document["config"])
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    assert plan_tool.main(stack, tmp_path, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert (
        f"error: mandatory policy violation: {ENDPOINT_RULE}: eks:index:Cluster "
        "llm-eks: publicAccessCidrs includes 0.0.0.0/0: the API endpoint is open to the whole "
        "internet\n"
    ) in err
