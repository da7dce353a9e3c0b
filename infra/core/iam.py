"""IAM documents and managed policies shared by the components."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.core.ordering import ClusterRef

# Policies of every node role: the system node group's and Karpenter's nodes'.
NODE_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    # The VPC CNI runs with the node role's rights (the add-on's default).
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)


def allow_policy(sid: str, actions: list[str], resources: list[str]) -> str:
    """A policy document of one ``Allow`` statement (JSON, keys sorted)."""
    statement = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


def assume_role_policy(service: str, *, tag_session: bool = False) -> str:
    """Trust policy letting an AWS service principal assume a role.

    EKS Pod Identity (``pods.eks.amazonaws.com``) needs ``sts:TagSession`` as well.
    """
    actions = ["sts:AssumeRole", "sts:TagSession"] if tag_session else ["sts:AssumeRole"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class PodIdentity:
    """An IAM role that pods of one service account assume through EKS Pod Identity."""

    role: aws.iam.Role
    association: aws.eks.PodIdentityAssociation


def pod_identity(
    resource_name: str,
    *,
    cluster: ClusterRef,
    namespace: str,
    service_account: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    role_name: str | None = None,
    association_name: str | None = None,
) -> PodIdentity:
    """The role (``role_name``: its physical name, else one Pulumi makes up) and its
    association (resource ``association_name``, default ``resource_name``). Credentials
    are injected when a pod starts: make the pods wait for ``association``."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        resource_name,
        name=role_name,
        assume_role_policy=assume_role_policy("pods.eks.amazonaws.com", tag_session=True),
        tags=dict(tags),
        opts=child,
    )
    association = aws.eks.PodIdentityAssociation(
        association_name or resource_name,
        cluster_name=cluster.ready,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        tags=dict(tags),
        opts=child,
    )
    return PodIdentity(role, association)
