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


_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value: str) -> int:
    """Seconds of a Go or Prometheus duration made of ``s``/``m``/``h``/``d`` parts."""
    if not PROMETHEUS_DURATION.fullmatch(value):
        raise ValueError(f"{value!r} is not a duration such as '5m', '1h' or '720h'")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in re.findall(r"([0-9]+)([smhd])", value))
