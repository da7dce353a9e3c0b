"""KEDA release: pinned, on the system nodes, CRDs included."""

from __future__ import annotations

import pytest

from tests.harness import find
from tools.mock_runtime import Recorded
from workloads.serving.keda import KedaArgs, keda_values


def test_release_pinned_with_crds_on_system_nodes(fixture_resources: tuple[Recorded, ...]) -> None:
    release = find(fixture_resources, "kubernetes:helm.sh/v3:Release", "keda-release").inputs
    assert (release["chart"], release["version"], release["namespace"]) == (
        "keda",
        "2.20.2",
        "keda",
    )
    assert release["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    assert release["values"] == keda_values()
    assert keda_values()["crds"] == {"install": True}
    assert keda_values()["nodeSelector"] == {"llm-platform.io/node-role": "system"}


def test_version_must_be_a_chart_version() -> None:
    with pytest.raises(ValueError, match=r"^version \('latest'\) must be a chart version"):
        KedaArgs(version="latest")
