"""GitHub Actions workflows: actionlint-clean, pinned, least privilege, one lock per stack."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import STACKS

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
SETUP_ACTION = ROOT / ".github" / "actions" / "pulumi-setup" / "action.yml"
POLICY_ARGS = '--policy-pack policies --policy-pack-config "policies/config.$STACK.json"'


def _actionlint() -> list[str]:
    """The actionlint command, with shellcheck for `run:` scripts; fails if either is absent."""
    binary = Path(sys.executable).parent / "actionlint"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run `make setup` (requirements-dev.txt pins it)")
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is missing: run `make setup` (installs Debian's shellcheck)")
    return [str(binary), "-no-color", "-oneline", f"-shellcheck={shellcheck}"]


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in document:
        document["on"] = document.pop(True)
    return dict(document)


def _workflow(name: str) -> dict[str, Any]:
    return _load(WORKFLOWS / name)


def test_workflows_pass_actionlint() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 7
    result = subprocess.run(
        [*_actionlint(), *files], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_really_checks(tmp_path: Path) -> None:
    workflow = tmp_path / ".github" / "workflows" / "broken.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        "on:\n  push:\n    branch: main\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo $UNQUOTED\n"
    )
    result = subprocess.run(
        [*_actionlint(), str(workflow)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert 'unexpected key "branch" for "push" section' in result.stdout
    assert "SC2086" in result.stdout  # shellcheck ran on the run: script


def _uses(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["uses"]] if isinstance(node.get("uses"), str) else []
        return found + [u for v in node.values() for u in _uses(v)]
    if isinstance(node, list):
        return [u for v in node for u in _uses(v)]
    return []


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    files = [*WORKFLOWS.glob("*.yml"), SETUP_ACTION]
    pinned = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    for path in files:
        for line in path.read_text().splitlines():
            if re.match(r"^\s*(?:- )?uses: ", line) and "uses: ./" not in line:
                assert pinned.match(line), f"{path.name}: {line.strip()}"
    remote = {u for p in files for u in _uses(_load(p)) if not u.startswith("./")}
    assert {u.split("@")[0] for u in remote} == {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "aws-actions/configure-aws-credentials",
        "pulumi/actions",
    }


def test_pr_workflow_runs_without_secrets_and_read_only() -> None:
    pr = _workflow("pr.yml")
    assert pr["on"] == {"pull_request": None}
    assert pr["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in pr["jobs"].values())
    assert "secrets." not in (WORKFLOWS / "pr.yml").read_text()
    steps = pr["jobs"]["test"]["steps"]
    assert {"run": "make test"} in steps
    assert (
        next(s for s in steps if "setup-python" in s.get("uses", ""))["with"]["python-version"]
        == "3.11"
    )
    plan = pr["jobs"]["plan"]
    assert plan["strategy"]["matrix"]["stack"] == list(STACKS)
    upload = next(s for s in plan["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "build/${{ matrix.stack }}/"
    assert upload["if"] == "always()"
    summary = next(s for s in plan["steps"] if s.get("name") == "Job summary")
    assert '>> "$GITHUB_STEP_SUMMARY"' in summary["run"]


def test_preview_has_oidc_and_pr_write_only_there_and_skips_forks() -> None:
    preview = _workflow("preview.yml")
    assert preview["permissions"] == {}
    assert list(preview["jobs"]) == list(STACKS)
    for stack, job in preview["jobs"].items():
        assert job["uses"] == "./.github/workflows/pulumi-preview.yml"
        assert job["with"] == {"stack": stack}
        assert job["permissions"] == {
            "contents": "read",
            "id-token": "write",
            "pull-requests": "write",
        }
        assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    job = _workflow("pulumi-preview.yml")["jobs"]["preview"]
    run = next(s for s in job["steps"] if s.get("id") == "preview")["run"]
    assert "pulumi preview --stack" in run and POLICY_ARGS in run
    comment = next(s for s in job["steps"] if s.get("name") == "Comment on the pull request")
    assert "--paginate" in comment["run"] and "--method PATCH" in comment["run"]
    for name in ("pr.yml", "deploy.yml", "pulumi-up.yml"):
        assert "pull-requests" not in (WORKFLOWS / name).read_text()


@pytest.mark.parametrize(
    ("workflow", "job", "kind"),
    [
        ("pulumi-up.yml", "up", "${{ inputs.stage == 'aws-only' && 'bootstrap' || 'deploy' }}"),
        ("pulumi-preview.yml", "preview", "preview"),
    ],
)
def test_cloud_jobs_run_where_the_stack_file_says(workflow: str, job: str, kind: str) -> None:
    """Runner, role, timeout and session length all come from `tools ci-settings`, so a
    stack's endpoint settings and the runner that reaches it are decided in one place."""
    jobs = _workflow(workflow)["jobs"]
    assert jobs["settings"]["uses"] == "./.github/workflows/ci-settings.yml"
    assert jobs["settings"]["with"] == {"stack": "${{ inputs.stack }}", "job": kind}
    shared = _workflow("ci-settings.yml")
    settings = shared["jobs"]["settings"]
    assert settings["runs-on"] == "ubuntu-24.04"  # reads a file; no cloud access
    assert "id-token" not in settings["permissions"]
    step = next(s for s in settings["steps"] if s.get("id") == "settings")
    assert 'python -m tools ci-settings "$STACK" "$JOB" >> "$GITHUB_OUTPUT"' in step["run"]
    outputs = {"runner", "role-arn", "timeout-minutes", "role-duration-seconds"}
    assert settings["outputs"] == {k: f"${{{{ steps.settings.outputs.{k} }}}}" for k in outputs}
    assert {k: v["value"] for k, v in shared["on"]["workflow_call"]["outputs"].items()} == {
        k: f"${{{{ jobs.settings.outputs.{k} }}}}" for k in outputs
    }
    cloud = jobs[job]
    assert cloud["needs"] == "settings"
    # tests.test_ci_runner.runs_on is this expression's twin (tested in test_ci_runner).
    assert cloud["runs-on"] == (
        "${{ startsWith(needs.settings.outputs.runner, 'codebuild-') && "
        "format('{0}-{1}-{2}', needs.settings.outputs.runner, github.run_id, "
        "github.run_attempt) || needs.settings.outputs.runner }}"
    )
    assert cloud["timeout-minutes"] == "${{ fromJSON(needs.settings.outputs.timeout-minutes) }}"
    setup = next(s for s in cloud["steps"] if s.get("uses") == "./.github/actions/pulumi-setup")
    assert setup["with"]["role-arn"] == "${{ needs.settings.outputs.role-arn }}"
    assert setup["with"]["role-duration-seconds"] == (
        "${{ needs.settings.outputs.role-duration-seconds }}"
    )
    credentials = next(
        s
        for s in _load(SETUP_ACTION)["runs"]["steps"]
        if "configure-aws-credentials" in s.get("uses", "")
    )
    assert credentials["with"]["role-duration-seconds"] == "${{ inputs.role-duration-seconds }}"


