"""llm-platform: compose the GPU LLM-serving platform of one stack.

This is the only module that reads Pulumi config. It validates the whole
``llm-platform:`` namespace first (nothing is registered when the config is wrong),
then hands typed sections to the components.
"""

from __future__ import annotations

import json

import pulumi
import pulumi.runtime
import pulumi_aws as aws
from pydantic import SecretStr

from infra.ci.runner import CiRunner, CiRunnerArgs
from infra.ci.runner import log_group_name as ci_runner_log_group
from infra.cluster.component import Cluster, ClusterArgs
from infra.core.aliases import renamed_from
from infra.core.arns import same_principal
from infra.core.schema import NAMESPACE, ConfigError
from infra.cost.budgets import AwsBudgets, AwsBudgetsArgs, Budget
from infra.cost.kubecost import Kubecost, KubecostArgs
from infra.gpu_operator.component import GpuOperator, GpuOperatorArgs
from infra.karpenter.controller import Karpenter, KarpenterArgs
from infra.karpenter.node_pools import NodePools, NodePoolsArgs
from infra.log_shipping.component import LogGroups, LogGroupsArgs, LogShipping, LogShippingArgs
from infra.network.component import Network, NetworkArgs
from infra.observability.component import Monitoring, MonitoringArgs
from infra.registry.component import RegistryCache, RegistryCacheArgs, docker_hub_mirror
from infra.stack.checks import stack_warnings
from infra.stack.cold_start import model_startup, required_instance_types
from infra.stack.config import PlatformConfig, load_stack_config
from infra.stack.registry import deployed_serving
from infra.stack.warm_capacity import warm_slots
from workloads.gateway.component import Gateway, GatewayArgs
from workloads.gateway.litellm import model_server_sources
from workloads.serving.keda import Keda, KedaArgs
from workloads.serving.model_bucket import ModelBucket, ModelBucketArgs
from workloads.serving.namespace import ServingNamespace, ServingNamespaceArgs
from workloads.serving.pre_pull import ImagePrePull, ImagePrePullArgs
from workloads.serving.vllm import PORT as MODEL_PORT
from workloads.serving.vllm import VllmModel, VllmModelArgs
from workloads.serving.warm_capacity import WarmCapacity, WarmCapacityArgs


def read_stack_config() -> PlatformConfig:
    """Collect the stack's config as the Pulumi CLI passed it and validate it.

    The language host hands the program every config value and the secret keys in
    ``PULUMI_CONFIG`` / ``PULUMI_CONFIG_SECRET_KEYS`` (pulumi/pulumi,
    sdk/python/cmd/pulumi-language-python/main.go: pulumiConfigVar), which these public
    functions read; all keys are needed to reject unknown ones."""
    values = pulumi.runtime.get_config_env()
    secret_keys = set(pulumi.runtime.get_config_secret_keys_env())
    return load_stack_config(values, stack=pulumi.get_stack(), secret_keys=secret_keys)


def check_caller(cfg: PlatformConfig) -> None:
    """Refuse credentials that would deploy the stack wrongly, before any resource: of
    another account; of anyone but the deploy role when the cluster does not exist yet
    (its creator gets EKS's admin entry, pulumi-eks#2373); of anyone but the deploy role
    or an admin otherwise (previews: also the preview role)."""
    caller = aws.get_caller_identity()
    if caller.account_id != cfg.account_id:
        raise ConfigError(
            [
                f"{NAMESPACE}:accountId = {json.dumps(cfg.account_id)}: the credentials "
                f"running this update ({caller.arn}) belong to account {caller.account_id}; "
                "use the stack's account"
            ]
        )
    if same_principal(caller.arn, cfg.ci.deploy_role_arn):
        return
    if pulumi.runtime.is_dry_run():
        allowed = [*cfg.cluster.admins, cfg.ci.preview_role_arn]
        why = "neither ci.deployRoleArn, ci.previewRoleArn nor in cluster.admins"
    elif not cluster_exists(cfg.cluster.name):
        # Whoever creates the cluster gets EKS's creator entry; an admin would then
        # collide with its own entry, and the deploy role would get none.
        allowed = []
        why = f"not ci.deployRoleArn, and cluster {cfg.cluster.name} does not exist yet"
    else:
        allowed = list(cfg.cluster.admins)
        why = "neither ci.deployRoleArn nor in cluster.admins"
    if not any(same_principal(caller.arn, arn) for arn in allowed):
        raise ConfigError(
            [
                f"{NAMESPACE}:ci.deployRoleArn = {json.dumps(cfg.ci.deploy_role_arn)}: the "
                f"credentials running this update ({caller.arn}) are {why}. Its creator "
                "becomes the cluster's admin through EKS, so only the deploy role may create "
                "it (the bootstrap workflow), and only it or an admin may update it"
            ]
        )


