"""The ``registry`` section: where nodes pull the platform's Docker Hub images from."""

from __future__ import annotations

from infra.core.schema import Section


class RegistryConfig(Section):
    """ECR pull-through cache for Docker Hub (docs/architecture.md, "Images")."""

    pull_through_cache: bool = True
    """Nodes pull Docker Hub images (the vLLM server) through the stack's ECR
    pull-through cache, over the VPC's ECR endpoints, never from Docker Hub itself:
    unauthenticated Docker Hub pulls are rate-limited per NAT address. Needs the
    ``dockerHubUsername`` and ``dockerHubAccessToken`` secrets (default true)."""
