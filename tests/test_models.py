"""Model sync: multipart + checksums, skip unchanged, resume, manifest last (moto)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from moto import mock_aws

from infra.naming import model_bucket_name, model_manifest_key
from tools import models
from tools.__main__ import main as cli
from tools.aws import ToolError

ACCOUNT = "123456789012"  # moto's account
REGION = "us-west-2"  # dev
BUCKET = model_bucket_name(ACCOUNT, REGION, "dev")
MiB = 1024 * 1024
# The smallest parts S3 accepts, so a 6 MiB file goes up in two parts.
SMALL_PARTS = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield client


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "chat"
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"]}\n')
    (root / "tokenizer" / "tokenizer.json").write_text('{"version": "1.0"}\n')
    (root / "model.safetensors").write_bytes(bytes(range(256)) * (6 * MiB // 256))
    return root


def _sync(s3: Any, directory: Path, **kwargs: Any) -> models.SyncResult:
    return models.sync(
        s3,
        BUCKET,
        "chat",
        directory,
        transfer=SMALL_PARTS,
        log=lambda _: None,
        stream=io.StringIO(),
        **kwargs,
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_first_sync_uploads_everything_with_checksums_then_the_manifest(
    s3: Any, model_dir: Path
) -> None:
    result = _sync(s3, model_dir)
    assert result.uploaded == ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]
    assert result.skipped == []

    weights = s3.head_object(
        Bucket=BUCKET, Key="models/chat/model.safetensors", ChecksumMode="ENABLED"
    )
    assert weights["ETag"].strip('"').endswith("-2")  # multipart, two parts
    assert weights["Metadata"] == {"sha256": _sha(model_dir / "model.safetensors")}
    assert "ChecksumSHA256" in weights

    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=model_manifest_key("chat"))["Body"].read()
    )
    assert manifest == {
        "model": "chat",
        "files": [
            {
                "path": p,
                "size": (model_dir / p).stat().st_size,
                "sha256": _sha(model_dir / p),
            }
            for p in ("config.json", "model.safetensors", "tokenizer/tokenizer.json")
        ],
    }


def test_rerun_uploads_nothing(s3: Any, model_dir: Path) -> None:
    _sync(s3, model_dir)
    again = _sync(s3, model_dir)
    assert again.uploaded == []
    assert again.skipped == ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]


def test_only_a_changed_file_is_uploaded_again(s3: Any, model_dir: Path) -> None:
    _sync(s3, model_dir)
    (model_dir / "config.json").write_text('{"architectures": ["Qwen3ForCausalLM"]}\n')
    result = _sync(s3, model_dir)
    assert result.uploaded == ["config.json"]
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=model_manifest_key("chat"))["Body"].read()
    )
    assert manifest["files"][0]["sha256"] == _sha(model_dir / "config.json")


def test_rerun_after_an_interruption_resumes_without_a_manifest(
    s3: Any, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_upload = s3.upload_file
    calls: list[str] = []

    def upload_then_die(filename: str, bucket: str, key: str, **kwargs: Any) -> None:
        if calls:
            raise KeyboardInterrupt
        calls.append(key)
        real_upload(filename, bucket, key, **kwargs)

    monkeypatch.setattr(s3, "upload_file", upload_then_die)
    with pytest.raises(KeyboardInterrupt):
        _sync(s3, model_dir)
    assert calls == ["models/chat/config.json"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="models/chat/")["Contents"]
    assert [o["Key"] for o in listed] == ["models/chat/config.json"]  # no manifest

    monkeypatch.setattr(s3, "upload_file", real_upload)
    result = _sync(s3, model_dir)
    assert result.skipped == ["config.json"]
    assert result.uploaded == ["model.safetensors", "tokenizer/tokenizer.json"]


def test_stale_objects_are_reported_and_deleted_on_request(s3: Any, model_dir: Path) -> None:
    _sync(s3, model_dir)
    (model_dir / "tokenizer" / "tokenizer.json").unlink()
    kept = _sync(s3, model_dir)
    assert kept.stale == ["models/chat/tokenizer/tokenizer.json"]
    s3.head_object(Bucket=BUCKET, Key="models/chat/tokenizer/tokenizer.json")
    deleted = _sync(s3, model_dir, delete=True)
    assert deleted.stale == ["models/chat/tokenizer/tokenizer.json"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [
        "models/chat/config.json",
        "models/chat/manifest.json",
        "models/chat/model.safetensors",
    ]


def test_cli_syncs_to_the_stack_bucket(
    s3: Any, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["models", "sync", "dev", "chat", str(model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"s3://{BUCKET}/models/chat/: 3 files, 3 to upload, 0 unchanged",
        f"wrote s3://{BUCKET}/models/chat/manifest.json",
    ]


@pytest.mark.usefixtures("s3")
def test_unknown_model_lists_the_configured_ones(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["models", "sync", "dev", "llama", str(model_dir)]) == 2
    assert capsys.readouterr().err == (
        "error: model 'llama' is not in llm-platform:models of stack dev; defined: chat, code\n"
    )


def test_missing_bucket_says_to_deploy_first(s3: Any, model_dir: Path) -> None:
    s3.delete_bucket(Bucket=BUCKET)
    with pytest.raises(ToolError, match=rf"^bucket {BUCKET} does not exist: deploy the stack"):
        _sync(s3, model_dir)


def test_empty_directory_is_rejected(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"^.*/empty holds no files$"):
        (tmp_path / "empty").mkdir()
        _sync(s3, tmp_path / "empty")


def test_progress_bar_reaches_100_percent() -> None:
    stream = io.StringIO()
    progress = models.Progress(4 * MiB, stream, width=10)
    for _ in range(4):
        progress(MiB)
    assert stream.getvalue().endswith("\r[##########] 100% 4.0/4.0 MiB\n")
