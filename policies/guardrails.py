"""Environment guardrails: what a platform team expects every stack of an environment
to keep, each switched and sized by a setting of the environment's pack config (and
bounded by its baseline, ``policies/baselines/``).

All of them read values the stack config decides, so they are decidable at the first
preview of a new stack: counts of resources, requirement lists, replica counts, AMI
aliases, CIDR lists, budget subscribers whose ARNs are composed from the account and
region (``infra.core.arns``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.core.conventions import CAPACITY_TYPE_LABEL, WARM_SLOT_PRIORITY_CLASS
from policies.core import (
    Props,
    Resource,
    ResourceRule,
    Settings,
    StackRule,
    Unverifiable,
    at,
    items,
    render_path,
    whole_number,
)
from policies.gpu import NODEPOOL, gpu_pools, in_values
from policies.security import EC2NODECLASS, LOG_GROUP
from policies.workloads import DEPLOYMENT, gpu_containers

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
SUBNET = "aws:ec2/subnet:Subnet"
BUDGET = "aws:budgets/budget:Budget"
TOPIC_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
KUBECOST_CHART = "cost-analyzer"


# --------------------------------------------------------------------------- capacity


def _allows(pool: Resource, capacity_type: str) -> bool:
    return capacity_type in (in_values(pool.props, CAPACITY_TYPE_LABEL) or [])


def _weight(pool: Resource) -> int:
    """Karpenter's ``spec.weight`` (absent: 0, tried last)."""
    return whole_number(at(pool.props, "spec", "weight")) or 0


def check_on_demand_fallback(resources: Sequence[Resource], settings: Settings) -> list[str]:
    """A spot pool falls back to on-demand inside itself, or Karpenter has an on-demand
    pool of lower weight to try next (the weighted-pools pattern)."""
    if not settings["requireOnDemandFallback"]:
        return []
    pools = gpu_pools(resources)
    problems = []
    for pool in pools:
        if not _allows(pool, "spot") or _allows(pool, "on-demand"):
            continue
        if any(_allows(p, "on-demand") and _weight(p) < _weight(pool) for p in pools):
            continue
        problems.append(
            f"GPU pool {pool.name} allows spot only and no on-demand GPU pool of lower weight "
            "follows it: a spot shortage leaves its pods Pending (allow on-demand in it, or "
            "add an on-demand pool with a lower weight)"
        )
    return problems


def check_min_replicas(type_: str, props: Props, settings: Settings) -> list[str] | None:
    """Serving Deployments (GPU containers) and their ScaledObjects keep the minimum;
    warm-slot placeholders hold capacity for models and are no model."""
    minimum = int(settings["minReplicas"])
    if type_ == DEPLOYMENT:
        if not gpu_containers(props):
            return None
        if at(props, "spec", "template", "spec", "priorityClassName") == WARM_SLOT_PRIORITY_CLASS:
            return None
        key: tuple[str, ...] = ("spec", "replicas")
        value = at(props, *key)
        value = 1 if value is None else whole_number(value)
    else:
        key = ("spec", "minReplicaCount")
        value = at(props, *key)
        value = 0 if value is None else whole_number(value)  # KEDA's default is 0
    if value is None or value < minimum:
        return [f"{render_path(key)} = {value}: below the environment minimum of {minimum}"]
    return []


# --------------------------------------------------------------------------- nodes


def check_pinned_ami(_t: str, props: Props, settings: Settings) -> list[str] | None:
    if not settings["requirePinnedAmi"]:
        return []
    problems = []
    for i, term in enumerate(items(props, "spec", "amiSelectorTerms")):
        alias = at(term, "alias")
        if isinstance(alias, str) and alias.endswith("@latest"):
            problems.append(
                f"spec.amiSelectorTerms[{i}].alias = {alias}: nodes change image whenever AWS "
                "publishes one; pin a version (nodeClass.amiVersion)"
            )
    return problems


# --------------------------------------------------------------------------- logs, network


def check_log_group_kms(_t: str, props: Props, _s: Settings) -> list[str]:
    try:
        key = at(props, "kmsKeyId")
    except Unverifiable:
        return []  # set to a key created in the same update: set, which is what counts
    if key:
        return []
    return ["kmsKeyId is not set: the log group is not encrypted with a KMS key"]


