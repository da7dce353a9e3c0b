"""AWS regions the platform supports and their availability zones.

A region is supported when the price table (``infra.core.pricing``) has its prices: the
cost estimate, the budget check and the policy pack need them. Each supported region
lists every zone name EC2 offers there (``aws ec2 describe-availability-zones --region
<region> --filters Name=zone-type,Values=availability-zone``; AWS "Regions and Zones",
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-regions-availability-zones.html),
checked 2026-12-01. Zone *names* map to different physical zones (zone IDs) per account,
but every account sees these names. A zone outside the list does not exist: the subnets
would fail to create on the first ``pulumi up``.
"""

from __future__ import annotations

from typing import Final

ZONES: Final[dict[str, tuple[str, ...]]] = {
    # use1-az1 ... use1-az6; us-east-1e (use1-az3) offers few current instance types.
    "us-east-1": tuple(f"us-east-1{z}" for z in "abcdef"),
    # usw2-az1 ... usw2-az4.
    "us-west-2": tuple(f"us-west-2{z}" for z in "abcd"),
}
"""Availability zone names per supported region."""

MIN_ZONES: Final = 2
"""EKS requires subnets in at least two availability zones (CreateCluster rejects fewer:
https://docs.aws.amazon.com/eks/latest/userguide/network-reqs.html)."""
