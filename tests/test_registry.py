"""Images from a registry the platform controls: image references, the ECR pull-through
cache for Docker Hub, the node role's right to fill it, the VPC's ECR endpoints, and the
serving image the pods actually pull."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.core.arns import Arns
from infra.core.images import image_digest, parse_image, through_cache
from infra.core.schema import ConfigError
from infra.registry.component import cache_prefix, node_pull_policy, registry_host
from infra.stack.registry import serving_image
from tests.harness import find, find_all, run_stack, typed_config
from tools.mock_runtime import Recorded

DIGEST = "sha256:" + "ab" * 32
ARNS = Arns(account_id="111122223333", region="us-west-2")


def test_image_references_parse_as_docker_does() -> None:
    assert parse_image("vllm/vllm-openai:v0.33.0").registry == "docker.io"
    assert parse_image("busybox:1").repository == "library/busybox"
    ref = parse_image(f"public.ecr.aws/karpenter/controller:1.14.1@{DIGEST}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "public.ecr.aws",
        "karpenter/controller",
        "1.14.1",
        DIGEST,
    )
    assert image_digest("vllm/vllm-openai:v0.33.0") is None
    with pytest.raises(ValueError, match=r"digest must be sha256:<64 hex digits>"):
        parse_image("vllm/vllm-openai:v1@sha256:abc")


def test_docker_hub_images_go_through_the_cache_with_tag_and_digest() -> None:
    host = registry_host(ARNS)
    assert host == "111122223333.dkr.ecr.us-west-2.amazonaws.com"
    assert (
        through_cache(f"vllm/vllm-openai:v0.33.0@{DIGEST}", host, "c-docker-hub")
        == f"{host}/c-docker-hub/vllm/vllm-openai:v0.33.0@{DIGEST}"
    )
    # Official images keep Docker Hub's library/ namespace (ECR pull-through cache docs).
    assert through_cache("busybox:1", host, "p") == f"{host}/p/library/busybox:1"
    other = "quay.io/prometheus/prometheus:v3.0.0"
    assert through_cache(other, host, "p") == other


def test_nodes_may_fill_only_the_stacks_cache_repositories() -> None:
    (statement,) = json.loads(node_pull_policy(ARNS, "c-docker-hub"))["Statement"]
    assert sorted(statement["Action"]) == ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
    assert statement["Resource"] == ["arn:aws:ecr:us-west-2:111122223333:repository/c-docker-hub/*"]


def test_fixture_stacks_cache_docker_hub_with_prefixed_credentials(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    assert cfg.registry.pull_through_cache
    rule = find(
        fixture_resources,
        "aws:ecr/pullThroughCacheRule:PullThroughCacheRule",
        "registry-docker-hub",
    ).inputs
    assert rule["upstreamRegistryUrl"] == "registry-1.docker.io"
    assert rule["ecrRepositoryPrefix"] == cache_prefix(cfg.cluster.name)
    assert 2 <= len(rule["ecrRepositoryPrefix"]) <= 30
    secret = find(fixture_resources, "aws:secretsmanager/secret:Secret", "registry-docker-hub")
    assert secret.inputs["name"].startswith("ecr-pullthroughcache/")
    # The secret version (same resource name) exists before the first pull reads it.
    assert (
        "registry-docker-hub"
        in find(
            fixture_resources,
            "aws:ecr/pullThroughCacheRule:PullThroughCacheRule",
            "registry-docker-hub",
        ).depends_on
    )
    version = find(
        fixture_resources, "aws:secretsmanager/secretVersion:SecretVersion", "registry-docker-hub"
    )
    value = version.inputs["secretString"]
    assert json.loads(value.value) == {
        "accessToken": "offline-placeholder-llm-platform-dockerHubAccessToken",
        "username": "offline-placeholder-llm-platform-dockerHubUsername",
    }
    node_pull = find(fixture_resources, "aws:iam/rolePolicy:RolePolicy", "registry-node-pull")
    policy = node_pull.inputs
    assert policy["role"] == f"{cfg.cluster.name}-karpenter-node"
    # Created after the role: IAM answers NoSuchEntity for a policy of a missing role.
    assert "karpenter-node" in node_pull.depends_on
    # The system nodes pull Grafana through the cache too.
    system = find(fixture_resources, "aws:iam/rolePolicy:RolePolicy", "registry-system-node-pull")
    assert system.inputs["policy"] == policy["policy"]
    assert "llm-system-node" in system.depends_on


def test_model_pods_pull_the_serving_image_through_the_cache(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    image = serving_image(cfg)
    assert image.startswith(f"{registry_host(cfg.arns)}/{cache_prefix(cfg.cluster.name)}/")
    assert parse_image(image).tag == parse_image(cfg.serving.vllm_image).tag
    for d in find_all(fixture_resources, "kubernetes:apps/v1:Deployment"):
        spec = d.inputs["spec"]["template"]["spec"]
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            if "vllm" in c["image"]:
                assert c["image"] == image, d.name


def test_ecr_interface_endpoints_in_the_private_subnets(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    endpoints = {
        r.inputs["serviceName"]: r.inputs
        for r in find_all(fixture_resources, "aws:ec2/vpcEndpoint:VpcEndpoint")
        if r.inputs["vpcEndpointType"] == "Interface"
    }
    assert sorted(endpoints) == [f"com.amazonaws.{cfg.region}.ecr.{s}" for s in ("api", "dkr")]
    for endpoint in endpoints.values():
        assert endpoint["privateDnsEnabled"] is True
        assert sorted(endpoint["subnetIds"]) == sorted(
            f"network-private-{z[-1]}-id" for z in cfg.zones
        )
    group = find(fixture_resources, "aws:ec2/securityGroup:SecurityGroup", "network-ecr-endpoints")
    (rule,) = group.inputs["ingress"]
    assert (rule["fromPort"], rule["toPort"], rule["cidrBlocks"]) == (
        443,
        443,
        [str(cfg.network.cidr)],
    )


def _without(*keys: str) -> Any:
    def mutate(config: dict[str, Any]) -> None:
        for key in keys:
            config.pop(f"llm-platform:{key}", None)

    return mutate


def test_the_cache_needs_its_docker_hub_secrets() -> None:
    stack = "small"
    run = run_stack(stack, _without("dockerHubAccessToken"))
    assert isinstance(run.error, ConfigError)
    assert run.error.problems == [
        "llm-platform:dockerHubAccessToken: required secret is not set "
        "(pulumi config set --secret llm-platform:dockerHubAccessToken <value>)"
    ]
    assert not run.resources


def test_without_the_cache_images_come_from_docker_hub() -> None:
    def off(config: dict[str, Any]) -> None:
        config["llm-platform:registry"] = {"pullThroughCache": False}

    run = run_stack("small", off)
    assert run.error is None
    assert not find_all(run.resources, "aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    images = {
        c["image"]
        for d in find_all(run.resources, "kubernetes:apps/v1:Deployment")
        for c in d.inputs["spec"]["template"]["spec"]["containers"]
        if "vllm" in c["image"]
    }
    assert images == {typed_config("small").serving.vllm_image}


def test_grafana_the_only_docker_hub_chart_image_comes_through_the_cache(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cfg = typed_config(fixture_stack)
    release = find(
        fixture_resources, "kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack"
    )
    image = release.inputs["values"]["grafana"]["image"]
    assert image == {
        "registry": registry_host(cfg.arns),
        "repository": f"{cache_prefix(cfg.cluster.name)}/grafana/grafana",
    }


def test_every_workload_on_the_cached_image_waits_for_the_cache(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    """The cache rule and the nodes' permission to fill it exist before the first pull
    (else the kubelet backs off for minutes inside `pulumi up`'s rollout wait)."""
    cfg = typed_config(fixture_stack)
    assert cfg.registry.pull_through_cache
    pulling = [
        r
        for kind in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:DaemonSet")
        for r in find_all(fixture_resources, kind)
        if r.inputs["metadata"].get("namespace") == cfg.serving.namespace
    ]
    assert len(pulling) > len(cfg.enabled_models)  # models, the pre-pull DaemonSet, ...
    # Grafana (the system nodes) pulls through the cache as soon as its release installs.
    pulling.append(
        find(fixture_resources, "kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")
    )
    for r in pulling:
        assert "registry-docker-hub" in r.depends_on, (r.name, r.depends_on)
        assert "registry-system-node-pull" in r.depends_on, (r.name, r.depends_on)


def test_a_pinned_image_is_pre_pulled_by_tag_to_fill_the_cache() -> None:
    """ECR's pull-through cache does not fetch an uncached digest, even with the tag
    beside it (aws/containers-roadmap#2837): the pre-pull DaemonSet pulls by tag, which
    caches the tag's digest; the replicas keep the tag and the digest."""

    def pinned(config: dict[str, Any]) -> None:
        serving = config.setdefault("llm-platform:serving", {})
        serving["vllmImage"] = f"vllm/vllm-openai:v0.33.0@{DIGEST}"

    run = run_stack("small", pinned)
    assert run.error is None
    cfg = typed_config("small")
    host, prefix = registry_host(cfg.arns), cache_prefix(cfg.cluster.name)
    pinned_ref = f"{host}/{prefix}/vllm/vllm-openai:v0.33.0@{DIGEST}"
    (pre_pull,) = [
        d
        for d in find_all(run.resources, "kubernetes:apps/v1:DaemonSet")
        if d.inputs["metadata"]["name"] == "image-pre-pull"
    ]
    (pull,) = pre_pull.inputs["spec"]["template"]["spec"]["initContainers"]
    assert pull["image"] == f"{host}/{prefix}/vllm/vllm-openai:v0.33.0"
    servers = [
        c["image"]
        for d in find_all(run.resources, "kubernetes:apps/v1:Deployment")
        for c in d.inputs["spec"]["template"]["spec"]["containers"]
        if "vllm" in c["image"]
    ]
    assert servers and set(servers) == {pinned_ref}
