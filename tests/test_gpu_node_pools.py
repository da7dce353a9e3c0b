"""NodePool / EC2NodeClass model and the pools the fixture stacks render."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from infra.karpenter.config import CpuPoolConfig, GpuPoolConfig, NodeClassConfig
from infra.karpenter.image_start import AL2023_FAST_IMAGE_PULL, gpu_user_data
from infra.karpenter.node_pools import (
    NodePools,
    NodePoolsArgs,
    gpu_node_class,
    gpu_node_pool,
    node_class,
    node_volumes,
)
from infra.karpenter.nodepool import (
    BlockDevice,
    Disruption,
    DisruptionBudget,
    EC2NodeClass,
    Limits,
    NodePool,
    Requirement,
    Taint,
    render_node_class,
    render_node_pool,
)
from tests.harness import (
    FIXTURE_STACKS,
    HA,
    SMALL,
    cluster_name,
    find,
    find_all,
    resolve,
    run_component,
    stack_config,
    typed_config,
)
from tools.gpu_capacity import gpu_capacity_section
from tools.mock_runtime import Recorded

NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NS = "llm-platform"


def _gpu_pool(**changes: Any) -> GpuPoolConfig:
    return GpuPoolConfig.model_validate(
        {"name": "gpu-a", "instanceFamilies": ["g6"], "gpuLimit": 4, **changes}
    )


def _args(**changes: Any) -> NodePoolsArgs:
    fields: dict[str, Any] = {
        "cluster_name": "c1",
        "node_role": "c1-karpenter-node",
        "zones": ("eu-west-1a", "eu-west-1b"),
        "node_class": NodeClassConfig(),
        "gpu_pools": (_gpu_pool(),),
        "cpu_pool": CpuPoolConfig(),
        **changes,
    }
    return NodePoolsArgs(**fields)


def _requirements(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in spec["template"]["spec"]["requirements"]}


# --------------------------------------------------------------------------- model


def _pool(**changes: Any) -> NodePool:
    fields: dict[str, Any] = {
        "name": "p",
        "node_class": "nc",
        "requirements": (Requirement("kubernetes.io/arch", "In", ("amd64",)),),
        "limits": Limits(cpu=8, memory_gib=32),
        "disruption": Disruption("WhenEmpty", "30m"),
        **changes,
    }
    return NodePool(**fields)


def _nodeclass(**changes: Any) -> EC2NodeClass:
    fields: dict[str, Any] = {
        "name": "nc",
        "ami_family": "al2023",
        "ami_version": "latest",
        "role": "r",
        "subnet_selector": {"k": "v"},
        "security_group_selector": {"k": "v"},
        "block_devices": (BlockDevice("/dev/xvda", 100),),
        **changes,
    }
    return EC2NodeClass(**fields)


INVALID_MODELS: list[tuple[str, Callable[[], object], str]] = [
    (
        "In without values",
        lambda: Requirement("karpenter.sh/capacity-type", "In"),
        r"requirement karpenter\.sh/capacity-type \(In\) needs at least one value",
    ),
    (
        "Exists with values",
        lambda: Requirement("a/b", "Exists", ("x",)),
        r"requirement a/b \(Exists\) takes no values",
    ),
    (
        "Gt with a non-integer",
        lambda: Requirement("a/b", "Gt", ("five",)),
        r"requirement a/b \(Gt\) needs one non-negative integer value, not \['five'\]",
    ),
    (
        "operator outside the closed set",
        lambda: Requirement("a/b", "Gte", ("1",)),  # type: ignore[arg-type]
        r"requirement operator \('Gte'\) must be one of In, NotIn, Exists, DoesNotExist, Gt, Lt",
    ),
    (
        "minValues above the number of values",
        lambda: Requirement("a/b", "In", ("x", "y"), min_values=3),
        r"requirement a/b: min_values \(3\) must be between 1 and the number of values \(2\)",
    ),
    (
        "minValues without In",
        lambda: Requirement("a/b", "NotIn", ("x",), min_values=1),
        r"requirement a/b: min_values needs operator In",
    ),
    (
        "restricted requirement key",
        lambda: Requirement("karpenter.sh/nodepool", "In", ("x",)),
        r"requirement key \('karpenter\.sh/nodepool'\) is a label Karpenter sets itself",
    ),
    (
        "invalid label value",
        lambda: Requirement("a/b", "In", ("not valid",)),
        r"requirement a/b value \('not valid'\) is not a valid Kubernetes label value",
    ),
    (
        "taint effect outside the closed set",
        lambda: Taint("nvidia.com/gpu", "NoScheduleAtAll"),  # type: ignore[arg-type]
        r"taint nvidia\.com/gpu effect \('NoScheduleAtAll'\) must be one of NoSchedule, "
        r"PreferNoSchedule, NoExecute",
    ),
    (
        "zero GPU limit",
        lambda: Limits(cpu=8, memory_gib=32, gpus=0),
        r"limits gpus \(0\) must be >= 1",
    ),
    (
        "budget that is neither count nor percentage",
        lambda: DisruptionBudget(nodes="ten"),
        r"budget nodes \('ten'\) must be a count such as '1' or a percentage such as '10%'",
    ),
    (
        "budget schedule without duration",
        lambda: DisruptionBudget(nodes="0", schedule="@daily"),
        r"budget schedule and duration must be set together",
    ),
    (
        "consolidation policy outside the closed set",
        lambda: Disruption("WhenUnderutilized", "1m"),  # type: ignore[arg-type]
        r"consolidation_policy \('WhenUnderutilized'\) must be one of WhenEmpty, "
        r"WhenEmptyOrUnderutilized",
    ),
    (
        "consolidateAfter not a duration",
        lambda: Disruption("WhenEmpty", "later"),
        r"consolidate_after \('later'\) must be a duration such as '30m' or '720h' or 'Never'",
    ),
    (
        "repeated requirement key",
        lambda: _pool(
            requirements=(Requirement("a/b", "In", ("x",)), Requirement("a/b", "NotIn", ("y",)))
        ),
        r"nodepool p: requirement keys repeat: \['a/b'\]",
    ),
    (
        "weight above 100",
        lambda: _pool(weight=101),
        r"nodepool p: weight \(101\) must be 1\.\.100",
    ),
    (
        "terminationGracePeriod Never",
        lambda: _pool(termination_grace_period="Never"),
        r"termination_grace_period \('Never'\) must be a duration such as '30m' or '720h'",
    ),
    (
        "Bottlerocket version on AL2023",
        lambda: _nodeclass(ami_version="v1.20.4"),
        r"ami_version \('v1\.20\.4'\) is not a release of al2023: expected latest or a tag such "
        r"as v20251108",
    ),
    (
        "tag Karpenter reserves",
        lambda: _nodeclass(tags={"kubernetes.io/cluster/c1": "owned"}),
        r"tags \['kubernetes\.io/cluster/c1'\] are reserved for Karpenter",
    ),
    (
        "empty selector value",
        lambda: _nodeclass(subnet_selector={"karpenter.sh/discovery": ""}),
        r"subnet_selector \(\{'karpenter\.sh/discovery': ''\}\) needs non-empty tag keys and "
        r"values",
    ),
    (
        "throughput on gp2",
        lambda: BlockDevice("/dev/xvda", 100, volume_type="gp2", throughput=250),
        r"throughput is only valid for gp3, not gp2",
    ),
    (
        "snapshot on AL2023",
        lambda: node_volumes("al2023", 100, "snap-0123456789abcdef0"),
        r"snapshot_id \('snap-0123456789abcdef0'\) needs ami_family bottlerocket: AL2023 has no "
        r"separate image data volume",
    ),
]


@pytest.mark.parametrize(
    ("build", "message"), [pytest.param(b, m, id=i) for i, b, m in INVALID_MODELS]
)
def test_model_rejects_what_the_api_server_would(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        build()


INVALID_ARGS: list[tuple[str, dict[str, Any], str]] = [
    (
        "repeated capacity type",
        {"gpu_pools": (_gpu_pool(capacityTypes=["spot", "spot"]),)},
        r"requirement karpenter\.sh/capacity-type values \['spot', 'spot'\] repeat a value",
    ),
]


@pytest.mark.parametrize(
    ("changes", "message"), [pytest.param(c, m, id=i) for i, c, m in INVALID_ARGS]
)
def test_invalid_pool_args_fail_before_any_resource(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        _args(**changes)


def test_gpu_pool_without_sizes_allows_only_catalogued_sizes() -> None:
    spec = render_node_pool(gpu_node_pool(_gpu_pool(instanceFamilies=["p5"]), ("z1",)))
    assert _requirements(spec)["karpenter.k8s.aws/instance-size"]["values"] == [
        "48xlarge",
        "4xlarge",
    ]


def test_weight_is_rendered_only_when_set() -> None:
    assert "weight" not in render_node_pool(gpu_node_pool(_gpu_pool(), ("z1",)))
    assert render_node_pool(gpu_node_pool(_gpu_pool(weight=10), ("z1",)))["weight"] == 10


def test_al2023_gpu_nodes_enable_fast_image_pull() -> None:
    cfg = NodeClassConfig(ami_family="al2023")
    spec = render_node_class(gpu_node_class(cfg, cluster_name="c1", role="r", tags={}))
    assert yaml.safe_load(spec["userData"]) == {
        "apiVersion": "node.eks.aws/v1alpha1",
        "kind": "NodeConfig",
        "spec": {"featureGates": {"FastImagePull": True}},
    }
    (root,) = spec["blockDeviceMappings"]
    assert (root["ebs"]["throughput"], root["ebs"]["iops"]) == (600, 3000)
    off = NodeClassConfig(ami_family="al2023", fast_image_pull=False)
    assert "userData" not in render_node_class(
        gpu_node_class(off, cluster_name="c1", role="r", tags={})
    )


def test_bottlerocket_gpu_nodes_start_from_the_image_snapshot_or_pull_with_soci() -> None:
    snap = NodeClassConfig(
        ami_family="bottlerocket",
        ami_version="v1.50.0",
        data_volume_snapshot_id="snap-0123456789abcdef0",
        data_volume_image="vllm/vllm-openai:v0.33.0@sha256:" + "0" * 64,
        volume_initialization_rate=250,
    )
    spec = render_node_class(gpu_node_class(snap, cluster_name="c1", role="r", tags={}))
    data = spec["blockDeviceMappings"][1]["ebs"]
    assert (data["snapshotID"], data["volumeInitializationRate"]) == ("snap-0123456789abcdef0", 250)
    # Pulled with the default snapshotter: switching to SOCI would pull it again.
    assert "userData" not in spec
    pull = NodeClassConfig(ami_family="bottlerocket", ami_version="v1.50.0")
    spec = render_node_class(gpu_node_class(pull, cluster_name="c1", role="r", tags={}))
    settings = tomllib.loads(spec["userData"])["settings"]
    assert settings["container-runtime"] == {"snapshotter": "soci"}
    plugin = settings["container-runtime-plugins"]["soci-snapshotter"]
    assert plugin["pull-mode"] == "parallel-pull-unpack"
    assert "volumeInitializationRate" not in spec["blockDeviceMappings"][1]["ebs"]


def test_ebs_limits_are_checked_before_the_api_server_sees_them() -> None:
    with pytest.raises(ValueError, match=r"^volume_initialization_rate needs snapshot_id$"):
        BlockDevice("/dev/xvdb", 100, volume_initialization_rate=200)
    with pytest.raises(ValueError, match=r"^volume_initialization_rate \(400\) must be 100\.\.300"):
        BlockDevice(
            "/dev/xvdb", 100, snapshot_id="snap-0123456789abcdef0", volume_initialization_rate=400
        )
    with pytest.raises(ValueError, match=r"^throughput \(1000\) must be 125\.\.750 MiB/s"):
        BlockDevice("/dev/xvda", 100, iops=3000, throughput=1000)


def test_bottlerocket_node_class_has_os_and_snapshot_data_volumes() -> None:
    cfg = NodeClassConfig(
        ami_family="bottlerocket",
        ami_version="v1.20.4",
        root_volume_gib=400,
        data_volume_snapshot_id="snap-0123456789abcdef0",
    )
    spec = render_node_class(
        node_class(
            "gpu",
            cfg,
            cluster_name="c1",
            role="r",
            tags={},
            volume_gib=400,
            snapshot_id=cfg.data_volume_snapshot_id,
        )
    )
    assert spec["amiSelectorTerms"] == [{"alias": "bottlerocket@v1.20.4"}]
    assert "amiFamily" not in spec  # implied by the alias; the CRD rejects a mismatch
    assert spec["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "ebs": {
                "volumeSize": "4Gi",
                "volumeType": "gp3",
                "encrypted": True,
                "deleteOnTermination": True,
            },
        },
        {
            "deviceName": "/dev/xvdb",
            "ebs": {
                "volumeSize": "400Gi",
                "volumeType": "gp3",
                "encrypted": True,
                "deleteOnTermination": True,
                "snapshotID": "snap-0123456789abcdef0",
            },
        },
    ]


def test_component_renders_each_pool_after_karpenter() -> None:
    def build() -> list[str]:
        provider = k8s.Provider("k8s", kubeconfig="{}")
        crds = k8s.helm.v3.Release(
            "crds", chart="c", opts=pulumi.ResourceOptions(provider=provider)
        )
        pools = NodePools(
            "np",
            _args(
                gpu_pools=(_gpu_pool(), _gpu_pool(name="gpu-b", capacityTypes=["on-demand"])),
                karpenter=crds,
            ),
            opts=pulumi.ResourceOptions(provider=provider),
        )
        return resolve(pulumi.Output.from_input(pools.node_pool_names))

    resources, names = run_component(build)
    assert names == ["gpu-a", "gpu-b", "general"]
    for r in find_all(resources, NODEPOOL) + find_all(resources, NODECLASS):
        assert "crds" in r.depends_on, r.name
    assert "np-nodeclass-gpu" in find(resources, NODEPOOL, "np-nodepool-gpu-b").depends_on
    assert "np-nodeclass-general" in find(resources, NODEPOOL, "np-nodepool-general").depends_on


# --------------------------------------------------------------------------- stacks


def _gpu_pools(stack: str) -> list[dict[str, Any]]:
    return list(stack_config(stack)[f"{NS}:gpuPools"])


def test_one_gpu_nodepool_per_configured_pool_plus_general(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    names = sorted(r.inputs["metadata"]["name"] for r in find_all(fixture_resources, NODEPOOL))
    assert names == sorted([p["name"] for p in _gpu_pools(fixture_stack)] + ["general"])


def test_gpu_pools_span_zones_capacity_types_and_allowlisted_nvidia_types(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    zones = stack_config(fixture_stack)[f"{NS}:zones"]
    for pool in _gpu_pools(fixture_stack):
        spec = find(fixture_resources, NODEPOOL, f"node-pools-nodepool-{pool['name']}").inputs[
            "spec"
        ]
        req = _requirements(spec)
        assert set(req) == {
            "karpenter.sh/capacity-type",
            "topology.kubernetes.io/zone",
            "karpenter.k8s.aws/instance-family",
            "karpenter.k8s.aws/instance-size",
            "karpenter.k8s.aws/instance-gpu-manufacturer",
            "kubernetes.io/arch",
            "kubernetes.io/os",
        }
        assert all(r["operator"] == "In" for r in req.values())
        assert req["karpenter.sh/capacity-type"]["values"] == pool["capacityTypes"]
        assert req["topology.kubernetes.io/zone"]["values"] == zones
        assert req["karpenter.k8s.aws/instance-family"]["values"] == pool["instanceFamilies"]
        assert req["karpenter.k8s.aws/instance-size"]["values"] == pool["instanceSizes"]
        assert req["karpenter.k8s.aws/instance-gpu-manufacturer"]["values"] == ["nvidia"]
        assert req["kubernetes.io/arch"]["values"] == ["amd64"]
        assert spec["template"]["spec"]["nodeClassRef"] == {
            "group": "karpenter.k8s.aws",
            "kind": "EC2NodeClass",
            "name": "gpu",
        }


def test_capacity_types_per_stack(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    """Each pool's capacity types, spot first when on-demand is the fallback."""
    pools = {p.name: p for p in typed_config(fixture_stack).gpu_pools}
    for r in find_all(fixture_resources, NODEPOOL):
        name = r.inputs["metadata"]["name"]
        if name != "general":
            values = _requirements(r.inputs["spec"])["karpenter.sh/capacity-type"]["values"]
            assert sorted(values) == sorted(pools[name].capacity_types)


