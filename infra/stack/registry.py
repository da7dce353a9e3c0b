"""Where the stack's nodes pull the serving image from (spans ``registry``, ``serving``,
the cluster name and the account)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.core.images import through_cache
from infra.registry.component import cache_prefix, registry_host
from workloads.serving.config import ServingConfig

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig


def serving_image(cfg: PlatformConfig) -> str:
    """``serving.vllmImage`` as the nodes pull it: through the stack's pull-through cache
    when ``registry.pullThroughCache`` is on (same tag and digest)."""
    if not cfg.registry.pull_through_cache:
        return cfg.serving.vllm_image
    return through_cache(
        cfg.serving.vllm_image, registry_host(cfg.arns), cache_prefix(cfg.cluster.name)
    )


def deployed_serving(cfg: PlatformConfig) -> ServingConfig:
    """The serving section with the image the nodes actually pull."""
    return cfg.serving.model_copy(update={"vllm_image": serving_image(cfg)})
