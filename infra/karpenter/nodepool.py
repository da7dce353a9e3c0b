"""Typed model of Karpenter's ``NodePool`` and ``EC2NodeClass`` (v1 APIs).

Frozen dataclasses that refuse what the API server would refuse (or silently
misread), and pure ``render_*`` functions that turn them into the ``spec`` of a
``karpenter.sh/v1`` NodePool and a ``karpenter.k8s.aws/v1`` EC2NodeClass. Field names,
enums and patterns follow the CRDs that the ``karpenter-crd`` chart installs
(``pkg/apis/crds/karpenter.sh_nodepools.yaml`` and
``pkg/apis/crds/karpenter.k8s.aws_ec2nodeclasses.yaml`` in aws/karpenter-provider-aws,
checked at v1.14.1; the fields used here exist unchanged since v1.0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from infra.core.ami import AMI_VERSION_EXAMPLES, AmiFamily, ami_version_ok
from infra.core.conventions import GPU_RESOURCE
from infra.core.durations import is_go_duration

NODEPOOL_API_VERSION: Final = "karpenter.sh/v1"
NODECLASS_API_VERSION: Final = "karpenter.k8s.aws/v1"
NODECLASS_GROUP: Final = "karpenter.k8s.aws"
NODECLASS_KIND: Final = "EC2NodeClass"


# The CRD also accepts Gte/Lte since v1.10; they are left out so that every rendered
# NodePool stays valid for any 1.x chart the config admits.
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
# "Balanced" exists only from v1.14; see the note on Operator.
ConsolidationPolicy = Literal["WhenEmpty", "WhenEmptyOrUnderutilized"]
DisruptionReason = Literal["Underutilized", "Empty", "Drifted"]
VolumeType = Literal["gp3", "gp2", "io1", "io2"]

# Patterns copied from the CRD schemas.
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(\/))?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_BUDGET_NODES = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")
_BUDGET_DURATION = re.compile(r"^((([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?)$")
_SNAPSHOT = re.compile(r"^snap-[0-9a-f]{8,17}$")
# Label keys whose domain Karpenter reserves (NodePool CRD x-kubernetes-validations).
_RESTRICTED_LABELS = ("karpenter.sh/nodepool", "kubernetes.io/hostname")


def _check_in(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} ({value!r}) must be one of {', '.join(allowed)}")


def _check_duration(name: str, value: str, *, never: bool) -> None:
    if not (is_go_duration(value) or (never and value == "Never")):
        extra = " or 'Never'" if never else ""
        raise ValueError(f"{name} ({value!r}) must be a duration such as '30m' or '720h'{extra}")


def _check_label_key(name: str, key: str) -> None:
    if len(key) > 316 or not _LABEL_KEY.match(key):
        raise ValueError(f"{name} ({key!r}) is not a valid Kubernetes label key")
    if key in _RESTRICTED_LABELS:
        raise ValueError(f"{name} ({key!r}) is a label Karpenter sets itself")


def _check_label_value(name: str, value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise ValueError(f"{name} ({value!r}) is not a valid Kubernetes label value")


# --------------------------------------------------------------------------- NodePool


@dataclass(frozen=True)
class Requirement:
    """A node selector requirement (``spec.template.spec.requirements[]``)."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()
    min_values: int | None = None
    """At least this many distinct values must stay schedulable (only with ``In``)."""

    def __post_init__(self) -> None:
        _check_label_key("requirement key", self.key)
        _check_in("requirement operator", self.operator, get_args(Operator))
        for value in self.values:
            _check_label_value(f"requirement {self.key} value", value)
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"requirement {self.key} values {list(self.values)} repeat a value")
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"requirement {self.key} ({self.operator}) needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"requirement {self.key} ({self.operator}) takes no values")
        if self.operator in ("Gt", "Lt") and not (
            len(self.values) == 1 and self.values[0].isdigit()
        ):
            raise ValueError(
                f"requirement {self.key} ({self.operator}) needs one non-negative integer value, "
                f"not {list(self.values)}"
            )
        if self.min_values is not None:
            if self.operator != "In":
                raise ValueError(f"requirement {self.key}: min_values needs operator In")
            if not 1 <= self.min_values <= min(50, len(self.values)):
                raise ValueError(
                    f"requirement {self.key}: min_values ({self.min_values}) must be between 1 "
                    f"and the number of values ({len(self.values)})"
                )


