"""Cluster: EKS access, encryption, logging, add-ons, system nodes, provider."""

from __future__ import annotations

import json
from typing import Any

from infra.cluster.component import (
    CLUSTER_ADMIN_POLICY,
    CLUSTER_VIEW_POLICY,
    Cluster,
    ClusterArgs,
    render_kubeconfig,
)
from infra.cluster.config import ClusterConfig
from infra.core.schema import ConfigError
from tests.harness import (
    FIXTURE_STACKS,
    SMALL,
    find,
    find_all,
    resolve,
    run_component,
    run_stack,
    stack_config,
    typed_config,
)
from tests.policy_cases import check
from tools.mock_runtime import Recorded
from tools.policy import settings

ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"


def _eks(resources: tuple[Recorded, ...]) -> dict[str, Any]:
    return find(resources, "eks:index:Cluster", "llm-eks").inputs


def test_kubeconfig_depends_only_on_cluster_identity() -> None:
    config = render_kubeconfig("c1", "https://x.eks", "Q0E=", "eu-west-1")
    assert config["clusters"] == [
        {"name": "c1", "cluster": {"server": "https://x.eks", "certificate-authority-data": "Q0E="}}
    ]
    user = config["users"][0]["user"]["exec"]
    assert user["command"] == "aws"
    assert user["args"] == [
        "eks",
        "get-token",
        "--cluster-name",
        "c1",
        "--region",
        "eu-west-1",
        "--output",
        "json",
    ]
    assert "env" not in user  # no AWS_PROFILE baked in: who deploys never changes it
    assert render_kubeconfig("c1", "https://x.eks", "Q0E=", "eu-west-1") == config


