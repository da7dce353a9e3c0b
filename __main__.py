"""llm-platform: compose the GPU LLM-serving platform of one stack.

This is the only module that reads Pulumi config. It validates the whole
``llm-platform:`` namespace first (nothing is registered when the config is wrong),
then hands typed sections to the components.
"""

from __future__ import annotations

import pulumi
import pulumi.runtime
from pulumi.runtime import config as runtime_config

from infra.cluster import Cluster, ClusterArgs
from infra.config import NAMESPACE, PlatformConfig, load_config
from infra.logging import Logging, LoggingArgs
from infra.network import Network, NetworkArgs


def read_stack_config() -> PlatformConfig:
    """Collect every ``llm-platform:`` key of the stack and validate it."""
    prefix = f"{NAMESPACE}:"
    values = {**pulumi.runtime.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(pulumi.runtime.get_config_secret_keys_env())
    raw = {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)}
    secret_keys = frozenset(
        k
        for k in raw
        if f"{prefix}{k}" in secret or pulumi.runtime.is_config_secret(f"{prefix}{k}")
    )
    return load_config(
        raw,
        stack=pulumi.get_stack(),
        region=pulumi.Config("aws").require("region"),
        secret_keys=secret_keys,
    )


cfg = read_stack_config()
tags = cfg.all_tags

network = Network(
    "llm",
    NetworkArgs(
        config=cfg.network,
        region=cfg.region,
        zones=cfg.zones,
        cluster_name=cfg.cluster.name,
        tags=tags,
    ),
)

cluster = Cluster(
    "llm",
    ClusterArgs(
        config=cfg.cluster,
        region=cfg.region,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        tags=tags,
    ),
)

logs = Logging(
    "llm",
    LoggingArgs(
        config=cfg.logging,
        cluster_name=cluster.name,
        region=cfg.region,
        serving_namespace=cfg.serving.namespace,
        tags=tags,
        cluster_dependencies=[cluster.eks],
    ),
    opts=pulumi.ResourceOptions(provider=cluster.provider),
)

pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("clusterName", cluster.name)
pulumi.export("clusterEndpoint", cluster.endpoint)
pulumi.export("logGroups", logs.log_group_names)
