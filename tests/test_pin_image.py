"""``tools pin-image``: the serving image's tag resolved to its digest by a registry on
loopback (bearer-token challenge as Docker Hub answers it), written into a copy of a
fixture stack file with nothing else changed; failures exit 2 naming the key."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.stack.checks import stack_warnings
from infra.stack.files import typed_stack_config
from tests.harness import FIXTURES
from tools import pin_image

REPOSITORY = "vllm/vllm-openai"
DIGEST = "sha256:" + "1" * 64
MOVED = "sha256:" + "2" * 64
TOKEN = "pull-token"


class Registry(http.server.BaseHTTPRequestHandler):
    """Manifests behind a bearer challenge; ``tags`` maps tag to digest."""

    tags: dict[str, str] = {}
    seen: list[dict[str, str]] = []

    def do_HEAD(self) -> None:
        base = f"http://{self.headers['Host']}"
        prefix = f"/v2/{REPOSITORY}/manifests/"
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate",
                f'Bearer realm="{base}/token",service="registry.test",'
                f'scope="repository:{REPOSITORY}:pull"',
            )
            self.end_headers()
            return
        Registry.seen.append({"path": self.path, "accept": self.headers.get("Accept", "")})
        tag = self.path.removeprefix(prefix)
        if not self.path.startswith(prefix) or tag not in self.tags:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Docker-Content-Digest", self.tags[tag])
        self.end_headers()

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        ok = url.path == "/token" and query == {
            "service": ["registry.test"],
            "scope": [f"repository:{REPOSITORY}:pull"],
        }
        body = json.dumps({"token": TOKEN} if ok else {}).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)  # loopback only
    Registry.tags = {}
    Registry.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "Pulumi.small.yaml", tmp_path / "Pulumi.small.yaml")
    return tmp_path


def _config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())["config"]
    return config


def test_the_tag_is_pinned_to_its_digest_and_nothing_else_changes(
    registry: str, stack_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = typed_stack_config("small", stack_dir).serving.vllm_image
    Registry.tags = {image.partition(":")[2]: DIGEST}
    path = stack_dir / "Pulumi.small.yaml"
    before = _config(path)

    assert pin_image.main("small", stack_dir=stack_dir, registry=registry) == 0
    after = _config(path)
    assert after.pop("llm-platform:serving") == {
        **before.pop("llm-platform:serving", {}),
        "vllmImage": f"{image}@{DIGEST}",
    }
    assert after == before
    # The index first: the digest containerd resolves for the node's platform.
    assert Registry.seen[0]["accept"].startswith("application/vnd.oci.image.index.v1+json")
    # The program takes it: the model pods run exactly that image.
    assert typed_stack_config("small", stack_dir).serving.vllm_image == f"{image}@{DIGEST}"
    assert f"vllmImage = {image}@{DIGEST}" in capsys.readouterr().out

    assert pin_image.main("small", stack_dir=stack_dir, registry=registry) == 0
    assert "already pinned" in capsys.readouterr().out
    assert pin_image.main("small", check=True, stack_dir=stack_dir, registry=registry) == 0

    Registry.tags = {image.partition(":")[2]: MOVED}  # the tag was moved upstream
    assert pin_image.main("small", check=True, stack_dir=stack_dir, registry=registry) == 1
    assert f"its tag points to {MOVED}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "config:\n  aws:region: us-west-2\nsecretsprovider: x\n",
            "config:\n  aws:region: us-west-2\n  llm-platform:serving:\n    vllmImage: I\n"
            "secretsprovider: x\n",
        ),
        (
            "config:\n  llm-platform:serving:\n    drainSeconds: 30\n  aws:region: r\n",
            "config:\n  llm-platform:serving:\n    vllmImage: I\n    drainSeconds: 30\n"
            "  aws:region: r\n",
        ),
        (
            "config:\n  llm-platform:serving:\n    # why\n    vllmImage: old:v1.0.0  # pin\n",
            "config:\n  llm-platform:serving:\n    # why\n    vllmImage: I  # pin\n",
        ),
    ],
)
def test_the_image_is_written_where_a_reader_expects_it(text: str, expected: str) -> None:
    assert pin_image.set_image(text, "I") == expected


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown tag", "HTTP 404 (no such tag)"),
        ("no registry", "Connection refused"),
    ],
)
def test_a_registry_that_cannot_answer_exits_2_naming_the_key(
    case: str,
    message: str,
    registry: str,
    stack_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = registry if case == "unknown tag" else f"http://127.0.0.1:{_closed_port()}"
    before = (stack_dir / "Pulumi.small.yaml").read_text()
    image = typed_stack_config("small", stack_dir).serving.vllm_image
    assert pin_image.main("small", stack_dir=stack_dir, registry=url) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'error: llm-platform:serving.vllmImage = "{image}": ')
    assert message in err and "Traceback" not in err
    assert (stack_dir / "Pulumi.small.yaml").read_text() == before


def test_the_stack_warns_until_the_image_is_pinned(registry: str, stack_dir: Path) -> None:
    """What the plan and ``pulumi up`` print (that they print each of the stack's
    warnings is tested in ``tests/test_capacity.py``)."""
    image = typed_stack_config("small", stack_dir).serving.vllm_image

    def unpinned() -> list[str]:
        found = stack_warnings(typed_stack_config("small", stack_dir))
        return [w for w in found if "is not pinned by digest" in w]

    (line,) = unpinned()
    assert line.startswith(f'llm-platform:serving.vllmImage = "{image}" is not pinned')
    assert line.endswith(
        "pin it with python -m tools pin-image small (and set policy.requireImageDigest)"
    )
    Registry.tags = {image.partition(":")[2]: DIGEST}
    assert pin_image.main("small", stack_dir=stack_dir, registry=registry) == 0
    assert unpinned() == []
