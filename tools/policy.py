"""The policy pack's per-stack config, and its evaluation for the offline plan.

One source of truth: the environment limits live in the stack file (``policy:`` and
the cluster budget in ``cost.budgets``). :func:`pack_config` turns them into the
``--policy-pack-config`` document CrossGuard reads (committed as
``policies/config.<stack>.json``, regenerated with ``python -m tools policy-config``
and compared by the tests), and the offline plan evaluates the very same rules with
the very same document on the mocked resources.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from infra.core.schema import ConfigError
from infra.stack.baseline import baseline_path, effective_policy
from infra.stack.config import PlatformConfig
from infra.stack.files import ROOT, stack_names, typed_stack_config
from infra.stack.stack_cost import platform_worst_case
from policies.core import Resource, Verdict, evaluate
from policies.rules import RULES
from tools.mock_runtime import Recorded, revealed

PACK_NAME = "llm-platform-guardrails"


def config_path(stack: str, root: Path = ROOT) -> Path:
    """Where the committed pack config of ``stack`` lives."""
    return root / "policies" / f"config.{stack}.json"


def settings(cfg: PlatformConfig) -> dict[str, Any]:
    """Every rule setting of the pack, by its camelCase name, for one stack (the stack
    file's values over its baseline's, ``infra.stack.baseline``)."""
    p = effective_policy(cfg).policy
    return {
        "maxGpusPerPool": p.max_gpus_per_pool,
        "maxGpusTotal": p.max_gpus_total,
        "minZones": p.min_zones,
        "spotOnly": p.spot_only,
        "allowedInstanceFamilies": list(p.allowed_instance_families),
        "allowedInstanceSizes": list(p.allowed_instance_sizes),
        "requiredTags": list(p.required_tags),
        "requiredLogTypes": list(p.required_log_types),
        "minRetentionDays": p.min_log_retention_days,
        "requireOnDemandFallback": p.require_on_demand_fallback,
        "minReplicas": p.min_replicas,
        "requirePinnedAmi": p.require_pinned_ami,
        "requireNatPerZone": p.require_nat_per_zone,
        "minEndpointPrefixLength": p.min_endpoint_prefix_length,
        "requireImageDigest": p.require_image_digest,
        "platformWorstCaseMonthlyUsd": platform_worst_case(cfg),
        "budgets": [
            {
                "name": b.name,
                "scope": b.scope,
                **({"target": b.target} if b.target else {}),
                "monthlyUsd": b.monthly_usd,
            }
            for b in cfg.cost.budgets
        ],
        "region": cfg.region,
    }


def pack_config(cfg: PlatformConfig) -> dict[str, dict[str, Any]]:
    """The CrossGuard policy-pack config document of a stack: every rule with its
    enforcement level (stack override or the rule's default) and the settings it reads."""
    values = settings(cfg)
    levels = effective_policy(cfg).levels
    return {
        rule.name: {
            "enforcementLevel": levels[rule.name][0],
            **{key: values[key] for key in rule.settings},
        }
        for rule in RULES
    }


def render(cfg: PlatformConfig) -> str:
    """``policies/config.<stack>.json`` as committed (stable key order)."""
    return json.dumps(pack_config(cfg), indent=2, sort_keys=True) + "\n"


def verdicts(resources: Iterable[Recorded], cfg: PlatformConfig) -> list[Verdict]:
    """Evaluate the pack on recorded resources with the stack's pack config."""
    seen = [
        Resource(type=r.type, name=r.name, props=revealed(r.inputs), depends_on=r.depends_on)
        for r in resources
    ]
    return evaluate(RULES, seen, pack_config(cfg))


def mandatory_violations(found: Iterable[Verdict], when: str = "") -> list[str]:
    """``<rule>: <message>`` for every violation of a mandatory rule (``when``, e.g.
    ``at preview``, is added after the rule name)."""
    at = f" {when}" if when else ""
    return [f"{v.rule}{at}: {m}" for v in found if v.level == "mandatory" for m in v.violations]


def _status(v: Verdict) -> str:
    if v.level == "disabled":
        return "disabled"
    if v.violations:
        kind = "MANDATORY" if v.level == "mandatory" else "advisory"
        return f"{kind} x{len(v.violations)}"
    return "n/a" if v.checked == 0 else f"pass ({v.checked})"


def summary(applied: list[Verdict], previewed: list[Verdict], cfg: PlatformConfig) -> list[str]:
    """The plan's policy section: one line per rule with its level and where the level
    came from (stack file, baseline or rule default), its verdict at the first
    ``pulumi preview`` of a new stack (outputs of resources not yet created unknown) and
    after apply (every output known), and the violations of each under it; then the
    settings with where each came from."""
    effective = effective_policy(cfg)
    width = max((len(v.rule) for v in applied), default=0)
    at_preview = {v.rule: v for v in previewed}
    origin = {rule: f"{level} ({source})" for rule, (level, source) in effective.levels.items()}
    level_width = max((len(o) for o in origin.values()), default=0)
    lines = [
        f"Policy verdicts ({PACK_NAME}, policies/config.{cfg.stack}.json; "
        f"baseline {baseline_path(cfg.stack).relative_to(ROOT)}):",
        f"  {'rule'.ljust(width)}  {'level (from)'.ljust(level_width)}  "
        f"{'preview (new stack)':<20}  after apply",
    ]
    for v in applied:
        p = at_preview[v.rule]
        lines.append(
            f"  {v.rule.ljust(width)}  {origin[v.rule].ljust(level_width)}  "
            f"{_status(p):<20}  {_status(v)}".rstrip()
        )
        lines += [f"      - at preview: {m}" for m in p.violations]
        lines += [f"      - after apply: {m}" for m in v.violations]
    values = settings(cfg)
    lines.append("  settings:")
    lines += [
        f"    {key} = {json.dumps(values[key])} ({source})"
        for key, source in sorted(effective.setting_sources.items())
        if key in values
    ]
    return lines


def main(stacks: list[str], *, check: bool = False, root: Path = ROOT) -> int:
    """Write (or, with ``check``, compare) ``policies/config.<stack>.json`` per stack."""
    names = stacks or stack_names(root)
    stale = []
    for stack in names:
        try:
            text = render(typed_stack_config(stack, root))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        path = config_path(stack, root)
        if path.is_file() and path.read_text() == text:
            continue
        if check:
            stale.append(stack)
            print(f"{path.relative_to(root)} is out of date: run python -m tools policy-config")
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(root)}")
    return 1 if stale else 0
