"""ARNs composed from what the stack config says, so they are known at preview.

A resource's ``arn`` output is unknown until the resource exists: an IAM or resource
policy built from it cannot be checked by the policy pack during the first
``pulumi preview`` of a new stack (CrossGuard sees an unknown document, and a mandatory
rule fails). Every resource a policy names therefore gets an explicit physical name, and
its ARN is composed here from the partition, region, account and that name.

ARN formats: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference-arns.html and
each service's "Actions, resources, and condition keys" page.
"""

from __future__ import annotations

from dataclasses import dataclass


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to (``aws``, ``aws-cn`` or ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class Arns:
    """ARN builder for one account and region."""

    account_id: str
    region: str

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    @property
    def root(self) -> str:
        """The account principal (key policies delegate to IAM through it)."""
        return f"arn:{self.partition}:iam::{self.account_id}:root"

    def iam_role(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role/{name}"

    def instance_profiles(self) -> str:
        """Every instance profile of the account (Karpenter names them itself)."""
        return f"arn:{self.partition}:iam::{self.account_id}:instance-profile/*"

    def sqs_queue(self, name: str) -> str:
        return f"arn:{self.partition}:sqs:{self.region}:{self.account_id}:{name}"

    def sns_topic(self, name: str) -> str:
        return f"arn:{self.partition}:sns:{self.region}:{self.account_id}:{name}"

    def s3_bucket(self, name: str) -> str:
        return f"arn:{self.partition}:s3:::{name}"

    def log_group(self, name: str) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account_id}:log-group:{name}"

    def eks_cluster(self, name: str) -> str:
        return f"arn:{self.partition}:eks:{self.region}:{self.account_id}:cluster/{name}"

    def budgets(self) -> str:
        """Every budget of the account (AWS Budgets is global: no region)."""
        return f"arn:{self.partition}:budgets::{self.account_id}:*"

    def ec2(self, resource: str, *, account: bool = True) -> str:
        """An EC2 resource pattern such as ``instance/*``; public images and snapshots
        have no account (``arn:aws:ec2:<region>::image/*``)."""
        owner = "*" if account else ""
        return f"arn:{self.partition}:ec2:{self.region}:{owner}:{resource}"

    def ssm_public_parameters(self) -> str:
        """AWS-owned public SSM parameters (AMI ids): ``/aws/service/*``."""
        return f"arn:{self.partition}:ssm:{self.region}::parameter/aws/service/*"


def _principal(arn: str) -> tuple[str, str, str] | None:
    """``(account, "role" | "user", name)`` of an IAM role or user ARN, or of an STS
    session of a role (``assumed-role/<name>/<session>``); ``None`` for anything else."""
    parts = arn.split(":")
    if len(parts) < 6:
        return None
    kind, _, rest = parts[5].partition("/")
    if kind == "assumed-role":
        return parts[4], "role", rest.split("/")[0]
    if kind in ("role", "user") and rest:
        # IAM names are unique per account whatever their path.
        return parts[4], kind, rest.rsplit("/", 1)[-1]
    return None


def same_principal(a: str, b: str) -> bool:
    """Whether two ARNs name the same IAM role or user. A role's session keeps the
    role's name but not its path, so roles compare by account and name."""
    first, second = _principal(a), _principal(b)
    return first is not None and first == second
