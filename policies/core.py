"""What a rule is, how it sees a resource, and how a pack is evaluated.

A rule is a pure function over engine-shaped data: the resource type token
(``kubernetes:karpenter.sh/v1:NodePool``) and its inputs with camelCase engine names,
exactly as ``pulumi preview`` hands them to CrossGuard and as the mock runtime records
them. The same functions therefore run under CrossGuard (``policies.crossguard``), in
the offline plan (``tools.plan``) and in the unit tests.

During ``pulumi preview`` an input computed from another resource is *unknown*: the
engine sends a sentinel string instead of the value. CrossGuard's own behaviour on
reading one is to skip the policy with an advisory note, which would let a mandatory
rule pass silently. Rules here read values through :func:`at`, which raises
:class:`Unverifiable` instead; the runner turns that into a violation saying the value
cannot be verified at preview, reported at the rule's own enforcement level.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pulumi_policy import proxy

Level = Literal["mandatory", "advisory", "disabled"]
LEVELS: tuple[str, ...] = get_args(Level)
Props = Mapping[str, Any]
Settings = Mapping[str, Any]
JsonSchema = Mapping[str, Any]

# The engine's wire sentinels for values unknown during preview (one per JSON type).
UNKNOWN_VALUES = frozenset(
    {
        proxy.UNKNOWN_BOOLEAN_VALUE,
        proxy.UNKNOWN_NUMBER_VALUE,
        proxy.UNKNOWN_STRING_VALUE,
        proxy.UNKNOWN_ARRAY_VALUE,
        proxy.UNKNOWN_OBJECT_VALUE,
        proxy.UNKNOWN_ASSET_VALUE,
        proxy.UNKNOWN_ARCHIVE_VALUE,
    }
)


def is_unknown(value: Any) -> bool:
    """Whether ``value`` is the engine's placeholder for a value known only after apply."""
    return isinstance(value, str) and value in UNKNOWN_VALUES


class Unverifiable(Exception):
    """A value a rule needs is unknown at preview."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path

    @property
    def message(self) -> str:
        return f"{self.path} cannot be verified at preview (unknown until apply)"


def render_path(keys: Sequence[str | int]) -> str:
    """``spec.limits["nvidia.com/gpu"]``: dotted where a key is a plain word."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out += f".{key}" if out else key
        else:
            out += f'["{key}"]'
    return out


def at(props: Any, *keys: str | int) -> Any:
    """The value at ``keys`` inside ``props``; ``None`` when any step is missing.

    Raises :class:`Unverifiable` when the value, or any container on the way to it, is
    unknown at preview: absence is something a rule can judge, an unknown is not.
    """
    value = props
    for i, key in enumerate(keys):
        if is_unknown(value):
            raise Unverifiable(render_path(keys[:i]))
        if isinstance(key, int):
            if not isinstance(value, list) or not -len(value) <= key < len(value):
                return None
            value = value[key]
        else:
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
    if is_unknown(value):
        raise Unverifiable(render_path(keys))
    return value


def items(props: Any, *keys: str | int) -> list[Any]:
    """The list at ``keys`` (``[]`` when absent); unknown elements raise too."""
    value = at(props, *keys)
    if not isinstance(value, list):
        return []
    for i, element in enumerate(value):
        if is_unknown(element):
            raise Unverifiable(render_path([*keys, i]))
    return value