def cluster_exists(name: str) -> bool:
    """Whether the EKS cluster exists (a failed look-up counts as no: refuse, not guess)."""
    try:
        aws.eks.get_cluster(name=name)
    except Exception:  # the provider reports a missing cluster as a failed invoke
        return False
    return True


def secret(value: SecretStr | None) -> pulumi.Output[str]:
    """A required secret of the config as a Pulumi secret (never a plain string)."""
    if value is None:  # load_config rejects a stack without its required secrets
        raise pulumi.RunError("a required secret is missing from the stack config")
    return pulumi.Output.secret(value.get_secret_value())


cfg = read_stack_config()
check_caller(cfg)
for warning in stack_warnings(cfg):
    pulumi.log.warn(warning)
tags = cfg.all_tags

network = Network(
    "network",
    NetworkArgs(
        config=cfg.network,
        region=cfg.region,
        zones=cfg.zones,
        cluster_name=cfg.cluster.name,
        tags=tags,
    ),
    opts=renamed_from("llm", "network"),
)

log_groups = LogGroups(
    "log-groups",
    LogGroupsArgs(
        config=cfg.logging,
        cluster_name=cfg.cluster.name,
        serving_namespace=cfg.serving.namespace,
        arns=cfg.arns,
        other_groups=(
            {"ci-runner": ci_runner_log_group(cfg.cluster.name)}
            if cfg.ci.runner == "codebuild"
            else {}
        ),
        tags=tags,
    ),
    opts=renamed_from("llm", "log-groups"),
)

cluster = Cluster(
    "llm",
    ClusterArgs(
        config=cfg.cluster,
        region=cfg.region,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        viewers=(cfg.ci.preview_role_arn,),
        control_plane_log_group=log_groups.control_plane,
        tags=tags,
    ),
)

if cfg.ci.runner == "codebuild":
    CiRunner(
        "ci",
        CiRunnerArgs(
            config=cfg.ci,
            cluster_name=cfg.cluster.name,
            arns=cfg.arns,
            vpc_id=network.vpc_id,
            private_subnet_ids=network.private_subnet_ids,
            cluster_security_group_id=cluster.security_group_id,
            log_group=log_groups.others["ci-runner"].name,
            tags=tags,
        ),
    )

# Before Monitoring: Grafana is the cache's first user. Karpenter's node role (made
# after Monitoring, whose CRDs Karpenter needs) gets its right below.
registry = (
    RegistryCache(
        "registry",
        RegistryCacheArgs(
            cluster_name=cfg.cluster.name,
            arns=cfg.arns,
            node_roles={
                "system-node-pull": cluster.system_node_role_arn.apply(
                    lambda arn: arn.rsplit("/", 1)[-1]
                ),
            },
            docker_hub_username=secret(cfg.docker_hub_username),
            docker_hub_access_token=secret(cfg.docker_hub_access_token),
            tags=tags,
        ),
    )
    if cfg.registry.pull_through_cache
    else None
)

monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        config=cfg.observability,
        cluster_name=cluster.name,
        environment=cfg.stack,
        alerts=cfg.alert_inputs,
        daily_budget_usd=Budget.from_config(cfg.cost.cluster_budget).daily_share_usd,
        gateway_namespace=cfg.gateway.namespace,
        grafana_admin_password=secret(cfg.grafana_admin_password),
        slack_webhook_url=secret(cfg.slack_webhook_url),
        pagerduty_routing_key=secret(cfg.pagerduty_routing_key),
        volume_tags=tags,
        docker_hub_mirror=(
            docker_hub_mirror(cfg.arns, cfg.cluster.name)
            if cfg.registry.pull_through_cache
            else None
        ),
        image_cache=registry,
    ),
    opts=pulumi.ResourceOptions(provider=cluster.provider),
)

logs = LogShipping(
    "log-shipping",
    LogShippingArgs(
        cluster=cluster.ref,
        region=cfg.region,
        serving_namespace=cfg.serving.namespace,
        log_groups=log_groups,
        tags=tags,
        monitoring_crds=monitoring.crd_release,
    ),
    opts=pulumi.ResourceOptions.merge(
        pulumi.ResourceOptions(provider=cluster.provider),
        renamed_from("llm", "log-shipping"),
    ),
)

