"""GPU operator: values for the EKS NVIDIA AMIs, DCGM scraping, time-slicing."""

from __future__ import annotations

from typing import Any

from infra.gpu_operator.component import operator_values
from infra.gpu_operator.config import GpuOperatorConfig
from tests.harness import find
from tools.mock_runtime import Recorded

RELEASE = "kubernetes:helm.sh/v3:Release"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_driver_and_toolkit_come_from_the_ami() -> None:
    values = operator_values(GpuOperatorConfig(), "al2023")
    assert values["driver"] == {"enabled": False}
    assert values["toolkit"] == {"enabled": False}
    assert values["devicePlugin"] == {"enabled": True}
    assert values["cdi"] == {"enabled": False}


def test_no_second_device_plugin_on_bottlerocket() -> None:
    assert operator_values(GpuOperatorConfig(), "bottlerocket")["devicePlugin"] == {
        "enabled": False
    }


def test_dcgm_exporter_is_scraped_by_our_prometheus() -> None:
    exporter = operator_values(GpuOperatorConfig(), "al2023")["dcgmExporter"]
    assert exporter == {
        "enabled": True,
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "additionalLabels": {"release": "kube-prometheus-stack"},
            # GPU alerts and panels name the node ({{ $labels.instance }}), not the pod IP.
            "relabelings": [
                {
                    "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                    "targetLabel": "instance",
                    "action": "replace",
                }
            ],
        },
    }


def test_operands_tolerate_the_gpu_taint_and_controllers_use_system_nodes() -> None:
    values = operator_values(GpuOperatorConfig(), "al2023")
    assert values["daemonsets"]["tolerations"] == [GPU_TOLERATION]
    assert GPU_TOLERATION in values["node-feature-discovery"]["worker"]["tolerations"]
    for part in (values["operator"], values["node-feature-discovery"]["master"]):
        assert part["nodeSelector"] == {"llm-platform.io/node-role": "system"}


def test_time_slicing_config_when_asked() -> None:
    plugin = operator_values(GpuOperatorConfig(time_slicing_replicas=4), "al2023")["devicePlugin"]
    assert plugin["config"]["create"] is True
    assert plugin["config"]["default"] == "any"
    assert "        replicas: 4\n" in plugin["config"]["data"]["any"]


def test_release_is_pinned_and_waits_for_the_servicemonitor_crd(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    release = find(fixture_resources, RELEASE, "gpu-operator-release")
    inputs: dict[str, Any] = release.inputs
    assert (inputs["chart"], inputs["version"]) == ("gpu-operator", "v26.7.0")
    assert inputs["repositoryOpts"] == {"repo": "https://helm.ngc.nvidia.com/nvidia"}
    assert (inputs["name"], inputs["namespace"]) == ("gpu-operator", "gpu-operator")
    assert inputs["values"] == operator_values(GpuOperatorConfig(), "al2023")
    assert "monitoring-crds" in release.depends_on
