"""Renaming a component without replacing what it made.

A URN holds a resource's name and its ancestors' types, not their names
(https://www.pulumi.com/docs/iac/concepts/resources/names/#urns): renaming a component
changes its own URN and, since children are named ``<component>-<part>``, theirs.
:func:`renamed_from` gives each of them an alias to the URN it had
(https://www.pulumi.com/docs/iac/concepts/options/aliases/), so ``pulumi up`` updates
in place. ``tests/test_urns.py`` checks that no deployed URN is lost.
"""

from __future__ import annotations

import pulumi


def renamed_from(old: str, new: str) -> pulumi.ResourceOptions:
    """Options for a component now named ``new`` that was named ``old``: the component
    and every resource under it whose name starts with ``new`` are aliased to the same
    name starting with ``old`` (same type, same parent)."""

    def keep_urn(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        if not args.name.startswith(new):
            return None
        alias = pulumi.Alias(name=old + args.name[len(new) :])
        opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(aliases=[alias]))
        return pulumi.ResourceTransformationResult(args.props, opts)

    # ``transformations`` run in the program (``transforms`` need the engine's callback
    # service), apply to the component and everything under it, and keep working
    # unchanged in previews.
    return pulumi.ResourceOptions(transformations=[keep_urn])
