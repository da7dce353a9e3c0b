"""Names that the program and the command-line tools derive the same way.

The model bucket is created by the program (``workloads.serving.model_bucket``) and filled by
``python -m tools models sync``; both compute its name here, from values each side has
without asking the other (account id, region, stack), so they can never disagree.
"""

from __future__ import annotations

import re

# S3 bucket names: 3-63 characters, lowercase letters, digits, '-' and '.'.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def model_bucket_name(account_id: str, region: str, stack: str) -> str:
    """The stack's model bucket: ``llm-platform-models-<stack>-<account id>-<region>``.

    Account and region make it globally unique (bucket names are); the stack keeps dev
    and prod apart when they share an account.
    """
    return f"llm-platform-models-{stack}-{account_id}-{region}"


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 bucket name, or ``None`` (checked with the config,
    before anything is created)."""
    if _BUCKET_NAME.fullmatch(name):
        return None
    return (
        f"its model bucket name {name!r} ({len(name)} characters) is not a valid S3 bucket "
        "name: 3-63 lowercase letters, digits and '-'; use a shorter stack name"
    )


def model_prefix(model: str) -> str:
    """Key prefix of every revision of one model: ``models/<model>/`` (what the model's
    Pod Identity role may read)."""
    return f"models/{model}/"


def revision_prefix(model: str, revision: str) -> str:
    """Key prefix of one revision's files: ``models/<model>/<revision>/``."""
    return f"{model_prefix(model)}{revision}/"


def model_manifest_key(model: str, revision: str) -> str:
    """The revision's completion marker: ``models/<model>/<revision>/manifest.json``,
    which the model sync writes last, once every file it lists is in the bucket."""
    return f"{revision_prefix(model, revision)}manifest.json"


IAM_ROLE_NAME_MAX = 64


def model_role_name(cluster: str, model: str) -> str:
    """IAM role a model's pods assume through Pod Identity: ``<cluster>-vllm-<model>``."""
    return f"{cluster}-vllm-{model}"
