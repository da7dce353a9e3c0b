"""Names the program and the tools derive independently must match."""

from __future__ import annotations

from infra.core.naming import (
    bucket_name_problem,
    model_bucket_name,
    model_manifest_key,
    model_prefix,
    revision_prefix,
)


def test_model_bucket_name_from_account_region_and_stack() -> None:
    assert (
        model_bucket_name("123456789012", "us-west-2", "stage1")
        == "llm-platform-models-stage1-123456789012-us-west-2"
    )


def test_model_bucket_name_over_63_characters_is_a_problem() -> None:
    assert bucket_name_problem(
        model_bucket_name("123456789012", "ap-southeast-2", "a-very-long-stack-name")
    ) == (
        "its model bucket name 'llm-platform-models-a-very-long-stack-name-123456789012-"
        "ap-southeast-2' (70 characters) is not a valid S3 bucket name: 3-63 lowercase "
        "letters, digits and '-'; use a shorter stack name"
    )
    assert bucket_name_problem(model_bucket_name("123456789012", "us-west-2", "stage1")) is None


def test_model_prefix_and_manifest_key() -> None:
    assert model_prefix("m1") == "models/m1/"
    assert revision_prefix("m1", "r1") == "models/m1/r1/"
    assert model_manifest_key("m1", "r1") == "models/m1/r1/manifest.json"
