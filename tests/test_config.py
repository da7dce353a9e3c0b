"""Stack config validation: every bad config is rejected before any resource exists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from infra.cluster.config import ClusterConfig
from infra.core.pricing import PRICES_AS_OF
from infra.core.regions import ZONES
from infra.core.schema import ConfigError
from infra.observability.config import AlertThresholds
from infra.stack.config import PlatformConfig, load_config
from policies.rules import RULE_NAMES
from tests.harness import FIXTURE_STACKS, SMALL, run_stack, stack_config, typed_config

NS = "llm-platform"
Config = dict[str, Any]


def _pool(c: Config) -> dict[str, Any]:
    return c[f"{NS}:gpuPools"][0]


def _model(c: Config, i: int = 0) -> dict[str, Any]:
    return c[f"{NS}:models"][i]


def _keys(model: type[BaseModel]) -> str:
    """The camelCase keys of a section, as an 'unknown key' problem lists them."""
    return ", ".join(
        sorted(str(f.alias) for n, f in model.model_fields.items() if n not in ("stack", "region"))
    )


ROOT_KEYS = _keys(PlatformConfig)
CFG = typed_config(SMALL)
"""The fixture stack every case mutates."""
POOL = CFG.gpu_pools[0]
FIRST, SECOND = CFG.models[0].name, CFG.models[1].name
MODELS = ", ".join(m.name for m in CFG.models)


def test_the_key_lists_are_the_sections_keys() -> None:
    assert {"gpuPools", "models", "cluster", "modelApiKey", "zones"} <= set(ROOT_KEYS.split(", "))
    assert "stack" not in ROOT_KEYS.split(", ")
    assert _keys(ClusterConfig).startswith("addons, admins, endpointPublicAccess, ")
    assert {"errorRatio", "queueBacklog"} <= set(_keys(AlertThresholds).split(", "))
    assert CFG.models[0].gpu_pool == CFG.models[1].gpu_pool == POOL.name


# (case id, mutation of the fixture stack's config, the exact problem line)
INVALID: list[tuple[str, Callable[[Config], object], str]] = [
    (
        "unknown top-level key (typo)",
        lambda c: c.update({f"{NS}:gpuPool": c[f"{NS}:gpuPools"]}),
        f"{NS}:gpuPool: unknown key; allowed keys here: {ROOT_KEYS}",
    ),
    (
        "unknown nested key (typo)",
        lambda c: c[f"{NS}:cluster"].update(endpointPublic=True),
        f"{NS}:cluster.endpointPublic: unknown key; allowed keys here: {_keys(ClusterConfig)}",
    ),
    (
        "GPU limit of the wrong type",
        lambda c: _pool(c).update(gpuLimit="four"),
        f'{NS}:gpuPools[0].gpuLimit = "four": input should be a valid integer, unable to parse '
        "string as an integer",
    ),
    (
        "zero GPU limit",
        lambda c: _pool(c).update(gpuLimit=0),
        f"{NS}:gpuPools[0].gpuLimit = 0: input should be greater than or equal to 1",
    ),
    (
        "negative GPU limit",
        lambda c: _pool(c).update(gpuLimit=-2),
        f"{NS}:gpuPools[0].gpuLimit = -2: input should be greater than or equal to 1",
    ),
    (
        "instance family without GPUs",
        lambda c: _pool(c).update(instanceFamilies=["m7i"]),
        f'{NS}:gpuPools[0].instanceFamilies[0] = "m7i": not an NVIDIA GPU family; allowed: '
        "g4dn, g5, g6, g6e, p4d, p4de, p5, p5e, p5en",
    ),
    (
        "zone outside the region",
        lambda c: c.update({f"{NS}:zones": ["us-west-2a", "eu-west-1a"]}),
        f'{NS}:zones[1] = "eu-west-1a": not a zone of region {CFG.region} '
        f"(zones: {', '.join(ZONES[CFG.region])})",
    ),
    (
        "duplicate zones",
        lambda c: c.update({f"{NS}:zones": ["us-west-2a", "us-west-2a"]}),
        f'{NS}:zones = ["us-west-2a", "us-west-2a"]: zones must be unique',
    ),
    (
        "duplicate model names",
        lambda c: _model(c, 1).update(name=FIRST),
        f'{NS}:models: duplicate name "{FIRST}"',
    ),
    (
        "duplicate pool names",
        lambda c: c[f"{NS}:gpuPools"].append(dict(_pool(c))),
        f'{NS}:gpuPools: duplicate name "{POOL.name}"',
    ),
    (
        "tensor parallelism above the pool's largest instance",
        lambda c: _model(c).update(tensorParallelSize=8),
        f"{NS}:models[0].tensorParallelSize = 8: pool {POOL.name} offers at most 4 GPUs per "
        "instance",
    ),
    (
        "tensor parallelism not a power of two",
        lambda c: _model(c).update(tensorParallelSize=3),
        f"{NS}:models[0].tensorParallelSize = 3: input should be 1, 2, 4 or 8",
    ),
    (
        "budget of zero",
        lambda c: c[f"{NS}:cost"]["budgets"][0].update(monthlyUsd=0),
        f"{NS}:cost.budgets[0].monthlyUsd = 0: input should be greater than 0",
    ),
    (
        "more budget thresholds than an AWS budget can notify",
        lambda c: c[f"{NS}:cost"]["budgets"][0].update(thresholdsPercent=[10, 20, 50, 80, 100]),
        f"{NS}:cost.budgets[0].thresholdsPercent = [10, 20, 50, 80, 100]: list should have at "
        "most 4 items after validation, not 5",
    ),
    (
        "Kubecost chart outside 2.8.x",
        lambda c: c[f"{NS}:cost"].update(kubecostVersion="2.9.7"),
        f"{NS}:cost.kubecostVersion = \"2.9.7\": string should match pattern '^2\\.8\\.\\d+$'",
    ),
    (
        "a system node type the price table does not know",
        lambda c: c[f"{NS}:cluster"]["systemNodeGroup"].update(instanceTypes=["m7i.24xlarge"]),
        f'{NS}:cluster.systemNodeGroup.instanceTypes[0] = "m7i.24xlarge": no on-demand price '
        f"for m7i.24xlarge in us-west-2 (price table as of {PRICES_AS_OF} covers regions "
        "us-east-1, us-west-2); add it to infra/core/pricing.py from the AWS price list",
    ),
    (
        "budget nobody is told about",
        lambda c: c[f"{NS}:cost"]["budgets"][0].update(notifyEmails=[]),
        f"{NS}:cost.budgets[0].notifyEmails = []: list should have at least 1 item after "
        "validation, not 0",
    ),
    (
        "no cluster budget",
        lambda c: c[f"{NS}:cost"]["budgets"][0].update(scope="namespace", target="inference"),
        f"{NS}:cost.budgets: a budget with scope cluster is required",
    ),
    (
        "model on an undefined pool",
        lambda c: _model(c).update(gpuPool="gpu-big"),
        f'{NS}:models[0].gpuPool = "gpu-big": no such GPU pool; defined: {POOL.name}',
    ),
    (
        "unknown capacity type",
        lambda c: _pool(c).update(capacityTypes=["reserved"]),
        f"{NS}:gpuPools[0].capacityTypes[0] = \"reserved\": input should be 'spot' or 'on-demand'",
    ),
    (
        "unknown NAT mode",
        lambda c: c[f"{NS}:network"].update(natGateways="two"),
        f"{NS}:network.natGateways = \"two\": input should be 'single' or 'perZone'",
    ),
    (
        "invalid VPC CIDR",
        lambda c: c[f"{NS}:network"].update(cidr="10.0.0.0/33"),
        f'{NS}:network.cidr = "10.0.0.0/33": input is not a valid IPv4 network',
    ),
    (
        "cluster name not a DNS label",
        lambda c: c[f"{NS}:cluster"].update(name="LLM_Dev"),
        f'{NS}:cluster.name = "LLM_Dev": must be a DNS label: lowercase letters, digits and '
        "'-', starting with a letter, at most 40 characters",
    ),
    (
        "public endpoint without CIDRs",
        lambda c: c[f"{NS}:cluster"].update(publicAccessCidrs=[]),
        f"{NS}:cluster.publicAccessCidrs = []: a public endpoint needs at least one CIDR "
        "(never 0.0.0.0/0 implicitly)",
    ),
    (
        "missing add-on version",
        lambda c: c[f"{NS}:cluster"]["addons"].pop("coredns"),
        f'{NS}:cluster.addons = {{"vpc-cni": "v1.20.4-eksbuild.1", "kube-proxy": '
        '"v1.33.3-eksbuild.10", "eks-pod-identity-agent": "v1.3.9-eksbuild.3", '
        '"aws-ebs-csi-driver": "v1.51.1-eksbuild.1"}: versions required for coredns',
    ),
    (
        "log retention CloudWatch does not accept",
        lambda c: c[f"{NS}:logging"].update(retentionDays=10),
        f"{NS}:logging.retentionDays = 10: CloudWatch allows 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, "
        "180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
    ),
    (
        "replica minimum above maximum",
        lambda c: _model(c).update(replicas={"min": 3, "max": 2}),
        f'{NS}:models[0].replicas = {{"min": 3, "max": 2}}: min must be <= max',
    ),
    (
        "GPU memory utilisation too high",
        lambda c: _model(c).update(gpuMemoryUtilization=0.99),
        f"{NS}:models[0].gpuMemoryUtilization = 0.99: input should be less than or equal to 0.95",
    ),
    (
        "duration that is not a duration",
        lambda c: _pool(c).update(consolidateAfter="soon"),
        f"{NS}:gpuPools[0].consolidateAfter = \"soon\": must be a Go duration such as '30s', "
        "'10m', '720h' or '1h30m'",
    ),
    (
        "missing cost tag",
        lambda c: c[f"{NS}:tags"].pop("cost-center"),
        f'{NS}:tags = {{"owner": "{CFG.tags["owner"]}"}}: cost tags cost-center are required',
    ),
    (
        "region set in the namespace",
        lambda c: c.update({f"{NS}:region": "us-east-1"}),
        f"{NS}:region: not a stack-file key; it comes from aws:region",
    ),
    (
        "required key missing",
        lambda c: c[f"{NS}:cluster"].pop("name"),
        f"{NS}:cluster.name: required key is missing",
    ),
    (
        "unknown AMI family",
        lambda c: c[f"{NS}:nodeClass"].update(amiFamily="ubuntu"),
        f"{NS}:nodeClass.amiFamily = \"ubuntu\": input should be 'al2023' or 'bottlerocket'",
    ),
    (
        "model budget for an undefined model",
        lambda c: c[f"{NS}:cost"]["budgets"].append(
            {
                "name": "m",
                "scope": "model",
                "target": "nope",
                "monthlyUsd": 10,
                "notifyEmails": ["a@example.com"],
            }
        ),
        f'{NS}:cost.budgets[1].target = "nope": no such model; defined: {MODELS}',
    ),
    (
        "size allowlist that matches nothing",
        lambda c: _pool(c).update(instanceSizes=["metal"]),
        f'{NS}:gpuPools[0].instanceSizes[0] = "metal": no g6 or g5 instance has this size; '
        "sizes: xlarge, 2xlarge, 4xlarge, 8xlarge, 12xlarge, 16xlarge, 24xlarge, 48xlarge",
    ),
    (
        "policy allowlist with a family that has no GPUs",
        lambda c: c[f"{NS}:policy"].update(allowedInstanceFamilies=["g6", "c7i"]),
        f'{NS}:policy.allowedInstanceFamilies[1] = "c7i": not an NVIDIA GPU family; allowed: '
        "g4dn, g5, g6, g6e, p4d, p4de, p5, p5e, p5en",
    ),
    (
        "policy allowlist that repeats a family",
        lambda c: c[f"{NS}:policy"].update(allowedInstanceFamilies=["g6", "g5", "g6"]),
        f'{NS}:policy.allowedInstanceFamilies = ["g6", "g5", "g6"]: repeats g6; list each once',
    ),
    (
        "policy allowlist that repeats a size",
        lambda c: c[f"{NS}:policy"].update(allowedInstanceSizes=["xlarge", "xlarge"]),
        f'{NS}:policy.allowedInstanceSizes = ["xlarge", "xlarge"]: repeats xlarge; list each once',
    ),
    (
        "enforcement for a rule that does not exist (typo)",
        lambda c: c[f"{NS}:policy"]["enforcement"].update({"gpu-nodepool-gpu-limit": "advisory"}),
        f"{NS}:policy.enforcement.gpu-nodepool-gpu-limit: no such policy rule; rules: "
        + ", ".join(RULE_NAMES),
    ),
    (
        "enforcement level that does not exist",
        lambda c: c[f"{NS}:policy"]["enforcement"].update({"cost-tags-required": "warn"}),
        f"{NS}:policy.enforcement.cost-tags-required = \"warn\": input should be 'mandatory', "
        "'advisory' or 'disabled'",
    ),
    (
        "Bottlerocket AMI version with the AL2023 family",
        lambda c: c[f"{NS}:nodeClass"].update(amiVersion="v1.20.4"),
        f'{NS}:nodeClass.amiVersion = "v1.20.4": not a release of al2023; expected latest '
        "or a tag such as v20251108",
    ),
    (
        "fast image pull on an AL2023 release without it for xlarge sizes",
        lambda c: c[f"{NS}:nodeClass"].update(amiVersion="v20250904", fastImagePull=True),
        f'{NS}:nodeClass.amiVersion = "v20250904": fastImagePull needs al2023 v20251016 or '
        "later (its SOCI parallel pull); pin that release or a later one, or set "
        "fastImagePull false",
    ),
    (
        "fast image pull on a Bottlerocket release without SOCI",
        lambda c: c[f"{NS}:nodeClass"].update(
            amiFamily="bottlerocket", amiVersion="v1.43.0", fastImagePull=True
        ),
        f'{NS}:nodeClass.amiVersion = "v1.43.0": fastImagePull needs bottlerocket v1.44.0 or '
        "later (its SOCI parallel pull); pin that release or a later one, or set "
        "fastImagePull false",
    ),
    (
        "data-volume snapshot without Bottlerocket",
        lambda c: c[f"{NS}:nodeClass"].update(dataVolumeSnapshotId="snap-0123456789abcdef0"),
        f'{NS}:nodeClass.dataVolumeSnapshotId = "snap-0123456789abcdef0": only with amiFamily '
        "bottlerocket (AL2023 has no separate image data volume)",
    ),
    (
        "GPU pool named like the CPU pool",
        lambda c: (
            [_pool(c).update(name="general")]
            + [m.update(gpuPool="general") for m in c[f"{NS}:models"]]
        ),
        f'{NS}:gpuPools[0].name = "general": reserved for the CPU NodePool',
    ),
    (
        "critical error ratio not above the warning ratio",
        lambda c: c[f"{NS}:observability"].update(thresholds={"errorRatioCritical": 0.05}),
        f"{NS}:observability.thresholds.errorRatioCritical = 0.05: must be above errorRatio (0.05)",
    ),
    (
        "critical GPU temperature not above the warning level",
        lambda c: c[f"{NS}:observability"].update(
            thresholds={"gpuTemperatureCelsius": 90, "gpuTemperatureCriticalCelsius": 88}
        ),
        f"{NS}:observability.thresholds.gpuTemperatureCriticalCelsius = 88: must be above "
        "gpuTemperatureCelsius (90)",
    ),
    (
        "GPU memory alert below what vLLM reserves",
        lambda c: c[f"{NS}:observability"].update(thresholds={"gpuMemoryRatio": 0.9}),
        f"{NS}:observability.thresholds.gpuMemoryRatio = 0.9: must be above the "
        f"gpuMemoryUtilization vLLM reserves ({FIRST}: 0.9, {SECOND}: 0.9)",
    ),
    (
        "unknown alert threshold (typo)",
        lambda c: c[f"{NS}:observability"].update(thresholds={"p99LatencySecond": 5}),
        f"{NS}:observability.thresholds.p99LatencySecond: unknown key; allowed keys here: "
        f"{_keys(AlertThresholds)}",
    ),
    (
        "memory request in a unit Kubernetes would misread",
        lambda c: c[f"{NS}:observability"].update(prometheusResources={"cpu": "1", "memory": "2G"}),
        f'{NS}:observability.prometheusResources.memory = "2G": string should match pattern '
        "'^\\d+(Mi|Gi)$'",
    ),
    (
        "model too large for the pool's GPUs",
        lambda c: _model(c, 1).update(parametersBillions=70.6, numLayers=80, numKvHeads=8),
        f"{NS}:models[1]: model {SECOND} needs 136.0 GiB per GPU at tensorParallelSize 1 (weights "
        "131.5 + KV cache for one 8192-token sequence 2.5 + overhead 2.0); the largest fit is "
        "g5.xlarge with 21.6 GiB usable per GPU at gpuMemoryUtilization 0.9: raise "
        "tensorParallelSize, quantize, lower maxModelLen or allow a larger GPU",
    ),
    (
        "time-slicing on Bottlerocket",
        lambda c: (
            c[f"{NS}:nodeClass"].update(amiFamily="bottlerocket", amiVersion="latest"),
            c.update({f"{NS}:gpuOperator": {"timeSlicingReplicas": 4}}),
        ),
        f"{NS}:gpuOperator.timeSlicingReplicas = 4: needs the GPU operator's device plugin, "
        "which Bottlerocket replaces with its own (set time-slicing in Bottlerocket settings, "
        "or use amiFamily al2023)",
    ),
    (
        "drain too short to finish a request",
        lambda c: c.setdefault(f"{NS}:serving", {}).update(drainSeconds=1),
        f"{NS}:serving.drainSeconds = 1: input should be greater than or equal to 5",
    ),
    (
        "model and cluster names too long for the model's IAM role",
        lambda c: (
            c[f"{NS}:cluster"].update(name="llm-platform-development-east1"),
            _model(c).update(name="chat-assistant-with-long-name1"),
        ),
        f'{NS}:models[0].name = "chat-assistant-with-long-name1": its IAM role '
        "llm-platform-development-east1-vllm-chat-assistant-with-long-name1 would have 66 "
        "characters; IAM allows 64 (shorten the model or cluster name)",
    ),
    (
        "no GPU pool",
        lambda c: c.update({f"{NS}:gpuPools": []}),
        f"{NS}:gpuPools = []: list should have at least 1 item after validation, not 0",
    ),
    # Rejected by the renderers' own models; run with the config, before any resource.
    (
        "repeated instance family",
        lambda c: _pool(c).update(instanceFamilies=["g6", "g6"]),
        f'{NS}:gpuPools[0].instanceFamilies = ["g6", "g6"]: repeats g6; list each once',
    ),
    (
        "disruption budget over 100%",
        lambda c: _pool(c).update(disruptionBudgetNodes="150%"),
        f'{NS}:gpuPools[0].disruptionBudgetNodes = "150%": a percentage of the pool\'s nodes, '
        "at most 100%",
    ),
    (
        "VPC too small for its subnets",
        lambda c: c[f"{NS}:network"].update(
            cidr="10.0.0.0/20", privateSubnetPrefix=19, publicSubnetPrefix=24
        ),
        f'{NS}:network.cidr = "10.0.0.0/20": subnet prefixes (/19, /24) must be longer than '
        "the VPC's /20",
    ),
    (
        "no room for the zones",
        lambda c: (
            c[f"{NS}:network"].update(
                cidr="10.0.0.0/18", privateSubnetPrefix=19, publicSubnetPrefix=24
            ),
            c.update({f"{NS}:zones": c[f"{NS}:zones"][:2]}),
        ),
        f'{NS}:network.cidr = "10.0.0.0/18": 10.0.0.0/18 has room for 1 zones with /19 '
        "private subnets plus the public block, not 2",
    ),
    (
        "serving in a platform namespace",
        lambda c: c.setdefault(f"{NS}:serving", {}).update(namespace="logging"),
        f'{NS}:serving.namespace = "logging": a platform namespace; use another (platform '
        "namespaces: karpenter, gpu-operator, monitoring, logging, keda, kubecost)",
    ),
    (
        "model memory below what loading needs",
        lambda c: (
            _model(c).update(tensorParallelSize=1, resources={"cpu": "2", "memory": "8Gi"}),
            c.setdefault(f"{NS}:serving", {}).update(streamerBufferGiB=4),
        ),
        f'{NS}:models[0].resources.memory = "8Gi": the server needs 12Gi while loading '
        "(streamer buffer 4GiB x 1 GPU(s) plus vLLM's processes and /dev/shm); raise it or "
        "lower serving.streamerBufferGiB",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "problem"), [(m, p) for _, m, p in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_config_is_rejected_before_any_resource(
    mutate: Callable[[Config], object], problem: str
) -> None:
    run = run_stack(SMALL, mutate)
    assert isinstance(run.error, ConfigError)
    assert run.error.problems == [problem]
    assert run.resources == []


def test_there_are_at_least_25_invalid_cases() -> None:
    assert len(INVALID) >= 25


def test_secret_in_clear_text_is_rejected_without_printing_it() -> None:
    key = f"{NS}:slackWebhookUrl"
    run = run_stack(
        SMALL,
        lambda c: c.update({key: "https://hooks.example/T0/B0/abc"}),
        clear_text=frozenset({key}),
    )
    assert isinstance(run.error, ConfigError)
    assert run.error.problems == [
        f"{key} is set in clear text: it must be a secret "
        f"(pulumi config set --secret {key} <value>)"
    ]
    assert "hooks.example" not in str(run.error)
    assert run.resources == []


def test_all_problems_are_reported_at_once() -> None:
    def two_errors(c: Config) -> None:
        _pool(c).update(gpuLimit=0)
        c[f"{NS}:network"].update(natGateways="two")

    run = run_stack(SMALL, two_errors)
    assert isinstance(run.error, ConfigError)
    assert len(run.error.problems) == 2
    assert str(run.error).startswith("invalid stack configuration (2 problems):\n  - ")


def test_missing_secret_names_the_command_to_set_it() -> None:
    raw = {
        k.removeprefix(f"{NS}:"): v
        for k, v in stack_config(SMALL).items()
        if k.startswith(f"{NS}:") and "Password" not in k
    }
    with pytest.raises(ConfigError) as exc:
        load_config(raw, stack=SMALL, region=CFG.region, secret_keys=frozenset(raw))
    assert exc.value.problems == [
        f"{NS}:grafanaAdminPassword: required secret is not set "
        f"(pulumi config set --secret {NS}:grafanaAdminPassword <value>)"
    ]


def test_fixture_stacks_load_with_documented_defaults(fixture_stack: str) -> None:
    raw = {
        k.removeprefix(f"{NS}:"): v
        for k, v in stack_config(fixture_stack).items()
        if k.startswith(f"{NS}:")
    }
    region = stack_config(fixture_stack)["aws:region"]
    cfg = load_config(raw, stack=fixture_stack, region=region, secret_keys=frozenset(raw))
    assert cfg.all_tags["environment"] == fixture_stack
    assert cfg.all_tags["project"] == "llm-platform"
    assert cfg.karpenter.version == "1.14.1"  # a default the stack files do not repeat
    assert cfg.slack_webhook_url is not None
    assert "offline-placeholder" not in repr(cfg)  # secrets never show in repr


def test_the_fixtures_cover_both_sides_of_what_environments_vary() -> None:
    """Component tests assert each side of these on a fixture that has it."""
    configs = [typed_config(s) for s in FIXTURE_STACKS]
    assert {len(c.zones) for c in configs} >= {2, 3}
    assert {c.network.nat_gateways for c in configs} == {"single", "perZone"}
    assert {c.cluster.endpoint_public_access for c in configs} == {True, False}
    assert {c.policy.spot_only for c in configs} == {True, False}
    assert {c.node_class.ami_version == "latest" for c in configs} == {True, False}
