"""CI reaches every cluster it deploys: the runner the workflows use for a stack (from
``tools ci-settings``) is one that reaches that stack's API endpoint, with a role
session that outlasts the job."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.ci.config import GITHUB_HOSTED_LABEL
from infra.ci.runner import (
    API_PORT,
    actor_filter,
    project_name,
    service_role_policy,
)
from infra.core.arns import Arns
from infra.core.schema import ConfigError
from tests.harness import FIXTURES, SMALL, find, find_all, fixture_where, run_stack, typed_config
from tools import ci_settings as ci_settings_tool
from tools.ci_settings import ci_settings
from tools.mock_runtime import Recorded

PROJECT = "aws:codebuild/project:Project"


def runs_on(runner_label: str, run_id: str, attempt: str) -> str:
    """The label a job ends up with: the workflows' ``runs-on`` expression, in Python."""
    if runner_label.startswith("codebuild-"):
        return f"{runner_label}-{run_id}-{attempt}"
    return runner_label


@pytest.mark.parametrize("kind", ["deploy", "preview"])
def test_the_workflow_runner_reaches_the_stacks_endpoint(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...], kind: Any
) -> None:
    cfg = typed_config(fixture_stack)
    settings = ci_settings(cfg, kind)
    label = runs_on(settings["runner"], "42", "1")
    if label == GITHUB_HOSTED_LABEL:
        # GitHub's runners have no fixed addresses: only an open endpoint admits them.
        assert cfg.cluster.open_to_internet
        return
    # A CodeBuild runner of this stack, in its private subnets, admitted on 443.
    assert label == f"codebuild-{project_name(cfg.cluster.name)}-42-1"
    project = find(fixture_resources, PROJECT, "ci-project").inputs
    assert project["name"] == project_name(cfg.cluster.name)
    cluster_inputs = find(fixture_resources, "eks:index:Cluster", "llm-eks").inputs
    assert project["vpcConfig"]["subnets"] == cluster_inputs["privateSubnetIds"]
    (rule,) = find_all(
        fixture_resources, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
    )
    cluster = find(fixture_resources, "eks:index:Cluster", "llm-eks")
    assert rule.inputs["securityGroupId"] == f"sg-{cluster.inputs['name']}-cluster"
    assert rule.inputs["referencedSecurityGroupId"] == "ci-sg-id"
    assert project["vpcConfig"]["securityGroupIds"] == ["ci-sg-id"]
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (API_PORT, API_PORT)
    webhook = find(fixture_resources, "aws:codebuild/webhook:Webhook", "ci-webhook").inputs
    # Only the listed people's jobs: a fork's pull request may ask for the label too.
    assert webhook["filterGroups"] == [
        {
            "filters": [
                {"type": "EVENT", "pattern": "WORKFLOW_JOB_QUEUED"},
                {"type": "ACTOR_ACCOUNT_ID", "pattern": actor_filter(cfg.ci.allowed_actor_ids)},
            ]
        }
    ]
    assert project["source"]["auth"] == {
        "type": "CODECONNECTIONS",
        "resource": cfg.ci.github_connection_arn,
    }
    assert project["source"]["location"] == f"https://github.com/{cfg.ci.github_repository}.git"
    # The build may run as long as the job; the STS session outlasts it.
    minutes = int(settings["timeout-minutes"])
    assert project["buildTimeout"] >= minutes
    assert int(settings["role-duration-seconds"]) >= minutes * 60


def test_a_github_hosted_runner_for_a_closed_endpoint_is_rejected(fixture_stack: str) -> None:
    """Closed: private only (the one fixture) or limited to CIDRs (the other)."""
    assert not typed_config(fixture_stack).cluster.open_to_internet

    def hosted(config: dict[str, Any]) -> None:
        config["llm-platform:ci"]["runner"] = "github-hosted"

    run = run_stack(fixture_stack, hosted)
    assert isinstance(run.error, ConfigError)
    assert run.resources == []
    (problem,) = run.error.problems
    assert problem.startswith(
        'llm-platform:ci.runner = "github-hosted": GitHub-hosted runners have no fixed '
        "addresses, so they cannot reach an API endpoint that is "
    )
    assert problem.endswith("; use runner codebuild (a runner in the VPC)")


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (
            "githubConnectionArn",
            "llm-platform:ci.githubConnectionArn: required for runner codebuild (the CodeBuild "
            'connection to GitHub, made once per account: README, "CI setup")',
        ),
        (
            "allowedActorIds",
            "llm-platform:ci.allowedActorIds = []: runner codebuild needs the GitHub user ids "
            "whose jobs may run inside the VPC (a fork's pull request could ask for it)",
        ),
    ],
)
def test_a_codebuild_runner_needs_its_connection_and_actors(key: str, problem: str) -> None:
    def drop(config: dict[str, Any]) -> None:
        config["llm-platform:ci"]["runner"] = "codebuild"
        config["llm-platform:ci"].pop(key, None)

    run = run_stack(SMALL, drop)
    assert isinstance(run.error, ConfigError)
    assert run.error.problems == [problem]
    assert run.resources == []


