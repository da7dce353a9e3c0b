"""Which Kubernetes versions the pinned controllers and EKS add-ons run on.

Checked 2026-12-01 against:

- Karpenter: ``MinK8sVersion``/``MaxK8sVersion`` in ``pkg/providers/version/version.go``
  of aws/karpenter-provider-aws at the release tag (the controller refuses to start
  outside them: "karpenter is not compatible with kubernetes version"), and the
  compatibility matrix of https://karpenter.sh/v1.14/upgrading/compatibility/.
- EKS add-ons: the version tables of the EKS user guide (kube-proxy:
  https://docs.aws.amazon.com/eks/latest/userguide/managing-kube-proxy.html, CoreDNS:
  https://docs.aws.amazon.com/eks/latest/userguide/managing-coredns.html). An add-on
  version is ``v<upstream version>-eksbuild.<n>``; kube-proxy's upstream version is the
  Kubernetes version itself (EKS rejects a kube-proxy of another minor), CoreDNS has one
  upstream minor per range of Kubernetes minors. The other add-ons (vpc-cni,
  eks-pod-identity-agent, aws-ebs-csi-driver) support every current Kubernetes minor
  with the same versions.

To support a new Kubernetes minor: add it to :data:`COREDNS_MINOR` (from the CoreDNS
table), check the Karpenter range of the pinned release, and set ``cluster.version`` and
``cluster.addons`` together.
"""

from __future__ import annotations

import re
from typing import Final

KARPENTER_KUBERNETES: Final[dict[str, tuple[int, int]]] = {
    # Karpenter minor -> (lowest, highest) Kubernetes 1.x minor it runs on.
    "1.12": (26, 35),
    "1.13": (26, 36),
    "1.14": (26, 36),
}
"""Kubernetes minors each Karpenter release line supports (both ends included)."""

COREDNS_MINOR: Final[dict[int, str]] = {
    # Kubernetes 1.x minor -> the CoreDNS minor of its EKS add-on versions.
    29: "1.11",
    30: "1.11",
    31: "1.11",
    32: "1.11",
    33: "1.12",
    34: "1.12",
}
"""CoreDNS add-on minor per Kubernetes minor; a Kubernetes minor missing here has no
known add-on versions."""

ADDON_VERSION: Final = re.compile(r"^v(\d+)\.(\d+)\.(\d+)-eksbuild\.(\d+)$")
"""An EKS add-on version, e.g. ``v1.33.3-eksbuild.10``."""


def kubernetes_minor(version: str) -> int:
    """``33`` for ``"1.33"`` (the cluster version pattern guarantees the shape)."""
    return int(version.split(".")[1])


def karpenter_range(karpenter_version: str) -> tuple[int, int] | None:
    """The Kubernetes minors of the Karpenter release line of ``karpenter_version``."""
    return KARPENTER_KUBERNETES.get(".".join(karpenter_version.split(".")[:2]))


def addon_minor_problem(addon: str, version: str, kubernetes: str) -> str | None:
    """Why ``version`` of ``addon`` cannot run on Kubernetes ``kubernetes``, or ``None``."""
    match = ADDON_VERSION.match(version)
    if match is None:
        return None  # the section's field pattern reports the shape
    minor = kubernetes_minor(kubernetes)
    upstream = f"{match.group(1)}.{match.group(2)}"
    if addon == "kube-proxy" and upstream != kubernetes:
        return f"kube-proxy must be of the cluster's minor: v{kubernetes}.x-eksbuild.n"
    if addon == "coredns":
        expected = COREDNS_MINOR.get(minor)
        if expected is not None and upstream != expected:
            return f"Kubernetes {kubernetes} runs CoreDNS {expected}: v{expected}.x-eksbuild.n"
    return None