def whole_number(value: Any) -> int | None:
    """``value`` as an int when it is a whole number, else ``None``.

    The engine carries every number as a protobuf double, so an integer input arrives
    as ``4.0``; Kubernetes quantities may also be strings (``"4"``).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


@dataclass(frozen=True)
class Resource:
    """One resource as a stack rule sees it."""

    type: str
    name: str
    props: Props
    depends_on: tuple[str, ...] = ()
    """Names of the resources this one depends on (explicitly or through inputs)."""


ResourceCheck = Callable[[str, Props, Settings], list[str] | None]
"""``(type, props, settings)`` -> violation messages, or ``None`` when not applicable."""
StackCheck = Callable[[Sequence[Resource], Settings], list[str]]
"""``(resources, settings)`` -> violation messages."""


@dataclass(frozen=True, kw_only=True)
class _Rule:
    name: str
    """Kebab-case policy name, unique in the pack; the key of its config entry."""
    description: str
    default_level: Level
    """Enforcement when the pack config does not set one."""
    settings: Mapping[str, JsonSchema] = field(default_factory=dict)
    """JSON schema of each config property the rule reads (all required)."""
    types: frozenset[str] = frozenset()
    """Type tokens the rule looks at; empty means every type."""

    def applies_to(self, type_: str) -> bool:
        return not self.types or type_ in self.types

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", self.name):
            raise ValueError(f"rule name ({self.name!r}) must be kebab-case")
        if self.default_level not in LEVELS:
            raise ValueError(f"default_level ({self.default_level!r}) must be one of {LEVELS}")


@dataclass(frozen=True, kw_only=True)
class ResourceRule(_Rule):
    """A rule over one resource at a time."""

    check: ResourceCheck

    def run(self, type_: str, props: Props, settings: Settings) -> list[str] | None:
        """Messages for one resource (``None``: the rule does not apply to it)."""
        if not self.applies_to(type_):
            return None
        try:
            return self.check(type_, props, settings)
        except Unverifiable as exc:
            return [exc.message]


@dataclass(frozen=True, kw_only=True)
class StackRule(_Rule):
    """A rule over every resource of the stack at once (sums, links between resources)."""

    check: StackCheck

    def run(self, resources: Sequence[Resource], settings: Settings) -> list[str]:
        try:
            return self.check(resources, settings)
        except Unverifiable as exc:
            return [exc.message]


Rule = ResourceRule | StackRule


@dataclass(frozen=True)
class Verdict:
    """What one rule found in a stack."""

    rule: str
    level: Level
    violations: tuple[str, ...]
    checked: int = 0
    """Resources the rule applied to (for a stack rule: resources of its types)."""


def rule_config(pack_config: Mapping[str, Any], rule: Rule) -> tuple[Level, dict[str, Any]]:
    """Enforcement level and settings of ``rule`` in a CrossGuard pack config document.

    The document has the ``--policy-pack-config`` shape:
    ``{"<rule>": {"enforcementLevel": "mandatory", "<setting>": ...}}`` or
    ``{"<rule>": "advisory"}``.
    """
    entry = pack_config.get(rule.name, {})
    if isinstance(entry, str):
        entry = {"enforcementLevel": entry}
    level = entry.get("enforcementLevel", rule.default_level)
    if level not in LEVELS:
        raise ValueError(f"{rule.name}.enforcementLevel ({level!r}) must be one of {LEVELS}")
    settings = {k: v for k, v in entry.items() if k != "enforcementLevel"}
    missing = sorted(set(rule.settings) - set(settings))
    if missing and level != "disabled":
        raise ValueError(f"{rule.name}: missing settings {', '.join(missing)}")
    return level, settings


def evaluate(
    rules: Sequence[Rule], resources: Sequence[Resource], pack_config: Mapping[str, Any]
) -> list[Verdict]:
    """Run every enabled rule over ``resources``, in rule order.

    Resource-rule messages are prefixed with ``<type> <name>: `` (CrossGuard attaches
    the URN itself; here the message must say which resource it is about).
    """
    verdicts: list[Verdict] = []
    for rule in rules:
        level, settings = rule_config(pack_config, rule)
        if level == "disabled":
            verdicts.append(Verdict(rule.name, level, ()))
            continue
        if isinstance(rule, StackRule):
            counted = sum(1 for r in resources if rule.applies_to(r.type))
            stack_messages = tuple(rule.run(resources, settings))
            verdicts.append(Verdict(rule.name, level, stack_messages, counted))
            continue
        messages: list[str] = []
        checked = 0
        for r in resources:
            found = rule.run(r.type, r.props, settings)
            if found is None:
                continue
            checked += 1
            messages += [f"{r.type} {r.name}: {m}" for m in found]
        verdicts.append(Verdict(rule.name, level, tuple(messages), checked))
    return verdicts
