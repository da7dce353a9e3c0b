"""Karpenter: controller IAM (EKS Pod Identity), node role, interruption queue and the
``karpenter-crd`` and ``karpenter`` Helm releases.

The controller policy, the queue policy, the EventBridge patterns and the Helm values
are pure functions, modelled on the upstream reference CloudFormation template
(``website/content/en/docs/getting-started/getting-started-with-karpenter/
cloudformation.yaml`` in aws/karpenter-provider-aws) and the chart's ``values.yaml``,
both checked at v1.14.1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.core.arns import Arns
from infra.core.conventions import (
    KARPENTER_NAMESPACE,
    PROMETHEUS_SELECTOR_LABELS,
    SYSTEM_NODE_LABELS,
    SYSTEM_TOLERATION,
)
from infra.core.helm import Chart
from infra.core.iam import NODE_MANAGED_POLICIES, assume_role_policy, pod_identity
from infra.core.ordering import ClusterRef, after
from infra.karpenter.config import KarpenterConfig

# Charts are OCI artifacts: the Helm release takes the full oci:// reference as its
# chart (a repositoryOpts.repo is looked up as an HTTP index and fails for OCI).
# Release names are fixed: the chart's fullname (and so the Deployment, the
# ServiceAccount default and the PDB) derives from them.
KARPENTER_CHART: Final = Chart(
    "oci://public.ecr.aws/karpenter/karpenter", "karpenter", KARPENTER_NAMESPACE
)
KARPENTER_CRD_CHART: Final = Chart(
    "oci://public.ecr.aws/karpenter/karpenter-crd", "karpenter-crd", KARPENTER_NAMESPACE
)
SERVICE_ACCOUNT: Final = "karpenter"
"""Controller ServiceAccount; the Pod Identity association names the same one."""
CONTROLLER_REPLICAS: Final = 2
"""Leader election: one active, one standby, spread by the chart's default anti-affinity."""
# Upstream's getting-started sizing: the scheduler simulation is CPU-bound during bursts.
CONTROLLER_RESOURCES: Final = {
    "requests": {"cpu": "1", "memory": "1Gi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
QUEUE_RETENTION_SECONDS: Final = 300
"""Interruption events are useless after the 2-minute spot warning; upstream keeps 300 s."""

# EventBridge events Karpenter handles, keyed by our rule suffix: (source, detail-type)
# exactly as AWS emits them and as Karpenter's parsers match them
# (pkg/controllers/interruption/messages/*/parser.go).
INTERRUPTION_EVENTS: Final = {
    "spot": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "rebalance": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "state": ("aws.ec2", "EC2 Instance State-change Notification"),
    "health": ("aws.health", "AWS Health Event"),
    "reservation": ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
}


def interruption_event_patterns() -> dict[str, dict[str, list[str]]]:
    """EventBridge pattern of each interruption rule, keyed by rule suffix."""
    return {
        suffix: {"source": [source], "detail-type": [detail_type]}
        for suffix, (source, detail_type) in INTERRUPTION_EVENTS.items()
    }


def queue_policy(queue_arn: str) -> dict[str, Any]:
    """Queue policy: EventBridge (and SQS itself) may send; nothing without TLS."""
    return {
        "Version": "2012-10-17",
        "Id": "EC2InterruptionPolicy",
        "Statement": [
            {
                "Sid": "AllowEventBridge",
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


POLICY_GROUPS: Final = (
    "node-lifecycle",
    "iam-integration",
    "eks-integration",
    "interruption",
    "resource-discovery",
)
"""One managed policy each, as upstream: together they exceed one policy's 6,144 chars."""


@dataclass(frozen=True)
class PolicyScope:
    """What the controller policy is scoped to; every value is known at preview."""

    cluster_name: str
    arns: Arns

    @property
    def region(self) -> str:
        return self.arns.region

    @property
    def node_role_arn(self) -> str:
        return self.arns.iam_role(resource_name(self.cluster_name, "node"))

    @property
    def queue_arn(self) -> str:
        return self.arns.sqs_queue(resource_name(self.cluster_name, "interruption"))


def controller_policies(s: PolicyScope) -> dict[str, dict[str, Any]]:
    """The controller's IAM policies, grouped as upstream does (one managed policy each).

    Every mutating statement is scoped by the tags Karpenter puts on what it creates
    (``kubernetes.io/cluster/<name>: owned``, ``eks:eks-cluster-name``,
    ``karpenter.sh/nodepool``, ``karpenter.k8s.aws/ec2nodeclass``), so the controller
    cannot touch instances, launch templates or instance profiles of anything else.
    ``Resource: "*"`` remains only where AWS offers no resource-level permission
    (Describe*, pricing, ListInstanceProfiles), as upstream. Upstream's zonal-shift
    statement is left out: ``settings.enableZonalShift`` stays off.
    """
    a = s.arns
    instance_profiles = a.instance_profiles()
    owned = f"kubernetes.io/cluster/{s.cluster_name}"
    launched = [
        a.ec2(f"{kind}/*")
        for kind in (
            "fleet",
            "instance",
            "volume",
            "network-interface",
            "launch-template",
            "spot-instances-request",
        )
    ]

    def document(*statements: dict[str, Any]) -> dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": list(statements)}

    return {
        "node-lifecycle": document(
            {
                "Sid": "AllowScopedEC2InstanceAccessActions",
                "Effect": "Allow",
                "Resource": [
                    a.ec2("image/*", account=False),
                    a.ec2("snapshot/*", account=False),
                    a.ec2("security-group/*"),
                    a.ec2("subnet/*"),
                    a.ec2("capacity-reservation/*"),
                    a.ec2("placement-group/*"),
                ],
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            },
            {
                "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
                "Effect": "Allow",
                "Resource": a.ec2("launch-template/*"),
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{owned}": "owned"},
                    "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                },
            },
            {
                "Sid": "AllowScopedEC2InstanceActionsWithTags",
                "Effect": "Allow",
                "Resource": launched,
                "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
                "Condition": {
                    "StringEquals": {
                        f"aws:RequestTag/{owned}": "owned",
                        "aws:RequestTag/eks:eks-cluster-name": s.cluster_name,
                    },
                    "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
                },
            },
            {
                "Sid": "AllowScopedResourceCreationTagging",
                "Effect": "Allow",
                "Resource": launched,
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": {
                        f"aws:RequestTag/{owned}": "owned",
                        "aws:RequestTag/eks:eks-cluster-name": s.cluster_name,
                        "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                    },
                    "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
                },
            },
            {
                "Sid": "AllowScopedResourceTagging",
                "Effect": "Allow",
                "Resource": a.ec2("instance/*"),
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{owned}": "owned"},
                    "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                    "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": s.cluster_name},
                    "ForAllValues:StringEquals": {
                        "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                    },
                },
            },
            {
                "Sid": "AllowScopedDeletion",
                "Effect": "Allow",
                "Resource": [a.ec2("instance/*"), a.ec2("launch-template/*")],
                "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                "Condition": {
                    "StringEquals": {f"aws:ResourceTag/{owned}": "owned"},
                    "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
                },
            },
        ),
        "iam-integration": document(
            {
                "Sid": "AllowPassingInstanceRole",
                "Effect": "Allow",
                "Resource": s.node_role_arn,
                "Action": "iam:PassRole",
                "Condition": {
                    "StringEquals": {
                        "iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]
                    }
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileCreationActions",
                "Effect": "Allow",
                "Resource": instance_profiles,
                "Action": ["iam:CreateInstanceProfile"],
                "Condition": {
                    "StringEquals": {
                        f"aws:RequestTag/{owned}": "owned",
                        "aws:RequestTag/eks:eks-cluster-name": s.cluster_name,
                        "aws:RequestTag/topology.kubernetes.io/region": s.region,
                    },
                    "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileTagActions",
                "Effect": "Allow",
                "Resource": instance_profiles,
                "Action": ["iam:TagInstanceProfile"],
                "Condition": {
                    "StringEquals": {
                        f"aws:ResourceTag/{owned}": "owned",
                        "aws:ResourceTag/topology.kubernetes.io/region": s.region,
                        f"aws:RequestTag/{owned}": "owned",
                        "aws:RequestTag/eks:eks-cluster-name": s.cluster_name,
                        "aws:RequestTag/topology.kubernetes.io/region": s.region,
                    },
                    "StringLike": {
                        "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                        "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
                    },
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileActions",
                "Effect": "Allow",
                "Resource": instance_profiles,
                "Action": [
                    "iam:AddRoleToInstanceProfile",
                    "iam:RemoveRoleFromInstanceProfile",
                    "iam:DeleteInstanceProfile",
                ],
                "Condition": {
                    "StringEquals": {
                        f"aws:ResourceTag/{owned}": "owned",
                        "aws:ResourceTag/topology.kubernetes.io/region": s.region,
                    },
                    "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
                },
            },
        ),
        "eks-integration": document(
            {
                "Sid": "AllowAPIServerEndpointDiscovery",
                "Effect": "Allow",
                "Resource": a.eks_cluster(s.cluster_name),
                "Action": "eks:DescribeCluster",
            }
        ),
        "interruption": document(
            {
                "Sid": "AllowInterruptionQueueActions",
                "Effect": "Allow",
                "Resource": s.queue_arn,
                "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            }
        ),
        "resource-discovery": document(
            {
                "Sid": "AllowRegionalReadActions",
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "ec2:DescribeCapacityReservations",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstanceStatus",
                    "ec2:DescribeInstanceTypeOfferings",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplates",
                    "ec2:DescribePlacementGroups",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory",
                    "ec2:DescribeSubnets",
                ],
                "Condition": {"StringEquals": {"aws:RequestedRegion": s.region}},
            },
            {
                "Sid": "AllowSSMReadActions",
                "Effect": "Allow",
                "Resource": a.ssm_public_parameters(),
                "Action": "ssm:GetParameter",
            },
            {
                "Sid": "AllowPricingReadActions",
                "Effect": "Allow",
                "Resource": "*",
                "Action": "pricing:GetProducts",
            },
            {
                "Sid": "AllowUnscopedInstanceProfileListAction",
                "Effect": "Allow",
                "Resource": "*",
                "Action": "iam:ListInstanceProfiles",
            },
            {
                "Sid": "AllowInstanceProfileReadActions",
                "Effect": "Allow",
                "Resource": instance_profiles,
                "Action": "iam:GetInstanceProfile",
            },
        ),
    }


def controller_values(cluster_name: str, queue_name: str) -> dict[str, Any]:
    """Values of the ``karpenter`` chart (keys from its values.yaml at v1.14.1).

    The controller must not run on nodes it manages: it is pinned to the system node
    group (label and toleration). The chart's default affinity (not on a Karpenter
    NodePool, one replica per host) and zone spread stay in force.
    """
    return {
        "settings": {"clusterName": cluster_name, "interruptionQueue": queue_name},
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT},
        "replicas": CONTROLLER_REPLICAS,
        "nodeSelector": {"kubernetes.io/os": "linux", **SYSTEM_NODE_LABELS},
        "tolerations": [dict(SYSTEM_TOLERATION)],
        "controller": {"resources": CONTROLLER_RESOURCES},
        # The "Karpenter cannot launch nodes" and "GPU NodePool at its limit" alerts read
        # the controller's metrics; the label makes kube-prometheus-stack select it.
        "serviceMonitor": {"enabled": True, "additionalLabels": dict(PROMETHEUS_SELECTOR_LABELS)},
    }


@dataclass(frozen=True)
class KarpenterArgs:
    """Inputs of :class:`Karpenter`."""

    config: KarpenterConfig
    cluster: ClusterRef
    arns: Arns
    """ARNs of the stack's account and region: the policies are built from them."""
    monitoring_crds: pulumi.Resource | None = None
    """The release installing the ServiceMonitor CRD the chart's ServiceMonitor needs."""
    tags: Mapping[str, str] = field(default_factory=dict)


def resource_name(cluster_name: str, role: str) -> str:
    """Physical name of an AWS resource of the component (IAM, SQS, EventBridge)."""
    return f"{cluster_name}-karpenter-{role}"


class Karpenter(pulumi.ComponentResource):
    """Karpenter controller with IAM via Pod Identity, node role and interruption handling.

    Pass the cluster's Kubernetes provider in ``opts``.
    """

    node_role_name: str
    """Node IAM role name (EC2NodeClass ``spec.role``); known before it exists."""
    node_role: aws.iam.Role
    """The node IAM role: take its outputs (``name``) where AWS needs the role to exist."""
    node_role_arn: pulumi.Output[str]
    controller_role_arn: pulumi.Output[str]
    queue_name: pulumi.Output[str]
    crd_release: k8s.helm.v3.Release
    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:karpenter:Karpenter", name, None, opts)
        cluster = args.cluster.name
        tags = dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)

        # Nodes: Karpenter creates the instance profile from this role (EC2NodeClass
        # spec.role); the access entry lets the nodes join the cluster.
        self.node_role_name = resource_name(cluster, "node")
        node_role = aws.iam.Role(
            f"{name}-node",
            name=self.node_role_name,
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        for policy_arn in NODE_MANAGED_POLICIES:
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy_arn.rsplit('/', 1)[-1]}",
                role=node_role.name,
                policy_arn=policy_arn,
                opts=child,
            )
        access_entry = aws.eks.AccessEntry(
            f"{name}-node",
            cluster_name=args.cluster.ready,
            principal_arn=node_role.arn,
            type="EC2_LINUX",
            tags=tags,
            opts=child,
        )
        self.node_role = node_role
        self.node_role_arn = node_role.arn

        queue = aws.sqs.Queue(
            f"{name}-interruption",
            name=resource_name(cluster, "interruption"),
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child,
        )
        scope = PolicyScope(cluster_name=cluster, arns=args.arns)
        aws.sqs.QueuePolicy(
            f"{name}-interruption",
            queue_url=queue.url,
            policy=json.dumps(queue_policy(scope.queue_arn), sort_keys=True),
            opts=child,
        )
        for suffix, pattern in interruption_event_patterns().items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{suffix}",
                name=resource_name(cluster, suffix),
                description=f"{pattern['detail-type'][0]} -> Karpenter interruption queue",
                event_pattern=json.dumps(pattern, sort_keys=True),
                tags=tags,
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-{suffix}",
                rule=rule.name,
                target_id="KarpenterInterruptionQueueTarget",
                arn=queue.arn,
                opts=child,
            )
        self.queue_name = queue.name

        identity = pod_identity(
            f"{name}-controller",
            cluster=args.cluster,
            namespace=KARPENTER_NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            tags=tags,
            parent=self,
            role_name=resource_name(cluster, "controller"),
        )
        controller_role = identity.role
        self.controller_role_arn = controller_role.arn
        documents = controller_policies(scope)

        attachments = []
        for group in POLICY_GROUPS:
            policy = aws.iam.Policy(
                f"{name}-controller-{group}",
                name=resource_name(cluster, group),
                description=f"Karpenter controller ({group}) for EKS cluster {cluster}",
                policy=json.dumps(documents[group], sort_keys=True),
                tags=tags,
                opts=child,
            )
            attachments.append(
                aws.iam.RolePolicyAttachment(
                    f"{name}-controller-{group}",
                    role=controller_role.name,
                    policy_arn=policy.arn,
                    opts=child,
                )
            )

        # Kubernetes objects wait for the cluster through its provider.
        self.crd_release = KARPENTER_CRD_CHART.install(
            f"{name}-crd", version=args.config.version, create_namespace=True, opts=child
        )
        self.release = KARPENTER_CHART.install(
            f"{name}-controller",
            version=args.config.version,
            create_namespace=True,
            # CRDs belong to the karpenter-crd release, which (unlike a chart's crds/
            # directory) upgrades them with the version.
            skip_crds=True,
            values=queue.name.apply(lambda q: controller_values(cluster, q)),
            opts=after(
                self,
                self.crd_release,
                identity.association,
                access_entry,
                *attachments,
                args.monitoring_crds,
            ),
        )

        self.register_outputs(
            {
                "node_role_name": self.node_role_name,
                "node_role_arn": self.node_role_arn,
                "controller_role_arn": self.controller_role_arn,
                "queue_name": self.queue_name,
            }
        )
