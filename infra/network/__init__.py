"""VPC, subnets and NAT gateways."""
