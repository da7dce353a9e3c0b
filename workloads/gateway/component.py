"""Gateway: the LiteLLM proxy every client calls, with its keys, policies and rules.

Creates, in ``gateway.namespace``: the Secret with the models' API key, the master key
and every client's key (never in a ConfigMap or Helm values); a ConfigMap with the
proxy config and its two Python modules; the Deployment, Service, PodDisruptionBudget,
NetworkPolicy, ServiceMonitor and a PrometheusRule with the gateway's alerts. In each
allowed client namespace (created here): the Secret ``llm-gateway-key`` with that
namespace's key and the gateway URL.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra.core.alerting import rule_file
from infra.core.conventions import MONITORING_NAMESPACE, PROMETHEUS_SELECTOR_LABELS
from infra.core.ordering import after
from workloads.gateway.alerts import gateway_rule_groups
from workloads.gateway.config import GatewayConfig
from workloads.gateway.litellm import (
    CALLBACKS_MODULE,
    CLIENT_LABEL,
    CLIENT_SECRET_NAME,
    CONFIG_FILE,
    LABELS,
    NAME,
    REQUEST_LOG_MODULE,
    SECRET_NAME,
    Backend,
    client_keys,
    master_key,
    metrics_key,
    proxy_config,
    render_deployment,
    render_network_policy,
    render_pdb,
    render_service,
    render_service_monitor,
    service_url,
)

_HERE = Path(__file__).resolve().parent
MODULES: Final = {
    f"{CALLBACKS_MODULE}.py": _HERE / "callbacks.py",
    f"{REQUEST_LOG_MODULE}.py": _HERE.parent.parent / "infra" / "core" / "request_log.py",
}
"""Files next to ``config.yaml`` in the proxy's config directory."""


def config_files(cfg: GatewayConfig, backends: Sequence[Backend]) -> dict[str, str]:
    """The ConfigMap's data: the proxy config and the modules it names."""
    files = {CONFIG_FILE: yaml.safe_dump(proxy_config(cfg, backends), sort_keys=True)}
    files.update({name: path.read_text() for name, path in MODULES.items()})
    return files


def client_key(seed: str, client: str) -> str:
    return client_keys(seed, [client])[client]


def config_hash(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class GatewayArgs:
    """Inputs of :class:`Gateway`."""

    config: GatewayConfig
    backends: tuple[Backend, ...]
    """Every enabled model's Service."""
    serving_namespace: str
    model_port: int
    """Port of the model Services (the gateway's only egress besides DNS)."""
    model_api_key: pulumi.Input[str]
    """The ``modelApiKey`` Pulumi secret: the gateway calls the models with it."""
    key_secret: pulumi.Input[str]
    """The ``gatewayKeySecret`` Pulumi secret every gateway key derives from."""
    runbook_base_url: str
    monitoring_crds: pulumi.Resource | None = None
    """Release installing the ServiceMonitor and PrometheusRule CRDs."""

    def __post_init__(self) -> None:
        if not self.backends:
            raise ValueError("backends (none) must list at least one enabled model")


class Gateway(pulumi.ComponentResource):
    """The LiteLLM proxy in front of the models. Pass the cluster's provider in ``opts``."""

    url: str
    """The one endpoint clients call (``<url>/v1/...``)."""

    def __init__(
        self, name: str, args: GatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:gateway:Gateway", name, None, opts)
        cfg = args.config
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": cfg.namespace},
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_namespace = after(self, namespace)
        self.url = service_url(cfg.namespace)
        clients = cfg.allowed_client_namespaces
        seed = pulumi.Output.secret(args.key_secret)
        secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": SECRET_NAME, "namespace": cfg.namespace, "labels": dict(LABELS)},
            type="Opaque",
            string_data={
                "model-api-key": pulumi.Output.secret(args.model_api_key),
                "master-key": seed.apply(master_key),
                "metrics-key": seed.apply(metrics_key),
                "client-keys": seed.apply(
                    lambda s: json.dumps(client_keys(s, clients), sort_keys=True)
                ),
            },
            opts=in_namespace,
        )
        for client in clients:
            # A client namespace is the client's, and often exists already: a patch
            # (server-side apply) creates it when missing and adopts it when not, and on
            # removal only gives up its label, never deleting the client's workloads
            # (pulumi-kubernetes provider/pkg/await/await.go: Patch resources are
            # applied on create and relinquished on delete; a plain Namespace fails
            # with AlreadyExists since v4.29.0).
            client_ns = k8s.core.v1.NamespacePatch(
                f"{name}-client-{client}",
                metadata={"name": client, "labels": {CLIENT_LABEL: "true"}},
                opts=pulumi.ResourceOptions(parent=self),
            )
            k8s.core.v1.Secret(
                f"{name}-client-{client}-key",
                metadata={"name": CLIENT_SECRET_NAME, "namespace": client},
                type="Opaque",
                string_data={
                    "api-key": seed.apply(partial(client_key, client=client)),
                    "base-url": f"{self.url}/v1",
                },
                opts=after(self, client_ns),
            )

        files = config_files(cfg, args.backends)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": NAME, "namespace": cfg.namespace, "labels": dict(LABELS)},
            data=files,
            opts=in_namespace,
        )
        deployment = render_deployment(cfg, [b.name for b in args.backends], config_hash(files))
        # After the Secret and ConfigMap its pods mount, not beside them: a pod started
        # first waits in CreateContainerConfigError until they exist.
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=deployment["metadata"],
            spec=deployment["spec"],
            opts=after(self, namespace, secret, config),
        )
        for kind, obj in (
            ("service", render_service(cfg)),
            ("pdb", render_pdb(cfg)),
            (
                "network-policy",
                render_network_policy(cfg, args.serving_namespace, args.model_port),
            ),
        ):
            self._typed(f"{name}-{kind}", obj, in_namespace)
        monitor = render_service_monitor(cfg)
        k8s.apiextensions.CustomResource(
            f"{name}-monitor",
            api_version=monitor["apiVersion"],
            kind=monitor["kind"],
            metadata=monitor["metadata"],
            spec=monitor["spec"],
            opts=after(self, namespace, args.monitoring_crds),
        )
        groups = gateway_rule_groups(cfg, [b.name for b in args.backends], args.runbook_base_url)
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={
                "name": "llm-platform-gateway",
                "namespace": MONITORING_NAMESPACE,
                "labels": dict(PROMETHEUS_SELECTOR_LABELS),
            },
            spec=rule_file(groups),
            opts=after(self, args.monitoring_crds),
        )
        self.register_outputs({"url": self.url})

    def _typed(self, resource_name: str, obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        typed: dict[str, Any] = {
            "Service": k8s.core.v1.Service,
            "PodDisruptionBudget": k8s.policy.v1.PodDisruptionBudget,
            "NetworkPolicy": k8s.networking.v1.NetworkPolicy,
        }
        typed[obj["kind"]](resource_name, metadata=obj["metadata"], spec=obj["spec"], opts=opts)
