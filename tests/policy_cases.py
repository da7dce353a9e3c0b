"""Helpers for the policy tests: run one rule by name on a fixture changed in one place.

Fixtures are engine-shaped props (camelCase inputs, ``kubernetes:<apiVersion>:<kind>``
type tokens), as ``pulumi preview`` and the mock runtime give them to the rules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policies.core import Resource, ResourceRule, Rule, StackRule
from policies.rules import RULES

Props = dict[str, Any]
Mutation = Callable[[Props], object]

# Settings of a small, spot-only environment (the tests own them; a stack's are rendered
# into policies/config.<stack>.json).
SETTINGS: dict[str, Any] = {
    "maxGpusPerPool": 4,
    "maxGpusTotal": 6,
    "minZones": 2,
    "spotOnly": True,
    "allowedInstanceFamilies": ["g5", "g6"],
    "allowedInstanceSizes": ["xlarge", "2xlarge", "12xlarge"],
    "requiredTags": ["cost-center", "owner"],
    "requiredLogTypes": ["api", "audit", "authenticator"],
    "minRetentionDays": 14,
    "minEndpointPrefixLength": 16,
    "requireOnDemandFallback": True,
    "minReplicas": 2,
    "requirePinnedAmi": True,
    "requireNatPerZone": True,
    "requireImageDigest": True,
}


def rule(name: str) -> Rule:
    return next(r for r in RULES if r.name == name)


def changed(base: Props, mutate: Mutation | None = None) -> Props:
    """A deep copy of ``base`` with ``mutate`` applied (the one field a case changes)."""
    props = copy.deepcopy(base)
    if mutate is not None:
        mutate(props)
    return props


def check(
    name: str, type_: str, props: Props, settings: Mapping[str, Any] = SETTINGS
) -> list[str] | None:
    """Messages of resource rule ``name`` on one resource (``None``: not applicable)."""
    r = rule(name)
    assert isinstance(r, ResourceRule)
    return r.run(type_, props, {k: settings[k] for k in r.settings})


def check_stack(
    name: str, resources: Sequence[Resource], settings: Mapping[str, Any] = SETTINGS
) -> list[str]:
    r = rule(name)
    assert isinstance(r, StackRule)
    return r.run(resources, {k: settings[k] for k in r.settings})
