"""The ``cost`` section: Kubecost, budgets and the cost estimator."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field

from infra.core.schema import ContainerResources, DnsLabel, Section

BudgetScope = Literal["cluster", "namespace", "model"]


class BudgetConfig(Section):
    """One cost budget (Kubecost alert, AWS Budget and PrometheusRule)."""

    name: DnsLabel
    """Budget name, unique per stack (AWS budgets get ``<stack>-<name>``)."""
    scope: BudgetScope
    """What the budget covers: the whole cluster, one namespace or one model."""
    target: DnsLabel | None = None
    """Namespace or model name; required unless scope is ``cluster``."""
    monthly_usd: Annotated[float, Field(gt=0)]
    """The monthly amount in USD."""
    thresholds_percent: Annotated[
        tuple[Annotated[int, Field(ge=1, le=200)], ...], Field(min_length=1, max_length=4)
    ] = (50, 80, 100)
    """Alert thresholds in percent of ``monthlyUsd`` (default 50, 80, 100). At most four:
    an AWS budget takes five notifications, one of them the forecast at 100%."""
    notify_emails: Annotated[
        tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")], ...],
        Field(min_length=1),
    ]
    """Who gets the alerts (at least one): SNS email subscriptions and Kubecost
    ``ownerContact``. A budget nobody hears about guards nothing."""

    def check(self, at: str) -> list[str]:
        if self.scope == "cluster" and self.target is not None:
            return [f"{at}.target = {json.dumps(self.target)}: a cluster budget has no target"]
        if self.scope != "cluster" and self.target is None:
            return [f"{at}.target: required for scope {self.scope}"]
        return []


class CostConfig(Section):
    """Kubecost, budgets and the cost estimator."""

    kubecost_version: Annotated[str, Field(pattern=r"^2\.8\.\d+$")] = "2.8.7"
    """``cost-analyzer`` chart version (default ``2.8.7``). Only 2.8.x: the last 2.x line that
    runs on an external Prometheus; 2.9 exists only as a step to 3.x (it requires federated
    storage) and 3.x is a different chart without Prometheus."""
    spot_discount: Annotated[float, Field(ge=0, lt=1)] = 0.6
    """Expected spot saving vs on-demand, for the *expected* (not worst-case) estimate."""
    budgets: Annotated[tuple[BudgetConfig, ...], Field(min_length=1)]
    logs_gib_per_day: Annotated[float, Field(gt=0, alias="logsGiBPerDay")] = 5.0
    """ASSUMPTION for the cost table: GiB of logs the stack sends CloudWatch per day (all
    groups; default 5). Compare with the groups' ``IncomingBytes`` once it runs."""
    nat_gib_per_month: Annotated[float, Field(ge=0, alias="natGiBPerMonth")] = 500.0
    """ASSUMPTION for the cost table: GiB a month through the NAT gateways (image pulls,
    AWS APIs; S3 goes through the gateway endpoint; default 500)."""
    cpu_pool_expected_share: Annotated[float, Field(ge=0, le=1)] = 0.25
    """ASSUMPTION for the cost table's expected column: share of the CPU NodePool's
    limits in use on average (default 0.25; the worst case is all of it)."""
    activate_cost_allocation_tag: bool = False
    """Activate the ``cost-center`` cost-allocation tag, which the AWS budgets' tag filter
    needs (default off). AWS accepts the activation only from the payer (management)
    account, and only once the tag has shown up in billing data, up to 24 h after the
    first tagged resource: turn it on in one stack of the payer account, on an update
    after the first day (README, "Deploying"). See
    https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/activating-tags.html"""
    kubecost_model_resources: ContainerResources = ContainerResources(cpu="500m", memory="2Gi")
    """Requests of the cost-model container (memory is also its limit)."""
    kubecost_frontend_resources: ContainerResources = ContainerResources(cpu="50m", memory="128Mi")
    """Requests of the frontend (nginx) container (memory is also its limit)."""

    def check(self, at: str) -> list[str]:
        if any(b.scope == "cluster" for b in self.budgets):
            return []
        return [f"{at}.budgets: a budget with scope cluster is required"]

    @property
    def cluster_budget(self) -> BudgetConfig:
        """The budget GPU spend must fit: the smallest cluster-scope budget."""
        return min((b for b in self.budgets if b.scope == "cluster"), key=lambda b: b.monthly_usd)
