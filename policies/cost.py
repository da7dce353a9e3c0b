"""Cost rules: every budget covers the worst case of what it scopes, every environment
has an AWS budget and every taggable AWS resource carries the cost-allocation tags.

Which types take tags is a property of the provider schema. The pack runs without the
AWS SDK installed, so :data:`TAGGABLE_TYPES` lists the taggable types this program
creates; ``tests/test_policies_cost.py`` checks the list against pulumi-aws and fails
when the stacks create a taggable type missing from it. A type outside the list is
still checked whenever its inputs carry ``tags``.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.core.conventions import (
    CAPACITY_TYPE_LABEL,
    INSTANCE_FAMILY_LABEL,
    INSTANCE_SIZE_LABEL,
    MODEL_LABEL,
    NODEPOOL_LABEL,
)
from infra.core.pricing import HOURS_PER_MONTH, PoolSpend, nodepool_spend
from policies.core import (
    Props,
    Resource,
    ResourceRule,
    Settings,
    StackRule,
    at,
    items,
    whole_number,
)
from policies.gpu import NODEPOOL, gpu_limit, gpu_pools, in_values
from policies.workloads import DEPLOYMENT, POD, gpu_containers, gpus_of

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"

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


def _pool_spends(resources: Sequence[Resource], region: str) -> dict[str, PoolSpend] | str:
    """Spend bounds of every GPU pool by NodePool name, or the message why not."""
    spends: dict[str, PoolSpend] = {}
    for pool in gpu_pools(resources):
        try:
            limit = gpu_limit(pool.props)
        except ValueError:
            limit = None
        families = in_values(pool.props, INSTANCE_FAMILY_LABEL)
        if limit is None or families is None:
            return f"GPU pool {pool.name} has no GPU limit or family list: spend is unbounded"
        name = str(at(pool.props, "metadata", "name") or pool.name)
        try:
            spends[name] = nodepool_spend(
                name,
                gpu_limit=limit,
                families=families,
                sizes=in_values(pool.props, INSTANCE_SIZE_LABEL) or [],
                capacity_types=in_values(pool.props, CAPACITY_TYPE_LABEL) or ["on-demand"],
                region=region,
                cpu_limit=whole_number(at(pool.props, "spec", "limits", "cpu")),
                memory_limit_gib=_gib(at(pool.props, "spec", "limits", "memory")),
            )
        except ValueError as exc:  # unknown family or instance type without a price
            return f"GPU pool {pool.name}: {exc}"
    return spends


def _deployment_pool(props: Props) -> str | None:
    for term in items(props, *POD, "affinity", "nodeAffinity", REQUIRED, "nodeSelectorTerms"):
        for expr in items(term, "matchExpressions"):
            if at(expr, "key") == NODEPOOL_LABEL and at(expr, "operator") == "In":
                values = items(expr, "values")
                return str(values[0]) if values else None
    return None


def _max_replicas(resources: Sequence[Resource], deployment: Resource) -> int:
    """The ScaledObject's ``maxReplicaCount`` for the Deployment, else its replicas."""
    name = at(deployment.props, "metadata", "name")
    namespace = at(deployment.props, "metadata", "namespace")
    for r in resources:
        if (
            r.type == SCALED_OBJECT
            and at(r.props, "metadata", "namespace") == namespace
            and at(r.props, "spec", "scaleTargetRef", "name") == name
        ):
            return whole_number(at(r.props, "spec", "maxReplicaCount")) or 100  # KEDA default
    return whole_number(at(deployment.props, "spec", "replicas")) or 1


def _in_scope(deployment: Resource, scope: str, target: str) -> bool:
    metadata = at(deployment.props, "metadata") or {}
    if scope == "namespace":
        return at(metadata, "namespace") == target
    return at(deployment.props, *POD[:-1], "metadata", "labels", MODEL_LABEL) == target


def _scoped_worst(
    resources: Sequence[Resource], spends: dict[str, PoolSpend], scope: str, target: str
) -> float:
    """GPU Deployments of the scope at their max replicas, their GPUs at the dearest
    per-GPU price of their pool (Kubecost shares a node's cost by requested GPUs), each
    pool capped at its own worst case."""
    by_pool: dict[str, float] = {}
    for d in resources:
        if d.type != DEPLOYMENT or not gpu_containers(d.props) or not _in_scope(d, scope, target):
            continue
        pool = _deployment_pool(d.props)
        if pool not in spends:
            raise ValueError(
                f"{DEPLOYMENT} {d.name} runs on no GPU pool of the stack ({pool}): its cost "
                "cannot be bounded"
            )
        gpus = sum(gpus_of(c) for _, c in gpu_containers(d.props))
        by_pool[pool] = by_pool.get(pool, 0.0) + (
            _max_replicas(resources, d) * gpus * spends[pool].dearest_gpu_hour_usd * HOURS_PER_MONTH
        )
    return sum(min(v, spends[k].worst_case_monthly_usd) for k, v in by_pool.items())


def check_budgets(resources: Sequence[Resource], settings: Settings) -> list[str]:
    """Each budget against the worst case of what it covers: a cluster budget against the
    GPU pools (priced from the NodePools) plus the rest of the stack (priced from config,
    ``platformWorstCaseMonthlyUsd``); a namespace or model budget against its GPU pods."""
    region = str(settings["region"])
    spends = _pool_spends(resources, region)
    if isinstance(spends, str):
        return [spends]
    gpu = sum(s.worst_case_monthly_usd for s in spends.values())
    platform = float(settings["platformWorstCaseMonthlyUsd"])
    parts = "; ".join(
        f"{s.pool} {s.worst_case_monthly_usd:,.2f} = {s.worst_instances} x {s.worst_instance_type}"
        for s in spends.values()
    )
    problems = []
    for budget in settings["budgets"]:
        amount = float(budget["monthlyUsd"])
        scope = str(budget["scope"])
        if scope == "cluster":
            worst = gpu + platform
            what = f"GPU pools {gpu:,.2f} ({parts}) + rest of the stack {platform:,.2f}"
        else:
            try:
                worst = _scoped_worst(resources, spends, scope, str(budget["target"]))
            except ValueError as exc:
                problems.append(f"budget {budget['name']}: {exc}")
                continue
            what = f"GPU pods of {scope} {budget['target']} at their max replicas"
        if worst > amount:
            problems.append(
                f"budget {budget['name']}: worst-case monthly spend USD {worst:,.2f} ({what}) "
                f"exceeds USD {amount:,.2f}"
            )
    return problems


RULES = (
    StackRule(
        name="cost-worst-case-within-budgets",
        description="Every budget covers the worst-case monthly spend of what it scopes: "
        "the whole stack for a cluster budget, the GPU pods for a namespace or model budget.",
        default_level="mandatory",
        settings={
            "region": {"type": "string"},
            "platformWorstCaseMonthlyUsd": {"type": "number", "minimum": 0},
            "budgets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "scope", "monthlyUsd"],
                    "properties": {
                        "name": {"type": "string"},
                        "scope": {"enum": ["cluster", "namespace", "model"]},
                        "target": {"type": "string"},
                        "monthlyUsd": {"type": "number", "minimum": 0},
                    },
                },
            },
        },
        types=frozenset({NODEPOOL, DEPLOYMENT, SCALED_OBJECT}),
        check=check_budgets,
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
