"""Offline-plan summary section: what will serve, read from the rendered Deployments.

A reviewer of a change to ``models:`` sees each model's revision (the weights the pods
load, and what a rollback sets back), where it runs and what each replica takes.
"""

from __future__ import annotations

from typing import Any

from infra.core.conventions import GPU_RESOURCE, NODEPOOL_LABEL
from infra.stack.config import PlatformConfig
from tools.mock_runtime import Recorded
from workloads.serving.vllm import REVISION_ANNOTATION

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


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
    """One line per served model: revision, pool, GPUs and memory per replica, replicas."""
    deployments = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in resources
        if r.type == DEPLOYMENT
        and REVISION_ANNOTATION
        in (r.inputs["spec"]["template"]["metadata"].get("annotations") or {})
    }
    if not deployments:
        return []
    lines = ["Models (vLLM):"]
    for model in cfg.enabled_models:
        d = deployments[model.name]
        server = _server(d)
        limits = server["resources"]["limits"]
        revision = d["spec"]["template"]["metadata"]["annotations"][REVISION_ANNOTATION]
        lines.append(
            f"  {model.name}: {model.served_model_name} revision {revision}, pool {_pool(d)}, "
            f"{int(float(limits[GPU_RESOURCE]))} GPU x {limits['memory']} per replica, "
            f"replicas {model.replicas.min}-{model.replicas.max}, weights {server['args'][0]}"
        )
    return lines