@dataclass(frozen=True)
class Taint:
    """A node taint (``spec.template.spec.taints[]``)."""

    key: str
    effect: TaintEffect
    value: str | None = None

    def __post_init__(self) -> None:
        _check_label_key("taint key", self.key)
        _check_in(f"taint {self.key} effect", self.effect, get_args(TaintEffect))
        if self.value is not None:
            _check_label_value(f"taint {self.key} value", self.value)


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what the NodePool may hold at once (``spec.limits``)."""

    cpu: int
    memory_gib: int
    gpus: int | None = None
    """``nvidia.com/gpu``; required for GPU pools, absent for CPU pools."""

    def __post_init__(self) -> None:
        for name, value in (("cpu", self.cpu), ("memory_gib", self.memory_gib)):
            if value < 1:
                raise ValueError(f"limits {name} ({value}) must be >= 1")
        if self.gpus is not None and self.gpus < 1:
            raise ValueError(f"limits gpus ({self.gpus}) must be >= 1")


@dataclass(frozen=True)
class DisruptionBudget:
    """A disruption budget (``spec.disruption.budgets[]``)."""

    nodes: str
    """Nodes that may be disrupted at once: a count (``"1"``) or a percentage (``"10%"``)."""
    reasons: tuple[DisruptionReason, ...] = ()
    """Reasons the budget applies to (default: all)."""
    schedule: str | None = None
    """Cron schedule when the budget starts being active (needs ``duration``)."""
    duration: str | None = None

    def __post_init__(self) -> None:
        if not _BUDGET_NODES.match(self.nodes):
            raise ValueError(
                f"budget nodes ({self.nodes!r}) must be a count such as '1' or a percentage "
                "such as '10%'"
            )
        for reason in self.reasons:
            _check_in("budget reason", reason, get_args(DisruptionReason))
        if (self.schedule is None) != (self.duration is None):
            raise ValueError("budget schedule and duration must be set together")
        if self.duration is not None and not _BUDGET_DURATION.match(self.duration):
            raise ValueError(
                f"budget duration ({self.duration!r}) must be hours and/or minutes, e.g. '8h'"
            )


@dataclass(frozen=True)
class Disruption:
    """When Karpenter may remove nodes of the pool (``spec.disruption``)."""

    consolidation_policy: ConsolidationPolicy
    consolidate_after: str
    """How long a node must be consolidatable (empty for ``WhenEmpty``) before removal."""
    budgets: tuple[DisruptionBudget, ...] = ()

    def __post_init__(self) -> None:
        _check_in("consolidation_policy", self.consolidation_policy, get_args(ConsolidationPolicy))
        _check_duration("consolidate_after", self.consolidate_after, never=True)


@dataclass(frozen=True)
class NodePool:
    """A Karpenter NodePool: which nodes may be launched for pending pods, and how many."""

    name: str
    node_class: str
    """Name of the EC2NodeClass the nodes are launched from."""
    requirements: tuple[Requirement, ...]
    limits: Limits
    disruption: Disruption
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    expire_after: str = "720h"
    """Nodes are replaced after this long (``Never`` to keep them); default as upstream."""
    termination_grace_period: str | None = None
    """Upper bound on a node's drain, even past PDBs and ``do-not-disrupt`` pods."""
    weight: int | None = None
    """Higher weights are tried first (1..100); unset counts as 0."""

    def __post_init__(self) -> None:
        if not self.requirements:
            raise ValueError(f"nodepool {self.name}: requirements must not be empty")
        keys = [r.key for r in self.requirements]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"nodepool {self.name}: requirement keys repeat: {repeated}")
        for key, value in self.labels.items():
            _check_label_key(f"nodepool {self.name} label", key)
            _check_label_value(f"nodepool {self.name} label {key}", value)
        _check_duration("expire_after", self.expire_after, never=True)
        if self.termination_grace_period is not None:
            _check_duration("termination_grace_period", self.termination_grace_period, never=False)
        if self.weight is not None and not 1 <= self.weight <= 100:
            raise ValueError(f"nodepool {self.name}: weight ({self.weight}) must be 1..100")


def _render_requirement(r: Requirement) -> dict[str, Any]:
    out: dict[str, Any] = {"key": r.key, "operator": r.operator}
    if r.values:
        out["values"] = list(r.values)
    if r.min_values is not None:
        out["minValues"] = r.min_values
    return out


def _render_taint(t: Taint) -> dict[str, Any]:
    out = {"key": t.key, "effect": t.effect}
    if t.value is not None:
        out["value"] = t.value
    return out


def _render_budget(b: DisruptionBudget) -> dict[str, Any]:
    out: dict[str, Any] = {"nodes": b.nodes}
    if b.reasons:
        out["reasons"] = list(b.reasons)
    if b.schedule is not None:
        out["schedule"] = b.schedule
        out["duration"] = b.duration
    return out


