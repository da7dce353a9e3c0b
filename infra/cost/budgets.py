"""Cost budgets: one typed definition, three renderings.

Each ``cost.budgets[]`` entry of the stack config becomes a :class:`Budget` and is
rendered into

1. Kubecost budget alerts (``global.notifications.alertConfigs`` of the cost-analyzer
   chart; :func:`kubecost_alert_configs`, used by ``infra.cost.kubecost``);
2. an AWS Budget (monthly COST, filtered on the ``cost-center`` cost-allocation tag,
   notifications to an encrypted SNS topic) for budgets of scope ``cluster``: AWS billing
   does not know namespaces or pods, so narrower scopes live in Kubecost and Prometheus;
3. PrometheusRule alerts on Kubecost/OpenCost metrics (:func:`cost_rule_group`): daily
   cost over the budget's daily share, and a GPU cost spike.

Rolling alerts (Kubecost windows are at most 7 days, PromQL sees the current rate) cannot
measure month-to-date spend; they compare the *daily run rate* with the budget's daily
share (``monthly_usd * 24 / 730``) scaled by each threshold: "at this rate the month
would use X% of the budget". Month-to-date thresholds are the AWS Budget's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.core.alerting import AlertRule, RuleGroup, rule_file, runbook_url
from infra.core.arns import Arns
from infra.core.conventions import COST_CENTER_TAG, MODEL_LABEL
from infra.core.pricing import HOURS_PER_MONTH
from infra.cost.config import BudgetConfig, BudgetScope

MAX_AWS_NOTIFICATIONS = 5
"""AWS Budgets accepts at most five notifications per budget."""
GPU_SPIKE_FACTOR = 1.5
"""GPU cost spike: hourly GPU cost above this multiple of the same time yesterday."""
BUDGET_ALERT_FOR = "1h"
GPU_SPIKE_FOR = "30m"
_GIB = 1024**3


@dataclass(frozen=True)
class Budget:
    """One cost budget: what it covers, how much a month, when to tell whom."""

    name: str
    scope: BudgetScope
    monthly_usd: float
    thresholds_percent: tuple[int, ...]
    target: str | None = None
    """Namespace or model name; ``None`` for the cluster."""
    notify_emails: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.monthly_usd <= 0:
            raise ValueError(f"monthly_usd ({self.monthly_usd}) must be > 0")
        if not self.thresholds_percent or not all(t > 0 for t in self.thresholds_percent):
            raise ValueError(
                f"thresholds_percent ({self.thresholds_percent}) must be positive percentages"
            )
        if len(set(self.thresholds_percent)) + 1 > MAX_AWS_NOTIFICATIONS:
            raise ValueError(
                f"thresholds_percent ({self.thresholds_percent}) allows at most "
                f"{MAX_AWS_NOTIFICATIONS - 1} thresholds (AWS budget notification limit)"
            )
        if (self.scope == "cluster") != (self.target is None):
            raise ValueError(
                f"target ({self.target}) must be None exactly when scope is cluster "
                f"(scope is {self.scope})"
            )

    @classmethod
    def from_config(cls, cfg: BudgetConfig) -> Budget:
        return cls(
            name=cfg.name,
            scope=cfg.scope,
            target=cfg.target,
            monthly_usd=cfg.monthly_usd,
            thresholds_percent=tuple(sorted(set(cfg.thresholds_percent))),
            notify_emails=cfg.notify_emails,
        )

    @property
    def daily_share_usd(self) -> float:
        """The budget's share of one day (730-hour month, like the estimator)."""
        return self.monthly_usd * 24 / HOURS_PER_MONTH

    def daily_threshold_usd(self, percent: int) -> float:
        return round(self.daily_share_usd * percent / 100, 2)


# --------------------------------------------------------------------------- Kubecost


def kubecost_alert_configs(budgets: Sequence[Budget], cluster_id: str) -> dict[str, Any]:
    """``global.notifications.alertConfigs`` of the cost-analyzer chart (2.8.x).

    Keys as in the chart's values.yaml and the Kubecost alerts doc: ``type: budget``,
    ``threshold`` (currency amount per window), ``window`` (``1d``), ``aggregation``,
    ``filter`` (one value for budget alerts), optional ``ownerContact``. There is no
    ``enabled`` key: the chart renders ``alerts.json`` whenever ``alertConfigs`` is set.
    One alert per threshold, at the threshold's share of the daily budget.
    """
    alerts: list[dict[str, Any]] = []
    for budget in budgets:
        aggregation, value = _kubecost_scope(budget, cluster_id)
        for percent in budget.thresholds_percent:
            alert: dict[str, Any] = {
                "type": "budget",
                "threshold": budget.daily_threshold_usd(percent),
                "window": "1d",
                "aggregation": aggregation,
                "filter": value,
            }
            if budget.notify_emails:
                alert["ownerContact"] = list(budget.notify_emails)
            alerts.append(alert)
    return {"alerts": alerts}


