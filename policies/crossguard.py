"""Thin adapter from the pure rules to pulumi_policy's CrossGuard policy objects.

CrossGuard hands a policy its inputs wrapped in a proxy that raises on any unknown
value, and turns that exception into an *advisory* "can't run during preview" note,
whatever the policy's enforcement level. The adapter unwraps the proxies first, so the
rules see the engine's unknown sentinels and report them themselves at the rule's own
level (see ``policies.core``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.core import Resource, ResourceRule, Rule


def plain(value: Any) -> Any:
    """``value`` with CrossGuard's unknown-checking proxies replaced by dicts and lists.

    The proxies expose their target under the ``"__target"`` key
    (``pulumi_policy/proxy.py``); reading it never raises.
    """
    if isinstance(value, Mapping):
        target = value if isinstance(value, dict) else value["__target"]
        return {k: plain(v) for k, v in target.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        target = value if isinstance(value, list) else cast(Any, value)["__target"]
        return [plain(v) for v in target]
    return value


def _schema(rule: Rule) -> PolicyConfigSchema | None:
    if not rule.settings:
        return None
    return PolicyConfigSchema(
        properties={k: dict(v) for k, v in rule.settings.items()},
        required=sorted(rule.settings),
    )


def to_policy(rule: Rule) -> Policy:
    """The CrossGuard policy running ``rule`` with the settings of the pack config."""
    common: dict[str, Any] = {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": EnforcementLevel(rule.default_level),
        "config_schema": _schema(rule),
    }
    if isinstance(rule, ResourceRule):

        def validate_resource(args: ResourceValidationArgs, report: ReportViolation) -> None:
            if not rule.applies_to(args.resource_type):
                return
            found = rule.run(args.resource_type, plain(args.props), dict(args.get_config()))
            for message in found or ():
                report(message, None)

        return ResourceValidationPolicy(validate=validate_resource, **common)

    def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [
            Resource(
                type=r.resource_type,
                name=r.name,
                props=plain(r.props),
                depends_on=tuple(d.name for d in r.dependencies),
            )
            for r in args.resources
        ]
        for message in rule.run(resources, dict(args.get_config())):
            report(message, None)

    return StackValidationPolicy(validate=validate_stack, **common)
