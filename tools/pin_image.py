"""``python -m tools pin-image <stack>``: pin the serving image to its digest.

Reads ``serving.vllmImage`` of ``Pulumi.<stack>.yaml`` (or its default), asks the
image's registry for the digest its tag points to and writes
``<repository>:<tag>@sha256:<digest>`` back into the stack file, leaving every other
line as it was. The model pods, the pre-pull DaemonSet and the warm slots then run
exactly that image (through the pull-through cache, which keeps upstream digests), a
moved tag cannot change what a new node runs, and the data volume snapshot can be
checked against it (``tools image-snapshot``).

The digest comes from the registry's HTTP API (OCI distribution spec, "Pulling
manifests": a ``HEAD`` of ``/v2/<repository>/manifests/<tag>`` answers with
``Docker-Content-Digest``), asked for the multi-platform index first, so the pin is
the one containerd resolves for the node's platform. A ``401`` names the token
service in ``WWW-Authenticate`` (Docker Hub: ``auth.docker.io``); the tool fetches an
anonymous pull token there. Docker Hub does not count ``HEAD`` requests towards its
pull rate limit (https://docs.docker.com/docker-hub/usage/pulls/).
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Final

import yaml

from infra.core.images import DOCKER_HUB, ImageRef, parse_image
from infra.core.schema import NAMESPACE, ConfigError
from infra.stack.files import ROOT, typed_stack_config

KEY: Final = f"{NAMESPACE}:serving"
FIELD: Final = "vllmImage"
ACCEPT: Final = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
TIMEOUT_SECONDS: Final = 30
_DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")


class PinError(Exception):
    """The digest could not be read: the message says why."""


def registry_url(registry: str) -> str:
    """Base URL of a registry's API (Docker Hub's is not ``docker.io``)."""
    return "https://registry-1.docker.io" if registry == DOCKER_HUB else f"https://{registry}"


def _request(url: str, *, method: str, headers: dict[str, str]) -> urllib.request.Request:
    if not url.startswith(("https://", "http://")):
        raise PinError(f"{url}: not an HTTP(S) URL")
    return urllib.request.Request(url, method=method, headers=headers)


def _token(challenge: str, repository: str) -> str:
    """An anonymous pull token from the service a ``Bearer`` challenge names."""
    scheme, _, params = challenge.partition(" ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
    if scheme.lower() != "bearer" or "realm" not in fields:
        raise PinError(f"the registry asks for {challenge!r}, not a bearer token")
    query = {"scope": fields.get("scope", f"repository:{repository}:pull")}
    if "service" in fields:
        query["service"] = fields["service"]
    url = f"{fields['realm']}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(
        _request(url, method="GET", headers={}), timeout=TIMEOUT_SECONDS
    ) as response:
        body = json.load(response)
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str) or not token:
        raise PinError(f"{fields['realm']} returned no token")
    return token


def resolve_digest(image: ImageRef, base_url: str | None = None) -> str:
    """The digest ``image``'s tag points to now."""
    if image.tag is None:
        raise PinError(f"{image}: no tag to resolve")
    base = (base_url or registry_url(image.registry)).rstrip("/")
    url = f"{base}/v2/{image.repository}/manifests/{image.tag}"
    headers = {"Accept": ACCEPT}
    try:
        try:
            response = urllib.request.urlopen(
                _request(url, method="HEAD", headers=headers), timeout=TIMEOUT_SECONDS
            )
        except urllib.error.HTTPError as err:
            if err.code != 401:
                raise
            token = _token(err.headers.get("WWW-Authenticate", ""), image.repository)
            headers["Authorization"] = f"Bearer {token}"
            response = urllib.request.urlopen(
                _request(url, method="HEAD", headers=headers), timeout=TIMEOUT_SECONDS
            )
        with response:
            digest = response.headers.get("Docker-Content-Digest", "")
    except urllib.error.HTTPError as err:
        hint = " (no such tag)" if err.code == 404 else ""
        raise PinError(f"{url}: HTTP {err.code}{hint}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise PinError(f"{url}: {reason}") from err
    if not _DIGEST.match(digest):
        raise PinError(f"{url}: no sha256 digest in the answer ({digest!r})")
    return digest


def pinned(image: str, digest: str) -> str:
    """``image`` (as written, registry included or not) with ``digest`` after its tag."""
    return f"{image.partition('@')[0]}@{digest}"


def set_image(text: str, image: str) -> str:
    """The stack file ``text`` with ``llm-platform:serving.vllmImage`` set to ``image``:
    the key's line replaced (its comment kept), added under the section, or the section
    added at the end of ``config``. Every other line is left as it was."""
    lines = text.splitlines()
    header = next(
        (i for i, line in enumerate(lines) if re.match(rf"^  {re.escape(KEY)}:\s*(#.*)?$", line)),
        None,
    )
    entry = f"{FIELD}: {image}"
    if header is None:
        if not any(re.match(r"^config:\s*(#.*)?$", line) for line in lines):
            raise PinError("the stack file has no top-level config mapping")
        end = len(lines)
        start = next(i for i, line in enumerate(lines) if line.startswith("config:"))
        for i in range(start + 1, len(lines)):
            if lines[i] and not lines[i].startswith((" ", "#")):
                end = i
                break
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        lines[end:end] = [f"  {KEY}:", f"    {entry}"]
    else:
        children = []
        for i in range(header + 1, len(lines)):
            if lines[i].strip() and not lines[i].lstrip().startswith("#"):
                if len(lines[i]) - len(lines[i].lstrip()) <= 2:
                    break
                children.append(i)
        if children and lines[children[0]].lstrip().startswith("{"):
            raise PinError(f"{KEY} is a flow mapping; write it as a block to pin the image")
        indent = len(lines[children[0]]) - len(lines[children[0]].lstrip()) if children else 4
        mine = [i for i in children if re.match(rf"^ {{{indent}}}{FIELD}:", lines[i])]
        if mine:
            comment = re.search(r"\s+#.*$", lines[mine[0]])
            lines[mine[0]] = " " * indent + entry + (comment.group(0) if comment else "")
        else:
            lines.insert(header + 1, " " * indent + entry)
    return "\n".join(lines) + "\n"


def _config(text: str) -> dict[str, object]:
    document = yaml.safe_load(text) or {}
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise PinError("the stack file has no top-level config mapping")
    return config


def pin_stack_file(path: Path, image: str) -> None:
    """Write ``image`` into the stack file at ``path``; only that value may change."""
    before = path.read_text()
    after = set_image(before, image)
    old, new = _config(before), _config(after)
    serving = dict(new.get(KEY) or {})  # type: ignore[call-overload]
    if serving.pop(FIELD, None) != image:
        raise PinError(f"{path.name}: {KEY}.{FIELD} did not land as {image}")
    rest = dict(old.get(KEY) or {})  # type: ignore[call-overload]
    rest.pop(FIELD, None)
    if serving != rest or {k: v for k, v in old.items() if k != KEY} != {
        k: v for k, v in new.items() if k != KEY
    }:
        raise PinError(f"{path.name}: pinning would change more than {KEY}.{FIELD}")
    path.write_text(after)


def main(
    stack: str, *, check: bool = False, stack_dir: Path = ROOT, registry: str | None = None
) -> int:
    """CLI entry: 0 pinned (or already), 1 ``--check`` found it unpinned or stale,
    2 a bad stack file or a registry that did not answer."""
    try:
        cfg = typed_stack_config(stack, stack_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    current = cfg.serving.vllm_image
    at = f"{KEY}.{FIELD} = {json.dumps(current)}"
    try:
        digest = resolve_digest(parse_image(current), registry)
        wanted = pinned(current, digest)
        if check:
            if wanted == current:
                print(f"{at}: pinned to the digest its tag has")
                return 0
            print(f"{at}: its tag points to {digest}; run python -m tools pin-image {stack}")
            return 1
        if wanted == current:
            print(f"{at}: already pinned to the digest its tag has")
            return 0
        path = stack_dir / f"Pulumi.{stack}.yaml"
        pin_stack_file(path, wanted)
    except (PinError, ValueError) as exc:
        print(f"error: {at}: {exc}", file=sys.stderr)
        return 2
    print(f"{path.name}: {KEY}.{FIELD} = {wanted}")
    snapshot_image = cfg.node_class.data_volume_image
    if snapshot_image is not None and snapshot_image != wanted:
        print(
            f"the data volume snapshot holds {snapshot_image}: build a new one "
            f"(python -m tools image-snapshot build {stack} ...) before the next deploy"
        )
    return 0
