"""Every chart is installed the one way ``infra.core.helm`` defines: pinned, from a
known source, with only the options the component asked for."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra.core.helm import Chart
from tests.harness import find_all, planned
from tools.mock_runtime import run_program
from tools.plan import HELM_RELEASE


def test_every_release_is_pinned_to_a_version_from_a_known_source(fixture_stack: str) -> None:
    releases = find_all(planned(fixture_stack), HELM_RELEASE)
    assert releases
    for r in releases:
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", r.inputs["version"]), r.name
        chart = r.inputs["chart"]
        if chart.startswith("oci://"):
            assert "repositoryOpts" not in r.inputs, r.name
        else:
            assert r.inputs["repositoryOpts"]["repo"].startswith("https://"), r.name


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {}),
        ({"values": {"a": 1}}, {"values": {"a": 1}}),
        ({"create_namespace": True}, {"createNamespace": True}),
        ({"skip_crds": True, "timeout": 900}, {"skipCrds": True, "timeout": 900}),
    ],
)
def test_install_passes_only_what_was_asked(
    kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    def program() -> None:
        Chart("c", "rel", "ns", "https://charts.example.com").install(
            "r", version="1.2.3", **kwargs
        )
        Chart("oci://registry.example.com/c", "oci-rel", "ns").install("o", version="1.2.3")

    run = run_program({}, stack="t", program=program)
    assert run.error is None
    # The SDK adds ``compat: "true"`` to every Release itself.
    by_name = {r.name: {k: v for k, v in r.inputs.items() if k != "compat"} for r in run.resources}
    base = {"name": "rel", "chart": "c", "version": "1.2.3", "namespace": "ns"}
    assert by_name["r"] == {
        **base,
        "repositoryOpts": {"repo": "https://charts.example.com"},
        **expected,
    }
    assert by_name["o"] == {
        "name": "oci-rel",
        "chart": "oci://registry.example.com/c",
        "version": "1.2.3",
        "namespace": "ns",
    }
