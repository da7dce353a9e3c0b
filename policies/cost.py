"""Cost rules: every environment has an AWS budget and every taggable AWS resource
carries the cost-allocation tags.

Which types take tags is a property of the provider schema. The pack runs without the
AWS SDK installed, so :data:`TAGGABLE_TYPES` lists the taggable types this program
creates; ``tests/test_policies_cost.py`` checks the list against pulumi-aws and fails
when the stacks create a taggable type missing from it. A type outside the list is
still checked whenever its inputs carry ``tags``.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.core.conventions import CAPACITY_TYPE_LABEL, INSTANCE_FAMILY_LABEL, INSTANCE_SIZE_LABEL
from infra.core.pricing import nodepool_spend
from policies.core import Props, Resource, ResourceRule, Settings, StackRule, at, whole_number
from policies.gpu import NODEPOOL, gpu_limit, gpu_pools, in_values

BUDGET = "aws:budgets/budget:Budget"

TAGGABLE_TYPES = frozenset(
    {
        "aws:budgets/budget:Budget",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:codebuild/project:Project",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:ec2/eip:Eip",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/addon:Addon",
        "aws:eks/cluster:Cluster",
        "aws:eks/nodeGroup:NodeGroup",
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/policy:Policy",
        "aws:iam/role:Role",
        "aws:kms/key:Key",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketV2:BucketV2",
        "aws:secretsmanager/secret:Secret",
        "aws:sns/topic:Topic",
        "aws:sqs/queue:Queue",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "eks:index:Cluster",
    }
)


def check_tags(type_: str, props: Props, settings: Settings) -> list[str] | None:
    if type_ not in TAGGABLE_TYPES and "tags" not in props:
        return None
    required = list(settings["requiredTags"])
    tags = at(props, "tags")
    if not isinstance(tags, dict) or not tags:
        return [f"tags is not set; required: {', '.join(required)}"]
    missing = [key for key in required if not at(tags, key)]
    if missing:
        return [f"tags lack {', '.join(missing)} (required: {', '.join(required)})"]
    return []


def check_budget_exists(resources: Sequence[Resource], _s: Settings) -> list[str]:
    if any(r.type == BUDGET for r in resources):
        return []
    return [f"the stack creates no {BUDGET}: every environment needs a budget that alerts"]


def _gib(quantity: object) -> float | None:
    """A NodePool memory limit (``256Gi``, as the platform renders it) in GiB; ``None``
    (unbounded in the estimate) for any other form."""
    if isinstance(quantity, str) and quantity.endswith("Gi") and quantity[:-2].isdigit():
        return float(quantity[:-2])
    return None


def check_worst_case(resources: Sequence[Resource], settings: Settings) -> list[str]:
    """Worst case of every GPU pool from its GPU limit and allowed types
    (``infra.core.pricing``), summed, against the environment budget."""
    budget = float(settings["monthlyBudgetUsd"])
    total = 0.0
    parts = []
    for pool in gpu_pools(resources):
        try:
            limit = gpu_limit(pool.props)
        except ValueError:
            limit = None
        families = in_values(pool.props, INSTANCE_FAMILY_LABEL)
        if limit is None or families is None:
            return [f"GPU pool {pool.name} has no GPU limit or family list: spend is unbounded"]
        try:
            spend = nodepool_spend(
                pool.name,
                gpu_limit=limit,
                families=families,
                sizes=in_values(pool.props, INSTANCE_SIZE_LABEL) or [],
                capacity_types=in_values(pool.props, CAPACITY_TYPE_LABEL) or ["on-demand"],
                region=str(settings["region"]),
                cpu_limit=whole_number(at(pool.props, "spec", "limits", "cpu")),
                memory_limit_gib=_gib(at(pool.props, "spec", "limits", "memory")),
            )
        except ValueError as exc:  # unknown family or instance type without a price
            return [f"GPU pool {pool.name}: {exc}"]
        total += spend.worst_case_monthly_usd
        parts.append(
            f"{pool.name} {spend.worst_case_monthly_usd:,.2f} = {spend.worst_instances} x "
            f"{spend.worst_instance_type}"
        )
    if total > budget:
        return [
            f"worst-case monthly GPU spend USD {total:,.2f} ({'; '.join(parts)}) exceeds the "
            f"budget USD {budget:,.2f}"
        ]
    return []


RULES = (
    StackRule(
        name="cost-gpu-worst-case-within-budget",
        description="The worst-case monthly spend of all GPU NodePools (on demand, at their "
        "GPU limits) fits the environment budget.",
        default_level="mandatory",
        settings={
            "monthlyBudgetUsd": {"type": "number", "minimum": 0},
            "region": {"type": "string"},
        },
        types=frozenset({NODEPOOL}),
        check=check_worst_case,
    ),
    StackRule(
        name="cost-budget-defined",
        description="Every environment defines at least one AWS budget.",
        default_level="mandatory",
        types=frozenset({BUDGET}),
        check=check_budget_exists,
    ),
    ResourceRule(
        name="cost-tags-required",
        description="Every taggable AWS resource carries the cost-allocation tags.",
        default_level="mandatory",
        settings={"requiredTags": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        check=check_tags,
    ),
)
