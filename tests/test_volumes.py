"""Every PersistentVolumeClaim a chart creates names a StorageClass the program creates.

EKS 1.30+ has no default StorageClass: a claim without a class stays Pending, its pod
never starts and the Helm release times out. Charts are opaque, so this table records,
per chart, the values that make it create claims (read from each chart's values.yaml
and templates at the pinned version) and where the class goes. A chart new to the
program fails the first test until someone records what it does with volumes.
"""

from __future__ import annotations

from typing import Any

from tests.harness import find_all
from tools.mock_runtime import Recorded
from tools.plan import HELM_RELEASE, helm_release

# Chart -> paths (in its values) of every storage class its claims use; an empty tuple
# means the chart creates no claim with the values we pass (checked upstream).
CLAIM_STORAGE_CLASSES: dict[str, tuple[tuple[str, ...], ...]] = {
    # prometheus.prometheusSpec.storageSpec and alertmanager.alertmanagerSpec.storage
    # (kube-prometheus-stack 88.5.3 values.yaml; empty by default = emptyDir); Grafana's
    # persistence stays off (grafana subchart: persistence.enabled false).
    "kube-prometheus-stack": (
        (
            "prometheus",
            "prometheusSpec",
            "storageSpec",
            "volumeClaimTemplate",
            "spec",
            "storageClassName",
        ),
        (
            "alertmanager",
            "alertmanagerSpec",
            "storage",
            "volumeClaimTemplate",
            "spec",
            "storageClassName",
        ),
    ),
    # persistentVolume (enabled by default, 32Gi); its bundled Prometheus is off
    # (global.prometheus.enabled false), so is the aggregator StatefulSet.
    "cost-analyzer": (("persistentVolume", "storageClass"),),
    "prometheus-operator-crds": (),
    "fluent-bit": (),  # a DaemonSet with hostPath volumes
    "keda": (),
    "gpu-operator": (),
    "karpenter": (),
    "karpenter-crd": (),
}


def _chart(release: dict[str, Any]) -> str:
    return str(release["chart"]).rsplit("/", 1)[-1]


def _at(values: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        values = values.get(key) if isinstance(values, dict) else None  # type: ignore[assignment]
    return values


def test_every_chart_is_known_to_this_table(fixture_resources: tuple[Recorded, ...]) -> None:
    charts = {_chart(helm_release(r)) for r in find_all(fixture_resources, HELM_RELEASE)}
    assert charts <= set(CLAIM_STORAGE_CLASSES), charts - set(CLAIM_STORAGE_CLASSES)


def test_every_chart_claim_names_a_storage_class_the_program_creates(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    classes = {
        r.inputs["metadata"]["name"]
        for r in find_all(fixture_resources, "kubernetes:storage.k8s.io/v1:StorageClass")
    }
    checked = 0
    for r in find_all(fixture_resources, HELM_RELEASE):
        release = helm_release(r)
        for path in CLAIM_STORAGE_CLASSES[_chart(release)]:
            assert _at(release["values"], path) in classes, (release["name"], path, classes)
            checked += 1
    assert checked >= 3
