"""Offline-plan summary sections: what will serve, read from the rendered objects.

A reviewer of a change to ``models:`` or ``gateway:`` sees each model's revision (the
weights the pods load, and what a rollback sets back), where it runs and what each
replica takes, and what the gateway does with each model name: the backend, the
fallbacks in order, retries and timeouts, as its ConfigMap will configure LiteLLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from infra.core.conventions import GPU_RESOURCE, NODEPOOL_LABEL
from infra.stack.config import PlatformConfig
from tools.mock_runtime import Recorded
from workloads.gateway.config import LITELLM_VERSION
from workloads.gateway.litellm import CONFIG_FILE, NAME, retry_backoff_seconds, service_url
from workloads.serving.vllm import REVISION_ANNOTATION
from workloads.serving.vllm import service_url as model_service_url

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows under a header, columns left-aligned, two spaces apart, indented."""
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    return [
        "  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *rows)
    ]


def _server(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "vllm")


def _pool(deployment: dict[str, Any]) -> str:
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    for expression in terms[0]["matchExpressions"]:
        if expression["key"] == NODEPOOL_LABEL:
            return ",".join(expression["values"])
    return "?"


def models_summary(resources: list[Recorded], cfg: PlatformConfig) -> list[str]:
    """One row per served model: served name, revision, pool, GPUs and memory per
    replica, replicas, Service and weights."""
    deployments = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in resources
        if r.type == DEPLOYMENT
        and REVISION_ANNOTATION
        in (r.inputs["spec"]["template"]["metadata"].get("annotations") or {})
    }
    if not deployments:
        return []
    rows = []
    for model in cfg.enabled_models:
        d = deployments[model.name]
        server = _server(d)
        limits = server["resources"]["limits"]
        rows.append(
            (
                model.name,
                model.served_model_name,
                d["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION],
                _pool(d),
                str(int(float(limits[GPU_RESOURCE]))),
                limits["memory"],
                f"{model.replicas.min}-{model.replicas.max}",
                model_service_url(model.name, d["metadata"]["namespace"]),
                server["args"][0],
            )
        )
    header = (
        "name", "served model", "revision", "pool", "GPUs/replica", "memory", "replicas",
        "Service", "weights",
    )  # fmt: skip
    return ["Models (vLLM):", *table(header, rows)]


def gateway_summary(resources: list[Recorded], cfg: PlatformConfig) -> list[str]:
    """The gateway's route table, from the proxy config its ConfigMap holds."""
    maps = [
        r.inputs
        for r in resources
        if r.type == CONFIGMAP
        and r.inputs["metadata"]["name"] == NAME
        and r.inputs["metadata"]["namespace"] == cfg.gateway.namespace
    ]
    if not maps:
        return []
    proxy = yaml.safe_load(maps[0]["data"][CONFIG_FILE])
    router = proxy["router_settings"]
    fallbacks = {k: v for entry in router["fallbacks"] for k, v in entry.items()}
    rows = [
        (
            route["model_name"],
            route["litellm_params"]["api_base"],
            ",".join(fallbacks.get(route["model_name"], [])) or "-",
            str(router["num_retries"]),
            f"{route['litellm_params']['timeout']:g}s",
            f"{route['litellm_params']['stream_timeout']:g}s",
        )
        for route in proxy["model_list"]
    ]
    header = ("model", "backend", "fallbacks", "retries", "timeout", "first token")
    clients = ", ".join(cfg.gateway.allowed_client_namespaces) or "none"
    failures = next(iter(router["allowed_fails_policy"].values()))
    return [
        f"Gateway (LiteLLM {LITELLM_VERSION}, {service_url(cfg.gateway.namespace)}/v1, "
        f"{cfg.gateway.replicas} replicas; clients from: {clients}):",
        *table(header, rows),
        f"  retry back-off up to {retry_backoff_seconds(cfg.gateway):g}s in all; more than "
        f"{failures} failures within {router['cooldown_time']:g}s cool a model down for "
        f"{router['cooldown_time']:g}s",
    ]
