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

from infra.core.naming import model_manifest_key
from tests.harness import FIXTURES, SMALL, typed_config
from tools import models
from tools.__main__ import main as cli
from tools.aws import ToolError

CFG = typed_config(SMALL)
REGION = CFG.region
BUCKET = CFG.model_bucket
REV = "r1"
MODEL = CFG.models[0].name
"""The model every test syncs: the fixture stack's first."""
MODEL_REVISION = CFG.models[0].revision
MiB = 1024 * 1024
# The smallest parts S3 accepts, so a 6 MiB file goes up in two parts.
STACK_DIR = ("--stack-dir", str(FIXTURES))
SMALL_PARTS = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # moto answers STS as the stack's own account (the tool refuses any other).
    monkeypatch.setenv("MOTO_ACCOUNT_ID", CFG.account_id)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield client


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / MODEL
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"]}\n')
    (root / "tokenizer" / "tokenizer.json").write_text('{"version": "1.0"}\n')
    (root / "model.safetensors").write_bytes(bytes(range(256)) * (6 * MiB // 256))
    return root


def _sync(s3: Any, directory: Path, revision: str = REV, **kwargs: Any) -> models.SyncResult:
    return models.sync(
        s3,
        BUCKET,
        MODEL,
        revision,
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
        Bucket=BUCKET, Key=f"models/{MODEL}/r1/model.safetensors", ChecksumMode="ENABLED"
    )
    assert weights["ETag"].strip('"').endswith("-2")  # multipart, two parts
    assert weights["Metadata"] == {"sha256": _sha(model_dir / "model.safetensors")}
    assert "ChecksumSHA256" in weights

    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=model_manifest_key(MODEL, REV))["Body"].read()
    )
    assert manifest == {
        "model": MODEL,
        "revision": REV,
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


def test_a_synced_revision_never_changes(s3: Any, model_dir: Path) -> None:
    _sync(s3, model_dir)
    (model_dir / "config.json").write_text('{"architectures": ["Qwen3ForCausalLM"]}\n')
    with pytest.raises(
        ToolError,
        match=rf"^revision r1 of model {MODEL} is already synced with other files "
        rf"\(s3://{BUCKET}/models/{MODEL}/r1/manifest.json\); a synced revision never changes",
    ):
        _sync(s3, model_dir)
    # A new revision next to it: only its own prefix, the old one stays for rollback.
    result = _sync(s3, model_dir, revision="r2")
    assert result.uploaded == ["config.json", "model.safetensors", "tokenizer/tokenizer.json"]
    manifest = json.loads(
        s3.get_object(Bucket=BUCKET, Key=model_manifest_key(MODEL, "r2"))["Body"].read()
    )
    assert manifest["files"][0]["sha256"] == _sha(model_dir / "config.json")
    s3.head_object(Bucket=BUCKET, Key=model_manifest_key(MODEL, REV))


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
    assert calls == [f"models/{MODEL}/r1/config.json"]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"models/{MODEL}/")["Contents"]
    assert [o["Key"] for o in listed] == [f"models/{MODEL}/r1/config.json"]  # no manifest

    monkeypatch.setattr(s3, "upload_file", real_upload)
    result = _sync(s3, model_dir)
    assert result.skipped == ["config.json"]
    assert result.uploaded == ["model.safetensors", "tokenizer/tokenizer.json"]


def test_stale_objects_are_reported_and_deleted_on_request(s3: Any, model_dir: Path) -> None:
    # Left over from an interrupted sync of other files to the same, unfinished revision.
    s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/r1/old.bin", Body=b"x")
    kept = _sync(s3, model_dir)
    assert kept.stale == [f"models/{MODEL}/r1/old.bin"]
    s3.head_object(Bucket=BUCKET, Key=f"models/{MODEL}/r1/old.bin")
    deleted = _sync(s3, model_dir, delete=True)
    assert deleted.stale == [f"models/{MODEL}/r1/old.bin"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [
        f"models/{MODEL}/r1/config.json",
        f"models/{MODEL}/r1/manifest.json",
        f"models/{MODEL}/r1/model.safetensors",
        f"models/{MODEL}/r1/tokenizer/tokenizer.json",
    ]


def test_cli_syncs_to_the_stack_bucket(
    s3: Any, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["models", "sync", SMALL, MODEL, str(model_dir), *STACK_DIR]) == 0
    out = capsys.readouterr().out
    prefix = f"s3://{BUCKET}/models/{MODEL}/{MODEL_REVISION}/"
    assert out.splitlines() == [
        f"{prefix}: 3 files, 3 to upload, 0 unchanged",
        f"wrote {prefix}manifest.json",
    ]


def test_cli_writes_another_revision_when_asked(
    s3: Any, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli(["models", "sync", SMALL, MODEL, str(model_dir), "--revision", "next", *STACK_DIR]) == 0
    )
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"wrote s3://{BUCKET}/models/{MODEL}/next/manifest.json"
    )


@pytest.mark.usefixtures("s3")
def test_cli_refuses_credentials_of_another_account(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", "999999999999")
    assert cli(["models", "sync", SMALL, MODEL, str(model_dir), *STACK_DIR]) == 2
    assert capsys.readouterr().err == (
        f"error: the credentials are of account 999999999999, stack {SMALL} deploys into "
        f"{CFG.account_id} (llm-platform:accountId)\n"
    )


@pytest.mark.usefixtures("s3")
def test_unknown_model_lists_the_configured_ones(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["models", "sync", SMALL, "llama", str(model_dir), *STACK_DIR]) == 2
    assert capsys.readouterr().err == (
        f"error: model 'llama' is not in llm-platform:models of stack {SMALL}; defined: "
        f"{', '.join(m.name for m in CFG.models)}\n"
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


def _run_gate(monkeypatch: pytest.MonkeyPatch, revision: str) -> str:
    """Run the model pods' weights gate (the init container's script) against moto."""
    from infra.core.naming import model_manifest_key as manifest_key
    from workloads.serving.vllm import WEIGHTS_GATE_SCRIPT

    monkeypatch.setenv("WEIGHTS_BUCKET", BUCKET)
    monkeypatch.setenv("WEIGHTS_MANIFEST", manifest_key(MODEL, revision))
    monkeypatch.setenv("WEIGHTS_WAIT_SECONDS", "0")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    exec(compile(WEIGHTS_GATE_SCRIPT, "weights-gate", "exec"), {"__name__": "__main__"})
    return out.getvalue()


def test_weights_gate_passes_a_synced_revision(
    s3: Any, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sync(s3, model_dir)
    assert _run_gate(monkeypatch, REV) == f"s3://{BUCKET}/models/{MODEL}/r1/: 3 files complete\n"


def test_weights_gate_stops_a_missing_or_half_synced_revision(
    s3: Any, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Half-synced: files are there, the manifest (written last) is not.
    s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/r1/config.json", Body=b"{}")
    with pytest.raises(SystemExit, match=rf"models/{MODEL}/r1/manifest.json not found: revision"):
        _run_gate(monkeypatch, REV)
    # A manifest whose file was replaced behind its back.
    _sync(s3, model_dir, revision="r2")
    s3.put_object(Bucket=BUCKET, Key=f"models/{MODEL}/r2/config.json", Body=b"{}")
    with pytest.raises(SystemExit, match=rf"models/{MODEL}/r2/config.json: 2 bytes, manifest says"):
        _run_gate(monkeypatch, "r2")