def test_api_authentication_with_admin_access_entries(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    eks = _eks(fixture_resources)
    assert eks["authenticationMode"] == "API"
    cfg = typed_config(fixture_stack)
    assert eks["name"] == cfg.cluster.name

    def entry(arn: str, role: str, policy: str) -> dict[str, Any]:
        access = {role: {"policyArn": policy, "accessScope": {"type": "cluster"}}}
        return {"principalArn": arn, "accessPolicies": access, "tags": cfg.all_tags}

    assert eks["accessEntries"] == {
        **{
            f"admin-{i}": entry(arn, "cluster-admin", CLUSTER_ADMIN_POLICY)
            for i, arn in enumerate(cfg.cluster.admins)
        },
        "viewer-0": entry(cfg.ci.preview_role_arn, "view", CLUSTER_VIEW_POLICY),
    }
    # EKS gives the creator (the deploy role, which runs the first `pulumi up`) an entry
    # of its own; a second one for it would fail with ResourceInUseException.
    principals = [e["principalArn"] for e in eks["accessEntries"].values()]
    assert cfg.ci.deploy_role_arn not in principals
    assert len(set(principals)) == len(principals)
    # pulumi-eks makes each aws:eks/accessEntry:AccessEntry from these args alone (the
    # offline plan does not see inside the remote component): the pack's tag rule must
    # pass on what it will create.
    for name, args in eks["accessEntries"].items():
        created = {**args, "clusterName": cfg.cluster.name}
        assert check("cost-tags-required", ACCESS_ENTRY, created, settings(cfg)) == [], name


def test_config_rejects_the_deploy_role_as_an_admin(fixture_stack: str) -> None:
    def deployer_as_admin(config: dict[str, Any]) -> None:
        ci = config["llm-platform:ci"]
        config["llm-platform:cluster"]["admins"].append(ci["deployRoleArn"])

    run = run_stack(fixture_stack, deployer_as_admin)
    assert isinstance(run.error, ConfigError)
    assert run.resources == []
    cfg = typed_config(fixture_stack)
    assert run.error.problems == [
        f"llm-platform:cluster.admins[{len(cfg.cluster.admins)}] = "
        f'"{cfg.ci.deploy_role_arn}": this is ci.deployRoleArn, which creates the cluster '
        "and so already gets an admin access entry from EKS; a second entry for it fails "
        "(ResourceInUseException). Remove it here"
    ]


def test_secrets_encrypted_with_a_rotating_key_and_all_logs_on(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    eks = _eks(fixture_resources)
    key = find(fixture_resources, "aws:kms/key:Key", "llm-secrets")
    assert key.inputs["enableKeyRotation"] is True
    assert eks["encryptionConfigKeyArn"].endswith(":key/llm-secrets")
    assert eks["enabledClusterLogTypes"] == [
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    ]


def test_endpoint_access_follows_config(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    eks = _eks(fixture_resources)
    cluster = typed_config(fixture_stack).cluster
    assert eks["endpointPrivateAccess"] is True
    if not cluster.endpoint_public_access:
        assert eks["endpointPublicAccess"] is False
        assert "publicAccessCidrs" not in eks
    else:
        assert eks["endpointPublicAccess"] is True
        assert eks["publicAccessCidrs"] == [str(c) for c in cluster.public_access_cidrs]
        assert eks["publicAccessCidrs"] and "0.0.0.0/0" not in eks["publicAccessCidrs"]


def test_the_fixtures_have_a_private_and_a_public_endpoint() -> None:
    assert {typed_config(s).cluster.endpoint_public_access for s in FIXTURE_STACKS} == {
        True,
        False,
    }


def test_no_default_node_group_oidc_or_self_managed_addons(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    eks = _eks(fixture_resources)
    assert eks["skipDefaultNodeGroup"] is True
    assert eks["createOidcProvider"] is False
    assert eks["bootstrapSelfManagedAddons"] is False
    assert eks["corednsAddonOptions"]["enabled"] is False
    assert eks["kubeProxyAddonOptions"]["enabled"] is False


def test_managed_addons_at_config_versions_in_dependency_order(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    versions = stack_config(fixture_stack)["llm-platform:cluster"]["addons"]
    addons = {a.inputs["addonName"]: a for a in find_all(fixture_resources, "aws:eks/addon:Addon")}
    assert {n: a.inputs["addonVersion"] for n, a in addons.items()} == versions
    for before in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert "llm-system" not in addons[before].depends_on
        assert (
            f"llm-{before}"
            in find(fixture_resources, "aws:eks/nodeGroup:NodeGroup", "llm-system").depends_on
        )
    for after in ("coredns", "aws-ebs-csi-driver"):
        assert "llm-system" in addons[after].depends_on
    account = stack_config(fixture_stack)["llm-platform:accountId"]
    assert addons["aws-ebs-csi-driver"].inputs["podIdentityAssociations"] == [
        {
            "roleArn": f"arn:aws:iam::{account}:role/llm-ebs-csi",
            "serviceAccount": "ebs-csi-controller-sa",
        }
    ]
    ebs_trust = json.loads(
        find(fixture_resources, "aws:iam/role:Role", "llm-ebs-csi").inputs["assumeRolePolicy"]
    )
    assert ebs_trust["Statement"][0]["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert ebs_trust["Statement"][0]["Action"] == ["sts:AssumeRole", "sts:TagSession"]


def test_system_node_group_is_on_demand_tainted_and_imdsv2(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    group = find(fixture_resources, "aws:eks/nodeGroup:NodeGroup", "llm-system").inputs
    sng = stack_config(fixture_stack)["llm-platform:cluster"]["systemNodeGroup"]
    assert group["capacityType"] == "ON_DEMAND"
    assert group["instanceTypes"] == sng["instanceTypes"]
    assert group["scalingConfig"] == {
        "minSize": sng["minSize"],
        "desiredSize": sng["desiredSize"],
        "maxSize": sng["maxSize"],
    }
    assert group["labels"] == {"llm-platform.io/node-role": "system"}
    assert group["taints"] == [
        {"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}
    ]
    template = find(fixture_resources, "aws:ec2/launchTemplate:LaunchTemplate", "llm-system").inputs
    assert template["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
    }
    assert template["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    attached = {
        a.inputs["policyArn"].rsplit("/", 1)[-1]
        for a in find_all(fixture_resources, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.name.startswith("llm-system-node-")
    }
    assert attached == {
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonSSMManagedInstanceCore",
    }


def test_cluster_security_group_tagged_for_karpenter(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    tag = find(fixture_resources, "aws:ec2/tag:Tag", "llm-sg-discovery").inputs
    name = typed_config(fixture_stack).cluster.name
    assert tag == {
        "resourceId": f"sg-{name}-cluster",
        "key": "karpenter.sh/discovery",
        "value": name,
    }


def test_one_kubernetes_provider_from_the_deterministic_kubeconfig(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    providers = find_all(fixture_resources, "pulumi:providers:kubernetes")
    assert [p.name for p in providers] == ["llm-k8s"]
    # In-cluster resources wait for the provider, so for nodes, DNS and the EBS driver.
    assert {"llm-system", "llm-coredns", "llm-aws-ebs-csi-driver"} <= set(providers[0].depends_on)
    kubeconfig = json.loads(providers[0].inputs["kubeconfig"])
    region = stack_config(fixture_stack)["aws:region"]
    name = typed_config(fixture_stack).cluster.name
    assert kubeconfig == render_kubeconfig(
        name,
        f"https://{name.upper()}0MOCK.gr7.{region}.eks.amazonaws.com",
        "TU9DSy1DTFVTVEVSLUNB",
        region,
    )
    # An unknown kubeconfig at preview (the invoke waits on pulumi-eks's children) must
    # not replace the provider and everything on it: only a new cluster does.
    assert providers[0].inputs["clusterIdentifier"] == name


def test_component_outputs_resolve() -> None:
    config = ClusterConfig.model_validate(
        {"name": "unit", "addons": stack_config(SMALL)["llm-platform:cluster"]["addons"]}
    )

    def build() -> tuple[str, str]:
        cluster = Cluster(
            "c",
            ClusterArgs(
                config=config, region="us-west-2", vpc_id="vpc-1", private_subnet_ids=["s-1"]
            ),
        )
        return resolve(cluster.endpoint), resolve(cluster.security_group_id)

    _, (endpoint, sg) = run_component(build)
    assert endpoint == "https://UNIT0MOCK.gr7.us-west-2.eks.amazonaws.com"
    assert sg == "sg-unit-cluster"


def test_every_aws_resource_naming_the_cluster_waits_for_it(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    """``clusterName`` is a plain string from config, so no dependency is implied: each
    such resource must reach the EKS cluster through its dependencies, or a first
    ``pulumi up`` races the cluster's creation."""
    deps_of: dict[str, set[str]] = {}  # by name: names repeat across types
    for r in fixture_resources:
        deps_of.setdefault(r.name, set()).update(
            [*r.depends_on, *([r.provider] if r.provider else [])]
        )

    def reaches_cluster(name: str, seen: set[str]) -> bool:
        if name == "llm-eks":
            return True
        seen.add(name)
        return any(d not in seen and reaches_cluster(d, seen) for d in deps_of.get(name, ()))

    naming = [
        r for r in fixture_resources if r.type.startswith("aws:") and "clusterName" in r.inputs
    ]
    assert len(naming) >= 10
    assert [r.name for r in naming if not reaches_cluster(r.name, set())] == []


def test_network_policies_are_enforced(fixture_resources: tuple[Recorded, ...]) -> None:
    # The program renders NetworkPolicies (model servers); EKS enforces none of them
    # unless the VPC CNI's network policy agent is on.
    assert find_all(fixture_resources, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    addons = {
        a.inputs["addonName"]: a.inputs for a in find_all(fixture_resources, "aws:eks/addon:Addon")
    }
    assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}
    # pulumi-eks must not install a second vpc-cni add-on next to ours.
    cluster = find(fixture_resources, "eks:index:Cluster", "llm-eks").inputs
    assert cluster["useDefaultVpcCni"] is True
