"""Environment baselines of the policy pack: the floor a stack file cannot go below.

A stack's ``policy`` section sets the pack's levels and settings, but a stack file is
edited with every change to the environment; the guardrails themselves must change
only in a pull request of their own that the platform owners review. So each stack has
a baseline, ``policies/baselines/<stack>.json`` or, for a stack without one,
``policies/baselines/default.json`` (``.github/CODEOWNERS`` makes the platform owners
review both):

.. code-block:: json

    {
      "enforcement": {"*": "mandatory", "<rule>": "advisory"},
      "atLeast": {"minZones": 3},
      "atMost": {"maxGpusPerPool": 24},
      "required": ["requirePinnedAmi"],
      "includes": {"requiredLogTypes": ["api", "audit"]}
    }

- ``enforcement``: the lowest level of each rule (``*``: every rule not named);
- ``atLeast`` / ``atMost``: bounds of numeric ``policy`` settings;
- ``required``: boolean settings that must be on;
- ``includes``: list settings that must contain these items.

A stack file that states a looser value is a configuration error naming the key, the
value and the baseline. A value it does not state comes from the baseline when the
baseline is stricter than the default. :func:`effective_policy` resolves both, with
where each value came from, for the pack config and the plan's summary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from infra.core.schema import NAMESPACE
from infra.stack.policy import PolicyConfig
from policies.core import LEVELS
from policies.rules import RULES

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig

ROOT: Final = Path(__file__).resolve().parents[2]
"""The project directory (the baselines live under it)."""
BASELINE_DIR: Final = Path("policies") / "baselines"
DEFAULT_BASELINE: Final = "default"
_RANK: Final = {level: i for i, level in enumerate(("disabled", "advisory", "mandatory"))}
_KEYS: Final = frozenset({"enforcement", "atLeast", "atMost", "required", "includes"})


@dataclass(frozen=True)
class Baseline:
    """One baseline file."""

    path: str
    """Relative to the repository root (``policies/baselines/prod.json``)."""
    enforcement: Mapping[str, str] = field(default_factory=dict)
    at_least: Mapping[str, float] = field(default_factory=dict)
    at_most: Mapping[str, float] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    includes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def floor(self, rule: str) -> str:
        """The lowest level ``rule`` may have (``disabled``: no floor)."""
        return self.enforcement.get(rule, self.enforcement.get("*", "disabled"))


def baseline_path(stack: str, root: Path = ROOT) -> Path:
    """The stack's own baseline file if it has one, else the default."""
    own = root / BASELINE_DIR / f"{stack}.json"
    return own if own.is_file() else root / BASELINE_DIR / f"{DEFAULT_BASELINE}.json"


def _fields() -> dict[str, str]:
    """camelCase key -> field name of every ``PolicyConfig`` setting."""
    return {str(f.alias): name for name, f in PolicyConfig.model_fields.items()}


def baseline_problems_in(document: Any, path: str) -> list[str]:
    """What is wrong with a baseline document itself (unknown keys, rules, settings)."""
    if not isinstance(document, dict):
        return [f"{path}: not a JSON object"]
    problems = [
        f"{path}: unknown key {key}; allowed: {', '.join(sorted(_KEYS))}"
        for key in document
        if key not in _KEYS
    ]
    names = {r.name for r in RULES}
    for rule, level in dict(document.get("enforcement", {})).items():
        if rule != "*" and rule not in names:
            problems.append(f"{path}: enforcement.{rule}: no such policy rule")
        if level not in LEVELS:
            problems.append(f"{path}: enforcement.{rule} = {level}: one of {', '.join(LEVELS)}")
    fields = _fields()
    for key in ("atLeast", "atMost", "includes"):
        problems += [
            f"{path}: {key}.{name}: not a policy setting"
            for name in dict(document.get(key, {}))
            if name not in fields
        ]
    problems += [
        f"{path}: required.{name}: not a policy setting"
        for name in document.get("required", [])
        if name not in fields
    ]
    return problems


