"""Node AMI families and their alias versions (Karpenter ``amiSelectorTerms`` aliases).

AL2023 releases are dated, Bottlerocket releases are semantic versions
(https://karpenter.sh/docs/concepts/nodeclasses/, ``amiSelectorTerms``).
"""

from __future__ import annotations

import re
from typing import Final, Literal

AmiFamily = Literal["al2023", "bottlerocket"]

_AMI_VERSION: Final = {"al2023": r"v\d{8}", "bottlerocket": r"v\d+\.\d+\.\d+"}
AMI_VERSION_EXAMPLES: Final = {"al2023": "v20251108", "bottlerocket": "v1.20.4"}


def ami_version_ok(family: AmiFamily, version: str) -> bool:
    """Whether ``version`` can follow ``family@`` in an AMI alias."""
    return version == "latest" or re.fullmatch(_AMI_VERSION[family], version) is not None
