"""Network: subnet plan (pure) and the VPC component as each fixture stack renders it."""

from __future__ import annotations

import ipaddress

import pytest

from infra.network.component import plan_subnets
from tests.harness import FIXTURE_STACKS, find, find_all, typed_config
from tools.mock_runtime import Recorded


def _zones(stack: str) -> list[str]:
    return sorted(typed_config(stack).zones)


def _nat_count(stack: str) -> int:
    cfg = typed_config(stack)
    return 1 if cfg.network.nat_gateways == "single" else len(cfg.zones)


def test_plan_subnets_gives_each_zone_disjoint_private_and_public_blocks() -> None:
    plans = plan_subnets(ipaddress.IPv4Network("10.40.0.0/16"), ("a1", "b1", "c1"), 19, 24)
    assert [(p.zone, p.private_cidr, p.public_cidr) for p in plans] == [
        ("a1", "10.40.0.0/19", "10.40.96.0/24"),
        ("b1", "10.40.32.0/19", "10.40.97.0/24"),
        ("c1", "10.40.64.0/19", "10.40.98.0/24"),
    ]
    blocks = [ipaddress.IPv4Network(c) for p in plans for c in (p.private_cidr, p.public_cidr)]
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])


def test_adding_a_zone_with_the_public_block_kept_renumbers_nothing() -> None:
    """The default puts the public block after the zones' private blocks, where a new
    zone's private subnet would go; network.publicBlock set to the old zone count keeps
    every subnet and gives the new zone free blocks."""
    cidr = ipaddress.IPv4Network("10.0.0.0/16")
    two = plan_subnets(cidr, ("a", "b"), 19, 24)
    assert two == plan_subnets(cidr, ("a", "b"), 19, 24, public_block=2)  # the default
    three = plan_subnets(cidr, ("a", "b", "c"), 19, 24, public_block=2)
    assert three[:2] == two
    blocks = [ipaddress.IPv4Network(c) for p in three for c in (p.private_cidr, p.public_cidr)]
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    # Without it, the new private subnet lands on the old public subnets.
    moved = plan_subnets(cidr, ("a", "b", "c"), 19, 24)
    assert ipaddress.IPv4Network(moved[2].private_cidr).overlaps(
        ipaddress.IPv4Network(two[0].public_cidr)
    )


def test_a_public_block_outside_the_vpc_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"^public block 8 is outside 10\.0\.0\.0/16's 8 /19"):
        plan_subnets(ipaddress.IPv4Network("10.0.0.0/16"), ("a", "b"), 19, 24, public_block=8)


def test_plan_subnets_rejects_a_vpc_too_small_for_the_zones() -> None:
    with pytest.raises(
        ValueError,
        match=r"^10\.0\.0\.0/18 has room for 1 zones with /19 "
        r"private subnets plus the public block, not 2$",
    ):
        plan_subnets(ipaddress.IPv4Network("10.0.0.0/18"), ("a", "b"), 19, 24)


def _subnets(resources: tuple[Recorded, ...], kind: str) -> list[Recorded]:
    return [r for r in find_all(resources, "aws:ec2/subnet:Subnet") if f"-{kind}-" in r.name]


def test_one_private_and_one_public_subnet_per_zone(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    for kind in ("private", "public"):
        assert sorted(
            s.inputs["availabilityZone"] for s in _subnets(fixture_resources, kind)
        ) == _zones(fixture_stack)


def test_subnet_tags_for_karpenter_and_load_balancers(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    cluster = typed_config(fixture_stack).cluster.name
    for subnet in _subnets(fixture_resources, "private"):
        assert subnet.inputs["tags"]["karpenter.sh/discovery"] == cluster
        assert subnet.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in subnet.inputs["tags"]
    for subnet in _subnets(fixture_resources, "public"):
        assert subnet.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        assert "karpenter.sh/discovery" not in subnet.inputs["tags"]
        assert subnet.inputs["mapPublicIpOnLaunch"] is False


def test_nat_gateways_follow_config(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    nats = find_all(fixture_resources, "aws:ec2/natGateway:NatGateway")
    assert len(nats) == _nat_count(fixture_stack)
    # Each private route table sends default traffic to a NAT: its own zone's with
    # natGateways perZone, the first zone's with single.
    private_rts = [
        r
        for r in find_all(fixture_resources, "aws:ec2/routeTable:RouteTable")
        if "-private-" in r.name
    ]
    targets = {rt.name[-1]: rt.inputs["routes"][0]["natGatewayId"] for rt in private_rts}
    suffixes = [z[-1] for z in typed_config(fixture_stack).zones]
    assert sorted(targets) == sorted(suffixes)
    if typed_config(fixture_stack).network.nat_gateways == "perZone":
        assert targets == {z: f"network-nat-{z}-id" for z in suffixes}
    else:
        assert set(targets.values()) == {f"network-nat-{suffixes[0]}-id"}


def test_the_fixtures_cover_both_nat_modes() -> None:
    modes = {typed_config(s).network.nat_gateways for s in FIXTURE_STACKS}
    assert modes == {"single", "perZone"}


def test_s3_gateway_endpoint_serves_private_route_tables(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    endpoint = find(fixture_resources, "aws:ec2/vpcEndpoint:VpcEndpoint", "network-s3")
    region = typed_config(fixture_stack).region
    assert endpoint.inputs["serviceName"] == f"com.amazonaws.{region}.s3"
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    assert sorted(endpoint.inputs["routeTableIds"]) == sorted(
        f"network-private-{z[-1]}-id" for z in typed_config(fixture_stack).zones
    )


def test_every_network_resource_carries_cost_tags(
    fixture_stack: str, fixture_resources: tuple[Recorded, ...]
) -> None:
    network = [
        r
        for r in fixture_resources
        if r.parent_type == "llm-platform:network:Network" and r.type.startswith("aws:ec2/")
    ]
    tagged = [r for r in network if "Association" not in r.type]
    assert tagged
    for r in tagged:
        tags = r.inputs["tags"]
        assert tags["environment"] == fixture_stack, r.name
        assert tags["cost-center"] == typed_config(fixture_stack).tags["cost-center"], r.name
        assert tags["owner"] and tags["project"] == "llm-platform", r.name
