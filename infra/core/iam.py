"""IAM documents and managed policies shared by the components."""

from __future__ import annotations

import json

# Policies of every node role: the system node group's and Karpenter's nodes'.
NODE_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    # The VPC CNI runs with the node role's rights (the add-on's default).
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)


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
