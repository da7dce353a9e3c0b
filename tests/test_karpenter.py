"""Karpenter: controller IAM, node role, interruption queue and rules, Helm releases."""

from __future__ import annotations

import json
from typing import Any

from infra.core.arns import Arns
from infra.karpenter.config import KarpenterConfig
from infra.karpenter.controller import (
    POLICY_GROUPS,
    PolicyScope,
    controller_policies,
    controller_values,
    interruption_event_patterns,
    queue_policy,
)
from tests.harness import SMALL, cluster_name, find, find_all, run_stack, typed_config
from tools.mock_runtime import Recorded

ACCOUNT = "123456789012"
SCOPE = PolicyScope(cluster_name="c1", arns=Arns(account_id=ACCOUNT, region="eu-west-1"))
OWNED = "kubernetes.io/cluster/c1"
# Actions that need no tag scope: reads AWS offers no resource-level permission for,
# launch inputs owned by AWS or the VPC (AMIs, subnets, ...), and PassRole of one role.
UNSCOPED_OK = {
    "AllowScopedEC2InstanceAccessActions",
    "AllowPassingInstanceRole",
    "AllowAPIServerEndpointDiscovery",
    "AllowInterruptionQueueActions",
    "AllowRegionalReadActions",
    "AllowSSMReadActions",
    "AllowPricingReadActions",
    "AllowUnscopedInstanceProfileListAction",
    "AllowInstanceProfileReadActions",
}


def _statements(policies: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for doc in policies.values() for s in doc["Statement"]}


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


# --------------------------------------------------------------------------- pure


def test_controller_policy_has_the_upstream_statements_in_five_groups() -> None:
    policies = controller_policies(SCOPE)
    assert tuple(policies) == POLICY_GROUPS
    assert list(_statements(policies)) == [
        "AllowScopedEC2InstanceAccessActions",
        "AllowScopedEC2LaunchTemplateAccessActions",
        "AllowScopedEC2InstanceActionsWithTags",
        "AllowScopedResourceCreationTagging",
        "AllowScopedResourceTagging",
        "AllowScopedDeletion",
        "AllowPassingInstanceRole",
        "AllowScopedInstanceProfileCreationActions",
        "AllowScopedInstanceProfileTagActions",
        "AllowScopedInstanceProfileActions",
        "AllowAPIServerEndpointDiscovery",
        "AllowInterruptionQueueActions",
        "AllowRegionalReadActions",
        "AllowSSMReadActions",
        "AllowPricingReadActions",
        "AllowUnscopedInstanceProfileListAction",
        "AllowInstanceProfileReadActions",
    ]


def test_controller_policy_never_allows_a_wildcard_action() -> None:
    for sid, statement in _statements(controller_policies(SCOPE)).items():
        assert statement["Effect"] == "Allow", sid
        for action in _actions(statement):
            service, _, name = action.partition(":")
            assert service and name and "*" not in action, (sid, action)


def test_every_mutating_statement_is_scoped_to_this_clusters_tags() -> None:
    for sid, statement in _statements(controller_policies(SCOPE)).items():
        if sid in UNSCOPED_OK:
            continue
        conditions = statement["Condition"]
        equals = conditions["StringEquals"]
        assert equals.get(f"aws:ResourceTag/{OWNED}") == "owned" or (
            equals.get(f"aws:RequestTag/{OWNED}") == "owned"
        ), sid
        like = conditions["StringLike"]
        assert set(like) <= {
            "aws:ResourceTag/karpenter.sh/nodepool",
            "aws:RequestTag/karpenter.sh/nodepool",
            "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass",
            "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass",
        } and set(like.values()) == {"*"}, sid


def test_resource_wildcard_only_for_reads_without_resource_level_permissions() -> None:
    wildcard = {
        action
        for s in _statements(controller_policies(SCOPE)).values()
        if s["Resource"] == "*"
        for action in _actions(s)
    }
    assert wildcard == {
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
        "pricing:GetProducts",
        "iam:ListInstanceProfiles",
    }
    regional = _statements(controller_policies(SCOPE))["AllowRegionalReadActions"]
    assert regional["Condition"] == {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}


