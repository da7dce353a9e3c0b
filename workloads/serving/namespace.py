"""ServingNamespace: the namespace the model servers run in, with their API key; it
enforces the restricted Pod Security Standard (``workloads.serving.pod_security``)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from workloads.serving.pod_security import namespace_labels
from workloads.serving.vllm import API_KEY_KEY, API_KEY_SECRET


@dataclass(frozen=True)
class ServingNamespaceArgs:
    """Inputs of :class:`ServingNamespace`."""

    namespace: str
    api_key: pulumi.Input[str]
    """The ``modelApiKey`` Pulumi secret; it stays secret in state and output."""
    kubernetes_version: str
    """The cluster's minor (``1.33``): the Pod Security level is pinned to it."""

    def __post_init__(self) -> None:
        if not self.namespace:
            raise ValueError("namespace ('') must name the serving namespace")


class ServingNamespace(pulumi.ComponentResource):
    """Namespace plus the Secret every vLLM server reads ``VLLM_API_KEY`` from."""

    namespace: k8s.core.v1.Namespace
    api_key_secret: k8s.core.v1.Secret

    def __init__(
        self, name: str, args: ServingNamespaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm-platform:serving:ServingNamespace", name, None, opts)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace, "labels": namespace_labels(args.kubernetes_version)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.api_key_secret = k8s.core.v1.Secret(
            f"{name}-api-key",
            metadata={"name": API_KEY_SECRET, "namespace": args.namespace},
            type="Opaque",
            string_data={API_KEY_KEY: pulumi.Output.secret(args.api_key)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
        )
        self.register_outputs({"namespace": args.namespace})
