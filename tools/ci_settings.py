"""CI settings of a stack, as GitHub Actions step outputs.

``python -m tools ci-settings <stack> deploy|preview`` prints ``key=value`` lines for
``$GITHUB_OUTPUT``: the runner label the job must run on to reach the stack's API
endpoint, the role it assumes, its timeout and an STS session as long as that timeout.
The workflows (``pulumi-up.yml``, ``pulumi-preview.yml``) read nothing else about a
stack, so the stack file alone decides how CI reaches it. ``runner`` is the label, or
for CodeBuild its prefix, which the workflows complete with the run id and attempt.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final, Literal

from infra.ci.config import GITHUB_HOSTED_LABEL
from infra.ci.runner import runner
from infra.core.schema import ConfigError
from infra.stack.config import PlatformConfig
from infra.stack.files import ROOT, typed_stack_config

Job = Literal["deploy", "preview", "bootstrap"]
"""``bootstrap`` is stage 1 of a new environment's first deploy (README): the AWS-only
``pulumi up`` that creates, among the rest, the in-VPC runner; it reaches only AWS APIs,
so it runs on a GitHub-hosted runner."""
PREVIEW_TIMEOUT_MINUTES: Final = 30
GITHUB_HOSTED_MAX_MINUTES: Final = 360
"""A job on a GitHub-hosted runner stops after 6 hours whatever ``timeout-minutes`` says
(GitHub docs, "Usage limits": job execution time)."""
MAX_SESSION_SECONDS: Final = 43_200
"""STS's ceiling for a role session (the role's MaxSessionDuration must allow it)."""


def ci_settings(cfg: PlatformConfig, job: Job) -> dict[str, str]:
    """The outputs of the workflows' settings job for one stack and job."""
    deploy = job != "preview"
    minutes = cfg.ci.job_timeout_minutes if deploy else PREVIEW_TIMEOUT_MINUTES
    if job == "bootstrap":
        minutes = min(minutes, GITHUB_HOSTED_MAX_MINUTES)
    return {
        "runner": GITHUB_HOSTED_LABEL if job == "bootstrap" else runner(cfg.ci, cfg.cluster.name),
        "role-arn": cfg.ci.deploy_role_arn if deploy else cfg.ci.preview_role_arn,
        "timeout-minutes": str(minutes),
        # The session outlives the job: credentials never expire mid-update.
        "role-duration-seconds": str(min(minutes * 60, MAX_SESSION_SECONDS)),
    }


def main(stack: str, job: Job, root: Path = ROOT) -> int:
    """CLI entry: print the settings (0), or the config error (2)."""
    try:
        cfg = typed_stack_config(stack, root)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key, value in ci_settings(cfg, job).items():
        print(f"{key}={value}")
    return 0