def test_pass_role_queue_and_cluster_statements_name_exactly_our_resources() -> None:
    statements = _statements(controller_policies(SCOPE))
    assert statements["AllowPassingInstanceRole"]["Resource"] == SCOPE.node_role_arn
    assert statements["AllowPassingInstanceRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}
    }
    assert statements["AllowInterruptionQueueActions"]["Resource"] == SCOPE.queue_arn
    assert statements["AllowInterruptionQueueActions"]["Action"] == [
        "sqs:DeleteMessage",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    ]
    assert statements["AllowAPIServerEndpointDiscovery"]["Resource"] == (
        f"arn:aws:eks:eu-west-1:{ACCOUNT}:cluster/c1"
    )
    creation = statements["AllowScopedResourceCreationTagging"]["Condition"]["StringEquals"]
    assert creation["ec2:CreateAction"] == ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]
    assert creation["aws:RequestTag/eks:eks-cluster-name"] == "c1"


def test_interruption_event_patterns_are_spelled_as_aws_emits_them() -> None:
    assert interruption_event_patterns() == {
        "spot": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
        "rebalance": {
            "source": ["aws.ec2"],
            "detail-type": ["EC2 Instance Rebalance Recommendation"],
        },
        "state": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
        "health": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
        "reservation": {
            "source": ["aws.ec2"],
            "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"],
        },
    }


def test_queue_policy_lets_eventbridge_send_and_denies_non_tls() -> None:
    arn = SCOPE.queue_arn
    allow, deny = queue_policy(arn)["Statement"]
    assert allow == {
        "Sid": "AllowEventBridge",
        "Effect": "Allow",
        "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
        "Action": "sqs:SendMessage",
        "Resource": arn,
    }
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Resource"] == arn
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_controller_values_pin_the_controller_to_system_nodes() -> None:
    assert controller_values("c1", "c1-karpenter-interruption") == {
        "settings": {"clusterName": "c1", "interruptionQueue": "c1-karpenter-interruption"},
        "serviceAccount": {"create": True, "name": "karpenter"},
        "replicas": 2,
        "nodeSelector": {"kubernetes.io/os": "linux", "llm-platform.io/node-role": "system"},
        "tolerations": [
            {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}
        ],
        "controller": {
            "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            }
        },
        "serviceMonitor": {
            "enabled": True,
            "additionalLabels": {"release": "kube-prometheus-stack"},
        },
    }


