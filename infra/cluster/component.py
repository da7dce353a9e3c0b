"""Cluster: the EKS control plane, its add-ons, the system node group and the one
Kubernetes provider every in-cluster resource uses."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from infra.cluster.config import ClusterConfig
from infra.core.conventions import SYSTEM_NODE_LABELS, SYSTEM_TAINT
from infra.core.iam import NODE_MANAGED_POLICIES, assume_role_policy
from infra.core.kms import kms_key
from infra.core.ordering import ClusterRef

CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
# Read-only, Secrets included: `pulumi preview --refresh` reads Helm's release Secrets;
# the Kubernetes provider falls back to a client-side diff when a server-side dry run is
# Forbidden (provider.go in pulumi/pulumi-kubernetes). See
# https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html
CLUSTER_VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy"
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"
# Add-ons the nodes need to become Ready; the others need nodes to schedule on.
ADDONS_BEFORE_NODES = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")


def addon_configuration(addon: str) -> str | None:
    """``configurationValues`` of a managed add-on (JSON), or ``None`` for its defaults.

    vpc-cni: EKS ignores every NetworkPolicy unless the CNI's network policy agent is
    on (``enableNetworkPolicy``, a string, default ``"false"`` in the chart's values.yaml
    at v1.20.4; https://docs.aws.amazon.com/eks/latest/userguide/cni-network-policy-configure.html).
    Without it, the model servers' NetworkPolicy is decoration, and vLLM's routes outside
    ``/v1`` (``/invocations`` among them) answer without the API key. The agent always
    admits traffic from the pod's own node, so kubelet probes keep working
    (https://github.com/aws/aws-network-policy-agent/pull/65).
    """
    if addon == "vpc-cni":
        return json.dumps({"enableNetworkPolicy": "true"}, sort_keys=True)
    return None


def render_kubeconfig(
    cluster_name: str, endpoint: str, ca_data: str, region: str
) -> dict[str, Any]:
    """A kubeconfig that depends only on the cluster's identity.

    Credentials come from ``aws eks get-token`` with the ambient AWS credentials: no
    profile, role or token is baked in, so a change of who runs ``pulumi up`` never
    changes the kubeconfig and never replaces the Kubernetes provider (and with it
    every in-cluster resource).
    """
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": "aws"}}],
        "current-context": cluster_name,
        "users": [
            {
                "name": "aws",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--region",
                            region,
                            "--output",
                            "json",
                        ],
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
    }


def access_entry(
    principal_arn: str, role: str, policy_arn: str, tags: Mapping[str, str]
) -> eks.AccessEntryArgs:
    """An access entry with one cluster-wide access policy, tagged like everything else:
    pulumi-eks creates the ``aws:eks/accessEntry:AccessEntry`` from these args alone
    (nodejs/eks/cluster/authenticationMode.ts, ``createAccessEntries``), and the pack's
    cost-tags rule judges it."""
    return eks.AccessEntryArgs(
        principal_arn=principal_arn,
        tags=dict(tags),
        access_policies={
            role: eks.AccessPolicyAssociationArgs(
                policy_arn=policy_arn,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
            )
        },
    )


def system_node_taints() -> list[dict[str, str]]:
    """The system taint in the EKS node group API's spelling (``NO_SCHEDULE``)."""
    return [{**SYSTEM_TAINT, "effect": "NO_SCHEDULE"}]


@dataclass(frozen=True)
class ClusterArgs:
    """Inputs of :class:`Cluster`."""

    config: ClusterConfig
    region: str
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    viewers: Sequence[str] = ()
    """Principals with read-only access (the CI preview role)."""
    control_plane_log_group: pulumi.Resource | None = None
    """The ``/aws/eks/<name>/cluster`` group, created first so that EKS writes into it
    (with the stack's retention and key) instead of creating its own."""
    tags: Mapping[str, str] = field(default_factory=dict)


class Cluster(pulumi.ComponentResource):
    """EKS with access entries, KMS-encrypted secrets, control-plane logs, managed
    add-ons at pinned versions and an on-demand system node group for controllers."""

    name: str
    """EKS cluster name (known before the cluster exists)."""
    ref: ClusterRef
    """The cluster as other components take it (``infra.core.ordering``)."""
    eks: eks.Cluster
    provider: k8s.Provider
    endpoint: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    """EKS cluster security group, tagged for Karpenter discovery."""
    system_node_role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:cluster:Cluster", name, None, opts)
        cfg = args.config
        self.name = cfg.name
        child = pulumi.ResourceOptions(parent=self)
        tags = dict(args.tags)

        secrets_key = kms_key(
            f"{name}-secrets",
            alias=f"{cfg.name}-secrets",
            description=f"EKS secrets envelope encryption for {cfg.name}",
            tags=tags,
            parent=self,
        )

        self.eks = eks.Cluster(
            f"{name}-eks",
            name=cfg.name,
            version=cfg.version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            node_associate_public_ip_address=False,
            authentication_mode=eks.AuthenticationMode.API,
            # Not the principal running the first `pulumi up`: EKS made an entry for the
            # creator already (the config rejects it here).
            access_entries={
                **{
                    f"admin-{i}": access_entry(arn, "cluster-admin", CLUSTER_ADMIN_POLICY, tags)
                    for i, arn in enumerate(cfg.admins)
                },
                **{
                    f"viewer-{i}": access_entry(arn, "view", CLUSTER_VIEW_POLICY, tags)
                    for i, arn in enumerate(args.viewers)
                },
            },
            # Controllers run on our own managed node group; Karpenter makes the rest.
            skip_default_node_group=True,
            # Workload identity is EKS Pod Identity; no IRSA OIDC provider.
            create_oidc_provider=False,
            # Every node (managed or Karpenter) uses the EKS-created cluster security
            # group, which is what Karpenter discovers; pulumi-eks' extra groups would
            # only be a second, diverging rule set.
            skip_default_security_groups=True,
            # All add-ons are EKS managed add-ons below, at versions from config.
            bootstrap_self_managed_addons=False,
            use_default_vpc_cni=True,
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=False),
            encryption_config_key_arn=secrets_key.arn,
            enabled_cluster_log_types=list(cfg.log_types),
            endpoint_private_access=True,
            endpoint_public_access=cfg.endpoint_public_access,
            public_access_cidrs=[str(c) for c in cfg.public_access_cidrs] or None,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[args.control_plane_log_group] if args.control_plane_log_group else [],
            ),
        )

        # Read back endpoint and CA through the EKS API once the cluster exists.
        described = aws.eks.get_cluster_output(
            name=cfg.name, opts=pulumi.InvokeOutputOptions(depends_on=[self.eks])
        )
        self.endpoint = described.endpoint
        self.security_group_id = self.eks.cluster_security_group_id
        aws.ec2.Tag(
            f"{name}-sg-discovery",
            resource_id=self.security_group_id,
            key="karpenter.sh/discovery",
            value=cfg.name,
            opts=child,
        )

        node_role = aws.iam.Role(
            f"{name}-system-node",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=tags,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-system-node-{arn.rsplit('/', 1)[-1]}",
                role=node_role.name,
                policy_arn=arn,
                opts=child,
            )
            for arn in NODE_MANAGED_POLICIES
        ]
        self.system_node_role_arn = node_role.arn

        addons_before = [self._addon(name, cfg, addon, tags) for addon in ADDONS_BEFORE_NODES]

        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-system",
            # IMDSv2 only, one hop: pods cannot reach the node role's credentials.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=50, volume_type="gp3", encrypted="true"
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="instance", tags=tags),
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="volume", tags=tags),
            ],
            tags=tags,
            opts=child,
        )
        sng = cfg.system_node_group
        node_group = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cfg.name,
            node_group_name_prefix=f"{cfg.name}-system-",
            node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids,
            instance_types=list(sng.instance_types),
            capacity_type="ON_DEMAND",
            ami_type="AL2023_x86_64_STANDARD",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=sng.min_size, desired_size=sng.desired_size, max_size=sng.max_size
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=launch_template.id, version=launch_template.latest_version.apply(str)
            ),
            labels=dict(SYSTEM_NODE_LABELS),
            taints=[aws.eks.NodeGroupTaintArgs(**t) for t in system_node_taints()],
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.eks, *attachments, *addons_before],
                # The autoscaler-style desired size drifts at run time; config sets bounds.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi",
            assume_role_policy=assume_role_policy("pods.eks.amazonaws.com", tag_session=True),
            tags=tags,
            opts=child,
        )
        ebs_attachment = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi", role=ebs_role.name, policy_arn=EBS_CSI_POLICY, opts=child
        )
        coredns = self._addon(name, cfg, "coredns", tags, after=[node_group])
        ebs_csi = self._addon(
            name,
            cfg,
            "aws-ebs-csi-driver",
            tags,
            after=[node_group, ebs_attachment],
            pod_identity=[
                aws.eks.AddonPodIdentityAssociationArgs(
                    role_arn=ebs_role.arn, service_account=EBS_CSI_SERVICE_ACCOUNT
                )
            ],
        )

        kubeconfig = pulumi.Output.all(
            described.endpoint, described.certificate_authorities[0].data
        ).apply(lambda a: json.dumps(render_kubeconfig(cfg.name, a[0], a[1], args.region)))
        ready = [self.eks, *addons_before, node_group, coredns, ebs_csi]
        self.ref = ClusterRef(
            cfg.name, pulumi.Output.all(*(r.urn for r in ready)).apply(lambda _: cfg.name)
        )
        # Every in-cluster resource uses this provider and so waits for it: creating it
        # only once nodes, DNS and the EBS driver exist lets the first `pulumi up` of a
        # new cluster install charts without their pods waiting past Helm's timeout.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=kubeconfig,
            # Replaced only when the cluster is. The kubeconfig comes from an invoke that
            # waits on the pulumi-eks component; any child of it still to be created makes
            # the kubeconfig unknown at preview, and an unknown kubeconfig otherwise shows
            # the provider, and every in-cluster resource, as replaced (pulumi-kubernetes
            # provider/pkg/provider/provider.go, DiffConfig).
            cluster_identifier=cfg.name,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_group, coredns, ebs_csi]),
        )

        self.register_outputs(
            {
                "name": self.name,
                "endpoint": self.endpoint,
                "security_group_id": self.security_group_id,
                "system_node_role_arn": self.system_node_role_arn,
            }
        )

    def _addon(
        self,
        name: str,
        cfg: ClusterConfig,
        addon: str,
        tags: Mapping[str, str],
        *,
        after: Sequence[pulumi.Resource] = (),
        pod_identity: Sequence[aws.eks.AddonPodIdentityAssociationArgs] | None = None,
    ) -> aws.eks.Addon:
        return aws.eks.Addon(
            f"{name}-{addon}",
            cluster_name=cfg.name,
            addon_name=addon,
            addon_version=cfg.addons[addon],  # type: ignore[index]
            configuration_values=addon_configuration(addon),
            # Our config is the source of truth for managed add-on settings.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            pod_identity_associations=pod_identity,
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.eks, *after]),
        )
