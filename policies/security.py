"""Security and reliability rules: EKS control plane, node metadata, logs, S3, IAM.

EKS clusters are checked both as the pulumi-eks component (``eks:index:Cluster``, the
resource our program registers, with its camelCase args) and as the
``aws:eks/cluster:Cluster`` the component creates, which ``pulumi preview`` also shows
to CrossGuard.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from policies.core import (
    Props,
    Resource,
    ResourceRule,
    Settings,
    StackRule,
    Unverifiable,
    at,
    is_unknown,
    items,
    render_path,
)

EKS_COMPONENT = "eks:index:Cluster"
EKS_CLUSTER = "aws:eks/cluster:Cluster"
EC2NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
BUCKETS = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_ENCRYPTION = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
# Resources whose ``policy`` input is an IAM policy document granting actions.
POLICY_DOCUMENTS = frozenset(
    {
        "aws:iam/policy:Policy",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:sqs/queuePolicy:QueuePolicy",
        "aws:sns/topicPolicy:TopicPolicy",
    }
)
IAM_ROLE = "aws:iam/role:Role"


# --------------------------------------------------------------------------- EKS


def _is_set(props: Props, *keys: str) -> bool:
    """Whether the value at ``keys`` is set, counting a value known only after apply
    (a computed ARN): that it is set is known at preview, which is what matters."""
    try:
        return bool(at(props, *keys))
    except Unverifiable as exc:
        if exc.path == render_path(keys):
            return True
        raise


def check_secrets_encryption(type_: str, props: Props, _s: Settings) -> list[str]:
    if type_ == EKS_COMPONENT:
        if not _is_set(props, "encryptionConfigKeyArn"):
            return [
                "encryptionConfigKeyArn is not set: Kubernetes secrets are not "
                "envelope-encrypted with a KMS key"
            ]
        return []
    if is_unknown(props.get("encryptionConfig")):
        # pulumi-eks builds the whole block in an apply of the key ARN, so it is unknown
        # at a new stack's preview exactly when a key is set (nodejs/eks/cluster/
        # cluster.ts, `encryptionConfig = encryptionProvider.apply(...)`); the update
        # judges it known, and the component's own input is checked above.
        return []
    encrypted = [str(r) for r in items(props, "encryptionConfig", "resources")]
    if "secrets" not in encrypted or not _is_set(props, "encryptionConfig", "provider", "keyArn"):
        return [
            'encryptionConfig does not cover "secrets" with a KMS key: Kubernetes secrets are '
            "not envelope-encrypted with a KMS key"
        ]
    return []


def check_control_plane_logs(_type: str, props: Props, settings: Settings) -> list[str]:
    enabled = [str(t) for t in items(props, "enabledClusterLogTypes")]
    required = list(settings["requiredLogTypes"])
    missing = [t for t in required if t not in enabled]
    if missing:
        return [
            f"enabledClusterLogTypes lacks {', '.join(missing)} (required: {', '.join(required)})"
        ]
    return []


def check_endpoint(type_: str, props: Props, settings: Settings) -> list[str]:
    base: tuple[str, ...] = () if type_ == EKS_COMPONENT else ("vpcConfig",)
    prefix = "" if type_ == EKS_COMPONENT else "vpcConfig."
    public = at(props, *base, "endpointPublicAccess")
    if public is False:
        return []
    cidrs = at(props, *base, "publicAccessCidrs")
    if cidrs is None:
        return [
            f"{prefix}endpointPublicAccess is {'true' if public else 'not set (default true)'} "
            f"and {prefix}publicAccessCidrs is not set: EKS then opens the API endpoint to "
            "0.0.0.0/0"
        ]
    open_to_all = []
    networks = []
    for i, cidr in enumerate(items(props, *base, "publicAccessCidrs")):
        try:
            network = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            return [f"{prefix}publicAccessCidrs[{i}] = {cidr!r}: not a CIDR"]
        networks.append(network)
        if network.prefixlen == 0:
            open_to_all.append(str(cidr))
    if open_to_all:
        return [
            f"{prefix}publicAccessCidrs includes {', '.join(open_to_all)}: the API endpoint is "
            "open to the whole internet"
        ]
    # Judged as a union: 0.0.0.0/1 + 128.0.0.0/1 is the internet too.
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    if ipaddress.IPv4Network("0.0.0.0/0") in list(ipaddress.collapse_addresses(v4)):
        return [
            f"{prefix}publicAccessCidrs {', '.join(map(str, v4))} together cover 0.0.0.0/0: "
            "the API endpoint is open to the whole internet"
        ]
    minimum = int(settings["minEndpointPrefixLength"])
    return [
        f"{prefix}publicAccessCidrs[{i}] = {n}: prefix /{n.prefixlen} is wider than the "
        f"environment minimum /{minimum}"
        for i, n in enumerate(networks)
        if n.prefixlen < minimum
    ]


# --------------------------------------------------------------------------- nodes, logs


def check_imdsv2(type_: str, props: Props, _s: Settings) -> list[str]:
    path = ("spec", "metadataOptions") if type_ == EC2NODECLASS else ("metadataOptions",)
    label = ".".join(path) + ".httpTokens"
    tokens = at(props, *path, "httpTokens")
    if tokens is None:
        return [f"{label} is not set: require IMDSv2 explicitly (httpTokens: required)"]
    if tokens != "required":
        return [f"{label} = {tokens!r}: IMDSv1 lets any pod on the node read its credentials"]
    return []


def check_log_retention(_type: str, props: Props, settings: Settings) -> list[str]:
    minimum = int(settings["minRetentionDays"])
    days = at(props, "retentionInDays")
    if not days:
        return [
            f"retentionInDays is not set: logs are kept (and billed) forever; minimum {minimum}"
        ]
    if int(days) < minimum:
        return [f"retentionInDays = {days}: below the environment minimum of {minimum} days"]
    return []


# --------------------------------------------------------------------------- S3


def _attached(
    resources: Sequence[Resource], bucket: Resource, types: frozenset[str]
) -> list[Resource]:
    """Resources of ``types`` that depend on ``bucket`` (they name it in their inputs)."""
    return [r for r in resources if r.type in types and bucket.name in r.depends_on]


def check_public_access(resources: Sequence[Resource], _s: Settings) -> list[str]:
    problems = []
    for bucket in (r for r in resources if r.type in BUCKETS):
        blocks = _attached(resources, bucket, frozenset({PUBLIC_ACCESS_BLOCK}))
        if not blocks:
            problems.append(
                f"{bucket.type} {bucket.name}: no {PUBLIC_ACCESS_BLOCK} depends on it "
                f"(set {', '.join(PUBLIC_ACCESS_FLAGS)} to true)"
            )
        for block in blocks:
            off = [f for f in PUBLIC_ACCESS_FLAGS if at(block.props, f) is not True]
            if off:
                problems.append(
                    f"{block.type} {block.name} (bucket {bucket.name}): {', '.join(off)} not true"
                )
    return problems


def _sse_algorithms(rule: Any) -> list[str]:
    algorithm = at(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
    return [str(algorithm)] if algorithm is not None else []


def check_encryption(resources: Sequence[Resource], _s: Settings) -> list[str]:
    problems = []
    for bucket in (r for r in resources if r.type in BUCKETS):
        try:
            own = at(bucket.props, "serverSideEncryptionConfiguration", "rule")
        except Unverifiable:
            # Computed by the provider when not set (pulumi-aws 7: optional + computed):
            # unknown in every preview of a new bucket. The attached configuration
            # below is what the platform sets, and it is known.
            own = None
        algorithms = _sse_algorithms(own)
        for config in _attached(resources, bucket, BUCKET_ENCRYPTION):
            for rule in items(config.props, "rules"):
                algorithms += _sse_algorithms(rule)
        if not any(a in SSE_ALGORITHMS for a in algorithms):
            problems.append(
                f"{bucket.type} {bucket.name}: no server-side encryption configuration with "
                f"sseAlgorithm {' or '.join(SSE_ALGORITHMS)}"
            )
    return problems


# --------------------------------------------------------------------------- IAM


def wildcard_statements(document: Any, label: str) -> list[str]:
    """Statements of an IAM policy document (JSON text or object) that allow ``"*"``."""
    if is_unknown(document):
        raise Unverifiable(label)
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return [f"{label} is not valid JSON"]
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    found = []
    for i, statement in enumerate(statements):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        wildcards = [a for a in actions if a in ("*", "*:*")]
        if wildcards:
            sid = f" ({statement['Sid']})" if "Sid" in statement else ""
            found.append(f'{label} Statement[{i}]{sid} allows Action "{wildcards[0]}"')
    return found


def check_wildcard_actions(type_: str, props: Props, _s: Settings) -> list[str]:
    if type_ == IAM_ROLE:
        problems = []
        for i, inline in enumerate(items(props, "inlinePolicies")):
            name = at(inline, "name") or i
            problems += wildcard_statements(at(inline, "policy"), f"inlinePolicies[{name}].policy")
        return problems
    return wildcard_statements(at(props, "policy"), "policy")


RULES = (
    ResourceRule(
        name="eks-secrets-encryption-enabled",
        description="EKS envelope-encrypts Kubernetes secrets with a KMS key.",
        default_level="mandatory",
        types=frozenset({EKS_COMPONENT, EKS_CLUSTER}),
        check=check_secrets_encryption,
    ),
    ResourceRule(
        name="eks-control-plane-logging-enabled",
        description="EKS ships the required control-plane log types to CloudWatch.",
        default_level="mandatory",
        settings={
            "requiredLogTypes": {
                "type": "array",
                "items": {
                    "enum": ["api", "audit", "authenticator", "controllerManager", "scheduler"]
                },
            }
        },
        types=frozenset({EKS_COMPONENT, EKS_CLUSTER}),
        check=check_control_plane_logs,
    ),
    ResourceRule(
        name="eks-endpoint-not-open-to-world",
        description="A public EKS API endpoint is limited to listed CIDRs that together "
        "never cover the internet, none wider than the environment's minimum prefix length.",
        default_level="mandatory",
        settings={"minEndpointPrefixLength": {"type": "integer", "minimum": 0, "maximum": 32}},
        types=frozenset({EKS_COMPONENT, EKS_CLUSTER}),
        check=check_endpoint,
    ),
    ResourceRule(
        name="imdsv2-required",
        description="Node classes and launch templates require IMDSv2 (httpTokens: required).",
        default_level="mandatory",
        types=frozenset({EC2NODECLASS, LAUNCH_TEMPLATE}),
        check=check_imdsv2,
    ),
    ResourceRule(
        name="log-group-has-retention",
        description="CloudWatch log groups expire logs after at least the environment minimum.",
        default_level="mandatory",
        settings={"minRetentionDays": {"type": "integer", "minimum": 1}},
        types=frozenset({LOG_GROUP}),
        check=check_log_retention,
    ),
    StackRule(
        name="s3-bucket-public-access-blocked",
        description="Every S3 bucket has a public access block with all four settings on.",
        default_level="mandatory",
        types=BUCKETS,
        check=check_public_access,
    ),
    StackRule(
        name="s3-bucket-encrypted",
        description="Every S3 bucket has a default server-side encryption configuration.",
        default_level="mandatory",
        types=BUCKETS,
        check=check_encryption,
    ),
    ResourceRule(
        name="iam-no-wildcard-action",
        description='No IAM or resource policy statement allows Action "*".',
        default_level="mandatory",
        types=frozenset({*POLICY_DOCUMENTS, IAM_ROLE}),
        check=check_wildcard_actions,
    ),
)
