"""Warm start: the compile cache is restored before the server starts and saved once it
is healthy, per model, revision, image, arguments and GPU type; the role reaches only
that model's cache. The script's functions run against moto in process."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.stack.cold_start import model_startup
from tests.harness import find, typed_config
from tools.mock_runtime import Recorded
from workloads.serving import compile_cache

BUCKET = "models-bucket"


def _script() -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "compile_cache_script"}
    exec(compile(compile_cache.SCRIPT, "compile-cache", "exec"), namespace)
    return namespace


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name="us-west-2")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    return client


def test_key_separates_image_arguments_and_gpu_type() -> None:
    key = _script()["key"]
    base = key("compile-cache/m/r1/", "img@sha256:1", ["--max-model-len", "8192"], "NVIDIA-L4")
    assert base.startswith("compile-cache/m/r1/NVIDIA-L4/") and base.endswith(".tar")
    assert base == key(
        "compile-cache/m/r1/", "img@sha256:1", ("--max-model-len", "8192"), "NVIDIA-L4"
    )
    for other in (
        key("compile-cache/m/r1/", "img@sha256:2", ["--max-model-len", "8192"], "NVIDIA-L4"),
        key("compile-cache/m/r1/", "img@sha256:1", ["--max-model-len", "4096"], "NVIDIA-L4"),
        key("compile-cache/m/r1/", "img@sha256:1", ["--max-model-len", "8192"], "NVIDIA-L40S"),
    ):
        assert other != base


def test_a_saved_cache_is_what_the_next_replica_restores(s3: Any, tmp_path: Path) -> None:
    script = _script()
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "torch_compile_cache" / "abc" / "rank_0_0").mkdir(parents=True)
    (first / "torch_compile_cache" / "abc" / "rank_0_0" / "graph.py").write_text("compiled")
    key = "compile-cache/m/NVIDIA-L4/0123456789abcdef.tar"
    with pytest.raises(s3.exceptions.NoSuchKey):
        script["restore"](s3, BUCKET, key, str(second))  # nothing yet: a cold compile
    sent: list[Any] = []

    class Recording:
        """The S3 client, noting what each upload's body is."""

        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def put_object(self, **kwargs: Any) -> Any:
            sent.append(kwargs["Body"])
            return s3.put_object(**kwargs)

    script["save"](Recording(), BUCKET, key, str(first), 1024**2)
    # A file (the spool under /tmp), not the archive's bytes in the server's memory.
    assert [hasattr(body, "fileno") and not isinstance(body, bytes) for body in sent] == [True]
    second.mkdir()
    script["restore"](s3, BUCKET, key, str(second))
    restored = second / "torch_compile_cache" / "abc" / "rank_0_0" / "graph.py"
    assert restored.read_text() == "compiled"
    # Saved once: a second replica's upload is refused, the first one's cache stays.
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        script["save"](s3, BUCKET, key, str(second), 1024**2)


def test_a_cache_over_the_limit_is_not_saved(s3: Any, tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"0" * 2048)
    key = "compile-cache/m/NVIDIA-L4/0123456789abcdef.tar"
    with pytest.raises(ValueError, match="2048 bytes, more than the 1024 saved"):
        _script()["save"](s3, BUCKET, key, str(tmp_path), 1024)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_the_saver_waits_for_health_within_its_window() -> None:
    healthy = _script()["healthy"]
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        assert healthy(url, 5, sleep=lambda _s: None) is True
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    sleeps: list[float] = []
    # Nothing listens any more: it gives up at the deadline instead of saving.
    assert healthy(url, 0.2, sleep=sleeps.append) is False


def test_server_container_restores_before_vllm_serve_and_mounts_the_cache(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    for model in cfg.enabled_models:
        deployment = find(
            fixture_resources, "kubernetes:apps/v1:Deployment", f"model-{model.name}-deployment"
        )
        pod = deployment.inputs["spec"]["template"]["spec"]
        (server,) = pod["containers"]
        assert server["command"] == compile_cache.command()
        assert "exec vllm serve" in server["command"][2]
        env = {e["name"]: e.get("value") for e in server["env"]}
        assert env["VLLM_CACHE_ROOT"] == compile_cache.CACHE_ROOT
        assert env["COMPILE_CACHE_PREFIX"] == f"compile-cache/{model.name}/"
        assert env["COMPILE_CACHE_IMAGE"] == server["image"]
        assert env["COMPILE_CACHE_HEALTH_URL"] == "http://127.0.0.1:8000/health"
        assert env["COMPILE_CACHE_WAIT_SECONDS"] == str(
            model_startup(cfg, model).startup_window_seconds
        )
        assert compile_cache.cache_mount() in server["volumeMounts"]
        assert compile_cache.cache_volume() in pod["volumes"]
        policy = find(
            fixture_resources, "aws:iam/rolePolicy:RolePolicy", f"model-{model.name}-compile-cache"
        )
        (statement,) = json.loads(policy.inputs["policy"])["Statement"]
        assert statement["Resource"] == [
            f"arn:aws:s3:::{cfg.model_bucket}/compile-cache/{model.name}/*"
        ]
        assert sorted(statement["Action"]) == ["s3:GetObject", "s3:PutObject"]


def _standins(bin_dir: Path, restore_seconds: float) -> None:
    """``python3`` that only sleeps (the restore) and ``vllm`` that prints its args."""
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f"#!/bin/sh\nexec sleep {restore_seconds}\n")
    (bin_dir / "vllm").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    for name in ("python3", "vllm"):
        (bin_dir / name).chmod(0o755)


def _start(bin_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "COMPILE_CACHE_SCRIPT": "unused"}
    # Its own process group, so a test can stop the stand-ins with it whatever happens.
    return subprocess.Popen(
        [*compile_cache.command(), *args],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_the_server_command_passes_its_args_to_vllm_serve(tmp_path: Path) -> None:
    _standins(tmp_path / "bin", 0)
    process = _start(tmp_path / "bin", "s3://b/models/m/r/", "--served-model-name", "a b")
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.splitlines() == ["serve", "s3://b/models/m/r/", "--served-model-name", "a b"]


def test_a_pod_stopped_during_the_restore_exits_at_once(tmp_path: Path) -> None:
    """The shell is PID 1 in the container; here it is a child, so the check is that it
    handles SIGTERM itself (trap and wait) instead of sitting out a 60 s restore."""
    _standins(tmp_path / "bin", 60)
    process = _start(tmp_path / "bin", "x")
    try:
        time.sleep(0.5)  # the restore is running
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=10)
        assert process.returncode == 143 and time.monotonic() - started < 5
        assert out == ""  # vllm never started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
