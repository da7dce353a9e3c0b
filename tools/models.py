"""Model sync: upload a local model directory to the stack's model bucket.

``python -m tools models sync <stack> <model> <local-dir>`` puts every file of
``<local-dir>`` under ``s3://<model bucket>/models/<model>/<revision>/`` (the revision
the stack config names, or ``--revision``) and writes the revision's
``manifest.json`` last: the completion marker the model pods wait for before vLLM
starts (``workloads.serving.vllm``, init container ``weights``).

- large files go up as multipart uploads (:data:`TRANSFER`), each part and object with
  an S3-verified SHA-256 checksum (``ChecksumAlgorithm=SHA256``);
- each object also carries the SHA-256 of the whole file in its metadata (``sha256``),
  because the checksum S3 keeps for a multipart object is a checksum of part checksums;
- a file whose object already exists with the same size and SHA-256 (from the manifest
  or the object's metadata) is skipped, so a re-run after an interruption uploads only
  what is missing or changed;
- the manifest lists every file with its size and SHA-256; it is written only after all
  uploads succeeded, so a manifest always describes a complete model;
- a revision with a manifest is immutable: replicas may be serving it, and setting the
  previous revision back must be a real rollback. Syncing other files to it fails;
  sync them to a new revision instead.

The bucket name is the stack's (:attr:`infra.stack.config.PlatformConfig.model_bucket`); the
tool refuses credentials of another account than the stack's ``accountId``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import boto3
from boto3.s3.transfer import TransferConfig

from infra.core.naming import model_manifest_key, revision_prefix
from infra.core.schema import NAMESPACE, ConfigError
from infra.stack.config import PlatformConfig
from infra.stack.files import ROOT, typed_stack_config
from tools.aws import ToolError, aws_errors

MiB = 1024 * 1024
# 64 MiB parts: a 10 GB safetensors shard is ~150 parts (S3 allows 10,000), and a failed
# part costs one 64 MiB retry rather than the whole file.
TRANSFER = TransferConfig(
    multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=8
)
SHA256_METADATA = "sha256"


@dataclass(frozen=True)
class LocalFile:
    path: str
    """Path relative to the model directory, with '/' separators (the key suffix)."""
    size: int
    sha256: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(8 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def scan(directory: Path) -> list[LocalFile]:
    """Every regular file under ``directory``, sorted, with size and SHA-256."""
    return [
        LocalFile(p.relative_to(directory).as_posix(), p.stat().st_size, sha256_of(p))
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    ]


def manifest(model: str, revision: str, files: list[LocalFile]) -> dict[str, Any]:
    """The manifest document (deterministic: files sorted by path)."""
    return {
        "model": model,
        "revision": revision,
        "files": [
            {"path": f.path, "size": f.size, "sha256": f.sha256}
            for f in sorted(files, key=lambda f: f.path)
        ],
    }


def model_names(cfg: PlatformConfig) -> list[str]:
    return [m.name for m in cfg.models]


def check_model(cfg: PlatformConfig, model: str) -> None:
    """Raise :class:`ToolError` unless ``model`` is in the stack's ``models:`` list."""
    names = model_names(cfg)
    if model not in names:
        raise ToolError(
            f"model {model!r} is not in {NAMESPACE}:models of stack {cfg.stack}; "
            f"defined: {', '.join(names) or '(none)'}"
        )


