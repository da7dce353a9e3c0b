"""llm-platform: compose the GPU LLM-serving platform of one stack.

This is the only module that reads Pulumi config. It validates the whole
``llm-platform:`` namespace first (nothing is registered when the config is wrong),
then hands typed sections to the components.
"""

from __future__ import annotations

import pulumi
import pulumi.runtime
from pulumi.runtime import config as runtime_config

from infra.budgets import AwsBudgets, AwsBudgetsArgs, Budget
from infra.cluster import Cluster, ClusterArgs
from infra.config import PlatformConfig, load_stack_config
from infra.gpu_node_pools import GpuNodePools, GpuNodePoolsArgs
from infra.karpenter import Karpenter, KarpenterArgs
from infra.kubecost import Kubecost, KubecostArgs
from infra.logging import Logging, LoggingArgs
from infra.network import Network, NetworkArgs


def read_stack_config() -> PlatformConfig:
    """Collect the stack's config as the Pulumi CLI passed it and validate it."""
    values = {**pulumi.runtime.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(pulumi.runtime.get_config_secret_keys_env())
    secret_keys |= {k for k in values if pulumi.runtime.is_config_secret(k)}
    return load_stack_config(values, stack=pulumi.get_stack(), secret_keys=secret_keys)


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

k8s_opts = pulumi.ResourceOptions(provider=cluster.provider)
karpenter = Karpenter(
    "karpenter",
    KarpenterArgs(
        config=cfg.karpenter,
        cluster_name=cluster.name,
        region=cfg.region,
        cluster_ready=[cluster],
        tags=tags,
    ),
    opts=k8s_opts,
)
node_pools = GpuNodePools(
    "karpenter",
    GpuNodePoolsArgs(
        cluster_name=cluster.name,
        node_role=karpenter.node_role_name,
        zones=cfg.zones,
        node_class=cfg.node_class,
        gpu_pools=cfg.gpu_pools,
        cpu_pool=cfg.cpu_pool,
        tags=tags,
        depends_on=[karpenter.crd_release, karpenter.release],
    ),
    opts=k8s_opts,
)

pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("clusterName", cluster.name)
pulumi.export("clusterEndpoint", cluster.endpoint)

budgets = AwsBudgets(
    "cost",
    AwsBudgetsArgs(
        budgets=tuple(Budget.from_config(b) for b in cfg.cost.budgets),
        stack=cfg.stack,
        tags=tags,
        activate_cost_allocation_tag=cfg.cost.activate_cost_allocation_tag,
    ),
)

kubecost = Kubecost(
    "kubecost",
    KubecostArgs(config=cfg.cost, cluster_name=cfg.cluster.name, region=cfg.region),
    opts=pulumi.ResourceOptions(provider=cluster.provider),
)

pulumi.export("budgetAlertTopicArn", budgets.topic_arn)
pulumi.export("logGroups", logs.log_group_names)
pulumi.export("karpenterInterruptionQueue", karpenter.queue_name)
pulumi.export("karpenterNodeRoleArn", karpenter.node_role_arn)
pulumi.export("nodePools", node_pools.node_pool_names)