def _render_limits(limits: Limits) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu": limits.cpu, "memory": f"{limits.memory_gib}Gi"}
    if limits.gpus is not None:
        out[GPU_RESOURCE] = limits.gpus
    return out


def render_node_pool(pool: NodePool) -> dict[str, Any]:
    """``spec`` of a ``karpenter.sh/v1`` NodePool."""
    template_spec: dict[str, Any] = {
        "nodeClassRef": {"group": NODECLASS_GROUP, "kind": NODECLASS_KIND, "name": pool.node_class},
        "requirements": [_render_requirement(r) for r in pool.requirements],
        "expireAfter": pool.expire_after,
    }
    if pool.taints:
        template_spec["taints"] = [_render_taint(t) for t in pool.taints]
    if pool.termination_grace_period is not None:
        template_spec["terminationGracePeriod"] = pool.termination_grace_period
    template: dict[str, Any] = {"spec": template_spec}
    if pool.labels:
        template["metadata"] = {"labels": dict(pool.labels)}
    spec: dict[str, Any] = {
        "template": template,
        "limits": _render_limits(pool.limits),
        "disruption": {
            "consolidationPolicy": pool.disruption.consolidation_policy,
            "consolidateAfter": pool.disruption.consolidate_after,
            "budgets": [_render_budget(b) for b in pool.disruption.budgets],
        },
    }
    if pool.weight is not None:
        spec["weight"] = pool.weight
    return spec


# --------------------------------------------------------------------------- EC2NodeClass


@dataclass(frozen=True)
class MetadataOptions:
    """IMDS settings of the launched instances (``spec.metadataOptions``).

    The defaults (IMDSv2 only, one hop) keep pods from reaching the node role's
    credentials through IMDS: a pod's packets cross one more hop than the node's.
    """

    http_endpoint: Literal["enabled", "disabled"] = "enabled"
    http_tokens: Literal["required", "optional"] = "required"
    http_put_response_hop_limit: int = 1
    http_protocol_ipv6: Literal["enabled", "disabled"] = "disabled"

    def __post_init__(self) -> None:
        if not 1 <= self.http_put_response_hop_limit <= 64:
            raise ValueError(
                f"http_put_response_hop_limit ({self.http_put_response_hop_limit}) must be 1..64"
            )