def test_the_fixtures_have_a_spot_only_pool_and_one_with_on_demand_fallback() -> None:
    kinds = {tuple(p.capacity_types) for s in FIXTURE_STACKS for p in typed_config(s).gpu_pools}
    assert {("spot",), ("spot", "on-demand")} <= kinds


def test_gpu_pools_are_tainted_labelled_limited_and_never_consolidate_busy_nodes(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    for pool in _gpu_pools(fixture_stack):
        spec = find(fixture_resources, NODEPOOL, f"node-pools-nodepool-{pool['name']}").inputs[
            "spec"
        ]
        template = spec["template"]
        assert template["spec"]["taints"] == [
            {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
        ]
        assert template["metadata"]["labels"] == {"llm-platform.io/accelerator": "nvidia"}
        assert spec["limits"] == {
            "nvidia.com/gpu": pool["gpuLimit"],
            "cpu": pool["cpuLimit"],
            "memory": f"{pool['memoryLimitGiB']}Gi",
        }
        assert spec["disruption"] == {
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": pool["consolidateAfter"],
            "budgets": [{"nodes": pool.get("disruptionBudgetNodes", "10%")}],
        }
        assert template["spec"]["expireAfter"] == "720h"
        assert template["spec"]["terminationGracePeriod"] == "2h"
        assert "weight" not in spec


def test_general_pool_is_untainted_and_consolidates(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cpu = stack_config(fixture_stack)[f"{NS}:cpuPool"]
    spec = find(fixture_resources, NODEPOOL, "node-pools-nodepool-general").inputs["spec"]
    req = _requirements(spec)
    assert "taints" not in spec["template"]["spec"]
    assert req["karpenter.k8s.aws/instance-category"]["values"] == ["c", "m", "r"]
    assert req["karpenter.k8s.aws/instance-generation"] == {
        "key": "karpenter.k8s.aws/instance-generation",
        "operator": "Gt",
        "values": ["4"],
    }
    assert "karpenter.k8s.aws/instance-gpu-manufacturer" not in req
    assert spec["limits"] == {"cpu": cpu["cpuLimit"], "memory": f"{cpu['memoryLimitGiB']}Gi"}
    assert spec["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    assert spec["template"]["spec"]["nodeClassRef"]["name"] == "general"


def test_gpu_node_class_ami_imds_volumes_and_discovery(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = stack_config(fixture_stack)[f"{NS}:nodeClass"]
    spec = find(fixture_resources, NODECLASS, "node-pools-nodeclass-gpu").inputs["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": f"al2023@{cfg['amiVersion']}"}]
    assert spec["role"] == f"{cluster_name(fixture_stack)}-karpenter-node"
    discovery = [{"tags": {"karpenter.sh/discovery": cluster_name(fixture_stack)}}]
    assert spec["subnetSelectorTerms"] == spec["securityGroupSelectorTerms"] == discovery
    assert spec["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpProtocolIPv6": "disabled",
        "httpPutResponseHopLimit": 1,
        "httpTokens": "required",
    }
    typed = typed_config(fixture_stack).node_class
    assert spec["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "ebs": {
                "volumeSize": f"{cfg['rootVolumeGiB']}Gi",
                "volumeType": "gp3",
                "encrypted": True,
                "deleteOnTermination": True,
                # SOCI parallel pull unpacks onto the root volume: gp3 sized for it.
                "iops": typed.image_volume_iops,
                "throughput": typed.image_volume_throughput,
            },
        }
    ]
    assert spec["userData"] == AL2023_FAST_IMAGE_PULL
    assert spec["tags"]["environment"] == fixture_stack
    assert spec["tags"]["cost-center"] == typed_config(fixture_stack).tags["cost-center"]


def test_the_ami_alias_is_the_configured_one(
    fixture_resources: tuple[Recorded, ...], fixture_stack: str
) -> None:
    alias = find(fixture_resources, NODECLASS, "node-pools-nodeclass-gpu").inputs["spec"][
        "amiSelectorTerms"
    ][0]["alias"]
    nc = typed_config(fixture_stack).node_class
    assert alias == f"{nc.ami_family}@{nc.ami_version}"


def test_custom_resources_wait_for_the_crd_and_controller_releases(
    fixture_resources: tuple[Recorded, ...],
) -> None:
    for r in find_all(fixture_resources, NODEPOOL) + find_all(fixture_resources, NODECLASS):
        assert {"karpenter-crd", "karpenter-controller"} <= set(r.depends_on), r.name


def test_plan_summary_shows_gpu_capacity_per_pool_and_zone(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    expected = {
        SMALL: [
            "GPU capacity (Karpenter NodePools; each limit applies across its zones):",
            "  gpu-lab: limit 4 GPUs, spot only, families g6, g5",
            "    zones us-west-2a, us-west-2b",
            "    largest type g6.12xlarge (4 GPUs): at most 1 instance",
            "  total GPU limit: 4",
        ],
        HA: [
            "GPU capacity (Karpenter NodePools; each limit applies across its zones):",
            "  gpu-serve: limit 16 GPUs, spot first, on-demand fallback, families g6e, g6",
            "    zones us-east-1a, us-east-1b, us-east-1c",
            "    largest type g6e.12xlarge (4 GPUs): at most 4 instances",
            "  total GPU limit: 16",
        ],
    }
    assert (
        gpu_capacity_section(list(fixture_resources), typed_config(fixture_stack))
        == expected[fixture_stack]
    )


@pytest.mark.parametrize(
    ("family", "version", "fast", "snapshot", "accepted"),
    [
        ("al2023", "latest", True, False, True),
        ("al2023", "v20251016", True, False, True),
        ("al2023", "v20251015", True, False, False),
        ("al2023", "v20250821", False, False, True),
        ("bottlerocket", "v1.44.0", True, False, True),
        ("bottlerocket", "v1.43.9", True, False, False),
        ("bottlerocket", "v1.9.0", True, False, False),
        # The snapshot's images were unpacked without SOCI: no SOCI, no minimum.
        ("bottlerocket", "v1.43.0", True, True, True),
    ],
)
def test_soci_needs_a_release_that_has_it(
    family: Any, version: str, fast: bool, snapshot: bool, accepted: bool
) -> None:
    extra = (
        {"data_volume_snapshot_id": "snap-0123456789abcdef0", "data_volume_image": "i:v1.0.0"}
        if snapshot
        else {}
    )
    cfg = NodeClassConfig(ami_family=family, ami_version=version, fast_image_pull=fast, **extra)
    problems = cfg.check("nodeClass")
    assert (problems == []) is accepted, problems
    if not accepted:
        assert problems[0].startswith(f'nodeClass.amiVersion = "{version}": fastImagePull needs')
    assert cfg.uses_soci is (fast and not snapshot)
    assert (gpu_user_data(cfg) is not None) is cfg.uses_soci