def check_nat_per_zone(resources: Sequence[Resource], settings: Settings) -> list[str]:
    if not settings["requireNatPerZone"]:
        return []
    zones = sorted({str(at(r.props, "availabilityZone")) for r in resources if r.type == SUBNET})
    nats = [r for r in resources if r.type == NAT_GATEWAY]
    if len(nats) >= len(zones):
        return []
    return [
        f"{len(nats)} NAT gateway(s) for {len(zones)} zones ({', '.join(zones)}): a zone "
        "outage cuts the egress of the others (network.natGateways: perZone)"
    ]


# --------------------------------------------------------------------------- budgets


def _values(release: Resource) -> Any:
    return at(release.props, "values")


def check_budget_recipients(resources: Sequence[Resource], _s: Settings) -> list[str]:
    """Every AWS budget notification and every Kubecost budget alert reaches someone."""
    subscribed = {str(at(r.props, "topic")) for r in resources if r.type == TOPIC_SUBSCRIPTION}
    problems = []
    for budget in (r for r in resources if r.type == BUDGET):
        for i, n in enumerate(items(budget.props, "notifications")):
            emails = items(n, "subscriberEmailAddresses")
            topics = [str(t) for t in items(n, "subscriberSnsTopicArns")]
            if emails or any(t in subscribed for t in topics):
                continue
            problems.append(
                f"{BUDGET} {budget.name}: notifications[{i}] has no email subscriber and no "
                "SNS topic with a subscription"
            )
    for release in (r for r in resources if r.type == HELM_RELEASE):
        if at(release.props, "chart") != KUBECOST_CHART:
            continue
        configs = at(_values(release), "global", "notifications", "alertConfigs") or {}
        if items(configs, "globalAlertEmails"):
            continue
        for i, alert in enumerate(items(configs, "alerts")):
            if not items(alert, "ownerContact"):
                problems.append(
                    f"{HELM_RELEASE} {release.name}: alertConfigs.alerts[{i}] "
                    f"({at(alert, 'aggregation')} {at(alert, 'filter')}) has no ownerContact "
                    "and there are no globalAlertEmails"
                )
    return problems


RULES = (
    StackRule(
        name="gpu-capacity-has-on-demand-fallback",
        description="Spot GPU capacity falls back to on-demand (in the pool or through a "
        "lower-weight on-demand pool) where the environment requires it.",
        default_level="mandatory",
        settings={"requireOnDemandFallback": {"type": "boolean"}},
        types=frozenset({NODEPOOL}),
        check=check_on_demand_fallback,
    ),
    ResourceRule(
        name="model-min-replicas",
        description="Model Deployments and their ScaledObjects keep the environment's "
        "minimum replica count.",
        default_level="mandatory",
        settings={"minReplicas": {"type": "integer", "minimum": 1}},
        types=frozenset({DEPLOYMENT, SCALED_OBJECT}),
        check=check_min_replicas,
    ),
    ResourceRule(
        name="node-ami-pinned",
        description="Node classes pin their AMI version (no @latest) where the environment "
        "requires it.",
        default_level="mandatory",
        settings={"requirePinnedAmi": {"type": "boolean"}},
        types=frozenset({EC2NODECLASS}),
        check=check_pinned_ami,
    ),
    ResourceRule(
        name="log-group-kms-encrypted",
        description="CloudWatch log groups are encrypted with a KMS key.",
        default_level="mandatory",
        types=frozenset({LOG_GROUP}),
        check=check_log_group_kms,
    ),
    StackRule(
        name="network-nat-per-zone",
        description="One NAT gateway per zone where the environment requires it.",
        default_level="mandatory",
        settings={"requireNatPerZone": {"type": "boolean"}},
        types=frozenset({NAT_GATEWAY, SUBNET}),
        check=check_nat_per_zone,
    ),
    StackRule(
        name="budget-has-recipient",
        description="Every AWS budget notification and Kubecost budget alert has a recipient.",
        default_level="mandatory",
        types=frozenset({BUDGET, TOPIC_SUBSCRIPTION, HELM_RELEASE}),
        check=check_budget_recipients,
    ),
)