def _kubecost_scope(budget: Budget, cluster_id: str) -> tuple[str, str]:
    if budget.scope == "cluster":
        return "cluster", cluster_id
    if budget.scope == "namespace":
        return "namespace", str(budget.target)
    # Kubecost aggregates by Prometheus-sanitised label names ("label:app_kubernetes_io_name").
    return f"label:{_prometheus_label(MODEL_LABEL)}", str(budget.target)


def _prometheus_label(kubernetes_label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in kubernetes_label)


# --------------------------------------------------------------------------- PrometheusRules


def hourly_cost_expr(budget: Budget) -> str:
    """PromQL for the hourly cost a budget covers (Kubecost/OpenCost cost-model metrics).

    Cluster: ``node_total_hourly_cost`` of every node. Namespace and model: allocated CPU,
    memory (per GiB) and GPUs priced at their node's hourly rates; each term ``or
    vector(0)`` so that a scope without, say, GPU pods still has a cost.
    """
    if budget.scope == "cluster":
        return "sum(node_total_hourly_cost)"
    terms = []
    for allocation, price, scale in (
        ("container_cpu_allocation", "node_cpu_hourly_cost", ""),
        ("container_memory_allocation_bytes", "node_ram_hourly_cost", f" / {_GIB}"),
        ("container_gpu_allocation", "node_gpu_hourly_cost", ""),
    ):
        if budget.scope == "namespace":
            selected = f'{allocation}{{namespace="{budget.target}"}}'
        else:
            label = f"label_{_prometheus_label(MODEL_LABEL)}"
            selected = (
                f"({allocation} * on (namespace, pod) group_left () "
                f'max by (namespace, pod) (kube_pod_labels{{{label}="{budget.target}"}}))'
            )
        terms.append(
            f"(sum({selected}{scale} * on (node) group_left () max by (node) ({price}))"
            " or vector(0))"
        )
    return " + ".join(terms)


def gpu_hourly_cost_expr(offset: str = "") -> str:
    """GPU spend per hour (``node_gpu_hourly_cost`` is per GPU), optionally ``offset``."""
    shift = f" offset {offset}" if offset else ""
    return f"sum(node_gpu_hourly_cost{shift} * node_gpu_count{shift})"


def cost_alerts(budgets: Sequence[Budget], runbook_base_url: str) -> list[AlertRule]:
    """Daily-cost alerts for every budget and threshold, and the GPU cost spike alert."""
    alerts = []
    for budget in budgets:
        what = budget.scope if budget.target is None else f"{budget.scope} {budget.target}"
        for percent in budget.thresholds_percent:
            limit = budget.daily_threshold_usd(percent)
            alerts.append(
                AlertRule(
                    name="CostDailyOverBudgetShare",
                    expr=f"({hourly_cost_expr(budget)}) * 24 > {limit}",
                    for_=BUDGET_ALERT_FOR,
                    # Below 100% the rate is a heads-up; at or above, the month overruns.
                    severity="warning" if percent >= 100 else "info",
                    summary=f"Budget {budget.name}: daily cost above {percent}% of its share",
                    description=(
                        f'The {what} costs {{{{ $value | printf "%.2f" }}}} USD a day at '
                        f"the current rate, above {percent}% of the daily share of budget "
                        f"{budget.name} (USD {budget.monthly_usd:,.0f} a month): USD {limit}."
                    ),
                    runbook_url=runbook_url(runbook_base_url, "CostDailyOverBudgetShare"),
                    labels={"budget": budget.name, "threshold_percent": str(percent)},
                )
            )
    alerts.append(
        AlertRule(
            name="GpuCostSpike",
            expr=f"{gpu_hourly_cost_expr()} > {GPU_SPIKE_FACTOR} * {gpu_hourly_cost_expr('1d')}",
            for_=GPU_SPIKE_FOR,
            severity="warning",
            summary="GPU cost per hour jumped compared with yesterday",
            description=(
                'GPU nodes cost {{ $value | printf "%.2f" }} USD an hour, more than '
                f"{GPU_SPIKE_FACTOR}x the same time yesterday: check NodePool scale-ups."
            ),
            runbook_url=runbook_url(runbook_base_url, "GpuCostSpike"),
        )
    )
    return alerts


def cost_rule_group(budgets: Sequence[Budget], runbook_base_url: str) -> dict[str, Any]:
    """``spec`` of the cost PrometheusRule: one group with every cost alert."""
    group = RuleGroup("llm-platform-cost", tuple(cost_alerts(budgets, runbook_base_url)))
    return rule_file([group])


# --------------------------------------------------------------------------- AWS Budgets


