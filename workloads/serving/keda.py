"""Keda: the autoscaler behind each model's ScaledObject (queue depth from Prometheus).

Values keys: ``keda/values.yaml`` of kedacore/charts at the pinned version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from infra.core.conventions import (
    KEDA_NAMESPACE,
    PROMETHEUS_SELECTOR_LABELS,
    SYSTEM_NODE_LABELS,
    SYSTEM_TOLERATION,
)
from infra.core.helm import Chart
from infra.core.ordering import after

KEDA_CHART: Final = Chart("keda", "keda", KEDA_NAMESPACE, "https://kedacore.github.io/charts")


def keda_values() -> dict[str, Any]:
    """KEDA runs with the other controllers on the system nodes; its CRDs come with it.
    The operator's metrics (``keda_scaled_object_errors_total``: a model whose scaler
    cannot read Prometheus) go to Prometheus through the chart's ServiceMonitor, off by
    default (``prometheus.operator``)."""
    return {
        "crds": {"install": True},
        "nodeSelector": dict(SYSTEM_NODE_LABELS),
        "tolerations": [dict(SYSTEM_TOLERATION)],
        "prometheus": {
            "operator": {
                "enabled": True,
                "serviceMonitor": {
                    "enabled": True,
                    "additionalLabels": dict(PROMETHEUS_SELECTOR_LABELS),
                },
            }
        },
    }


@dataclass(frozen=True)
class KedaArgs:
    """Inputs of :class:`Keda`."""

    version: str
    monitoring_crds: pulumi.Resource | None = None
    """The release installing the ServiceMonitor CRD the chart's ServiceMonitor needs
    (the chart renders it unconditionally, so the install fails without the CRD)."""

    def __post_init__(self) -> None:
        if not self.version or not self.version[0].isdigit():
            raise ValueError(f"version ({self.version!r}) must be a chart version such as 2.20.2")


class Keda(pulumi.ComponentResource):
    """The KEDA Helm release (operator, metrics server, webhooks and CRDs)."""

    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:autoscaling:Keda", name, None, opts)
        self.release = KEDA_CHART.install(
            f"{name}-release",
            version=args.version,
            create_namespace=True,
            values=keda_values(),
            opts=after(self, args.monitoring_crds),
        )
        self.register_outputs({"release": self.release.name})
