"""Customer-managed KMS keys: rotated yearly, 30 days to cancel a deletion, and an
alias ``alias/eks/<name>`` so the key is recognisable in the console."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws


def kms_key(
    resource_name: str,
    *,
    alias: str,
    description: str,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    policy: str | None = None,
) -> aws.kms.Key:
    """The key and its alias ``alias/eks/<alias>``; ``policy`` replaces the default key
    policy (which delegates to IAM)."""
    child = pulumi.ResourceOptions(parent=parent)
    key = aws.kms.Key(
        resource_name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags=dict(tags),
        opts=child,
    )
    aws.kms.Alias(resource_name, name=f"alias/eks/{alias}", target_key_id=key.key_id, opts=child)
    return key
