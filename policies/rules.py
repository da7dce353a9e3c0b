"""Every rule of the pack, in report order (one module per concern)."""

from __future__ import annotations

from policies import cost, gpu, guardrails, pod_security, security, workloads
from policies.core import Rule

RULES: tuple[Rule, ...] = (
    *gpu.RULES,
    *cost.RULES,
    *workloads.RULES,
    *pod_security.RULES,
    *security.RULES,
    *guardrails.RULES,
)

RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