def load_baseline(stack: str, root: Path = ROOT) -> Baseline:
    """The baseline of ``stack``; raises ``ValueError`` listing what is wrong with it."""
    file = baseline_path(stack, root)
    path = str(file.relative_to(root))
    try:
        document = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the baseline ({exc})") from None
    problems = baseline_problems_in(document, path)
    if problems:
        raise ValueError("; ".join(problems))
    return Baseline(
        path=path,
        enforcement=dict(document.get("enforcement", {})),
        at_least=dict(document.get("atLeast", {})),
        at_most=dict(document.get("atMost", {})),
        required=tuple(document.get("required", ())),
        includes={k: tuple(v) for k, v in dict(document.get("includes", {})).items()},
    )


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy the pack runs with, and where each level and setting came from."""

    policy: PolicyConfig
    levels: Mapping[str, tuple[str, str]]
    """Rule -> (level, source): ``stack file``, the baseline's path, or ``rule default``."""
    setting_sources: Mapping[str, str]
    """Setting (camelCase) -> ``stack file``, the baseline's path or ``default``."""


def _bound_value(b: Baseline, key: str, default: Any) -> Any:
    """The baseline's value for an unstated setting, or ``default`` if that is as strict."""
    if key in b.at_least and default < b.at_least[key]:
        return type(default)(b.at_least[key])
    if key in b.at_most and default > b.at_most[key]:
        return type(default)(b.at_most[key])
    if key in b.required and default is not True:
        return True
    if key in b.includes and not set(b.includes[key]) <= set(default):
        return (*default, *(i for i in b.includes[key] if i not in default))
    return default


def _violation(b: Baseline, key: str, value: Any) -> str | None:
    """What the baseline demands when ``value`` is looser than it, else ``None``."""
    if key in b.at_least and value < b.at_least[key]:
        return f"at least {b.at_least[key]:g}"
    if key in b.at_most and value > b.at_most[key]:
        return f"at most {b.at_most[key]:g}"
    if key in b.required and value is not True:
        return "true"
    if key in b.includes:
        missing = [i for i in b.includes[key] if i not in value]
        if missing:
            return f"including {', '.join(missing)}"
    return None


def effective_policy(cfg: PlatformConfig, root: Path = ROOT) -> EffectivePolicy:
    """``cfg.policy`` with each setting it does not state taken from the baseline."""
    b = load_baseline(cfg.stack, root)
    fields = _fields()
    stated = {str(PolicyConfig.model_fields[n].alias) for n in cfg.policy.model_fields_set}
    update: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, name in fields.items():
        if key == "enforcement":
            continue
        if key in stated:
            sources[key] = "stack file"
            continue
        default = getattr(cfg.policy, name)
        value = _bound_value(b, key, default)
        sources[key] = b.path if value != default else "default"
        if value != default:
            update[name] = value
    levels: dict[str, tuple[str, str]] = {}
    for rule in RULES:
        floor = b.floor(rule.name)
        if rule.name in cfg.policy.enforcement:
            levels[rule.name] = (cfg.policy.enforcement[rule.name], "stack file")
        elif _RANK[floor] > _RANK[rule.default_level]:
            levels[rule.name] = (floor, b.path)
        else:
            levels[rule.name] = (rule.default_level, "rule default")
    return EffectivePolicy(cfg.policy.model_copy(update=update), levels, sources)


def baseline_problems(cfg: PlatformConfig, root: Path = ROOT) -> list[str]:
    """Every ``policy`` value of the stack file that is looser than its baseline."""
    try:
        b = load_baseline(cfg.stack, root)
    except ValueError as exc:
        return [str(exc)]
    at = f"{NAMESPACE}:policy"
    problems = []
    for name in sorted(cfg.policy.model_fields_set):
        key = str(PolicyConfig.model_fields[name].alias)
        if key == "enforcement":
            continue
        value = getattr(cfg.policy, name)
        demand = _violation(b, key, value)
        if demand is not None:
            shown = json.dumps(list(value) if isinstance(value, tuple) else value)
            problems.append(
                f"{at}.{key} = {shown}: looser than the baseline {b.path} ({demand}); "
                "tighten it here, or change the baseline in a reviewed pull request of its own"
            )
    known = {r.name for r in RULES}  # an unknown name is the policy section's own error
    for rule, level in sorted(cfg.policy.enforcement.items()):
        if rule not in known:
            continue
        floor = b.floor(rule)
        if _RANK[level] < _RANK[floor]:
            problems.append(
                f"{at}.enforcement.{rule} = {level}: below the baseline {b.path} ({floor}); "
                "raise it here, or change the baseline in a reviewed pull request of its own"
            )
    return problems
