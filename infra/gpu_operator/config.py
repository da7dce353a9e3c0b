"""The ``gpuOperator`` section: NVIDIA GPU operator release."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from infra.core.schema import Section


class GpuOperatorConfig(Section):
    """NVIDIA GPU operator release."""

    version: Annotated[str, Field(pattern=r"^v\d+\.\d+\.\d+$")] = "v26.7.0"
    """``gpu-operator`` chart version (default ``v26.7.0``)."""
    time_slicing_replicas: Annotated[int, Field(ge=2, le=16)] | None = None
    """Share each GPU between N pods (dev only; no memory isolation). Default off."""
