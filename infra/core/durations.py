"""Duration syntaxes the platform writes, each checked by one pattern.

Pure ``re``: the policy pack imports the core layer without pydantic.
"""

from __future__ import annotations

import re
from typing import Final

GO_DURATION: Final = re.compile(r"([0-9]+(s|m|h))+")
"""A Go ``time.Duration`` as Kubernetes and Karpenter accept it: ``30s``, ``10m``,
``720h``, ``1h30m``."""

PROMETHEUS_DURATION: Final = re.compile(r"([0-9]+[smhd])+")
"""A Prometheus duration as a rule's ``for`` takes it: ``5m``, ``1h``, ``1d``."""


def is_go_duration(value: str) -> bool:
    return GO_DURATION.fullmatch(value) is not None


def is_prometheus_duration(value: str) -> bool:
    return PROMETHEUS_DURATION.fullmatch(value) is not None