k8s_opts = pulumi.ResourceOptions(provider=cluster.provider)
karpenter = Karpenter(
    "karpenter",
    KarpenterArgs(
        config=cfg.karpenter,
        cluster=cluster.ref,
        arns=cfg.arns,
        monitoring_crds=monitoring.crd_release,
        tags=tags,
    ),
    opts=k8s_opts,
)
node_pools = NodePools(
    "node-pools",
    NodePoolsArgs(
        cluster_name=cluster.name,
        node_role=karpenter.node_role_name,
        zones=cfg.zones,
        node_class=cfg.node_class,
        gpu_pools=cfg.gpu_pools,
        cpu_pool=cfg.cpu_pool,
        tags=tags,
        karpenter=karpenter,
    ),
    opts=pulumi.ResourceOptions.merge(k8s_opts, renamed_from("karpenter", "node-pools")),
)

if registry is not None:
    # The role's output, not its (known) name: IAM rejects a policy for a role that
    # does not exist yet, and the name alone would not order the two.
    registry.allow_pull("node-pull", karpenter.node_role.name)
serving_config = deployed_serving(cfg)

gpu_operator = GpuOperator(
    "gpu-operator",
    GpuOperatorArgs(
        config=cfg.gpu_operator,
        ami_family=cfg.node_class.ami_family,
        monitoring_crds=monitoring.crd_release,
    ),
    opts=k8s_opts,
)
model_bucket = ModelBucket(
    "models", ModelBucketArgs(bucket_name=cfg.model_bucket, arns=cfg.arns, tags=tags)
)
keda = Keda(
    "keda",
    KedaArgs(version=cfg.serving.keda_version, monitoring_crds=monitoring.crd_release),
    opts=k8s_opts,
)
serving = ServingNamespace(
    "serving",
    ServingNamespaceArgs(
        namespace=cfg.serving.namespace,
        api_key=secret(cfg.model_api_key),
        kubernetes_version=cfg.cluster.version,
    ),
    opts=k8s_opts,
)
models = [
    VllmModel(
        f"model-{model.name}",
        VllmModelArgs(
            model=model,
            serving=serving_config,
            cluster=cluster.ref,
            bucket_name=model_bucket.name,
            arns=cfg.arns,
            tags=tags,
            namespace=serving,
            monitoring_crds=monitoring.crd_release,
            keda_crds=keda.release,
            node_pools=node_pools,
            gpu_operator=gpu_operator.release,
            startup=model_startup(cfg, model),
            instance_types=required_instance_types(cfg, model),
            image_cache=registry,
            # Clients call the gateway; only it (and Prometheus) reaches the models.
            clients=(model_server_sources(cfg.gateway),),
        ),
        opts=k8s_opts,
    )
    for model in cfg.enabled_models
]
gateway = (
    Gateway(
        "gateway",
        GatewayArgs(
            config=cfg.gateway,
            backends=cfg.gateway_backends,
            serving_namespace=cfg.serving.namespace,
            model_port=MODEL_PORT,
            model_api_key=secret(cfg.model_api_key),
            key_secret=secret(cfg.gateway_key_secret),
            runbook_base_url=cfg.runbook_base_url,
            monitoring_crds=monitoring.crd_release,
        ),
        opts=k8s_opts,
    )
    if cfg.enabled_models
    else None
)

ImagePrePull(
    "image-pre-pull",
    ImagePrePullArgs(
        namespace=cfg.serving.namespace,
        image=serving_config.vllm_image,
        serving_namespace=serving,
        image_cache=registry,
    ),
    opts=k8s_opts,
)
if warm_slots(cfg):
    WarmCapacity(
        "warm-capacity",
        WarmCapacityArgs(
            slots=warm_slots(cfg),
            namespace=cfg.serving.namespace,
            image=serving_config.vllm_image,
            serving_namespace=serving,
            node_pools=node_pools,
            image_cache=registry,
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
        arns=cfg.arns,
        tags=tags,
        activate_cost_allocation_tag=cfg.cost.activate_cost_allocation_tag,
    ),
)

kubecost = Kubecost(
    "kubecost",
    KubecostArgs(
        config=cfg.cost,
        cluster_name=cfg.cluster.name,
        region=cfg.region,
        storage_class=monitoring.storage_class_name,
        monitoring_crds=monitoring.crd_release,
        runbook_base_url=cfg.runbook_base_url,
    ),
    opts=pulumi.ResourceOptions(provider=cluster.provider),
)

pulumi.export("budgetAlertTopicArn", budgets.topic_arn)
pulumi.export("logGroups", logs.log_group_names)
pulumi.export("karpenterInterruptionQueue", karpenter.queue_name)
pulumi.export("karpenterNodeRoleArn", karpenter.node_role_arn)
pulumi.export("nodePools", node_pools.node_pool_names)
pulumi.export("modelBucket", model_bucket.name)
if gateway is not None:
    pulumi.export("gatewayUrl", gateway.url)
pulumi.export(
    "modelEndpoints",
    {
        model.name: server.service_url
        for model, server in zip(cfg.enabled_models, models, strict=True)
    },
)
