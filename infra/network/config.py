"""The ``network`` section: VPC layout."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final, Literal

from pydantic import Field

from infra.core.schema import Section

ECR_ENDPOINT_SERVICES: Final = ("ecr.api", "ecr.dkr")
"""Interface endpoints ``network.ecrEndpoints`` creates, one ENI per private subnet. Both
are needed to pull from ECR privately: the API (auth token, pull-through imports) and the
registry (manifests; layers are then fetched from S3)."""


class NetworkConfig(Section):
    """VPC layout. Subnets are carved from ``cidr`` per zone (see ``infra.network.component``)."""

    cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/16")
    """VPC CIDR block (default ``10.0.0.0/16``)."""
    nat_gateways: Literal["single", "perZone"] = "perZone"
    """``perZone`` survives a zone outage; ``single`` saves ~USD 33/month per zone (dev)."""
    private_subnet_prefix: Annotated[int, Field(ge=16, le=24)] = 19
    """Prefix length of each private (node/pod) subnet: /19 = 8,190 pod IPs (default 19)."""
    public_subnet_prefix: Annotated[int, Field(ge=20, le=28)] = 24
    """Prefix length of each public (load balancer/NAT) subnet (default 24)."""
    public_block: Annotated[int, Field(ge=0)] | None = None
    """Which ``/privateSubnetPrefix`` block of ``cidr`` (0 = the first) the public subnets
    are cut from; the private subnets take the others in order. Default: the block after
    the zones' private subnets, so it moves when a zone is added. Before adding a zone to
    a deployed stack, set it to the current number of zones: every subnet keeps its CIDR
    and the new zone gets the next free blocks."""
    ecr_endpoints: bool = True
    """Interface endpoints for ECR (``ecr.api``, ``ecr.dkr``) in the private subnets, so
    image pulls (the pull-through cache included) stay off the NAT gateways; layers come
    from S3 through the gateway endpoint. About USD 7.30 per endpoint and zone a month
    plus USD 0.01/GB (default true)."""
