"""Security and reliability rules: EKS, IMDSv2, log retention, S3, IAM wildcards."""

from __future__ import annotations

import json

import pytest
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE

from policies.core import Resource
from tests.harness import find, planned
from tests.policy_cases import Mutation, Props, changed, check, check_stack

EKS = "eks:index:Cluster"
AWS_EKS = "aws:eks/cluster:Cluster"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
BUCKET = "aws:s3/bucket:Bucket"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
POLICY = "aws:iam/policy:Policy"
ROLE = "aws:iam/role:Role"

ALL_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

EKS_COMPONENT: Props = {
    "name": "llm-test",
    "encryptionConfigKeyArn": "arn:aws:kms:us-west-2:123456789012:key/llm-secrets",
    "enabledClusterLogTypes": ALL_LOGS,
    "endpointPrivateAccess": True,
    "endpointPublicAccess": True,
    "publicAccessCidrs": ["203.0.113.0/24"],
}
# The aws:eks/cluster:Cluster pulumi-eks creates (seen by CrossGuard in a real preview).
EKS_CLUSTER: Props = {
    "name": "llm-test",
    "encryptionConfig": {
        "provider": {"keyArn": "arn:aws:kms:us-west-2:123456789012:key/llm-secrets"},
        "resources": ["secrets"],
    },
    "enabledClusterLogTypes": ALL_LOGS,
    "vpcConfig": {"endpointPublicAccess": False, "endpointPrivateAccess": True},
}
NODE_CLASS: Props = {
    "apiVersion": "karpenter.k8s.aws/v1",
    "kind": "EC2NodeClass",
    "metadata": {"name": "gpu"},
    "spec": {
        "amiSelectorTerms": [{"alias": "al2023@latest"}],
        "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1},
    },
}
LOGS: Props = {"name": "/llm-platform/test/containers", "retentionInDays": 14}
STAR = {"Effect": "Allow", "Action": "*", "Resource": "*"}
SCOPED = {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": "*"}


def test_the_fixture_clusters_pass_every_eks_rule(fixture_stack: str) -> None:
    cluster = find(planned(fixture_stack), EKS, "llm-eks")
    for name in (
        "eks-secrets-encryption-enabled",
        "eks-control-plane-logging-enabled",
        "eks-endpoint-not-open-to-world",
    ):
        assert check(name, EKS, dict(cluster.inputs)) == [], name


# (case, rule, type, base fixture, mutation, exact messages)
CASES: list[tuple[str, str, str, Props, Mutation | None, list[str]]] = [
    ("component passes", "eks-secrets-encryption-enabled", EKS, EKS_COMPONENT, None, []),
    (
        "component key ARN unknown at preview (still set)",
        "eks-secrets-encryption-enabled",
        EKS,
        EKS_COMPONENT,
        lambda p: p.update(encryptionConfigKeyArn=UNKNOWN_STRING_VALUE),
        [],
    ),
    (
        "component without a key",
        "eks-secrets-encryption-enabled",
        EKS,
        EKS_COMPONENT,
        lambda p: p.pop("encryptionConfigKeyArn"),
        [
            "encryptionConfigKeyArn is not set: Kubernetes secrets are not envelope-encrypted "
            "with a KMS key"
        ],
    ),
    ("cluster passes", "eks-secrets-encryption-enabled", AWS_EKS, EKS_CLUSTER, None, []),
    (
        # pulumi-eks derives the whole block from the key ARN in an apply.
        "cluster encryption unknown at a new stack's preview",
        "eks-secrets-encryption-enabled",
        AWS_EKS,
        EKS_CLUSTER,
        lambda p: p.update(encryptionConfig=UNKNOWN_OBJECT_VALUE),
        [],
    ),
    (
        "cluster encrypting nothing",
        "eks-secrets-encryption-enabled",
        AWS_EKS,
        EKS_CLUSTER,
        lambda p: p["encryptionConfig"].update(resources=[]),
        [
            'encryptionConfig does not cover "secrets" with a KMS key: Kubernetes secrets are '
            "not envelope-encrypted with a KMS key"
        ],
    ),
    (
        "audit logs off",
        "eks-control-plane-logging-enabled",
        EKS,
        EKS_COMPONENT,
        lambda p: p.update(enabledClusterLogTypes=["api", "scheduler"]),
        ["enabledClusterLogTypes lacks audit, authenticator (required: api, audit, authenticator)"],
    ),
    (
        "no logs on the cluster",
        "eks-control-plane-logging-enabled",
        AWS_EKS,
        EKS_CLUSTER,
        lambda p: p.pop("enabledClusterLogTypes"),
        [
            "enabledClusterLogTypes lacks api, audit, authenticator (required: api, audit, "
            "authenticator)"
        ],
    ),
    ("limited public endpoint", "eks-endpoint-not-open-to-world", EKS, EKS_COMPONENT, None, []),
    (
        "public endpoint open to the internet",
        "eks-endpoint-not-open-to-world",
        EKS,
        EKS_COMPONENT,
        lambda p: p.update(publicAccessCidrs=["203.0.113.0/24", "0.0.0.0/0"]),
        ["publicAccessCidrs includes 0.0.0.0/0: the API endpoint is open to the whole internet"],
    ),
    (
        "public endpoint CIDRs that together are the internet",
        "eks-endpoint-not-open-to-world",
        EKS,
        EKS_COMPONENT,
        lambda p: p.update(publicAccessCidrs=["0.0.0.0/1", "128.0.0.0/1"]),
        [
            "publicAccessCidrs 0.0.0.0/1, 128.0.0.0/1 together cover 0.0.0.0/0: the API "
            "endpoint is open to the whole internet"
        ],
    ),
    (
        "public endpoint CIDR wider than the minimum prefix",
        "eks-endpoint-not-open-to-world",
        EKS,
        EKS_COMPONENT,
        lambda p: p.update(publicAccessCidrs=["203.0.113.0/24", "10.0.0.0/8"]),
        ["publicAccessCidrs[1] = 10.0.0.0/8: prefix /8 is wider than the environment minimum /16"],
    ),
    (
        "public endpoint by default without CIDRs",
        "eks-endpoint-not-open-to-world",
        EKS,
        EKS_COMPONENT,
        lambda p: (p.pop("endpointPublicAccess"), p.pop("publicAccessCidrs")),
        [
            "endpointPublicAccess is not set (default true) and publicAccessCidrs is not set: "
            "EKS then opens the API endpoint to 0.0.0.0/0"
        ],
    ),
    ("private cluster", "eks-endpoint-not-open-to-world", AWS_EKS, EKS_CLUSTER, None, []),
    (
        "cluster public to ::/0",
        "eks-endpoint-not-open-to-world",
        AWS_EKS,
        EKS_CLUSTER,
        lambda p: p["vpcConfig"].update(endpointPublicAccess=True, publicAccessCidrs=["::/0"]),
        [
            "vpcConfig.publicAccessCidrs includes ::/0: the API endpoint is open to the whole "
            "internet"
        ],
    ),
    ("node class passes", "imdsv2-required", NODECLASS, NODE_CLASS, None, []),
    (
        "node class allowing IMDSv1",
        "imdsv2-required",
        NODECLASS,
        NODE_CLASS,
        lambda p: p["spec"]["metadataOptions"].update(httpTokens="optional"),
        [
            "spec.metadataOptions.httpTokens = 'optional': IMDSv1 lets any pod on the node read "
            "its credentials"
        ],
    ),
    (
        "node class leaving IMDS to defaults",
        "imdsv2-required",
        NODECLASS,
        NODE_CLASS,
        lambda p: p["spec"].pop("metadataOptions"),
        [
            "spec.metadataOptions.httpTokens is not set: require IMDSv2 explicitly "
            "(httpTokens: required)"
        ],
    ),
    (
        "launch template without metadata options",
        "imdsv2-required",
        LAUNCH_TEMPLATE,
        {"metadataOptions": {"httpTokens": "required"}},
        lambda p: p.clear(),
        ["metadataOptions.httpTokens is not set: require IMDSv2 explicitly (httpTokens: required)"],
    ),
    ("log group passes", "log-group-has-retention", LOG_GROUP, LOGS, None, []),
    (
        "log group kept forever",
        "log-group-has-retention",
        LOG_GROUP,
        LOGS,
        lambda p: p.pop("retentionInDays"),
        ["retentionInDays is not set: logs are kept (and billed) forever; minimum 14"],
    ),
    (
        "log group below the minimum",
        "log-group-has-retention",
        LOG_GROUP,
        LOGS,
        lambda p: p.update(retentionInDays=7),
        ["retentionInDays = 7: below the environment minimum of 14 days"],
    ),
    (
        "scoped IAM policy",
        "iam-no-wildcard-action",
        POLICY,
        {"policy": json.dumps({"Version": "2012-10-17", "Statement": [SCOPED]})},
        None,
        [],
    ),
    (
        "IAM policy allowing *",
        "iam-no-wildcard-action",
        POLICY,
        {"policy": json.dumps({"Version": "2012-10-17", "Statement": [SCOPED]})},
        lambda p: p.update(policy=json.dumps({"Statement": [SCOPED, STAR]})),
        ['policy Statement[1] allows Action "*"'],
    ),
    (
        "IAM policy with a single statement object allowing *:*",
        "iam-no-wildcard-action",
        POLICY,
        {"policy": json.dumps({"Statement": [SCOPED]})},
        lambda p: p.update(policy=json.dumps({"Statement": {**SCOPED, "Action": ["*:*"]}})),
        ['policy Statement[0] (Logs) allows Action "*:*"'],
    ),
    (
        "Deny * is fine",
        "iam-no-wildcard-action",
        POLICY,
        {"policy": json.dumps({"Statement": [SCOPED]})},
        lambda p: p.update(policy=json.dumps({"Statement": [{**STAR, "Effect": "Deny"}]})),
        [],
    ),
    (
        "policy document unknown at preview",
        "iam-no-wildcard-action",
        POLICY,
        {"policy": json.dumps({"Statement": [SCOPED]})},
        lambda p: p.update(policy=UNKNOWN_STRING_VALUE),
        ["policy cannot be verified at preview (unknown until apply)"],
    ),
    (
        "role inline policy allowing *",
        "iam-no-wildcard-action",
        ROLE,
        {"inlinePolicies": [{"name": "ok", "policy": json.dumps({"Statement": [SCOPED]})}]},
        lambda p: p["inlinePolicies"].append(
            {"name": "admin", "policy": json.dumps({"Statement": [STAR]})}
        ),
        ['inlinePolicies[admin].policy Statement[0] allows Action "*"'],
    ),
]


@pytest.mark.parametrize(
    ("name", "type_", "base", "mutate", "messages"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_resource_rules(
    name: str, type_: str, base: Props, mutate: Mutation | None, messages: list[str]
) -> None:
    assert check(name, type_, changed(base, mutate)) == messages


def _bucket_stack(mutate: Mutation | None = None) -> list[Resource]:
    resources: dict[str, Props] = {
        "bucket": {"bucket": "llm-test-models"},
        "pab": {
            "bucket": "llm-test-models",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
        "sse": {
            "bucket": "llm-test-models",
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}],
        },
    }
    resources = changed(resources, mutate)
    return [
        Resource(BUCKET, "models", resources["bucket"]),
        Resource(PAB, "models", resources["pab"], depends_on=("models",)),
        Resource(SSE, "models", resources["sse"], depends_on=("models",)),
    ]


@pytest.mark.parametrize("name", ["s3-bucket-public-access-blocked", "s3-bucket-encrypted"])
def test_a_blocked_encrypted_bucket_passes(name: str) -> None:
    assert check_stack(name, _bucket_stack()) == []


def test_a_bucket_without_public_access_block_violates() -> None:
    resources = [r for r in _bucket_stack() if r.type != PAB]
    assert check_stack("s3-bucket-public-access-blocked", resources) == [
        f"{BUCKET} models: no {PAB} depends on it (set blockPublicAcls, blockPublicPolicy, "
        "ignorePublicAcls, restrictPublicBuckets to true)"
    ]


def test_a_public_access_block_with_a_flag_off_violates() -> None:
    resources = _bucket_stack(lambda r: r["pab"].update(restrictPublicBuckets=False))
    assert check_stack("s3-bucket-public-access-blocked", resources) == [
        f"{PAB} models (bucket models): restrictPublicBuckets not true"
    ]


def test_a_bucket_without_encryption_violates() -> None:
    resources = _bucket_stack(lambda r: r["sse"].update(rules=[]))
    assert check_stack("s3-bucket-encrypted", resources) == [
        f"{BUCKET} models: no server-side encryption configuration with sseAlgorithm AES256 or "
        "aws:kms or aws:kms:dsse"
    ]


def test_inline_bucket_encryption_counts() -> None:
    def inline(r: Props) -> None:
        r["sse"]["rules"] = []
        r["bucket"]["serverSideEncryptionConfiguration"] = {
            "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
        }

    assert check_stack("s3-bucket-encrypted", _bucket_stack(inline)) == []


def test_a_new_buckets_computed_encryption_leaves_the_attached_configuration_to_decide() -> None:
    """In a preview of a new bucket the provider has not computed its own encryption
    block yet (unknown): the attached configuration decides, either way."""

    def computed(r: Props) -> None:
        r["bucket"]["serverSideEncryptionConfiguration"] = UNKNOWN_OBJECT_VALUE

    assert check_stack("s3-bucket-encrypted", _bucket_stack(computed)) == []

    def computed_and_none_attached(r: Props) -> None:
        computed(r)
        r["sse"]["rules"] = []

    assert check_stack("s3-bucket-encrypted", _bucket_stack(computed_and_none_attached)) == [
        f"{BUCKET} models: no server-side encryption configuration with sseAlgorithm AES256 or "
        "aws:kms or aws:kms:dsse"
    ]
