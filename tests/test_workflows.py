"""GitHub Actions workflows: actionlint-clean, pinned, least privilege, one lock per stack,
and every committed stack planned, previewed, deployed and bootstrappable."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import STACKS

pytestmark = pytest.mark.stacks

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
SETUP_ACTION = ROOT / ".github" / "actions" / "pulumi-setup" / "action.yml"
POLICY_ARGS = '--policy-pack policies --policy-pack-config "policies/config.$STACK.json"'
TIMEOUT = 120
"""Seconds a subprocess of these tests may take."""
CI_COMMAND = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
"""The full test suite, as ``.ci/run`` runs it (the README's test command)."""
PER_STACK = "${{ fromJSON(needs.stacks.outputs.stacks) }}"
"""The matrix of a job that runs once per stack (stacks.yml lists them)."""


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
    assert len(files) == 8
    result = subprocess.run(
        [*_actionlint(), *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
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
        [*_actionlint(), str(workflow)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT,
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
        "actions/cache",
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "aws-actions/configure-aws-credentials",
        "pulumi/actions",
    }


def test_the_test_job_keeps_mypys_cache_where_the_makefile_puts_it() -> None:
    makefile = (WORKFLOWS.parent.parent / "Makefile").read_text()
    (default,) = re.findall(r"^MYPY_CACHE \?= \$\(HOME\)/(\S+)$", makefile, re.M)
    steps = _workflow("pr.yml")["jobs"]["test"]["steps"]
    (cache,) = [s for s in steps if s.get("uses", "").startswith("actions/cache@")]
    assert cache["with"]["path"] == f"~/{default}"
    assert steps.index(cache) < next(i for i, s in enumerate(steps) if s.get("run") == CI_COMMAND)


def test_pr_workflow_runs_without_secrets_and_read_only() -> None:
    pr = _workflow("pr.yml")
    assert pr["on"] == {"pull_request": None}
    assert pr["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in pr["jobs"].values())
    assert "secrets." not in (WORKFLOWS / "pr.yml").read_text()
    steps = pr["jobs"]["test"]["steps"]
    assert {"run": CI_COMMAND} in steps
    assert (
        next(s for s in steps if "setup-python" in s.get("uses", ""))["with"]["python-version"]
        == "3.11"
    )
    assert pr["jobs"]["stacks"] == {"uses": "./.github/workflows/stacks.yml"}
    plan = pr["jobs"]["plan"]
    assert plan["needs"] == "stacks"
    assert plan["strategy"]["matrix"]["stack"] == PER_STACK
    upload = next(s for s in plan["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "build/${{ matrix.stack }}/"
    assert upload["if"] == "always()"
    summary = next(s for s in plan["steps"] if s.get("name") == "Job summary")
    assert '>> "$GITHUB_STEP_SUMMARY"' in summary["run"]


def test_the_stacks_workflow_lists_exactly_the_stack_files(tmp_path: Path) -> None:
    """Its step, run here on the checkout, names every committed stack and nothing else."""
    stacks = _workflow("stacks.yml")
    assert set(stacks["on"]) == {"workflow_call"}
    assert stacks["permissions"] == {}
    job = stacks["jobs"]["stacks"]
    assert job["permissions"] == {"contents": "read"}
    assert job["outputs"] == {"stacks": "${{ steps.list.outputs.stacks }}"}
    assert stacks["on"]["workflow_call"]["outputs"]["stacks"]["value"] == (
        "${{ jobs.stacks.outputs.stacks }}"
    )
    step = next(s for s in job["steps"] if s.get("id") == "list")
    output = tmp_path / "github_output"
    subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "GITHUB_OUTPUT": str(output)},
        check=True,
        timeout=TIMEOUT,
    )
    name, _, value = output.read_text().strip().partition("=")
    assert (name, json.loads(value)) == ("stacks", list(STACKS))


def test_preview_has_oidc_and_pr_write_only_there_and_skips_forks() -> None:
    preview = _workflow("preview.yml")
    assert preview["permissions"] == {}
    assert set(preview["jobs"]) == {"stacks", "preview"}
    fork_guard = "github.event.pull_request.head.repo.full_name == github.repository"
    stacks = preview["jobs"]["stacks"]
    assert stacks["uses"] == "./.github/workflows/stacks.yml"
    assert stacks["permissions"] == {"contents": "read"}
    job = preview["jobs"]["preview"]
    assert job["needs"] == "stacks"
    assert job["strategy"]["matrix"]["stack"] == PER_STACK
    assert job["uses"] == "./.github/workflows/pulumi-preview.yml"
    assert job["with"] == {"stack": "${{ matrix.stack }}"}
    assert job["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    }
    assert job["if"] == stacks["if"] == fork_guard
    job = _workflow("pulumi-preview.yml")["jobs"]["preview"]
    run = next(s for s in job["steps"] if s.get("id") == "preview")["run"]
    assert "pulumi preview --stack" in run and POLICY_ARGS in run
    comment = next(s for s in job["steps"] if s.get("name") == "Comment on the pull request")
    assert "--paginate" in comment["run"] and "--method PATCH" in comment["run"]
    for name in ("pr.yml", "deploy.yml", "pulumi-up.yml", "stacks.yml"):
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


def _environments() -> tuple[dict[str, str], str]:
    """bootstrap.yml's stack -> GitHub environment mapping (a stack not named there uses
    the environment of its own name), and the expression it comes from."""
    (job,) = _workflow("bootstrap.yml")["jobs"].values()
    expression = job["with"]["environment"]
    mapped = dict(re.findall(r"inputs\.stack == '([\w-]+)' && '([\w-]+)'", expression))
    rest = re.sub(r"inputs\.stack == '[\w-]+' && '[\w-]+' \|\| ", "", expression)
    assert rest == "${{ inputs.stack }}", expression
    return mapped, expression


def test_deploy_runs_every_stack_one_after_another_in_its_environment() -> None:
    """One job per stack; the first has no predecessor and each other waits for one, so
    a stack deploys only after an earlier one succeeded (and, for an environment with
    required reviewers such as production, after an approval)."""
    deploy = _workflow("deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert deploy["permissions"] == {}
    jobs = deploy["jobs"]
    assert sorted(jobs) == sorted(STACKS)
    mapped, _ = _environments()
    for stack, job in jobs.items():
        assert job["uses"] == "./.github/workflows/pulumi-up.yml"
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        assert job["with"] == {"stack": stack, "environment": mapped.get(stack, stack)}
        assert job.get("name", stack) == stack
    roots = [s for s, job in jobs.items() if "needs" not in job]
    assert len(roots) == 1
    for stack, job in jobs.items():
        needs = [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", [])
        assert set(needs) <= set(jobs) - {stack}, stack
    # Every job reaches the first one through its needs (no cycle, no second root).
    for stack in jobs:
        seen = [stack]
        while "needs" in jobs[seen[-1]]:
            need = jobs[seen[-1]]["needs"]
            seen.append(need if isinstance(need, str) else need[0])
            assert len(seen) <= len(jobs), seen
        assert seen[-1] == roots[0]


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
    # Any committed stack: its settings job fails for a name without a stack file.
    stack_input = bootstrap["on"]["workflow_dispatch"]["inputs"]["stack"]
    assert (stack_input["type"], stack_input["required"]) == ("string", True)
    (job,) = bootstrap["jobs"].values()
    assert job["uses"] == "./.github/workflows/pulumi-up.yml"
    assert job["with"]["stage"] == "aws-only"
    assert job["with"]["stack"] == "${{ inputs.stack }}"
    mapped, expression = _environments()
    assert job["with"]["environment"] == expression
    assert set(mapped) <= set(STACKS)
    jobs = _workflow("pulumi-up.yml")["jobs"]
    assert jobs["settings"]["with"]["stack"] == "${{ inputs.stack }}"
    assert jobs["up"]["needs"] == "settings"
    run = next(s["run"] for s in jobs["up"]["steps"] if s.get("name") == "pulumi up")
    assert f"--exclude '{EXCLUDE}' --exclude-dependents" in run


def test_pulumi_cli_matches_the_pinned_sdk() -> None:
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert sdk is not None
    steps = _load(SETUP_ACTION)["runs"]["steps"]
    cli = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions@"))
    assert cli["with"] == {"pulumi-version": sdk.group(1)}
