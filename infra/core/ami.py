"""Node AMI families and their alias versions (Karpenter ``amiSelectorTerms`` aliases).

AL2023 releases are dated, Bottlerocket releases are semantic versions
(https://karpenter.sh/docs/concepts/nodeclasses/, ``amiSelectorTerms``).
"""

from __future__ import annotations

import re
from typing import Final, Literal

AmiFamily = Literal["al2023", "bottlerocket"]

_AMI_VERSION: Final = {"al2023": r"v\d{8}", "bottlerocket": r"v\d+\.\d+\.\d+"}
AMI_VERSION_EXAMPLES: Final = {"al2023": "v20251108", "bottlerocket": "v1.50.0"}


def ami_version_ok(family: AmiFamily, version: str) -> bool:
    """Whether ``version`` can follow ``family@`` in an AMI alias."""
    return version == "latest" or re.fullmatch(_AMI_VERSION[family], version) is not None


FAST_IMAGE_PULL_SINCE: Final[dict[AmiFamily, str]] = {
    # nodeadm's ``FastImagePull`` gate has its name since v20250821 (amazon-eks-ami
    # #2381), and applies to 4-vCPU/7-GiB (xlarge) instances since v20251016 (#2461;
    # before, 8 vCPUs: https://github.com/awslabs/amazon-eks-ami/blob/main/nodeadm/
    # internal/containerd/config.go, ``UseSOCISnapshotter``). Every GPU type we allow
    # is at least that big, so from this release SOCI pulls on all of them.
    "al2023": "v20251016",
    # soci-snapshotter and its ``parallel-pull-unpack`` settings arrived in Bottlerocket
    # v1.44.0 (release notes: bottlerocket #4593, bottlerocket-core-kit #569).
    "bottlerocket": "v1.44.0",
}
"""First release of each family where the platform's SOCI parallel-pull settings work."""


def _release_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def release_at_least(version: str, minimum: str) -> bool:
    """Whether the alias version ``version`` (``latest`` or a tag) is ``minimum`` or
    later; tags of one family compare by their numbers (dates, or semantic versions)."""
    return version == "latest" or _release_key(version) >= _release_key(minimum)