def test_deploy_runs_dev_then_prod_behind_the_production_environment() -> None:
    deploy = _workflow("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert deploy["permissions"] == {}
    dev, prod = deploy["jobs"]["dev"], deploy["jobs"]["prod"]
    assert dev["with"] == {"stack": "dev", "environment": "dev"}
    assert prod["with"] == {"stack": "prod", "environment": "production"}
    assert prod["needs"] == "dev"
    for job in (dev, prod):
        assert job["uses"] == "./.github/workflows/pulumi-up.yml"
        assert job["permissions"] == {"contents": "read", "id-token": "write"}


def test_pulumi_up_holds_one_uncancellable_lock_per_stack() -> None:
    up = _workflow("pulumi-up.yml")["jobs"]["up"]
    assert up["concurrency"] == {"group": "pulumi-${{ inputs.stack }}", "cancel-in-progress": False}
    assert up["environment"] == "${{ inputs.environment }}"
    runs = [s["run"] for s in up["steps"] if "run" in s]
    assert runs[0] == '.venv/bin/python -m tools preflight "$STACK"'
    assert "pulumi up --stack" in runs[1] and POLICY_ARGS in runs[1]


def test_bootstrap_is_stage_1_of_the_readme_first_deploy() -> None:
    """Started by hand, as the deploy role (so it creates the cluster), AWS only."""
    from tests.test_first_deploy import EXCLUDE

    bootstrap = _workflow("bootstrap.yml")
    assert set(bootstrap["on"]) == {"workflow_dispatch"}
    assert bootstrap["on"]["workflow_dispatch"]["inputs"]["stack"]["options"] == list(STACKS)
    (job,) = bootstrap["jobs"].values()
    assert job["uses"] == "./.github/workflows/pulumi-up.yml"
    assert job["with"]["stage"] == "aws-only"
    up = _workflow("pulumi-up.yml")["jobs"]["up"]
    run = next(s["run"] for s in up["steps"] if s.get("name") == "pulumi up")
    assert f"--exclude '{EXCLUDE}' --exclude-dependents" in run


def test_pulumi_cli_matches_the_pinned_sdk() -> None:
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert sdk is not None
    steps = _load(SETUP_ACTION)["runs"]["steps"]
    cli = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions@"))
    assert cli["with"] == {"pulumi-version": sdk.group(1)}
