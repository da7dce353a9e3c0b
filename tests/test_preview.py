"""The program as the first ``pulumi preview`` of a new stack sees it.

Nothing exists yet: ids and every output a resource did not get as an input (ARNs,
auto-generated names, endpoints) are unknown. What the policy pack decides here is what
lets ``pulumi up --policy-pack`` start at all, so every mandatory rule must be decidable:
checked for every committed stack. Who may run an update is the program's behaviour,
tested on the fixture stacks.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from infra.core.arns import same_principal
from infra.core.schema import ConfigError
from infra.stack.files import ROOT, load_stack_file, typed_stack_config
from policies.core import Resource, evaluate
from policies.rules import RULES
from tests.harness import FIXTURES, HA, SMALL, find, find_all, planned, resolve, run_component
from tools import policy
from tools.mock_runtime import UNKNOWN, Cloud, run_program

pytestmark = pytest.mark.stacks


@functools.cache
def _preview(stack: str) -> tuple[Any, ...]:
    """The committed stack's first preview (cached: the program is deterministic)."""
    stack_file = load_stack_file(stack)
    run = run_program(
        stack_file.config, stack=stack, secret_keys=stack_file.secret_keys, preview=True
    )
    if run.error is not None:
        raise run.error
    return tuple(run.resources)


def _contains_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return bool(value == UNKNOWN)


def test_preview_has_no_mandatory_violation(stack: str) -> None:
    cfg = typed_stack_config(stack)
    verdicts = policy.verdicts(_preview(stack), cfg)
    assert policy.mandatory_violations(verdicts) == []
    # The mandatory rules did run: every rule that checks something here checked it.
    assert {v.rule for v in verdicts if v.checked} >= {
        "iam-no-wildcard-action",
        "cost-tags-required",
        "gpu-nodepool-requires-gpu-limit",
    }


def test_preview_sees_outputs_of_resources_not_yet_created_as_unknown(stack: str) -> None:
    resources = _preview(stack)
    # The Karpenter node role's ARN (an output) feeds its access entry: unknown here.
    entry = find(resources, "aws:eks/accessEntry:AccessEntry", "karpenter-node")
    assert entry.inputs["principalArn"] == UNKNOWN
    # Policy documents never depend on such outputs: they are composed from config.
    documents = [
        r
        for r in resources
        if r.type
        in {
            "aws:iam/policy:Policy",
            "aws:iam/rolePolicy:RolePolicy",
            "aws:s3/bucketPolicy:BucketPolicy",
            "aws:sqs/queuePolicy:QueuePolicy",
            "aws:sns/topicPolicy:TopicPolicy",
            "aws:kms/key:Key",
        }
        and "policy" in r.inputs
    ]
    assert documents
    for r in documents:
        assert not _contains_unknown(r.inputs.get("policy")), r.name
        json.loads(r.inputs["policy"])


def test_preview_policy_documents_equal_the_applied_ones(stack: str) -> None:
    applied = {(r.type, r.name): r.inputs.get("policy") for r in planned(stack, ROOT)}
    for r in _preview(stack):
        if r.type.endswith(("Policy", "/key:Key")) and "policy" in r.inputs:
            assert r.inputs["policy"] == applied[(r.type, r.name)], r.name


def test_unknown_arn_makes_a_mandatory_rule_fail_at_preview() -> None:
    """The mode does catch the class of defect: a document built from an ARN output."""

    def build() -> None:
        queue = aws.sqs.Queue("q")
        aws.sqs.QueuePolicy(
            "q",
            queue_url=queue.url,
            policy=queue.arn.apply(
                lambda arn: json.dumps({"Statement": [{"Action": "sqs:Send", "Resource": arn}]})
            ),
        )

    preview = run_program({}, stack="t", program=build, preview=True)
    (found,) = find_all(preview.resources, "aws:sqs/queuePolicy:QueuePolicy")
    rule = next(r for r in RULES if r.name == "iam-no-wildcard-action")
    (verdict,) = evaluate(
        [rule], [Resource(found.type, found.name, found.inputs)], {rule.name: "mandatory"}
    )
    assert verdict.violations == (
        "aws:sqs/queuePolicy:QueuePolicy q: policy cannot be verified at preview "
        "(unknown until apply)",
    )


def test_mocks_answer_with_the_stacks_account_and_region(fixture_stack: str) -> None:
    stack = fixture_stack
    cfg = typed_stack_config(stack, FIXTURES)
    deploy_role = cfg.ci.deploy_role_arn.rsplit("/", 1)[-1]
    assert Cloud.of(load_stack_file(stack, FIXTURES).config) == Cloud(
        cfg.account_id, cfg.region, caller_role=deploy_role
    )

    def build() -> tuple[str, str]:
        identity = aws.get_caller_identity()
        queue = aws.sqs.Queue("q", name="q")
        return identity.account_id, resolve(queue.arn)

    config = {"aws:region": cfg.region, "llm-platform:accountId": cfg.account_id}
    box: list[tuple[str, str]] = []
    run = run_program(config, stack=stack, program=lambda: box.append(build()))
    assert run.error is None
    assert box == [(cfg.account_id, f"arn:aws:sqs:{cfg.region}:{cfg.account_id}:q")]