def aws_budget_filter(tags: Mapping[str, str]) -> list[aws.budgets.BudgetCostFilterArgs]:
    """Cost filter on the platform's cost-allocation tag (``user:<key>$<value>``)."""
    value = f"user:{COST_CENTER_TAG}${tags[COST_CENTER_TAG]}"
    return [aws.budgets.BudgetCostFilterArgs(name="TagKeyValue", values=[value])]


def aws_budget_notifications(
    budget: Budget, topic_arn: pulumi.Input[str]
) -> list[aws.budgets.BudgetNotificationArgs]:
    """ACTUAL at each threshold, FORECASTED at 100%, all to the SNS topic."""

    def notification(kind: str, percent: int) -> aws.budgets.BudgetNotificationArgs:
        return aws.budgets.BudgetNotificationArgs(
            comparison_operator="GREATER_THAN",
            notification_type=kind,
            threshold=float(percent),
            threshold_type="PERCENTAGE",
            subscriber_sns_topic_arns=[topic_arn],
        )

    return [notification("ACTUAL", p) for p in budget.thresholds_percent] + [
        notification("FORECASTED", 100)
    ]


def sns_topic_policy(topic_arn: str, arns: Arns) -> str:
    """Topic policy: only AWS Budgets of this account may publish."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowBudgetsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "budgets.amazonaws.com"},
                    "Action": "SNS:Publish",
                    "Resource": topic_arn,
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": arns.account_id},
                        "ArnLike": {"aws:SourceArn": arns.budgets()},
                    },
                }
            ],
        },
        sort_keys=True,
    )


def kms_key_policy(arns: Arns) -> str:
    """Key policy of the topic's CMK: the account administers it; AWS Budgets may encrypt.

    The AWS-managed ``alias/aws/sns`` key cannot be used: its policy admits no service
    principal, so AWS Budgets could not publish to the encrypted topic.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": arns.root},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "AllowBudgetsToEncrypt",
                    "Effect": "Allow",
                    "Principal": {"Service": "budgets.amazonaws.com"},
                    "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": arns.account_id}},
                },
            ],
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class AwsBudgetsArgs:
    """Inputs of :class:`AwsBudgets`."""

    budgets: tuple[Budget, ...]
    stack: str
    """Prefix of the AWS budget names (they are unique per account) and of the topic's."""
    arns: Arns
    tags: Mapping[str, str]
    """Cost tags; must hold the cost-allocation tag the budgets filter on."""
    activate_cost_allocation_tag: bool = False


class AwsBudgets(pulumi.ComponentResource):
    """AWS Budgets for the cluster-scope budgets, notifying through an encrypted SNS topic."""

    topic_arn: pulumi.Output[str]
    budget_names: list[str]

    def __init__(
        self, name: str, args: AwsBudgetsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:cost:AwsBudgets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic_name = f"{args.stack}-budget-alerts"

        key = aws.kms.Key(
            f"{name}-topic",
            description=f"SNS budget alerts of stack {args.stack}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=kms_key_policy(args.arns),
            tags=dict(args.tags),
            opts=child,
        )
        topic = aws.sns.Topic(
            f"{name}-alerts",
            name=topic_name,
            kms_master_key_id=key.arn,
            tags=dict(args.tags),
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts",
            arn=topic.arn,
            policy=sns_topic_policy(args.arns.sns_topic(topic_name), args.arns),
            opts=child,
        )
        cluster_budgets = [b for b in args.budgets if b.scope == "cluster"]
        # The topic's ARN composed from its name, known at preview, so the policy pack
        # can see which notifications reach a subscribed topic (budget-has-recipient).
        topic_arn = args.arns.sns_topic(topic_name)
        after_topic = pulumi.ResourceOptions(parent=self, depends_on=[topic])
        for email in sorted({e for b in cluster_budgets for e in b.notify_emails}):
            aws.sns.TopicSubscription(
                f"{name}-{email.replace('@', '-at-').replace('.', '-')}",
                topic=topic_arn,
                protocol="email",
                endpoint=email,
                opts=after_topic,
            )
        depends: list[pulumi.Resource] = [topic]
        if args.activate_cost_allocation_tag:
            depends.append(
                aws.costexplorer.CostAllocationTag(
                    f"{name}-{COST_CENTER_TAG}",
                    tag_key=COST_CENTER_TAG,
                    status="Active",
                    opts=child,
                )
            )
        self.budget_names = []
        for budget in cluster_budgets:
            budget_name = f"{args.stack}-{budget.name}"
            aws.budgets.Budget(
                f"{name}-{budget.name}",
                name=budget_name,
                budget_type="COST",
                time_unit="MONTHLY",
                limit_amount=f"{budget.monthly_usd:.2f}",
                limit_unit="USD",
                cost_filters=aws_budget_filter(args.tags),
                notifications=aws_budget_notifications(budget, topic_arn),
                tags=dict(args.tags),
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
            self.budget_names.append(budget_name)

        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn, "budget_names": self.budget_names})