def test_bootstrap_runs_on_a_hosted_runner_as_the_deploy_role(fixture_stack: str) -> None:
    cfg = typed_config(fixture_stack)
    settings = ci_settings(cfg, "bootstrap")
    assert settings["runner"] == GITHUB_HOSTED_LABEL  # the in-VPC runner does not exist yet
    assert settings["role-arn"] == cfg.ci.deploy_role_arn
    assert settings == ci_settings(cfg, "deploy") | {"runner": GITHUB_HOSTED_LABEL}


def test_a_bootstrap_never_asks_a_hosted_runner_for_more_than_six_hours() -> None:
    cfg = typed_config(SMALL)
    long = cfg.model_copy(update={"ci": cfg.ci.model_copy(update={"job_timeout_minutes": 600})})
    assert ci_settings(long, "deploy")["timeout-minutes"] == "600"  # on the stack's runner
    assert ci_settings(long, "bootstrap")["timeout-minutes"] == "360"
    assert ci_settings(long, "bootstrap")["role-duration-seconds"] == str(360 * 60)


def test_a_github_hosted_runner_for_an_open_endpoint_creates_no_runner() -> None:
    def hosted_and_open(config: dict[str, Any]) -> None:
        config["llm-platform:ci"]["runner"] = "github-hosted"
        config["llm-platform:cluster"]["endpointPublicAccess"] = True
        config["llm-platform:cluster"]["publicAccessCidrs"] = ["0.0.0.0/0"]

    stack = fixture_where(lambda c: c.cluster.endpoint_public_access, "a public endpoint")
    run = run_stack(stack, hosted_and_open)
    assert run.error is None
    assert not find_all(run.resources, PROJECT)
    cfg = typed_config(stack)
    settings = ci_settings(
        cfg.model_copy(update={"ci": cfg.ci.model_copy(update={"runner": "github-hosted"})}),
        "deploy",
    )
    assert runs_on(settings["runner"], "1", "1") == GITHUB_HOSTED_LABEL


def test_actor_filter_matches_exactly_the_listed_ids() -> None:
    pattern = re.compile(actor_filter((42, 7)))
    assert pattern.fullmatch("7") and pattern.fullmatch("42")
    assert not pattern.search("427") and not pattern.search("1")


def test_build_role_may_only_log_use_its_connection_and_join_the_vpc() -> None:
    connection = "arn:aws:codeconnections:eu-west-1:111122223333:connection/abc-123"
    policy = service_role_policy(
        Arns("111122223333", "eu-west-1"), "/aws/codebuild/c-ci-runner", connection
    )
    actions = sorted(a for s in policy["Statement"] for a in s["Action"])
    assert all(a.startswith(("logs:", "ec2:", "codeconnections:")) for a in actions)
    use = next(s for s in policy["Statement"] if s["Sid"] == "UseTheGitHubConnection")
    assert use["Resource"] == connection
    assert use["Action"] == [
        "codeconnections:GetConnection",
        "codeconnections:GetConnectionToken",
        "codeconnections:UseConnection",
    ]
    assert "*" not in json.dumps([s["Action"] for s in policy["Statement"]])
    attach = next(s for s in policy["Statement"] if s["Sid"] == "AttachToTheVpc")
    assert attach["Condition"]["StringEquals"] == {
        "ec2:AuthorizedService": "codebuild.amazonaws.com"
    }


def test_main_prints_github_outputs(fixture_stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ci_settings_tool.main(fixture_stack, "preview", FIXTURES) == 0
    cfg = typed_config(fixture_stack)
    expected = ci_settings(cfg, "preview")
    assert capsys.readouterr().out.splitlines() == [f"{k}={v}" for k, v in expected.items()]
    assert expected["role-arn"] == cfg.ci.preview_role_arn
