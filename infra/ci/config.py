"""The ``ci`` section: the roles and runner CI deploys and previews the stack with."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field

from infra.core.arns import same_principal
from infra.core.schema import IamRoleArn, Section

GITHUB_HOSTED_LABEL = "ubuntu-24.04"
"""Label of the GitHub-hosted runner the workflows use when ``runner`` is ``github-hosted``."""


class CiConfig(Section):
    """How CI deploys and previews the stack (README, "CI setup").

    The workflows read these values from the stack file (``python -m tools ci-settings``),
    so the roles they assume and the runner they use are reviewed with the stack."""

    deploy_role_arn: IamRoleArn
    """Role ``pulumi-up.yml`` assumes through GitHub OIDC. It runs the first ``pulumi up``
    (README, "First deploy of a new environment") and so creates the cluster: EKS gives it
    an admin access entry of its own, and it must not be in ``cluster.admins``."""
    preview_role_arn: IamRoleArn
    """Read-only role ``preview.yml`` assumes; it gets a read-only access entry
    (``AmazonEKSAdminViewPolicy``)."""
    runner: Literal["codebuild", "github-hosted"] = "codebuild"
    """Where the jobs run: ``codebuild``, an AWS CodeBuild-hosted GitHub Actions runner the
    stack creates in its private subnets, allowed to the API endpoint (default); or
    ``github-hosted``, only for an endpoint open to the internet (GitHub's runners have
    no fixed addresses)."""
    github_repository: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    """``owner/name`` of the repository whose workflow jobs the CodeBuild runner takes."""
    github_connection_arn: (
        Annotated[
            str,
            Field(
                pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:"
                r"\d{12}:connection/[0-9a-f-]+$"
            ),
        ]
        | None
    ) = None
    """The AWS CodeConnections connection to GitHub the CodeBuild runner authenticates
    with (made once per account by hand: README, "CI setup"); required for ``codebuild``."""
    allowed_actor_ids: tuple[Annotated[int, Field(ge=1)], ...] = ()
    """Numeric GitHub user ids whose workflow jobs the CodeBuild runner may take: the
    runner sits inside the VPC, next to the API endpoint, and a pull request from a fork
    can ask for its label. Required for ``codebuild``; ids from
    ``gh api users/<login> --jq .id``."""
    job_timeout_minutes: Annotated[int, Field(ge=30, le=720)] = 180
    """Longest a deploy job may run; the slowest first deploy (cluster, nodes, charts,
    model rollouts) takes about 90 minutes (default 180). The STS session of the job and
    the CodeBuild build timeout are derived from it."""

    def check(self, at: str) -> list[str]:
        problems: list[str] = []
        if same_principal(self.preview_role_arn, self.deploy_role_arn):
            problems.append(
                f"{at}.previewRoleArn = {json.dumps(self.preview_role_arn)}: must differ "
                "from ci.deployRoleArn (previews run read-only)"
            )
        if self.runner == "codebuild":
            if self.github_connection_arn is None:
                problems.append(
                    f"{at}.githubConnectionArn: required for runner codebuild (the CodeBuild "
                    'connection to GitHub, made once per account: README, "CI setup")'
                )
            if not self.allowed_actor_ids:
                problems.append(
                    f"{at}.allowedActorIds = []: runner codebuild needs the GitHub user ids "
                    "whose jobs may run inside the VPC (a fork's pull request could ask for it)"
                )
        return problems
