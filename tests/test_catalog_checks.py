"""Catalog truth (issue 15, point 2): every value that names something real is checked
against the catalogs in ``infra/core`` before anything is registered.

One case per check, each mutating one thing of the small fixture stack and asserting the
exact problem line (exit 2 and nothing registered are asserted by the shared runner).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.core.compatibility import COREDNS_MINOR, KARPENTER_KUBERNETES
from infra.core.gpu_catalog import GPU_INSTANCE_TYPES
from infra.core.instance_types import GENERAL_INSTANCE_TYPES
from infra.core.pricing import ON_DEMAND_USD_PER_HOUR, PRICES_AS_OF
from infra.core.regions import ZONES
from tests.harness import SMALL, rejected, run_stack, typed_config

NS = "llm-platform"
Config = dict[str, Any]
CFG = typed_config(SMALL)
REGION = CFG.region
KNOWN_ZONES = ", ".join(ZONES[REGION])
PRICED = ", ".join(sorted(ON_DEMAND_USD_PER_HOUR))
POOL = CFG.gpu_pools[0]
KARPENTER_LOW, KARPENTER_HIGH = KARPENTER_KUBERNETES[".".join(CFG.karpenter.version.split(".")[:2])]
ADDON_MINORS = sorted(COREDNS_MINOR)


def _pool(c: Config) -> dict[str, Any]:
    return c[f"{NS}:gpuPools"][0]


def _cluster(c: Config) -> dict[str, Any]:
    return c[f"{NS}:cluster"]


def _model(c: Config) -> dict[str, Any]:
    return c[f"{NS}:models"][0]


def _rename(old: str, new: str) -> Callable[[Config], object]:
    return lambda c: c.update({new: c.pop(old)})


def _no_bf16_family() -> str:
    """A GPU family below compute capability 8.0 (T4 today)."""
    return next(t.family for t in GPU_INSTANCE_TYPES.values() if not t.supports_bfloat16)


OLD_GPU = _no_bf16_family()
SYSTEM_TYPE = CFG.cluster.system_node_group.instance_types[0]
SYSTEM_FAMILY = SYSTEM_TYPE.split(".")[0]
SYSTEM_SIZES = ", ".join(
    n.split(".", 1)[1] for n in GENERAL_INSTANCE_TYPES if n.startswith(f"{SYSTEM_FAMILY}.")
)
MINOR = int(CFG.cluster.version.split(".")[1])

# (case id, mutation of the fixture stack's config, the exact problem lines)
CASES: list[tuple[str, Callable[[Config], object], list[str]]] = [
    (
        "region without price data",
        lambda c: c.update({"aws:region": "eu-north-1", f"{NS}:zones": ["eu-north-1a"]}),
        [
            'aws:region = "eu-north-1": no price data for this region (the price table of '
            f"infra/core/pricing.py, as of {PRICES_AS_OF}, covers {PRICED}); add its prices "
            "there and its zones to infra/core/regions.py, or use one of these"
        ],
    ),
    (
        "zone name the region does not have",
        lambda c: c.update({f"{NS}:zones": [f"{REGION}a", f"{REGION}z"]}),
        [f'{NS}:zones[1] = "{REGION}z": not a zone of region {REGION} (zones: {KNOWN_ZONES})'],
    ),
    (
        "a single zone",
        lambda c: c.update({f"{NS}:zones": [f"{REGION}a"]}),
        [
            f'{NS}:zones = ["{REGION}a"]: EKS needs subnets in at least 2 availability zones; '
            f"list 2 or more of {KNOWN_ZONES}"
        ],
    ),
    (
        "Kubernetes version above what Karpenter supports",
        lambda c: _cluster(c).update(version=f"1.{KARPENTER_HIGH + 1}"),
        [
            f'{NS}:cluster.version = "1.{KARPENTER_HIGH + 1}": no EKS add-on versions known '
            f"for it (infra/core/compatibility.py covers 1.{ADDON_MINORS[0]}-"
            f"1.{ADDON_MINORS[-1]})",
            f'{NS}:cluster.version = "1.{KARPENTER_HIGH + 1}": Karpenter '
            f"{CFG.karpenter.version} (karpenter.version) supports Kubernetes "
            f"1.{KARPENTER_LOW}-1.{KARPENTER_HIGH}",
        ],
    ),
    (
        "Karpenter release line without a known Kubernetes range",
        lambda c: c.update({f"{NS}:karpenter": {"version": "1.99.0"}}),
        [
            f'{NS}:karpenter.version = "1.99.0": no known Kubernetes range for this release '
            "line (add it to infra/core/compatibility.py from the release's "
            "pkg/providers/version/version.go)"
        ],
    ),
    (
        "kube-proxy of another minor than the cluster",
        lambda c: _cluster(c)["addons"].update({"kube-proxy": f"v1.{MINOR - 1}.3-eksbuild.2"}),
        [
            f'{NS}:cluster.addons.kube-proxy = "v1.{MINOR - 1}.3-eksbuild.2": kube-proxy must '
            f"be of the cluster's minor: v1.{MINOR}.x-eksbuild.n"
        ],
    ),
    (
        "CoreDNS of another Kubernetes minor",
        lambda c: _cluster(c)["addons"].update(coredns="v1.8.7-eksbuild.10"),
        [
            f'{NS}:cluster.addons.coredns = "v1.8.7-eksbuild.10": Kubernetes 1.{MINOR} runs '
            f"CoreDNS {COREDNS_MINOR[MINOR]}: v{COREDNS_MINOR[MINOR]}.x-eksbuild.n"
        ],
    ),
    (
        "system node group type that does not exist",
        lambda c: _cluster(c)["systemNodeGroup"].update(instanceTypes=[f"{SYSTEM_FAMILY}.3xlarge"]),
        [
            f'{NS}:cluster.systemNodeGroup.instanceTypes[0] = "{SYSTEM_FAMILY}.3xlarge": no '
            f"such instance type; {SYSTEM_FAMILY} has sizes {SYSTEM_SIZES}"
        ],
    ),
    (
        "system node group type the x86_64 AMI cannot run",
        lambda c: _cluster(c)["systemNodeGroup"].update(instanceTypes=["m7g.xlarge"]),
        [
            f'{NS}:cluster.systemNodeGroup.instanceTypes[0] = "m7g.xlarge": no such instance '
            "type; not an x86_64 family of infra/core/instance_types.py ("
            + ", ".join(sorted({n.split(".")[0] for n in GENERAL_INSTANCE_TYPES}))
            + ")"
        ],
    ),
    (
        "system node group type listed twice",
        lambda c: _cluster(c)["systemNodeGroup"].update(instanceTypes=[SYSTEM_TYPE, SYSTEM_TYPE]),
        [
            f'{NS}:cluster.systemNodeGroup.instanceTypes = ["{SYSTEM_TYPE}", "{SYSTEM_TYPE}"]: '
            f"repeats {SYSTEM_TYPE}; list each once"
        ],
    ),
    (
        "GPU size none of the pool's families has",
        lambda c: _pool(c).update(instanceSizes=["xlarge", "9xlarge"]),
        [
            f'{NS}:gpuPools[0].instanceSizes[1] = "9xlarge": no '
            f"{' or '.join(POOL.instance_families)} instance has this size; sizes: xlarge, "
            "2xlarge, 4xlarge, 8xlarge, 12xlarge, 16xlarge, 24xlarge, 48xlarge"
        ],
    ),
    (
        "GPU size listed twice",
        lambda c: _pool(c).update(instanceSizes=["xlarge", "xlarge"]),
        [f'{NS}:gpuPools[0].instanceSizes = ["xlarge", "xlarge"]: repeats xlarge; list each once'],
    ),
    (
        "bfloat16 on a GPU below compute capability 8.0",
        lambda c: (
            _pool(c).update(instanceFamilies=[*POOL.instance_families, OLD_GPU]),
            c[f"{NS}:policy"].update(allowedInstanceFamilies=[*POOL.instance_families, OLD_GPU]),
        ),
        [
            f'{NS}:models[{i}].dtype = "bfloat16": pool {POOL.name} may place it on '
            f"T4 ({OLD_GPU}), below compute capability 8.0, where vLLM refuses bfloat16; use "
            "dtype float16 or drop those families from the pool"
            for i in range(len(CFG.models))
        ],
    ),
    (
        "a quoted boolean",
        lambda c: _cluster(c).update(endpointPublicAccess="false"),
        [
            f'{NS}:cluster.endpointPublicAccess = "false": must be true or false (a YAML '
            "boolean, unquoted)"
        ],
    ),
    (
        "a number for a boolean",
        lambda c: _model(c).update(enabled=1),
        [f"{NS}:models[0].enabled = 1: must be true or false (a YAML boolean, unquoted)"],
    ),
    (
        "a near-miss of the platform namespace",
        _rename(f"{NS}:cpuPool", "llm-platfrom:cpuPool"),
        [
            'llm-platfrom:cpuPool: unknown config namespace "llm-platfrom"; did you mean '
            f"{NS}:cpuPool?"
        ],
    ),
    (
        "a near-miss of the aws namespace",
        lambda c: c.update({"asw:profile": "sandbox"}),
        ['asw:profile: unknown config namespace "asw"; did you mean aws:profile?'],
    ),
]


@pytest.mark.parametrize(
    ("mutate", "problems"), [(m, p) for _, m, p in CASES], ids=[i for i, _, _ in CASES]
)
def test_catalog_checks(mutate: Callable[[Config], object], problems: list[str]) -> None:
    assert rejected(SMALL, mutate) == problems


def test_other_namespaces_pass() -> None:
    """Namespaces of other providers are theirs to read, not typos."""
    run = run_stack(SMALL, lambda c: c.update({"kubernetes:context": "x", "pulumi:tags": "{}"}))
    assert run.error is None


def test_every_priced_region_lists_its_zones() -> None:
    assert set(ZONES) == set(ON_DEMAND_USD_PER_HOUR)
    for region, zones in ZONES.items():
        assert zones and all(z.startswith(region) and len(z) == len(region) + 1 for z in zones)


def test_every_gpu_model_has_a_compute_capability() -> None:
    assert {t.supports_bfloat16 for t in GPU_INSTANCE_TYPES.values()} == {True, False}


def test_the_add_on_table_lies_inside_the_karpenter_range() -> None:
    for low, high in KARPENTER_KUBERNETES.values():
        assert any(low <= minor <= high for minor in COREDNS_MINOR)