class Progress:
    """A small thread-safe byte progress bar (boto3 calls back from its worker threads)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.done, self.stream, self.width = total, 0, stream, width
        self._lock = threading.Lock()
        self._shown = -1

    def __call__(self, amount: int) -> None:
        with self._lock:
            self.done += amount
            percent = 100 if self.total == 0 else self.done * 100 // self.total
            if percent == self._shown:
                return
            self._shown = percent
            filled = self.width * percent // 100
            bar = "#" * filled + "-" * (self.width - filled)
            end = "\n" if self.done >= self.total else ""
            self.stream.write(
                f"\r[{bar}] {percent:3d}% {self.done / MiB:,.1f}/{self.total / MiB:,.1f} MiB{end}"
            )
            self.stream.flush()


@dataclass
class SyncResult:
    bucket: str
    uploaded: list[str]
    skipped: list[str]
    stale: list[str]
    """Objects under the prefix that are not in the local directory (deleted if asked)."""


def _remote_objects(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    """Key -> size of every object under ``prefix``."""
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            sizes[obj["Key"]] = obj["Size"]
    return sizes


def _remote_manifest(s3: Any, bucket: str, key: str, present: bool) -> dict[str, str]:
    """Path -> SHA-256 from the current manifest (empty when there is none)."""
    if not present:
        return {}
    document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return {f["path"]: f["sha256"] for f in document.get("files", [])}


def sync(
    s3: Any,
    bucket: str,
    model: str,
    revision: str,
    directory: Path,
    *,
    delete: bool = False,
    transfer: TransferConfig = TRANSFER,
    log: Callable[[str], None] = print,
    stream: TextIO = sys.stderr,
) -> SyncResult:
    """Upload ``directory`` to ``bucket`` under ``models/<model>/<revision>/``; manifest
    last. Raises :class:`ToolError` when the revision is complete with other files."""
    if not directory.is_dir():
        raise ToolError(f"{directory} is not a directory")
    files = scan(directory)
    if not files:
        raise ToolError(f"{directory} holds no files")
    prefix, manifest_key = revision_prefix(model, revision), model_manifest_key(model, revision)
    if any(prefix + f.path == manifest_key for f in files):
        raise ToolError(f"{directory}/manifest.json would collide with the sync manifest")
    try:
        remote = _remote_objects(s3, bucket, prefix)
    except s3.exceptions.NoSuchBucket:
        raise ToolError(
            f"bucket {bucket} does not exist: deploy the stack (pulumi up) before syncing models"
        ) from None
    known = _remote_manifest(s3, bucket, manifest_key, manifest_key in remote)
    if known and known != {f.path: f.sha256 for f in files}:
        raise ToolError(
            f"revision {revision} of model {model} is already synced with other files "
            f"(s3://{bucket}/{manifest_key}); a synced revision never changes, since "
            f"replicas may serve it: sync {directory} to a new revision and set it in "
            f"{NAMESPACE}:models"
        )

    def unchanged(f: LocalFile) -> bool:
        key = prefix + f.path
        if remote.get(key) != f.size:
            return False
        if known.get(f.path) == f.sha256:
            return True
        # Uploaded by an interrupted run (not in the manifest yet): trust its metadata.
        head = s3.head_object(Bucket=bucket, Key=key)
        return bool(head.get("Metadata", {}).get(SHA256_METADATA) == f.sha256)

    todo = [f for f in files if not unchanged(f)]
    skipped = [f.path for f in files if f not in todo]
    log(
        f"s3://{bucket}/{prefix}: {len(files)} files, {len(todo)} to upload, "
        f"{len(skipped)} unchanged"
    )
    progress = Progress(sum(f.size for f in todo), stream)
    for f in todo:
        s3.upload_file(
            str(directory / f.path),
            bucket,
            prefix + f.path,
            ExtraArgs={"ChecksumAlgorithm": "SHA256", "Metadata": {SHA256_METADATA: f.sha256}},
            Config=transfer,
            Callback=progress,
        )

    local_keys = {prefix + f.path for f in files} | {manifest_key}
    stale = sorted(k for k in remote if k not in local_keys)
    if stale and delete:
        for key in stale:
            s3.delete_object(Bucket=bucket, Key=key)
        log(f"deleted {len(stale)} objects that are not in {directory}")
    elif stale:
        log(
            f"warning: {len(stale)} objects under the prefix are not in {directory}; "
            "re-run with --delete to remove them"
        )

    body = json.dumps(manifest(model, revision, files), indent=2, sort_keys=True).encode() + b"\n"
    s3.put_object(
        Bucket=bucket,
        Key=manifest_key,
        Body=body,
        ContentType="application/json",
        ChecksumAlgorithm="SHA256",
    )
    log(f"wrote s3://{bucket}/{manifest_key}")
    return SyncResult(bucket, [f.path for f in todo], skipped, stale)


def main(
    stack: str,
    model: str,
    directory: Path,
    *,
    delete: bool = False,
    revision: str | None = None,
    stack_dir: Path = ROOT,
    session: Any = None,
) -> int:
    """CLI entry (``models sync``): 0 synced, 2 bad input or AWS error. ``revision``
    defaults to the one the stack config names for the model."""
    try:
        cfg = typed_stack_config(stack, stack_dir)
        check_model(cfg, model)
        revision = revision or next(m.revision for m in cfg.models if m.name == model)
        session = session or boto3.session.Session()
        with aws_errors(f"stack {stack} ({cfg.region})"):
            account = session.client("sts", region_name=cfg.region).get_caller_identity()
            if account["Account"] != cfg.account_id:
                raise ToolError(
                    f"the credentials are of account {account['Account']}, stack {stack} "
                    f"deploys into {cfg.account_id} ({NAMESPACE}:accountId)"
                )
            s3 = session.client("s3", region_name=cfg.region)
            sync(s3, cfg.model_bucket, model, revision, directory, delete=delete)
    except (ConfigError, ToolError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