@dataclass(frozen=True)
class BlockDevice:
    """An EBS volume of every launched node (``spec.blockDeviceMappings[]``)."""

    device_name: str
    volume_size_gib: int
    volume_type: VolumeType = "gp3"
    encrypted: bool = True
    delete_on_termination: bool = True
    snapshot_id: str | None = None
    """Create the volume from this snapshot (e.g. Bottlerocket data with pre-pulled images)."""
    iops: int | None = None
    throughput: int | None = None
    """MiB/s (gp3 only)."""
    volume_initialization_rate: int | None = None
    """MiB/s at which EBS fills a volume created from ``snapshot_id`` (100-300): without
    it, blocks load lazily from S3 on first read."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"/dev/[a-z0-9]+", self.device_name):
            raise ValueError(f"device_name ({self.device_name!r}) must look like /dev/xvda")
        if not 1 <= self.volume_size_gib <= 59000:
            raise ValueError(f"volume_size_gib ({self.volume_size_gib}) must be 1..59000")
        if self.snapshot_id is not None and not _SNAPSHOT.match(self.snapshot_id):
            raise ValueError(f"snapshot_id ({self.snapshot_id!r}) must look like snap-0123abcd")
        if self.throughput is not None and self.volume_type != "gp3":
            raise ValueError(f"throughput is only valid for gp3, not {self.volume_type}")
        if self.volume_type == "gp3":
            # gp3 limits (EBS user guide, "General Purpose SSD volumes"; the CRD's ranges).
            iops = self.iops or 3000
            if not 3000 <= iops <= 16000:
                raise ValueError(f"iops ({iops}) must be 3000..16000 for gp3")
            if self.throughput is not None and not 125 <= self.throughput <= min(1000, iops / 4):
                raise ValueError(
                    f"throughput ({self.throughput}) must be 125..{min(1000, iops // 4)} MiB/s "
                    f"for gp3 with {iops} IOPS (at most 0.25 MiB/s per IOPS)"
                )
        if self.volume_initialization_rate is not None:
            if self.snapshot_id is None:
                raise ValueError("volume_initialization_rate needs snapshot_id")
            if not 100 <= self.volume_initialization_rate <= 300:
                raise ValueError(
                    f"volume_initialization_rate ({self.volume_initialization_rate}) must be "
                    "100..300 MiB/s"
                )


@dataclass(frozen=True)
class EC2NodeClass:
    """How nodes are launched: AMI, IAM role, network discovery, IMDS and volumes."""

    name: str
    ami_family: AmiFamily
    ami_version: str
    """``latest`` or a release tag: ``v20251108`` (AL2023), ``v1.50.0`` (Bottlerocket)."""
    role: str
    """Name (not ARN) of the node IAM role; Karpenter manages the instance profile."""
    subnet_selector: Mapping[str, str]
    """Tags the node subnets carry (one selector term)."""
    security_group_selector: Mapping[str, str]
    """Tags the node security groups carry (one selector term)."""
    block_devices: tuple[BlockDevice, ...]
    metadata_options: MetadataOptions = MetadataOptions()
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags on every instance, volume and network interface Karpenter launches."""
    user_data: str | None = None
    """Karpenter merges it with its own (AL2023: NodeConfig YAML or MIME multi-part;
    Bottlerocket: TOML settings)."""

    def __post_init__(self) -> None:
        _check_in("ami_family", self.ami_family, get_args(AmiFamily))
        if not ami_version_ok(self.ami_family, self.ami_version):
            raise ValueError(
                f"ami_version ({self.ami_version!r}) is not a release of {self.ami_family}: "
                f"expected latest or a tag such as {AMI_VERSION_EXAMPLES[self.ami_family]}"
            )
        if not self.role:
            raise ValueError("role must name the node IAM role")
        for name, selector in (
            ("subnet_selector", self.subnet_selector),
            ("security_group_selector", self.security_group_selector),
        ):
            if not selector or not all(k and v for k, v in selector.items()):
                raise ValueError(f"{name} ({dict(selector)}) needs non-empty tag keys and values")
        if not self.block_devices:
            raise ValueError("block_devices must not be empty")
        names = [d.device_name for d in self.block_devices]
        if len(set(names)) != len(names):
            raise ValueError(f"block device names repeat: {names}")
        restricted = [
            k
            for k in self.tags
            if k in ("eks:eks-cluster-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim")
            or k.startswith(("kubernetes.io/cluster/", "karpenter.k8s.aws/ec2nodeclass"))
        ]
        if restricted:
            raise ValueError(f"tags {restricted} are reserved for Karpenter")

    @property
    def ami_alias(self) -> str:
        return f"{self.ami_family}@{self.ami_version}"


def _render_block_device(d: BlockDevice) -> dict[str, Any]:
    ebs: dict[str, Any] = {
        "volumeSize": f"{d.volume_size_gib}Gi",
        "volumeType": d.volume_type,
        "encrypted": d.encrypted,
        "deleteOnTermination": d.delete_on_termination,
    }
    for key, value in (
        ("snapshotID", d.snapshot_id),
        ("iops", d.iops),
        ("throughput", d.throughput),
        ("volumeInitializationRate", d.volume_initialization_rate),
    ):
        if value is not None:
            ebs[key] = value
    # No rootVolume flag: Karpenter then sizes ephemeral storage from the family's
    # default data device (/dev/xvda on AL2023, /dev/xvdb on Bottlerocket), which is
    # what the devices below are.
    return {"deviceName": d.device_name, "ebs": ebs}


def render_node_class(nc: EC2NodeClass) -> dict[str, Any]:
    """``spec`` of a ``karpenter.k8s.aws/v1`` EC2NodeClass."""
    m = nc.metadata_options
    user_data = {"userData": nc.user_data} if nc.user_data is not None else {}
    return {
        # An alias picks the EKS-optimized AMI variant per instance type (NVIDIA for
        # GPU types) and implies amiFamily, which must then be left unset.
        "amiSelectorTerms": [{"alias": nc.ami_alias}],
        "role": nc.role,
        "subnetSelectorTerms": [{"tags": dict(nc.subnet_selector)}],
        "securityGroupSelectorTerms": [{"tags": dict(nc.security_group_selector)}],
        "metadataOptions": {
            "httpEndpoint": m.http_endpoint,
            "httpProtocolIPv6": m.http_protocol_ipv6,
            "httpPutResponseHopLimit": m.http_put_response_hop_limit,
            "httpTokens": m.http_tokens,
        },
        "blockDeviceMappings": [_render_block_device(d) for d in nc.block_devices],
        "tags": dict(nc.tags),
        **user_data,
    }