def test_controller_release_waits_for_the_servicemonitor_crd(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    release = find(fixture_resources, "kubernetes:helm.sh/v3:Release", "karpenter-controller")
    assert "monitoring-crds" in release.depends_on


# --------------------------------------------------------------------------- stacks


def test_queue_is_encrypted_short_lived_and_tls_only(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    queue = find(fixture_resources, "aws:sqs/queue:Queue", "karpenter-interruption").inputs
    assert queue["name"] == f"{cluster_name(fixture_stack)}-karpenter-interruption"
    assert queue["messageRetentionSeconds"] == 300
    assert queue["sqsManagedSseEnabled"] is True
    policy = find(
        fixture_resources, "aws:sqs/queuePolicy:QueuePolicy", "karpenter-interruption"
    ).inputs
    cfg = typed_config(fixture_stack)
    arn = f"arn:aws:sqs:{cfg.region}:{cfg.account_id}:{cfg.cluster.name}-karpenter-interruption"
    assert json.loads(policy["policy"]) == queue_policy(arn)


def test_each_rule_targets_the_queue_with_its_exact_pattern(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    patterns = interruption_event_patterns()
    rules = {
        r.name: r.inputs for r in find_all(fixture_resources, "aws:cloudwatch/eventRule:EventRule")
    }
    assert set(rules) == {f"karpenter-{suffix}" for suffix in patterns}
    for suffix, pattern in patterns.items():
        rule = rules[f"karpenter-{suffix}"]
        assert rule["name"] == f"{cluster_name(fixture_stack)}-karpenter-{suffix}"
        assert json.loads(rule["eventPattern"]) == pattern
        target = find(
            fixture_resources, "aws:cloudwatch/eventTarget:EventTarget", f"karpenter-{suffix}"
        )
        assert target.inputs["rule"] == rule["name"]
        assert target.inputs["arn"].endswith(
            f":{cluster_name(fixture_stack)}-karpenter-interruption"
        )


def test_controller_role_is_for_pod_identity_with_the_scoped_policies(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    role = find(fixture_resources, "aws:iam/role:Role", "karpenter-controller").inputs
    trust = json.loads(role["assumeRolePolicy"])["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ]
    cfg = typed_config(fixture_stack)
    cluster = cfg.cluster.name
    expected = controller_policies(PolicyScope(cluster_name=cluster, arns=cfg.arns))
    assert expected["iam-integration"]["Statement"][0]["Resource"] == (
        f"arn:aws:iam::{cfg.account_id}:role/{cluster}-karpenter-node"
    )
    attached = {
        a.inputs["policyArn"]
        for a in find_all(fixture_resources, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == f"{cluster}-karpenter-controller"
    }
    assert attached == {
        f"arn:aws:iam::{cfg.account_id}:policy/{cluster}-karpenter-{g}" for g in expected
    }
    for group, document in expected.items():
        policy = find(fixture_resources, "aws:iam/policy:Policy", f"karpenter-controller-{group}")
        assert json.loads(policy.inputs["policy"]) == document


def test_pod_identity_association_matches_the_charts_service_account(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    association = find(
        fixture_resources,
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
        "karpenter-controller",
    )
    release = find(
        fixture_resources, "kubernetes:helm.sh/v3:Release", "karpenter-controller"
    ).inputs
    assert association.inputs["clusterName"] == f"{cluster_name(fixture_stack)}"
    assert association.inputs["namespace"] == release["namespace"] == "karpenter"
    assert association.inputs["serviceAccount"] == release["values"]["serviceAccount"]["name"]
    assert association.inputs["roleArn"] == (
        f"arn:aws:iam::{typed_config(fixture_stack).account_id}:role/"
        f"{cluster_name(fixture_stack)}-karpenter-controller"
    )
    assert "llm-eks" in association.depends_on


def test_node_role_has_worker_policies_and_an_ec2_linux_access_entry(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    role = find(fixture_resources, "aws:iam/role:Role", "karpenter-node").inputs
    assert role["name"] == f"{cluster_name(fixture_stack)}-karpenter-node"
    trust = json.loads(role["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert trust["Action"] == ["sts:AssumeRole"]
    attached = {
        a.inputs["policyArn"]
        for a in find_all(fixture_resources, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == role["name"]
    }
    assert attached == {
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    }
    entry = find(fixture_resources, "aws:eks/accessEntry:AccessEntry", "karpenter-node").inputs
    assert entry["type"] == "EC2_LINUX"
    assert entry["clusterName"] == f"{cluster_name(fixture_stack)}"
    account = typed_config(fixture_stack).account_id
    assert entry["principalArn"] == f"arn:aws:iam::{account}:role/{role['name']}"


def test_both_charts_at_the_configured_version_crds_first(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    version = KarpenterConfig().version  # the fixtures keep the documented default
    crd = find(fixture_resources, "kubernetes:helm.sh/v3:Release", "karpenter-crd").inputs
    controller = find(fixture_resources, "kubernetes:helm.sh/v3:Release", "karpenter-controller")
    assert (crd["name"], crd["chart"]) == (
        "karpenter-crd",
        "oci://public.ecr.aws/karpenter/karpenter-crd",
    )
    assert (controller.inputs["name"], controller.inputs["chart"]) == (
        "karpenter",
        "oci://public.ecr.aws/karpenter/karpenter",
    )
    assert crd["version"] == controller.inputs["version"] == version
    assert crd["namespace"] == controller.inputs["namespace"] == "karpenter"
    assert controller.inputs["skipCrds"] is True
    assert {
        "karpenter-crd",
        "karpenter-controller",  # the pod identity association (and the role of that name)
        "karpenter-node",  # the access entry
    } <= set(controller.depends_on)


def test_a_configured_version_moves_both_charts_together() -> None:
    run = run_stack(SMALL, lambda c: c.update({"llm-platform:karpenter": {"version": "1.13.1"}}))
    assert run.error is None
    releases = find_all(run.resources, "kubernetes:helm.sh/v3:Release")
    assert {r.name: r.inputs["version"] for r in releases if r.parent == "karpenter"} == {
        "karpenter-crd": "1.13.1",
        "karpenter-controller": "1.13.1",
    }


def test_controller_values_in_the_stack(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    values = find(
        fixture_resources, "kubernetes:helm.sh/v3:Release", "karpenter-controller"
    ).inputs["values"]
    assert values == controller_values(
        f"{cluster_name(fixture_stack)}", f"{cluster_name(fixture_stack)}-karpenter-interruption"
    )


def test_every_taggable_karpenter_resource_carries_cost_tags(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    ours = [r for r in fixture_resources if r.parent == "karpenter" and r.type.startswith("aws:")]
    taggable = [r for r in ours if "tags" in r.inputs]
    assert {r.type for r in taggable} == {
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:sqs/queue:Queue",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:eks/accessEntry:AccessEntry",
        "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    }
    for r in taggable:
        assert r.inputs["tags"]["environment"] == fixture_stack, r.name
        assert r.inputs["tags"]["cost-center"] == typed_config(fixture_stack).tags["cost-center"], (
            r.name
        )
