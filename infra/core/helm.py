"""Charts, and the one way the platform installs them: a ``helm.v3.Release``.

Every chart is pinned: the version comes from the owning section's config (its default
is the version the chart's values were checked against) or is fixed next to the
chart. A ``Release`` (not ``helm.v3.Chart``) lets Helm own upgrades, hooks and CRDs
the way the chart's docs describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class Chart:
    """A chart, where it comes from, and the release it is installed as."""

    chart: str
    """Chart name in ``repository``, or a full ``oci://`` reference."""
    release: str
    """Release name in the cluster."""
    namespace: str
    repository: str | None = None
    """HTTPS Helm repository; ``None`` for an ``oci://`` chart."""

    def install(
        self,
        resource_name: str,
        *,
        version: pulumi.Input[str],
        values: pulumi.Input[dict[str, Any]] | None = None,
        create_namespace: bool = False,
        skip_crds: bool = False,
        timeout: int | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> k8s.helm.v3.Release:
        """The release of this chart at ``version``. ``skip_crds``: another release owns
        the chart's CRDs (and upgrades them, which a chart's ``crds/`` never does);
        ``timeout``: seconds Helm waits for the release's resources (default 300)."""
        extra: dict[str, Any] = {}
        if self.repository is not None:
            extra["repository_opts"] = k8s.helm.v3.RepositoryOptsArgs(repo=self.repository)
        if values is not None:
            extra["values"] = values
        if create_namespace:
            extra["create_namespace"] = True
        if skip_crds:
            extra["skip_crds"] = True
        if timeout is not None:
            extra["timeout"] = timeout
        return k8s.helm.v3.Release(
            resource_name,
            name=self.release,
            chart=self.chart,
            version=version,
            namespace=self.namespace,
            opts=opts,
            **extra,
        )
