"""Environment guardrails and pod hardening rules: one case per check, exact messages,
from a passing fixture changed in one place."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policies.core import Resource
from tests.policy_cases import SETTINGS, Mutation, Props, changed, check, check_stack
from tests.test_policies_gpu import GPU_POOL, NODEPOOL, REQS
from tests.test_policies_workloads import DEPLOYMENT, VLLM

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
NAMESPACE = "kubernetes:core/v1:Namespace"
TOPIC = "arn:aws:sns:us-west-2:111122223333:s-budget-alerts"

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}
# The workloads fixture, hardened as workloads.serving.pod_security renders it, with
# an init container and a digest-pinned image.
HARDENED: Props = copy.deepcopy(VLLM)
_POD = HARDENED["spec"]["template"]["spec"]
_POD["securityContext"] = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_POD["automountServiceAccountToken"] = False
_POD["containers"][0]["securityContext"] = copy.deepcopy(RESTRICTED)
_POD["containers"][0]["image"] = "vllm/vllm-openai:v0.11.2@sha256:" + "a" * 64
_POD["initContainers"] = [
    {
        "name": "weights",
        "image": _POD["containers"][0]["image"],
        "securityContext": copy.deepcopy(RESTRICTED),
    }
]
C = "spec.template.spec.containers[0] (vllm)"
INIT = "spec.template.spec.initContainers[0] (weights)"


def _pod(p: Props) -> dict[str, Any]:
    return p["spec"]["template"]["spec"]


def _sc(p: Props, kind: str = "containers") -> dict[str, Any]:
    return _pod(p)[kind][0]["securityContext"]


POD_RULES = (
    "gpu-pod-restricted-pod-security",
    "gpu-container-read-only-root-filesystem",
    "gpu-pod-no-api-token",
    "gpu-container-image-pinned-by-digest",
)


@pytest.mark.parametrize("name", POD_RULES)
def test_the_hardened_deployment_passes(name: str) -> None:
    assert check(name, DEPLOYMENT, HARDENED) == []


# (case, rule, mutation, exact messages)
POD_CASES: list[tuple[str, str, Mutation, list[str]]] = [
    (
        "privilege escalation allowed",
        "gpu-pod-restricted-pod-security",
        lambda p: _sc(p).pop("allowPrivilegeEscalation"),
        [f"{C}: securityContext.allowPrivilegeEscalation is not false"],
    ),
    (
        "capabilities kept",
        "gpu-pod-restricted-pod-security",
        lambda p: _sc(p).pop("capabilities"),
        [f'{C}: securityContext.capabilities.drop does not include "ALL"'],
    ),
    (
        "a capability added",
        "gpu-pod-restricted-pod-security",
        lambda p: _sc(p)["capabilities"].update(add=["SYS_ADMIN"]),
        [f"{C}: securityContext.capabilities.add has SYS_ADMIN (only NET_BIND_SERVICE allowed)"],
    ),
    (
        "privileged init container",
        "gpu-pod-restricted-pod-security",
        lambda p: _pod(p)["initContainers"][0].update(
            securityContext={**RESTRICTED, "privileged": True}
        ),
        [f"{INIT}: securityContext.privileged is true"],
    ),
    (
        "root allowed",
        "gpu-pod-restricted-pod-security",
        lambda p: (_sc(p).pop("runAsNonRoot"), _pod(p)["securityContext"].pop("runAsNonRoot")),
        [f"{C}: runAsNonRoot is not true (container or pod securityContext)"],
    ),
    (
        "uid 0",
        "gpu-pod-restricted-pod-security",
        lambda p: _pod(p)["securityContext"].update(runAsUser=0),
        [f"{INIT}: runAsUser is 0 (root)", f"{C}: runAsUser is 0 (root)"],
    ),
    (
        "no seccomp profile",
        "gpu-pod-restricted-pod-security",
        lambda p: _pod(p)["securityContext"].pop("seccompProfile"),
        [
            f"{INIT}: seccompProfile.type is not set (container or pod); allowed: RuntimeDefault, "
            "Localhost",
            f"{C}: seccompProfile.type is not set (container or pod); allowed: RuntimeDefault, "
            "Localhost",
        ],
    ),
    (
        "host network",
        "gpu-pod-restricted-pod-security",
        lambda p: _pod(p).update(hostNetwork=True),
        ["spec.template.spec.hostNetwork is true: shares the node's namespaces"],
    ),
    (
        "hostPath volume",
        "gpu-pod-restricted-pod-security",
        lambda p: _pod(p)["volumes"].append({"name": "cache", "hostPath": {"path": "/data"}}),
        [
            "spec.template.spec.volumes[1] (cache) is a hostPath volume; allowed: configMap, "
            "csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret"
        ],
    ),
    (
        "host port",
        "gpu-pod-restricted-pod-security",
        lambda p: _pod(p)["containers"][0].update(ports=[{"containerPort": 8000, "hostPort": 80}]),
        [f"{C}: ports[0] sets hostPort 80"],
    ),
    (
        "writable root filesystem",
        "gpu-container-read-only-root-filesystem",
        lambda p: _sc(p, "initContainers").update(readOnlyRootFilesystem=False),
        [f"{INIT}: securityContext.readOnlyRootFilesystem is not true"],
    ),
    (
        "API token mounted",
        "gpu-pod-no-api-token",
        lambda p: _pod(p).pop("automountServiceAccountToken"),
        [
            "spec.template.spec.automountServiceAccountToken is not false: the pod gets a "
            "Kubernetes API token it does not use (EKS Pod Identity projects its own)"
        ],
    ),
    (
        "image by tag only",
        "gpu-container-image-pinned-by-digest",
        lambda p: _pod(p)["containers"][0].update(image="vllm/vllm-openai:v0.11.2"),
        [
            f"{C}: image vllm/vllm-openai:v0.11.2 is not pinned by digest "
            "(<image>:<tag>@sha256:<digest>)"
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "mutate", "messages"),
    [pytest.param(r, m, e, id=c) for c, r, m, e in POD_CASES],
)
def test_one_changed_pod_field_violates(name: str, mutate: Mutation, messages: list[str]) -> None:
    assert check(name, DEPLOYMENT, changed(HARDENED, mutate)) == messages


def test_a_tag_is_enough_where_the_environment_does_not_require_digests() -> None:
    unpinned = changed(HARDENED, lambda p: _pod(p)["containers"][0].update(image="i:v1.0.0"))
    no_digest = {**SETTINGS, "requireImageDigest": False}
    assert check("gpu-container-image-pinned-by-digest", DEPLOYMENT, unpinned, no_digest) == []


def _namespace(labels: dict[str, str]) -> Resource:
    return Resource(NAMESPACE, "ns", {"metadata": {"name": "inference", "labels": labels}})


NAMESPACE_RULE = "gpu-namespace-enforces-restricted"


@pytest.mark.parametrize(
    ("namespaces", "messages"),
    [
        ([_namespace({"pod-security.kubernetes.io/enforce": "restricted"})], []),
        (
            [_namespace({"pod-security.kubernetes.io/enforce": "baseline"})],
            [
                "namespace inference (GPU Deployments): label pod-security.kubernetes.io/"
                "enforce = baseline; must be restricted"
            ],
        ),
        (
            [],
            [
                "namespace inference (GPU Deployments) is not created by the stack: its "
                "pod-security.kubernetes.io/enforce label cannot be verified"
            ],
        ),
    ],
    ids=["restricted", "baseline level", "namespace not in the stack"],
)
def test_gpu_namespaces_enforce_restricted(namespaces: list[Resource], messages: list[str]) -> None:
    resources = [Resource(DEPLOYMENT, "d", HARDENED), *namespaces]
    assert check_stack(NAMESPACE_RULE, resources) == messages


# --------------------------------------------------------------------------- capacity


def _capacity(props: Props, *types: str) -> Props:
    def mutate(p: Props) -> None:
        reqs: Any = p
        for key in REQS:
            reqs = reqs[key]
        reqs[0]["values"] = list(types)

    return changed(props, mutate)


SPOT = _capacity(GPU_POOL, "spot")
SPOT_AND_ON_DEMAND = _capacity(GPU_POOL, "spot", "on-demand")
FALLBACK = "gpu-capacity-has-on-demand-fallback"


def _weighted(props: Props, weight: int) -> Props:
    return changed(props, lambda p: p["spec"].update(weight=weight))


@pytest.mark.parametrize(
    ("pools", "settings", "messages"),
    [
        ([("a", SPOT_AND_ON_DEMAND)], SETTINGS, []),
        ([("a", _weighted(SPOT, 50)), ("b", _weighted(SPOT_AND_ON_DEMAND, 10))], SETTINGS, []),
        (
            [("a", SPOT)],
            SETTINGS,
            [
                "GPU pool a allows spot only and no on-demand GPU pool of lower weight follows "
                "it: a spot shortage leaves its pods Pending (allow on-demand in it, or add an "
                "on-demand pool with a lower weight)"
            ],
        ),
        (
            [("a", _weighted(SPOT, 10)), ("b", _weighted(SPOT_AND_ON_DEMAND, 50))],
            SETTINGS,
            [
                "GPU pool a allows spot only and no on-demand GPU pool of lower weight follows "
                "it: a spot shortage leaves its pods Pending (allow on-demand in it, or add an "
                "on-demand pool with a lower weight)"
            ],
        ),
        ([("a", SPOT)], {**SETTINGS, "requireOnDemandFallback": False}, []),
    ],
    ids=[
        "fallback in the pool",
        "lower-weight pool with on-demand",
        "spot only",
        "the on-demand pool is tried first, not after",
        "not required here",
    ],
)
def test_on_demand_fallback(
    pools: list[tuple[str, Props]], settings: dict[str, Any], messages: list[str]
) -> None:
    resources = [Resource(NODEPOOL, name, props) for name, props in pools]
    assert check_stack(FALLBACK, resources, settings) == messages


SCALED: Props = {"spec": {"scaleTargetRef": {"name": "m1"}, "minReplicaCount": 2}}
REPLICAS = "model-min-replicas"


@pytest.mark.parametrize(
    ("type_", "props", "messages"),
    [
        (DEPLOYMENT, changed(HARDENED, lambda p: p["spec"].update(replicas=2)), []),
        (SCALED_OBJECT, SCALED, []),
        (
            DEPLOYMENT,
            HARDENED,
            ["spec.replicas = 1: below the environment minimum of 2"],
        ),
        (
            SCALED_OBJECT,
            changed(SCALED, lambda p: p["spec"].pop("minReplicaCount")),
            ["spec.minReplicaCount = 0: below the environment minimum of 2"],
        ),
    ],
    ids=["deployment at the minimum", "scaler at the minimum", "one replica", "KEDA default 0"],
)
def test_min_replicas(type_: str, props: Props, messages: list[str]) -> None:
    assert check(REPLICAS, type_, props) == messages


def test_cpu_deployments_have_no_replica_minimum() -> None:
    cpu = changed(HARDENED, lambda p: _pod(p)["containers"][0].update(resources={}))
    assert check(REPLICAS, DEPLOYMENT, cpu) is None


# --------------------------------------------------------------------------- nodes, logs


def _nodeclass(alias: str) -> Props:
    return {"spec": {"amiSelectorTerms": [{"alias": alias}]}}


@pytest.mark.parametrize(
    ("alias", "settings", "messages"),
    [
        ("al2023@v20251108", SETTINGS, []),
        (
            "al2023@latest",
            SETTINGS,
            [
                "spec.amiSelectorTerms[0].alias = al2023@latest: nodes change image whenever AWS "
                "publishes one; pin a version (nodeClass.amiVersion)"
            ],
        ),
        ("al2023@latest", {**SETTINGS, "requirePinnedAmi": False}, []),
    ],
    ids=["pinned", "latest", "latest where allowed"],
)
def test_ami_pinned(alias: str, settings: dict[str, Any], messages: list[str]) -> None:
    assert check("node-ami-pinned", NODECLASS, _nodeclass(alias), settings) == messages


@pytest.mark.parametrize(
    ("props", "messages"),
    [
        ({"kmsKeyId": "arn:aws:kms:us-west-2:111122223333:key/k", "retentionInDays": 14}, []),
        (
            {"retentionInDays": 14},
            ["kmsKeyId is not set: the log group is not encrypted with a KMS key"],
        ),
    ],
    ids=["encrypted", "no key"],
)
def test_log_group_kms(props: Props, messages: list[str]) -> None:
    assert check("log-group-kms-encrypted", LOG_GROUP, props) == messages


def _network(nats: int, zones: tuple[str, ...] = ("z-a", "z-b", "z-c")) -> list[Resource]:
    subnets = [Resource("aws:ec2/subnet:Subnet", f"s-{z}", {"availabilityZone": z}) for z in zones]
    return subnets + [
        Resource("aws:ec2/natGateway:NatGateway", f"nat-{i}", {}) for i in range(nats)
    ]


@pytest.mark.parametrize(
    ("network", "settings", "messages"),
    [
        (_network(3), SETTINGS, []),
        (
            _network(1),
            SETTINGS,
            [
                "1 NAT gateway(s) for 3 zones (z-a, z-b, z-c): a zone outage cuts the egress of "
                "the others (network.natGateways: perZone)"
            ],
        ),
        (_network(1), {**SETTINGS, "requireNatPerZone": False}, []),
    ],
    ids=["one per zone", "a single NAT", "single NAT where allowed"],
)
def test_nat_per_zone(
    network: list[Resource], settings: dict[str, Any], messages: list[str]
) -> None:
    assert check_stack("network-nat-per-zone", network, settings) == messages


# --------------------------------------------------------------------------- budgets


def _budget(**notification: Any) -> Resource:
    n = {"notificationType": "ACTUAL", "threshold": 80, **notification}
    return Resource("aws:budgets/budget:Budget", "b", {"notifications": [n]})


SUBSCRIPTION = Resource(
    "aws:sns/topicSubscription:TopicSubscription", "sub", {"topic": TOPIC, "protocol": "email"}
)


def _kubecost(alert: dict[str, Any], **configs: Any) -> Resource:
    values = {"global": {"notifications": {"alertConfigs": {"alerts": [alert], **configs}}}}
    return Resource(
        "kubernetes:helm.sh/v3:Release", "kc", {"chart": "cost-analyzer", "values": values}
    )


NS_ALERT = {"type": "budget", "aggregation": "namespace", "filter": "inference"}


@pytest.mark.parametrize(
    ("billing", "messages"),
    [
        ([_budget(subscriberSnsTopicArns=[TOPIC]), SUBSCRIPTION], []),
        ([_budget(subscriberEmailAddresses=["a@example.com"])], []),
        (
            [_budget(subscriberSnsTopicArns=[TOPIC])],
            [
                "aws:budgets/budget:Budget b: notifications[0] has no email subscriber and no "
                "SNS topic with a subscription"
            ],
        ),
        ([_kubecost({**NS_ALERT, "ownerContact": ["a@example.com"]})], []),
        ([_kubecost(NS_ALERT, globalAlertEmails=["a@example.com"])], []),
        (
            [_kubecost(NS_ALERT)],
            [
                "kubernetes:helm.sh/v3:Release kc: alertConfigs.alerts[0] (namespace inference) "
                "has no ownerContact and there are no globalAlertEmails"
            ],
        ),
    ],
    ids=[
        "AWS budget to a subscribed topic",
        "AWS budget to an email",
        "AWS budget to a topic nobody subscribed to",
        "Kubecost alert with an owner",
        "Kubecost alert with global emails",
        "Kubecost alert to nobody",
    ],
)
def test_every_budget_has_a_recipient(billing: list[Resource], messages: list[str]) -> None:
    assert check_stack("budget-has-recipient", billing) == messages
