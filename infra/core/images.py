"""Container image references: parse, pin check, and the pull-through cache address.

A reference is ``[registry/]repository[:tag][@sha256:<64 hex>]``; without a registry it
is Docker Hub, whose official images live under ``library/`` (docker/distribution
reference rules, and the ECR pull-through cache docs: "For Docker Hub official images,
the /library prefix must be included").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DOCKER_HUB: Final = "docker.io"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def parse_image(ref: str) -> ImageRef:
    """Split ``ref``; ``ValueError`` when it is not an image reference."""
    name, _, digest = ref.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"image {ref!r}: digest must be sha256:<64 hex digits>")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name
    repository, _, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if not repository or not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", repository):
        raise ValueError(f"image {ref!r}: not a repository name")
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return ImageRef(registry, repository, tag or None, digest or None)


def image_digest(ref: str) -> str | None:
    """The ``sha256:`` digest an image reference is pinned to, if any."""
    return parse_image(ref).digest


def by_tag(ref: str) -> str:
    """``ref`` without its digest when it also has a tag (else unchanged): what fills an
    ECR pull-through cache. A first pull of an uncached image by digest fails there,
    even with the tag beside it; a pull by tag caches the tag and its digest
    (aws/containers-roadmap#2837, open)."""
    image = parse_image(ref)
    if image.tag is None or image.digest is None:
        return ref
    return str(ImageRef(image.registry, image.repository, image.tag, None))


def through_cache(ref: str, registry_host: str, prefix: str) -> str:
    """``ref`` (a Docker Hub image) as pulled through an ECR pull-through cache rule
    with repository prefix ``prefix`` in the registry ``registry_host``; other
    registries' images are returned unchanged."""
    image = parse_image(ref)
    if image.registry != DOCKER_HUB:
        return ref
    return str(ImageRef(registry_host, f"{prefix}/{image.repository}", image.tag, image.digest))
