"""CiRunner: an AWS CodeBuild-hosted GitHub Actions runner inside the stack's VPC.

A private API endpoint (prod) or one limited to a few CIDRs (dev) cannot be reached
from GitHub-hosted runners, whose addresses are not fixed: every Helm release and custom
resource of ``pulumi up`` would time out. The workflows' jobs therefore run on this
CodeBuild project, in the private subnets, with a security-group rule that admits it to
the cluster's API endpoint. The job itself still assumes the deploy or preview role
through GitHub OIDC; the project's own role may only write its logs and attach to the
VPC.

AWS: https://docs.aws.amazon.com/codebuild/latest/userguide/action-runner.html (webhook
event ``WORKFLOW_JOB_QUEUED``, job label ``codebuild-<project>-<run id>-<attempt>``) and
https://docs.aws.amazon.com/codebuild/latest/userguide/auth-and-access-control-iam-identity-based-access-control.html#customer-managed-policies-example-create-vpc-network-interface
(what a project in a VPC needs). The GitHub connection (CodeBuild source credential) is
made once per account and region by hand: README, "CI setup".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.ci.config import GITHUB_HOSTED_LABEL, CiConfig
from infra.core.arns import Arns
from infra.core.iam import assume_role_policy

IMAGE: Final = "aws/codebuild/standard:7.0"
"""Ubuntu 22.04: what actions/setup-python's prebuilt Pythons are built for."""
COMPUTE_TYPE: Final = "BUILD_GENERAL1_MEDIUM"
"""4 vCPU, 7 GB: the program, the policy pack and the Pulumi engine side by side."""
API_PORT: Final = 443


def project_name(cluster_name: str) -> str:
    """Name of the CodeBuild project; the workflows' ``runs-on`` label embeds it."""
    return f"{cluster_name}-ci-runner"


def log_group_name(cluster_name: str) -> str:
    """The project's build log group (CodeBuild's conventional name)."""
    return f"/aws/codebuild/{project_name(cluster_name)}"


def actor_filter(actor_ids: Sequence[int]) -> str:
    """``ACTOR_ACCOUNT_ID`` pattern admitting exactly these GitHub user ids."""
    return "^(" + "|".join(str(i) for i in sorted(actor_ids)) + ")$"


def runner(ci: CiConfig, cluster_name: str) -> str:
    """What a job that must reach the stack's cluster runs on: the GitHub-hosted label,
    or ``codebuild-<project>``, to which the workflow adds ``-<run id>-<attempt>`` itself
    (CodeBuild's label format; the attempt must be the job's own, also on a re-run)."""
    if ci.runner == "github-hosted":
        return GITHUB_HOSTED_LABEL
    return f"codebuild-{project_name(cluster_name)}"


def service_role_policy(arns: Arns, log_group: str, connection_arn: str) -> dict[str, Any]:
    """The project's role: its log group, the GitHub connection, and the network
    interfaces of a VPC build."""
    # The connection's service prefix is also its IAM one (codeconnections, or the older
    # codestar-connections): https://docs.aws.amazon.com/codebuild/latest/userguide/connections-github-app.html
    service = connection_arn.split(":")[2]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "UseTheGitHubConnection",
                "Effect": "Allow",
                "Action": [
                    f"{service}:GetConnection",
                    f"{service}:GetConnectionToken",
                    f"{service}:UseConnection",
                ],
                "Resource": connection_arn,
            },
            {
                "Sid": "WriteBuildLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [arns.log_group(log_group), f"{arns.log_group(log_group)}:*"],
            },
            {
                # EC2 offers no resource-level permission for these (AWS's example).
                "Sid": "DescribeVpc",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeVpcs",
                ],
                "Resource": "*",
            },
            {
                "Sid": "AttachToTheVpc",
                "Effect": "Allow",
                "Action": ["ec2:CreateNetworkInterfacePermission"],
                "Resource": arns.ec2("network-interface/*"),
                "Condition": {
                    "StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"},
                    "ArnLike": {"ec2:Subnet": [arns.ec2("subnet/*")]},
                },
            },
        ],
    }


