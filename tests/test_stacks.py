"""The committed stacks: what must hold for every ``Pulumi.<stack>.yaml``.

Stacks are discovered (``infra.stack.files.stack_names``), and every expectation comes
from the stack's loaded config: a model, a GPU pool, a budget or a whole environment
added to the stack files (README, "Extending") is checked here without a test edit.
How each part renders is tested in the component tests, on the stack files the tests
own (``tests/fixtures/``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from infra.ci.config import GITHUB_HOSTED_LABEL
from infra.ci.runner import project_name
from infra.stack.files import ROOT, typed_stack_config
from infra.stack.stack_cost import budget_problems
from tests.conftest import STACKS, StackPlan
from tests.harness import find, find_all
from tests.test_alert_rules import (
    assert_every_alert_fires_and_stays_quiet_under_promtool,
    assert_every_alert_has_a_firing_and_a_quiet_case,
    assert_rules_pass_promtool_check,
)
from tools import policy
from tools.__main__ import main as cli
from tools.ci_settings import Job, ci_settings
from tools.mock_runtime import Recorded

pytestmark = pytest.mark.stacks

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
MODEL_OBJECTS = {
    "deployment": "kubernetes:apps/v1:Deployment",
    "service": "kubernetes:core/v1:Service",
    "pdb": "kubernetes:policy/v1:PodDisruptionBudget",
    "network-policy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "monitor": "kubernetes:monitoring.coreos.com/v1:ServiceMonitor",
    "scaler": "kubernetes:keda.sh/v1alpha1:ScaledObject",
}


def test_stacks_are_discovered() -> None:
    assert STACKS
    assert sorted(p.name for p in ROOT.glob("Pulumi.*.yaml")) == [
        f"Pulumi.{s}.yaml" for s in STACKS
    ]


def test_plan_is_clean_after_apply_and_at_preview(stack_plan: StackPlan) -> None:
    result, out = stack_plan
    assert result.leaks == []
    assert result.mandatory_violations == []
    assert result.exit_code == 0
    summary = (out / "summary.txt").read_text()
    assert "MANDATORY" not in summary
    assert "OVER BUDGET" not in summary


def test_every_enabled_model_is_served(
    stack: str, resources: tuple[Recorded, ...], stack_plan: StackPlan
) -> None:
    cfg = typed_stack_config(stack)
    namespace = cfg.serving.namespace
    deployments = {
        r.inputs["metadata"]["name"]
        for r in find_all(resources, MODEL_OBJECTS["deployment"])
        if r.inputs["metadata"]["namespace"] == namespace
    }
    assert deployments == {m.name for m in cfg.enabled_models}
    for model in cfg.enabled_models:
        for kind, type_ in MODEL_OBJECTS.items():
            obj = find(resources, type_, f"model-{model.name}-{kind}").inputs
            assert obj["metadata"]["namespace"] == namespace, (model.name, kind)
        deployment = find(resources, MODEL_OBJECTS["deployment"], f"model-{model.name}-deployment")
        assert f"node-pools-nodepool-{model.gpu_pool}" in deployment.depends_on
        (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
        assert (
            container["args"][0] == f"s3://{cfg.model_bucket}/models/{model.name}/{model.revision}/"
        )
        manifest = stack_plan.out / "manifests" / f"deployment-{namespace}-{model.name}.yaml"
        assert manifest.is_file(), manifest.name
        role = find(resources, "aws:iam/role:Role", f"model-{model.name}-role").inputs
        assert role["name"] == f"{cfg.cluster.name}-vllm-{model.name}"


def test_every_gpu_pool_has_its_nodepool(stack: str, resources: tuple[Recorded, ...]) -> None:
    cfg = typed_stack_config(stack)
    pools = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in find_all(resources, NODEPOOL)}
    assert set(pools) == {p.name for p in cfg.gpu_pools} | {"general"}
    for pool in cfg.gpu_pools:
        spec = pools[pool.name]
        assert spec["limits"]["nvidia.com/gpu"] == pool.gpu_limit
        requirements = {r["key"]: r["values"] for r in spec["template"]["spec"]["requirements"]}
        assert requirements["karpenter.sh/capacity-type"] == list(pool.capacity_types)
        assert requirements["topology.kubernetes.io/zone"] == list(cfg.zones)
        assert requirements["karpenter.k8s.aws/instance-family"] == list(pool.instance_families)


def test_summary_shows_every_pools_capacity(stack: str, stack_plan: StackPlan) -> None:
    cfg = typed_stack_config(stack)
    summary = stack_plan.result.summary
    for pool in cfg.gpu_pools:
        assert any(
            line.startswith(f"  {pool.name}: limit {pool.gpu_limit} GPUs") for line in summary
        )
    total = sum(p.gpu_limit for p in cfg.gpu_pools)
    assert f"  total GPU limit: {total}" in summary


def test_every_budget_alerts(stack: str, resources: tuple[Recorded, ...]) -> None:
    cfg = typed_stack_config(stack)
    budgets = cfg.cost.budgets
    aws_budgets = sorted(r.inputs["name"] for r in find_all(resources, "aws:budgets/budget:Budget"))
    assert aws_budgets == sorted(f"{stack}-{b.name}" for b in budgets if b.scope == "cluster")
    values = find(resources, "kubernetes:helm.sh/v3:Release", "kubecost-release").inputs["values"]
    alerts = values["global"]["notifications"]["alertConfigs"]["alerts"]
    assert len(alerts) == sum(len(b.thresholds_percent) for b in budgets)
    rule = find(
        resources, "kubernetes:monitoring.coreos.com/v1:PrometheusRule", "kubecost-cost-alerts"
    )
    labelled = Counter(
        r["labels"]["budget"]
        for g in rule.inputs["spec"]["groups"]
        for r in g["rules"]
        if "budget" in r.get("labels", {})
    )
    assert set(labelled) == {b.name for b in budgets}


def test_every_budget_covers_the_worst_case_of_its_scope(stack: str) -> None:
    assert budget_problems(typed_stack_config(stack)) == []


def test_cluster_names_are_unique_per_account() -> None:
    """IAM role and policy names derive from the cluster name, and IAM is per account."""
    configs = [typed_stack_config(s) for s in STACKS]
    names = Counter((c.account_id, c.cluster.name) for c in configs)
    assert [key for key, count in names.items() if count > 1] == []


def test_committed_pack_config_equals_the_stack_file(stack: str) -> None:
    """``python -m tools policy-config`` was run after the stack file last changed."""
    path = policy.config_path(stack)
    assert path.is_file(), f"run `python -m tools policy-config` to write {path.name}"
    assert path.read_text() == policy.render(typed_stack_config(stack))
    assert policy.main([stack], check=True) == 0


def test_every_pack_config_belongs_to_a_stack() -> None:
    present = sorted((ROOT / "policies").glob("config.*.json"))
    assert present == sorted(policy.config_path(s) for s in STACKS)


def test_alerts_fire_and_stay_quiet_under_the_stacks_thresholds(stack: str, tmp_path: Path) -> None:
    inputs = typed_stack_config(stack).alert_inputs
    assert_every_alert_has_a_firing_and_a_quiet_case(inputs)
    assert_rules_pass_promtool_check(inputs, tmp_path)
    assert_every_alert_fires_and_stays_quiet_under_promtool(inputs, tmp_path)


@pytest.mark.parametrize("job", ["deploy", "preview", "bootstrap"])
def test_ci_settings_of_every_job(
    stack: str, job: Job, resources: tuple[Recorded, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """What the workflows read for the stack, and a runner that reaches its endpoint."""
    cfg = typed_stack_config(stack)
    assert cli(["ci-settings", stack, job]) == 0
    expected = ci_settings(cfg, job)
    assert capsys.readouterr().out.splitlines() == [f"{k}={v}" for k, v in expected.items()]
    role = cfg.ci.preview_role_arn if job == "preview" else cfg.ci.deploy_role_arn
    assert expected["role-arn"] == role
    if expected["runner"] == GITHUB_HOSTED_LABEL and job != "bootstrap":
        assert cfg.cluster.open_to_internet
    elif job != "bootstrap":
        project = find(resources, "aws:codebuild/project:Project", "ci-project").inputs
        assert expected["runner"] == f"codebuild-{project['name']}"
        assert project["name"] == project_name(cfg.cluster.name)
