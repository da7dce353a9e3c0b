"""The ``policy`` section: environment limits of the policy pack (``policies/``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from infra.cluster.config import LogType
from infra.core.conventions import COST_CENTER_TAG, ENVIRONMENT_TAG, OWNER_TAG, PROJECT_TAG
from infra.core.gpu_catalog import GPU_FAMILIES, non_gpu_families
from infra.core.schema import PositiveInt, Section, repeated
from policies.rules import RULE_NAMES

EnforcementLevel = Literal["mandatory", "advisory", "disabled"]


class PolicyConfig(Section):
    """Environment limits of the policy pack (``policies/``).

    ``python -m tools policy-config`` renders them into ``policies/config.<stack>.json``
    for ``pulumi preview --policy-pack-config``; the offline plan derives the same
    document from the stack file. Each value is bounded by the environment's baseline
    (``policies/baselines/<stack>.json``, else ``default.json``; ``infra.stack.baseline``):
    a stack file may tighten a setting or a level, never loosen it, and a setting it
    does not state takes the baseline's value. The budget the GPU spend rule checks is the smallest
    ``cost.budgets`` entry with scope ``cluster``.
    """

    max_gpus_per_pool: PositiveInt
    """Highest ``limits.nvidia.com/gpu`` a single GPU NodePool may set."""
    max_gpus_total: PositiveInt
    """Highest sum of the GPU limits of all GPU NodePools."""
    min_zones: Annotated[int, Field(ge=1, le=6)] = 2
    """Zones every GPU NodePool must span (default 2)."""
    spot_only: bool = False
    """Reject GPU pools that allow on-demand capacity (dev cost guard; default off)."""
    allowed_instance_families: Annotated[tuple[str, ...], Field(min_length=1)] = GPU_FAMILIES
    """GPU families pools may use (default: every family of ``infra.core.gpu_catalog``)."""
    allowed_instance_sizes: tuple[str, ...] = ()
    """Instance sizes pools may use (default empty: every size)."""
    required_tags: Annotated[tuple[str, ...], Field(min_length=1)] = (
        COST_CENTER_TAG,
        ENVIRONMENT_TAG,
        OWNER_TAG,
        PROJECT_TAG,
    )
    """Tag keys every taggable AWS resource must carry (default: the four the program sets)."""
    required_log_types: tuple[LogType, ...] = ("api", "audit", "authenticator")
    """EKS control-plane log types that must be on (default api, audit, authenticator)."""
    min_log_retention_days: PositiveInt = 7
    """Shortest CloudWatch log retention allowed (default 7 days)."""
    require_on_demand_fallback: bool = False
    """Every GPU pool that allows spot falls back to on-demand: in the pool itself
    (``capacityTypes: [spot, on-demand]``) or through an on-demand pool of lower
    ``weight`` (default off)."""
    min_replicas: PositiveInt = 1
    """Fewest replicas (``models[].replicas.min``) a served model may run (default 1)."""
    require_pinned_ami: bool = False
    """Reject ``nodeClass.amiVersion: latest``: nodes change image only when the stack
    file says so (default off)."""
    require_nat_per_zone: bool = False
    """One NAT gateway per zone (``network.natGateways: perZone``), so a zone outage
    does not cut the others' egress (default off)."""
    min_endpoint_prefix_length: Annotated[int, Field(ge=0, le=32)] = 16
    """Shortest prefix (widest range) a public API endpoint CIDR may have (default 16)."""
    require_image_digest: bool = False
    """GPU pod images carry their digest next to the tag (``serving.vllmImage``;
    default off)."""
    enforcement: dict[str, EnforcementLevel] = {}
    """Enforcement level per rule name, over the baseline's level and the rule's default
    (every rule: mandatory). The baseline (``policies/baselines/``) is a floor: a level
    below it is rejected."""

    def check(self, at: str) -> list[str]:
        families, sizes = f"{at}.allowedInstanceFamilies", f"{at}.allowedInstanceSizes"
        problems = non_gpu_families(families, self.allowed_instance_families)
        problems += repeated(families, self.allowed_instance_families)
        problems += repeated(sizes, self.allowed_instance_sizes)
        problems += [
            f"{at}.enforcement.{rule}: no such policy rule; rules: {', '.join(RULE_NAMES)}"
            for rule in self.enforcement
            if rule not in RULE_NAMES
        ]
        return problems
