"""How components learn what they must wait for.

The engine orders resources by their dependencies: an input that is the Output of
another resource is one, an entry of ``depends_on`` another. Components take the
things they wait for as one argument per concept, with one name across the program:

- ``cluster``: a :class:`ClusterRef`. Resources that act on the live cluster (access
  entries, Pod Identity associations) take ``cluster.ready`` as their cluster name,
  so they cannot be created before the control plane, the system nodes and the core
  add-ons, however the component is wired.
- ``monitoring_crds``, ``karpenter``, ``keda_crds``, ``node_pools``, ``gpu_operator``,
  ``namespace``: the resource (a release or a component, which counts as all of its
  children) that installs what a child needs, passed to :func:`after`.

Kubernetes objects also wait for the cluster through its provider, which is created
only once the nodes and add-ons exist (``infra.cluster.component``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi


@dataclass(frozen=True)
class ClusterRef:
    """The EKS cluster as the components see it."""

    name: str
    """Its name, from the config: known at preview, for physical names and ARNs."""
    ready: pulumi.Input[str]
    """The same name, as an Output that depends on the control plane, the system nodes
    and the core add-ons (a plain string for a cluster the program does not create)."""

    @classmethod
    def existing(cls, name: str) -> ClusterRef:
        """A cluster this program does not create (component tests)."""
        return cls(name, name)


def after(
    parent: pulumi.Resource, *prerequisites: pulumi.Resource | None, **options: Any
) -> pulumi.ResourceOptions:
    """Options of a child of ``parent`` that is created once every prerequisite exists
    (``None``: nothing to wait for); ``options`` are further resource options."""
    return pulumi.ResourceOptions(
        parent=parent, depends_on=[p for p in prerequisites if p is not None], **options
    )