@dataclass(frozen=True)
class CiRunnerArgs:
    """Inputs of :class:`CiRunner`."""

    config: CiConfig
    cluster_name: str
    arns: Arns
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    cluster_security_group_id: pulumi.Input[str]
    """The EKS cluster security group, which guards the API endpoint's private side."""
    log_group: pulumi.Input[str]
    """The build log group's name, :func:`log_group_name`, as the output of the group
    ``LogGroups`` creates with retention and key (so the project waits for it)."""
    tags: Mapping[str, str] = field(default_factory=dict)


class CiRunner(pulumi.ComponentResource):
    """CodeBuild project with a GitHub Actions webhook, in the VPC, allowed to the API."""

    project_name: str
    security_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: CiRunnerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:ci:CiRunner", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        self.project_name = project_name(args.cluster_name)

        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"CodeBuild GitHub Actions runner of {args.cluster_name}",
            vpc_id=args.vpc_id,
            # Jobs reach the API endpoint, AWS APIs, Pulumi Cloud and package indexes.
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"]
                )
            ],
            tags={**tags, "Name": self.project_name},
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-to-api",
            description="CI runner to the EKS API endpoint",
            security_group_id=args.cluster_security_group_id,
            referenced_security_group_id=group.id,
            ip_protocol="tcp",
            from_port=API_PORT,
            to_port=API_PORT,
            tags=tags,
            opts=child,
        )
        self.security_group_id = group.id

        role_name = f"{self.project_name}-build"
        role = aws.iam.Role(
            f"{name}-role",
            name=role_name,
            assume_role_policy=assume_role_policy("codebuild.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-role",
            role=role.id,
            # Composed from the name, not the group's output: known at preview.
            policy=json.dumps(
                service_role_policy(
                    args.arns, log_group_name(args.cluster_name), self._connection(args)
                ),
                sort_keys=True,
            ),
            opts=child,
        )
        project = aws.codebuild.Project(
            f"{name}-project",
            name=self.project_name,
            description="GitHub Actions runner for pulumi preview/up of this stack",
            service_role=role.arn,
            # A runner project takes jobs, not a buildspec; no artifacts.
            source=aws.codebuild.ProjectSourceArgs(
                type="GITHUB",
                location=f"https://github.com/{args.config.github_repository}.git",
                auth=aws.codebuild.ProjectSourceAuthArgs(
                    type="CODECONNECTIONS", resource=self._connection(args)
                ),
            ),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="NO_ARTIFACTS"),
            environment=aws.codebuild.ProjectEnvironmentArgs(
                compute_type=COMPUTE_TYPE, image=IMAGE, type="LINUX_CONTAINER"
            ),
            vpc_config=aws.codebuild.ProjectVpcConfigArgs(
                vpc_id=args.vpc_id,
                subnets=args.private_subnet_ids,
                security_group_ids=[group.id],
            ),
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                    group_name=args.log_group
                )
            ),
            # A build is one job: it may run as long as the job may (plus setup).
            build_timeout=args.config.job_timeout_minutes + 15,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        aws.codebuild.Webhook(
            f"{name}-webhook",
            project_name=project.name,
            build_type="BUILD",
            # Only jobs started by the listed people: a pull request from a fork can ask
            # for this runner's label, and the runner sits next to the API endpoint.
            filter_groups=[
                aws.codebuild.WebhookFilterGroupArgs(
                    filters=[
                        aws.codebuild.WebhookFilterGroupFilterArgs(
                            type="EVENT", pattern="WORKFLOW_JOB_QUEUED"
                        ),
                        aws.codebuild.WebhookFilterGroupFilterArgs(
                            type="ACTOR_ACCOUNT_ID",
                            pattern=actor_filter(args.config.allowed_actor_ids),
                        ),
                    ]
                )
            ],
            opts=child,
        )
        self.register_outputs(
            {"project_name": self.project_name, "security_group_id": self.security_group_id}
        )

    @staticmethod
    def _connection(args: CiRunnerArgs) -> str:
        # The config requires it for runner codebuild, the only one this component serves.
        assert args.config.github_connection_arn is not None
        return args.config.github_connection_arn
