"""Log shipping components: the stack's CloudWatch log groups (with their KMS key) and
Fluent Bit (its Helm release, Pod Identity role, ServiceMonitor and saved Logs Insights
queries). What they render is in ``infra.log_shipping.fluent_bit``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.core.arns import Arns
from infra.core.conventions import LOGGING_NAMESPACE
from infra.core.iam import pod_identity
from infra.core.kms import kms_key
from infra.core.ordering import ClusterRef, after
from infra.log_shipping.config import LoggingConfig
from infra.log_shipping.fluent_bit import (
    CHART_VERSION,
    FLUENT_BIT_CHART,
    SERVICE_ACCOUNT,
    check_routes,
    control_plane_log_group_name,
    default_routes,
    fluent_bit_policy,
    log_group_name,
    log_key_policy,
    render_service_monitor,
    render_values,
    saved_queries,
)


@dataclass(frozen=True)
class LogGroupsArgs:
    """Inputs of :class:`LogGroups`."""

    config: LoggingConfig
    cluster_name: str
    serving_namespace: str
    """Namespace of the model servers; its logs go to the ``inference`` group."""
    arns: Arns
    other_groups: Mapping[str, str] = field(default_factory=dict)
    """Further groups of the stack (role -> name), e.g. the CI runner's build logs."""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Routes are code, not config; a bad edit fails here, before the first resource
        # of the stack (LogGroups is built before the cluster).
        check_routes(default_routes(self.serving_namespace))


class LogGroups(pulumi.ComponentResource):
    """Every CloudWatch log group of the stack, with the stack's retention and KMS key:
    Fluent Bit's route groups and the EKS control-plane group. Created before the
    cluster, so that EKS writes into a group we own instead of creating one that never
    expires and is not encrypted."""

    names: dict[str, str]
    """Route group (``inference``, ``platform``) -> log group name (Fluent Bit's)."""
    arns: list[str]
    """ARNs of the route groups (composed, so known at preview)."""
    control_plane: aws.cloudwatch.LogGroup
    groups: dict[str, aws.cloudwatch.LogGroup]
    """Fluent Bit's groups by route."""
    others: dict[str, aws.cloudwatch.LogGroup]
    kms_key_arn: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: LogGroupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:logging:LogGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        routes = default_routes(args.serving_namespace)
        self.names = {r.group: log_group_name(args.cluster_name, r) for r in routes}
        self.arns = [args.arns.log_group(n) for n in self.names.values()]
        control_plane_name = control_plane_log_group_name(args.cluster_name)

        key: aws.kms.Key | None = None
        if args.config.kms_encryption:
            # The key policy must name the groups before they exist (they are created
            # with the key), hence ARNs composed from their names.
            key = kms_key(
                f"{name}-logs",
                alias=f"{args.cluster_name}-logs",
                description=f"CloudWatch Logs encryption for {args.cluster_name} log groups",
                policy=json.dumps(
                    log_key_policy(
                        args.arns,
                        [
                            *self.arns,
                            args.arns.log_group(control_plane_name),
                            *(args.arns.log_group(n) for n in args.other_groups.values()),
                        ],
                    ),
                    sort_keys=True,
                ),
                tags=tags,
                parent=self,
            )
        self.kms_key_arn = key.arn if key is not None else None

        def group(role: str, group_name: str) -> aws.cloudwatch.LogGroup:
            return aws.cloudwatch.LogGroup(
                f"{name}-{role}",
                name=group_name,
                retention_in_days=args.config.retention_days,
                kms_key_id=self.kms_key_arn,
                tags=tags,
                opts=child,
            )

        self.groups = {r.group: group(r.group, self.names[r.group]) for r in routes}
        self.control_plane = group("control-plane", control_plane_name)
        self.others = {role: group(role, n) for role, n in args.other_groups.items()}
        self.register_outputs(
            {"names": self.names, "arns": self.arns, "kms_key_arn": self.kms_key_arn}
        )


@dataclass(frozen=True)
class LogShippingArgs:
    """Inputs of :class:`LogShipping`."""

    cluster: ClusterRef
    region: str
    serving_namespace: str
    """Namespace of the model servers; its logs go to the ``inference`` group."""
    log_groups: LogGroups
    """The groups Fluent Bit writes to (created with the stack's retention and key)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    monitoring_crds: pulumi.Resource | None = None
    """Release installing the ServiceMonitor CRD; the ServiceMonitor waits for it."""


class LogShipping(pulumi.ComponentResource):
    """Fluent Bit DaemonSet writing to the stack's :class:`LogGroups`, with a Pod Identity
    role scoped to those groups, a ServiceMonitor and saved Logs Insights queries.

    Pass the cluster's Kubernetes provider in ``opts`` (``provider=``).
    """

    log_group_names: dict[str, str]
    """Route group (``inference``, ``platform``) -> log group name."""
    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: LogShippingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # The type token predates the class name; it is part of every URN below.
        super().__init__("llm-platform:logging:Logging", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)
        routes = default_routes(args.serving_namespace)
        self.log_group_names = args.log_groups.names
        groups = args.log_groups.groups

        identity = pod_identity(
            f"{name}-fluent-bit",
            cluster=args.cluster,
            namespace=LOGGING_NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            tags=tags,
            parent=self,
        )
        role, association = identity.role, identity.association
        policy = aws.iam.RolePolicy(
            f"{name}-fluent-bit",
            role=role.name,
            policy=json.dumps(fluent_bit_policy(args.log_groups.arns), sort_keys=True),
            opts=child,
        )
        self.role_arn = role.arn

        # Pod Identity credentials are injected when a pod is created: the association
        # and its policy must exist before the first Fluent Bit pod, and the groups
        # before the first PutLogEvents.
        release = FLUENT_BIT_CHART.install(
            f"{name}-fluent-bit",
            version=CHART_VERSION,
            create_namespace=True,
            values=render_values(args.cluster.name, args.region, routes),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[association, policy, *groups.values()]
            ),
        )

        monitor = render_service_monitor()
        k8s.apiextensions.CustomResource(
            f"{name}-fluent-bit",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=monitor["metadata"],
            spec=monitor["spec"],
            opts=after(self, release, args.monitoring_crds),
        )

        for query in saved_queries(routes):
            aws.cloudwatch.QueryDefinition(
                f"{name}-{query.name}",
                name=f"{args.cluster.name}/{query.name}",
                query_string=query.query,
                log_group_names=[self.log_group_names[g] for g in query.groups],
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(groups.values())),
            )

        self.register_outputs({"log_group_names": self.log_group_names, "role_arn": self.role_arn})
