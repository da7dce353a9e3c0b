"""Every built-in Kubernetes object the program renders is valid for the cluster version.

Parametrised over whatever the committed stacks (discovered) render, so objects and
stacks added later are checked without new test code. Custom resources (Karpenter,
Prometheus operator, KEDA) are not in kubernetes-validate's schemas; their components
test them against the upstream CRD fields instead.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from infra.stack.files import ROOT
from tests.conftest import STACKS
from tests.harness import kubernetes_objects, planned, stack_config
from tools.mock_runtime import revealed

pytestmark = pytest.mark.stacks

BUILT_IN_GROUPS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
    "autoscaling/v2",
    "storage.k8s.io/v1",
    "scheduling.k8s.io/v1",
    "admissionregistration.k8s.io/v1",
}


def _cases() -> list[Any]:
    """Sorted by id: registration order varies between runs, and pytest-xdist workers
    must collect the same tests in the same order."""
    cases = []
    for stack in STACKS:
        version = stack_config(stack, ROOT)["llm-platform:cluster"]["version"]
        for obj in kubernetes_objects(planned(stack, ROOT)):
            if obj["apiVersion"] in BUILT_IN_GROUPS:
                meta = obj.get("metadata", {})
                ident = f"{stack}-{obj['kind']}-{meta.get('namespace', '')}-{meta.get('name')}"
                cases.append(pytest.param(revealed(obj), version, id=ident))
    return sorted(cases, key=lambda c: str(c.id))


@pytest.mark.parametrize(("obj", "version"), _cases())
def test_built_in_object_validates_strictly(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, f"{version}.0", strict=True)


def test_validator_rejects_an_unknown_field() -> None:
    """Guard that strict mode is in force (a typo'd field must fail)."""
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dta": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.33.0", strict=True)
