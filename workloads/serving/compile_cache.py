"""Warm start: vLLM's compile cache, persisted per model, revision, image, arguments and
GPU type in the model bucket, and restored before the server starts.

vLLM keeps ``torch.compile`` artifacts (and Triton kernels) under ``VLLM_CACHE_ROOT``
(default ``~/.cache/vllm``; ``torch_compile_cache/<hash>/rank_*``), keyed by a hash of
the configs and the model's code, and reuses them when they are there ("Compilation
Cache" in docs/design/torch_compile.md of vllm-project/vllm: copying the directory to a
new deployment skips the compilation). The cache is only valid for the same vLLM build,
GPU architecture and arguments, so the object it is stored as is keyed by all of them:

    compile-cache/<model>/<GPU name>/<sha256(image, args, GPU)[:16]>.tar

(the arguments name the revision's S3 prefix, so a new revision gets a new key).

The server container's command runs :data:`SCRIPT` first: ``restore`` fetches and
unpacks that object when it exists (best effort: any failure means a cold compile, never
a failed start; the next command runs either way), then starts ``save`` in the
background, which waits for ``/health`` and uploads the cache once if no replica did so
yet (``If-None-Match: *``, S3 conditional writes, so concurrent first replicas never
overwrite each other). Both stream the archive (a spool file under ``/tmp`` for the
upload): the server's memory limit never has to hold it. The replica's Pod
Identity role may read and write only ``compile-cache/<model>/`` (:func:`cache_policy`).
"""

from __future__ import annotations

from typing import Any, Final

from infra.core.iam import allow_policy

CACHE_ROOT: Final = "/var/cache/vllm"
"""``VLLM_CACHE_ROOT`` of the server: an emptyDir (:func:`cache_volume`)."""
CACHE_VOLUME: Final = "vllm-cache"
CACHE_SIZE_LIMIT: Final = "8Gi"
"""A few hundred MB per model in practice; the limit only bounds a runaway cache."""
SAVE_MAX_BYTES: Final = 4 * 1024**3
"""Largest cache saved. The archive is spooled to ``/tmp`` (an emptyDir of
``pod_security.WRITABLE_DIRS``), never held in the server container's memory, and sent
in one PUT (at most 5 GB; S3 conditional writes, ``If-None-Match``)."""


def cache_prefix(model: str) -> str:
    """Key prefix of one model's compile caches: ``compile-cache/<model>/``."""
    return f"compile-cache/{model}/"


# Runs with the image's python3 and boto3, before ``vllm serve``.
SCRIPT: Final = """\
import hashlib, json, os, subprocess, sys, tarfile, tempfile, time, urllib.request
def gpu():
    out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30).stdout
    return out.strip().splitlines()[0].replace(" ", "-")
def key(prefix, image, args, name):
    basis = json.dumps([image, list(args), name])
    return f"{prefix}{name}/{hashlib.sha256(basis.encode()).hexdigest()[:16]}.tar"
def restore(s3, bucket, k, root):
    with tarfile.open(fileobj=s3.get_object(Bucket=bucket, Key=k)["Body"], mode="r|") as tar:
        tar.extractall(root, filter="data")
def healthy(url, seconds, sleep=time.sleep):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=5).status == 200:
                return True
        except Exception:
            pass
        sleep(10)
    return False
def save(s3, bucket, k, root, limit):
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    if size > limit:
        raise ValueError(f"{size} bytes, more than the {limit} saved")
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w") as tar:
            tar.add(root, arcname=".")
        spool.seek(0)
        s3.put_object(Bucket=bucket, Key=k, Body=spool, IfNoneMatch="*")
if __name__ == "__main__":
    import boto3
    env, mode, args = os.environ, sys.argv[1], sys.argv[2:]
    root, bucket = env["VLLM_CACHE_ROOT"], env["COMPILE_CACHE_BUCKET"]
    s3 = boto3.client("s3")
    try:
        k = key(env["COMPILE_CACHE_PREFIX"], env["COMPILE_CACHE_IMAGE"], args, gpu())
        if mode == "restore":
            restore(s3, bucket, k, root)
            print(f"compile cache restored from s3://{bucket}/{k}")
        elif healthy(env["COMPILE_CACHE_HEALTH_URL"], int(env["COMPILE_CACHE_WAIT_SECONDS"])):
            save(s3, bucket, k, root, int(env["COMPILE_CACHE_SAVE_MAX_BYTES"]))
            print(f"compile cache saved to s3://{bucket}/{k}")
    except Exception as exc:  # no cache yet, saved by another replica (412), no access
        print(f"compile cache {mode} skipped ({type(exc).__name__}): {exc}")
    if mode == "restore":
        subprocess.Popen([sys.executable, "-c", env["COMPILE_CACHE_SCRIPT"], "save", *args],
                         start_new_session=True)
"""


RESTORE_THEN_SERVE: Final = (
    # The shell is PID 1 until `exec`, and PID 1 ignores a SIGTERM it has no handler
    # for: without the trap a pod deleted during the restore would hold its GPU for the
    # whole grace period. `wait` returns at once on a trapped signal (POSIX).
    "trap 'kill \"$restore\" 2>/dev/null; exit 143' TERM; "
    'python3 -c "$COMPILE_CACHE_SCRIPT" restore "$@" & restore=$!; '
    'wait "$restore"; trap - TERM; '
    'exec vllm serve "$@"'
)


def command() -> list[str]:
    """The server's command: restore the cache, then the image's ``vllm serve`` with the
    container's args (``$@``); the script's own text is passed in the environment."""
    return ["/bin/sh", "-c", RESTORE_THEN_SERVE, "vllm"]


def cache_env(
    model: str, bucket: str, image: str, wait_seconds: int, health_url: str
) -> list[dict[str, Any]]:
    """Environment of the server container for the cache: the saver waits up to
    ``wait_seconds`` (the startup window) for ``health_url``."""
    return [
        {"name": "VLLM_CACHE_ROOT", "value": CACHE_ROOT},
        {"name": "COMPILE_CACHE_BUCKET", "value": bucket},
        {"name": "COMPILE_CACHE_PREFIX", "value": cache_prefix(model)},
        {"name": "COMPILE_CACHE_IMAGE", "value": image},
        {"name": "COMPILE_CACHE_WAIT_SECONDS", "value": str(wait_seconds)},
        {"name": "COMPILE_CACHE_HEALTH_URL", "value": health_url},
        {"name": "COMPILE_CACHE_SAVE_MAX_BYTES", "value": str(SAVE_MAX_BYTES)},
        {"name": "COMPILE_CACHE_SCRIPT", "value": SCRIPT},
    ]


def cache_volume() -> dict[str, Any]:
    return {"name": CACHE_VOLUME, "emptyDir": {"sizeLimit": CACHE_SIZE_LIMIT}}


def cache_mount() -> dict[str, Any]:
    return {"name": CACHE_VOLUME, "mountPath": CACHE_ROOT}


def cache_policy(bucket_arn: str, model: str) -> str:
    """Read and write ``compile-cache/<model>/`` of the model bucket, nothing else."""
    return allow_policy(
        "ReadWriteCompileCache",
        ["s3:GetObject", "s3:PutObject"],
        [f"{bucket_arn}/{cache_prefix(model)}*"],
    )
