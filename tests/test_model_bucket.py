"""Model bucket: private, encrypted, versioned, TLS only, lifecycle for old versions."""

from __future__ import annotations

import json

from tests.harness import find, typed_config
from tools.mock_runtime import Recorded
from workloads.serving.model_bucket import tls_only_policy


def test_bucket_name_and_tags(fixture_stack: str, fixture_resources: tuple[Recorded, ...]) -> None:
    bucket = find(fixture_resources, "aws:s3/bucket:Bucket", "models-bucket").inputs
    cfg = typed_config(fixture_stack)
    assert bucket["bucket"] == f"llm-platform-models-{fixture_stack}-{cfg.account_id}-{cfg.region}"
    assert bucket["tags"]["cost-center"] == cfg.tags["cost-center"]
    assert bucket["forceDestroy"] is False


def test_public_access_blocked_and_owner_enforced(fixture_resources: tuple[Recorded, ...]) -> None:
    block = find(
        fixture_resources,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "models-public-access",
    ).inputs
    assert all(
        block[k] is True
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    ownership = find(
        fixture_resources,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "models-ownership",
    ).inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_encrypted_versioned_and_old_versions_expire(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    sse = find(
        fixture_resources,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "models-encryption",
    ).inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    versioning = find(
        fixture_resources, "aws:s3/bucketVersioning:BucketVersioning", "models-versioning"
    )
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    lifecycle = find(
        fixture_resources,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "models-lifecycle",
    ).inputs
    (rule,) = lifecycle["rules"]
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}


def test_bucket_policy_denies_plain_http() -> None:
    (statement,) = json.loads(tls_only_policy("arn:aws:s3:::b"))["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
