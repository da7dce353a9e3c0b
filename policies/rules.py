"""Every rule of the pack, in report order (one module per concern)."""

from __future__ import annotations

from policies import cost, gpu, security, workloads
from policies.core import Rule

RULES: tuple[Rule, ...] = (*gpu.RULES, *cost.RULES, *workloads.RULES, *security.RULES)

RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
