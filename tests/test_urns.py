"""A deployed stack keeps every resource: each URN it has is registered again, or is
an alias of a resource that is (``tests/deployed/README.md``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.stack.files import ROOT
from tests.harness import planned

pytestmark = pytest.mark.stacks

DEPLOYED = Path(__file__).resolve().parent / "deployed"


def test_every_deployed_urn_is_kept_or_aliased(stack: str) -> None:
    record = DEPLOYED / f"{stack}.urns"
    if not record.is_file():
        pytest.skip(f"stack {stack} has no deployed URNs yet (tests/deployed/README.md)")
    resources = planned(stack, ROOT)
    known = {r.urn for r in resources} | {a for r in resources for a in r.aliases}
    gone = [urn for urn in record.read_text().split() if urn not in known]
    assert gone == [], "resources pulumi up would delete (add an alias, or record the removal)"


def test_the_urns_are_the_engines(stack: str) -> None:
    for r in planned(stack, ROOT):
        chain, name = r.urn.split("::")[2:]
        assert r.urn.startswith(f"urn:pulumi:{stack}::llm-platform::")
        assert name == r.name
        assert chain.split("$")[-1] == r.type
        assert "pulumi:pulumi:Stack" not in chain
        if r.parent_type is None:
            assert chain == r.type
        else:
            assert chain.split("$")[-2] == r.parent_type


def test_an_alias_keeps_a_renamed_resource() -> None:
    """The check sees what an alias does: a renamed resource without one is reported."""
    import pulumi

    from tools.mock_runtime import run_program

    def program(old: str, new: str, alias: bool) -> None:
        parent = pulumi.ComponentResource("test:index:Parent", "parent")
        opts = pulumi.ResourceOptions(
            parent=parent, aliases=[pulumi.Alias(name=old)] if alias else None
        )
        pulumi.ComponentResource("test:index:Child", new, None, opts)

    before = run_program({}, stack="t", program=lambda: program("a", "a", False))
    (child,) = [r for r in before.resources if r.name == "a"]
    assert child.urn == "urn:pulumi:t::llm-platform::test:index:Parent$test:index:Child::a"
    renamed = run_program({}, stack="t", program=lambda: program("a", "b", True))
    assert child.urn in {a for r in renamed.resources for a in r.aliases}
    unaliased = run_program({}, stack="t", program=lambda: program("a", "b", False))
    assert child.urn not in {a for r in unaliased.resources for a in r.aliases}
