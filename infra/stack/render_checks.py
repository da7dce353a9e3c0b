"""Render everything a config decides before any resource is registered.

Components build typed models (subnet plan, NodePools, EC2NodeClasses, alert rules,
budgets, model Deployments) whose own checks raise ``ValueError``. Run from inside a
component, such a check fires after earlier components registered their resources: on a
real ``pulumi up``, a half-created stack and a traceback. Here the same pure functions
run on the validated config first, and whatever they reject becomes a config problem
naming the section it came from (exit 2, nothing registered). Each check still lives
once, in the model that owns it; this module only runs them early.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from infra.core.schema import NAMESPACE
from infra.cost.budgets import Budget
from infra.karpenter.controller import resource_name
from infra.karpenter.node_pools import (
    CPU_NODE_CLASS,
    CPU_VOLUME_GIB,
    cpu_node_pool,
    gpu_node_class,
    gpu_node_pool,
    node_class,
)
from infra.log_shipping.fluent_bit import check_routes, default_routes
from infra.network.component import plan_subnets
from infra.observability.alert_rules import platform_rule_groups
from infra.stack.cold_start import model_startup, required_instance_types
from infra.stack.registry import deployed_serving
from workloads.gateway.alerts import gateway_rule_groups
from workloads.gateway.litellm import proxy_config
from workloads.serving.vllm import render_deployment

if TYPE_CHECKING:
    from infra.stack.config import PlatformConfig
    from workloads.serving.config import ModelConfig


def _problem(path: str, build: Callable[[], object]) -> list[str]:
    """``[<namespace>:<path>: <why>]`` when ``build`` raises ``ValueError``, else ``[]``."""
    try:
        build()
    except ValueError as exc:
        return [f"{NAMESPACE}:{path}: {exc}"]
    return []


def _render_model(cfg: PlatformConfig, model: ModelConfig) -> object:
    startup = model_startup(cfg, model)
    serving = deployed_serving(cfg)
    return render_deployment(
        model,
        serving,
        cfg.model_bucket,
        f"vllm-{model.name}",
        startup,
        required_instance_types(cfg, model),
        region=cfg.region,
    )


def render_problems(cfg: PlatformConfig) -> list[str]:
    """What the components' renderers would reject in ``cfg``, one line per problem."""
    net, nc = cfg.network, cfg.node_class
    problems = _problem(
        f'network.cidr = "{net.cidr}"',
        lambda: plan_subnets(
            net.cidr,
            cfg.zones,
            net.private_subnet_prefix,
            net.public_subnet_prefix,
            net.public_block,
        ),
    )
    for i, pool in enumerate(cfg.gpu_pools):
        problems += _problem(f"gpuPools[{i}]", partial(gpu_node_pool, pool, cfg.zones))
    problems += _problem("cpuPool", lambda: cpu_node_pool(cfg.cpu_pool, cfg.zones))
    role, tags = resource_name(cfg.cluster.name, "node"), cfg.all_tags
    problems += _problem(
        "nodeClass",
        partial(gpu_node_class, nc, cluster_name=cfg.cluster.name, role=role, tags=tags),
    )
    problems += _problem(
        "nodeClass",
        partial(
            node_class,
            CPU_NODE_CLASS,
            nc,
            cluster_name=cfg.cluster.name,
            role=role,
            tags=tags,
            volume_gib=CPU_VOLUME_GIB,
        ),
    )
    for i, budget in enumerate(cfg.cost.budgets):
        problems += _problem(f"cost.budgets[{i}]", partial(Budget.from_config, budget))
    problems += _problem("observability", lambda: platform_rule_groups(cfg.alert_inputs))
    problems += _problem(
        "serving.namespace", lambda: check_routes(default_routes(cfg.serving.namespace))
    )
    models = [b.name for b in cfg.gateway_backends]
    problems += _problem("gateway", lambda: proxy_config(cfg.gateway, cfg.gateway_backends))
    problems += _problem(
        "gateway", lambda: gateway_rule_groups(cfg.gateway, models, cfg.runbook_base_url)
    )
    for i, model in enumerate(cfg.models):
        problems += _problem(f"models[{i}]", partial(_render_model, cfg, model))
    return problems