def test_run_component_stays_after_apply() -> None:
    def build() -> bool:
        return bool(resolve(aws.sqs.Queue("q").arn.apply(lambda a: a.startswith("arn:"))))

    _, known = run_component(build)
    assert known is True
    assert pulumi.runtime.is_dry_run() is False


def test_credentials_of_another_account_are_refused_before_any_resource(
    fixture_stack: str,
) -> None:
    stack = fixture_stack
    cfg = typed_stack_config(stack, FIXTURES)
    stack_file = load_stack_file(stack, FIXTURES)
    run = run_program(
        stack_file.config,
        stack=stack,
        secret_keys=stack_file.secret_keys,
        cloud=Cloud(cfg.account_id, cfg.region, caller_account_id="999999999999"),
    )
    assert isinstance(run.error, ConfigError)
    assert run.resources == []
    assert run.error.problems == [
        f'llm-platform:accountId = "{cfg.account_id}": the credentials running this update '
        "(arn:aws:sts::999999999999:assumed-role/offline-plan/offline-plan) belong to "
        "account 999999999999; use the stack's account"
    ]


def _run_as(stack: str, role: str, *, preview: bool = False) -> Any:
    cfg = typed_stack_config(stack, FIXTURES)
    stack_file = load_stack_file(stack, FIXTURES)
    return run_program(
        stack_file.config,
        stack=stack,
        secret_keys=stack_file.secret_keys,
        preview=preview,
        cloud=Cloud(cfg.account_id, cfg.region, caller_role=role),
    )


def test_only_the_deploy_role_or_an_admin_may_run_an_update() -> None:
    """Anyone else would become a new cluster's creator and lock the deploy role out."""
    stack = HA
    cfg = typed_stack_config(stack, FIXTURES)
    name = cfg.ci.deploy_role_arn.rsplit("/", 1)[-1]
    assert _run_as(stack, name).error is None
    for admin in cfg.cluster.admins:
        assert _run_as(stack, admin.rsplit("/", 1)[-1]).error is None
    preview_role = cfg.ci.preview_role_arn.rsplit("/", 1)[-1]
    assert _run_as(stack, preview_role, preview=True).error is None
    for role, preview in (("SomeoneElse", False), (preview_role, False)):
        run = _run_as(stack, role, preview=preview)
        assert isinstance(run.error, ConfigError), role
        assert run.resources == []
        (problem,) = run.error.problems
        assert problem.startswith(
            f'llm-platform:ci.deployRoleArn = "{cfg.ci.deploy_role_arn}": the credentials '
            f"running this update (arn:aws:sts::{cfg.account_id}:assumed-role/{role}/"
        )


def test_only_the_deploy_role_may_create_the_cluster() -> None:
    """An admin creating it would collide with its own access entry and leave the deploy
    role without one (pulumi-eks#2373)."""
    stack = SMALL
    cfg = typed_stack_config(stack, FIXTURES)
    deploy = cfg.ci.deploy_role_arn.rsplit("/", 1)[-1]
    admin = "SomeAdmin"
    admins = [*cfg.cluster.admins, f"arn:aws:iam::{cfg.account_id}:role/{admin}"]

    def _run(role: str, *, preview: bool = False) -> Any:
        stack_file = load_stack_file(stack, FIXTURES)
        config = dict(stack_file.config)
        cluster = json.loads(config["llm-platform:cluster"])
        config["llm-platform:cluster"] = json.dumps({**cluster, "admins": admins})
        return run_program(
            config,
            stack=stack,
            secret_keys=stack_file.secret_keys,
            preview=preview,
            cloud=Cloud(cfg.account_id, cfg.region, caller_role=role, new_stack=True),
        )

    assert _run(deploy).error is None
    assert _run(admin, preview=True).error is None  # previews
    run = _run(admin)
    assert isinstance(run.error, ConfigError)
    assert run.resources == []
    (problem,) = run.error.problems
    assert f"are not ci.deployRoleArn, and cluster {cfg.cluster.name} does not exist yet" in (
        problem
    )


def test_same_principal_compares_role_sessions_by_account_and_name() -> None:
    session = "arn:aws:sts::111122223333:assumed-role/Deploy/gha-dev-42"
    assert same_principal(session, "arn:aws:iam::111122223333:role/Deploy")
    assert same_principal(session, "arn:aws:iam::111122223333:role/ci/Deploy")  # a path
    assert not same_principal(session, "arn:aws:iam::444455556666:role/Deploy")
    assert not same_principal(session, "arn:aws:iam::111122223333:role/Deployer")
    user = "arn:aws:iam::111122223333:user/alice"
    assert same_principal(user, user)
    assert not same_principal(user, "arn:aws:iam::111122223333:role/alice")
    # Two role ARNs (config against config), a path on one side only.
    assert same_principal(
        "arn:aws:iam::111122223333:role/ci/Deploy", "arn:aws:iam::111122223333:role/Deploy"
    )
    assert not same_principal("arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:root")
