"""Network: the VPC the cluster and its GPU nodes live in."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.network.config import ECR_ENDPOINT_SERVICES, NetworkConfig


@dataclass(frozen=True)
class SubnetPlan:
    """Address plan of one zone."""

    zone: str
    private_cidr: str
    public_cidr: str


def plan_subnets(
    cidr: ipaddress.IPv4Network,
    zones: tuple[str, ...],
    private_prefix: int,
    public_prefix: int,
    public_block: int | None = None,
) -> list[SubnetPlan]:
    """Carve one private and one public subnet per zone out of ``cidr``.

    ``cidr`` is cut into ``/private_prefix`` blocks. Private subnets (nodes and pods: the
    VPC CNI gives every pod a VPC IP) take the blocks in order, skipping block
    ``public_block`` (default: the number of zones, the first block after them), out of
    which the small public subnets (NAT gateways, internet-facing load balancers) are
    packed. With ``public_block`` fixed, adding a zone appends a private block and a
    public subnet and renumbers nothing; left to its default, the public block would
    move under the new zone's private subnet (``network.publicBlock``).
    """
    if private_prefix < cidr.prefixlen or public_prefix < cidr.prefixlen:
        raise ValueError(
            f"subnet prefixes (/{private_prefix}, /{public_prefix}) must be longer than the "
            f"VPC's /{cidr.prefixlen}"
        )
    blocks = list(cidr.subnets(new_prefix=private_prefix))
    spare_index = len(zones) if public_block is None else public_block
    if len(zones) + 1 > len(blocks):
        raise ValueError(
            f"{cidr} has room for {len(blocks) - 1} zones with /{private_prefix} private "
            f"subnets plus the public block, not {len(zones)}"
        )
    if spare_index >= len(blocks):
        raise ValueError(
            f"public block {spare_index} is outside {cidr}'s {len(blocks)} "
            f"/{private_prefix} blocks (0-{len(blocks) - 1})"
        )
    private = [b for i, b in enumerate(blocks) if i != spare_index]
    public = list(blocks[spare_index].subnets(new_prefix=max(public_prefix, private_prefix)))
    if len(public) < len(zones):
        raise ValueError(f"/{public_prefix} public subnets do not fit {len(zones)} zones")
    return [
        SubnetPlan(zone=zone, private_cidr=str(private[i]), public_cidr=str(public[i]))
        for i, zone in enumerate(zones)
    ]


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of :class:`Network`."""

    config: NetworkConfig
    region: str
    zones: tuple[str, ...]
    cluster_name: str
    """Value of the ``karpenter.sh/discovery`` tag on private subnets."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Cost tags for every resource."""

    def __post_init__(self) -> None:
        # Fails here, before any resource, when the address plan does not fit.
        plan_subnets(
            self.config.cidr,
            self.zones,
            self.config.private_subnet_prefix,
            self.config.public_subnet_prefix,
            self.config.public_block,
        )


class Network(pulumi.ComponentResource):
    """VPC with public and private subnets in each zone, NAT and an S3 gateway endpoint."""

    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    public_subnet_ids: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:network:Network", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        def tags(resource_name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
            return {**args.tags, "Name": resource_name, **(extra or {})}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(cfg.cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(f"{args.cluster_name}-vpc"),
            opts=child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=tags(f"{args.cluster_name}-igw"), opts=child
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=tags(f"{args.cluster_name}-public"),
            opts=child,
        )

        plans = plan_subnets(
            cfg.cidr,
            args.zones,
            cfg.private_subnet_prefix,
            cfg.public_subnet_prefix,
            cfg.public_block,
        )
        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        nat_ids: list[pulumi.Output[str]] = []
        for plan in plans:
            suffix = plan.zone[-1]
            public = aws.ec2.Subnet(
                f"{name}-public-{suffix}",
                vpc_id=vpc.id,
                cidr_block=plan.public_cidr,
                availability_zone=plan.zone,
                map_public_ip_on_launch=False,
                tags=tags(f"{args.cluster_name}-public-{suffix}", {"kubernetes.io/role/elb": "1"}),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{suffix}",
                subnet_id=public.id,
                route_table_id=public_rt.id,
                opts=child,
            )
            public_subnets.append(public)
            private_subnets.append(
                aws.ec2.Subnet(
                    f"{name}-private-{suffix}",
                    vpc_id=vpc.id,
                    cidr_block=plan.private_cidr,
                    availability_zone=plan.zone,
                    tags=tags(
                        f"{name}-private-{suffix}",
                        {
                            "kubernetes.io/role/internal-elb": "1",
                            "karpenter.sh/discovery": args.cluster_name,
                        },
                    ),
                    opts=child,
                )
            )
            if cfg.nat_gateways == "perZone" or not nat_ids:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{suffix}",
                    domain="vpc",
                    tags=tags(f"{args.cluster_name}-nat-{suffix}"),
                    opts=child,
                )
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{suffix}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags=tags(f"{args.cluster_name}-nat-{suffix}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)

        private_rts = []
        for i, (plan, subnet) in enumerate(zip(plans, private_subnets, strict=True)):
            suffix = plan.zone[-1]
            # A private route table per zone keeps traffic on its zone's NAT (no cross-AZ
            # data charges, no shared failure) when NAT is per zone.
            rt = aws.ec2.RouteTable(
                f"{name}-private-{suffix}",
                vpc_id=vpc.id,
                routes=[
                    aws.ec2.RouteTableRouteArgs(
                        cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[min(i, len(nat_ids) - 1)]
                    )
                ],
                tags=tags(f"{args.cluster_name}-private-{suffix}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{suffix}", subnet_id=subnet.id, route_table_id=rt.id, opts=child
            )
            private_rts.append(rt)

        # Model weights are pulled from S3 by every new replica: a gateway endpoint keeps
        # that traffic off the NAT gateways (no per-GB NAT processing charge).
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags=tags(f"{args.cluster_name}-s3"),
            opts=child,
        )

        if cfg.ecr_endpoints:
            self._ecr_endpoints(name, args, vpc, private_subnets, tags(f"{args.cluster_name}-ecr"))

        self.vpc_id = vpc.id
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
            }
        )

    def _ecr_endpoints(
        self,
        name: str,
        args: NetworkArgs,
        vpc: aws.ec2.Vpc,
        subnets: list[aws.ec2.Subnet],
        tags: dict[str, str],
    ) -> None:
        """ECR API and registry endpoints with private DNS: nodes resolve the registry to
        addresses in their own subnets (HTTPS from the VPC only)."""
        child = pulumi.ResourceOptions(parent=self)
        group = aws.ec2.SecurityGroup(
            f"{name}-ecr-endpoints",
            vpc_id=vpc.id,
            description="HTTPS from the VPC to the ECR interface endpoints",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_blocks=[str(args.config.cidr)],
                    description="HTTPS from the VPC",
                )
            ],
            tags=tags,
            opts=child,
        )
        for service in ECR_ENDPOINT_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}",
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[s.id for s in subnets],
                security_group_ids=[group.id],
                tags={**tags, "Name": f"{args.cluster_name}-{service}"},
                opts=child,
            )
