"""Pure renderers of the gateway: the LiteLLM proxy config and the Kubernetes objects.

LiteLLM facts used here (checked against the v1.108.0 source, ``litellm/``):

- ``model_list[].litellm_params``: ``model: hosted_vllm/<served name>`` (vLLM's OpenAI
  server, ``llms/hosted_vllm``), ``api_base``, ``api_key: os.environ/<VAR>`` (read from
  the environment at load), per-deployment ``timeout`` and ``stream_timeout``.
- ``router_settings`` keys are ``Router.__init__`` arguments (``proxy_server.py``
  warns "Ignoring this key" for others): ``num_retries``, ``retry_policy``
  (``types/router.py`` ``RetryPolicy``), ``fallbacks`` (``[{model: [fallback, ...]}]``),
  ``allowed_fails_policy``, ``cooldown_time``. Back-off between retries of one deployment is
  ``utils.calculate_retry_after``: 0.5 s x 2^n up to 8 s (``INITIAL_RETRY_DELAY``,
  ``MAX_RETRY_DELAY``) plus up to 0.75 s jitter. A router-level ``allowed_fails`` cools
  down even the only deployment of a group (``router_utils/cooldown_handlers.py``).
- ``LITELLM_LOCAL_MODEL_COST_MAP=True``: the proxy reads its bundled model-cost map
  instead of fetching it from GitHub at startup (``litellm_core_utils/get_model_cost_map.py``).
- ``JSON_LOGS=True``: the proxy's own log lines are JSON (``_logging.py``).
- ``/health/liveliness`` (alive; 503 once shutting down) and ``/health/readiness``
  (ready; no database here) are unauthenticated; ``/metrics`` is served by the
  ``prometheus`` callback, which is not enterprise-gated in this version
  (``integrations/prometheus.py``).
- CLI: ``litellm --config <file> --port <n> --num_workers <n>`` (``proxy/proxy_cli.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from infra.core.conventions import (
    PROMETHEUS_SELECTOR_LABELS,
    SYSTEM_NODE_LABELS,
    SYSTEM_TOLERATION,
    ZONE_LABEL,
    namespaces_peer,
    prometheus_peer,
)
from workloads.gateway.config import GatewayConfig

PORT: Final = 4000
CONFIG_DIR: Final = "/etc/litellm"
CONFIG_FILE: Final = "config.yaml"
CALLBACKS_MODULE: Final = "callbacks"
REQUEST_LOG_MODULE: Final = "request_log"
MODEL_API_KEY_ENV: Final = "MODEL_API_KEY"
MASTER_KEY_ENV: Final = "LITELLM_MASTER_KEY"
CLIENT_KEYS_ENV: Final = "GATEWAY_CLIENT_KEYS"
METRICS_KEY_ENV: Final = "GATEWAY_METRICS_KEY"
SECRET_NAME: Final = "llm-gateway"
"""Secret in the gateway namespace: the models' API key, the master key, every client's."""
SECRET_ENV: Final = {
    MODEL_API_KEY_ENV: "model-api-key",
    MASTER_KEY_ENV: "master-key",
    CLIENT_KEYS_ENV: "client-keys",
    METRICS_KEY_ENV: "metrics-key",
}
"""Environment variable of the proxy -> key of the gateway Secret it comes from."""
CLIENT_SECRET_NAME: Final = "llm-gateway-key"
"""Secret in each client namespace: that namespace's key (``api-key``) and the URL."""
CLIENT_LABEL: Final = "llm-platform/gateway-client"
"""Label the gateway puts on each client namespace (``"true"``): what it manages there."""
NAME: Final = "llm-gateway"
LABELS: Final = {"app.kubernetes.io/name": "litellm", "app.kubernetes.io/instance": NAME}
RUN_AS_USER: Final = 65532
PRE_STOP_SECONDS: Final = 10
"""A stopping replica keeps serving while it leaves the Service's endpoints."""


@dataclass(frozen=True)
class Backend:
    """A model server the gateway routes to."""

    name: str
    """The model's name: the route clients ask for (``model``)."""
    served_model_name: str
    """The name vLLM serves it under (``--served-model-name``)."""
    url: str
    """Base URL of its OpenAI API, e.g. ``http://chat.inference.svc:8000``."""


def service_url(namespace: str) -> str:
    """The one endpoint clients call (``<url>/v1/...``)."""
    return f"http://{NAME}.{namespace}.svc:{PORT}"


COOLDOWN_ERRORS: Final = (
    "InternalServerError",
    "BadGatewayError",
    "ServiceUnavailableError",
    "TimeoutError",
)
"""Errors that count towards a model's cooldown (``types/router.py`` AllowedFailsPolicy).
Connection errors never cool a model down in LiteLLM (``_is_cooldown_required``); vLLM
queues rather than answering 429, and LiteLLM's own 429s are not the backend's fault."""

UNCLASSIFIED_ALLOWED_FAILS: Final = 1000

# litellm/constants.py INITIAL_RETRY_DELAY, MAX_RETRY_DELAY, JITTER (v1.108.0 defaults).
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    420.0, 600.0,
)  # fmt: skip
"""LiteLLM's latency histogram bounds (``types/integrations/prometheus.py``
``LATENCY_BUCKETS``, v1.108.0, without +Inf)."""


def latency_buckets(cfg: GatewayConfig, models: Sequence[str]) -> list[float]:
    """LiteLLM's bounds plus every route's p95 targets: a target inside a bucket (2.5 s
    in (2, 5]) would leave the p95 alerts comparing a linear guess within it."""
    routes = [cfg.route(m) for m in models]
    targets = {t for r in routes for t in (r.ttft_p95_target_seconds, r.latency_p95_target_seconds)}
    return sorted({*LATENCY_BUCKETS, *targets})


RETRY_DELAY_SECONDS: Final = 0.5
RETRY_DELAY_MAX_SECONDS: Final = 8.0
RETRY_JITTER_SECONDS: Final = 0.75


def retry_backoff_seconds(cfg: GatewayConfig) -> float:
    """Longest a request waits for the retries of a failing model, in all, before its
    fallbacks: ``Router.async_function_with_retries`` sleeps before the first retry and
    after each failed one (``utils.calculate_retry_after``: 0.5 s x 2^n capped at 8 s,
    plus up to 0.75 s of jitter), so 3 retries wait 0.5 + 1 + 2 + 4 s and the jitter."""
    return sum(
        min(RETRY_DELAY_SECONDS * 2**n, RETRY_DELAY_MAX_SECONDS) + RETRY_JITTER_SECONDS
        for n in range(cfg.num_retries + 1)
    )


def proxy_config(cfg: GatewayConfig, backends: Sequence[Backend]) -> dict[str, Any]:
    """The LiteLLM ``config.yaml``: one route per backend, its fallbacks, retries,
    timeouts and cooldown, the request log and Prometheus callbacks, key checks."""
    names = {b.name for b in backends}
    fallbacks = [
        {b.name: list(cfg.route(b.name).fallbacks)} for b in backends if cfg.route(b.name).fallbacks
    ]
    unknown = sorted({f for entry in fallbacks for fs in entry.values() for f in fs} - names)
    if unknown:
        raise ValueError(f"fallbacks name models without a route: {', '.join(unknown)}")
    return {
        "model_list": [
            {
                "model_name": b.name,
                "litellm_params": {
                    "model": f"hosted_vllm/{b.served_model_name}",
                    "api_base": f"{b.url}/v1",
                    "api_key": f"os.environ/{MODEL_API_KEY_ENV}",
                    "timeout": cfg.route(b.name).timeout_seconds,
                    "stream_timeout": cfg.route(b.name).first_token_timeout_seconds,
                },
            }
            for b in backends
        ],
        "router_settings": {
            "num_retries": cfg.num_retries,
            # A hung backend has already used a whole timeout: fail over at once
            # instead of waiting the timeout again per retry.
            "retry_policy": {"TimeoutErrorRetries": 0},
            "fallbacks": fallbacks,
            # Per error type, not `allowed_fails`: a router-level allowed_fails equal to
            # LiteLLM's default (3) counts as unset, and then a model group with one
            # deployment (ours: one Service each) is never cooled down
            # (router_utils/cooldown_handlers.py, _is_allowed_fails_set_on_router).
            "allowed_fails_policy": {
                f"{kind}AllowedFails": cfg.allowed_fails for kind in COOLDOWN_ERRORS
            },
            # Every other error. In the proxy, a request for a cooled-down model that a
            # fallback then answers logs its "no deployments available" error (a
            # RouterRateLimitError, in no policy class) against the fallback's
            # deployment, which would otherwise cool the fallback down after 3 such
            # requests and leave nothing to serve (seen with the real proxy,
            # tests/test_gateway_proxy.py).
            "allowed_fails": UNCLASSIFIED_ALLOWED_FAILS,
            "cooldown_time": cfg.cooldown_seconds,
        },
        "litellm_settings": {
            # Read when the Prometheus logger is made (integrations/prometheus.py), after
            # the whole config is applied (the real-proxy test finds the bounds).
            "prometheus_latency_buckets": latency_buckets(cfg, sorted(names)),
            "callbacks": [f"{CALLBACKS_MODULE}.request_log", "prometheus"],
            # No request or response text in logs and callbacks.
            "turn_off_message_logging": True,
        },
        "general_settings": {
            "custom_auth": f"{CALLBACKS_MODULE}.user_api_key_auth",
        },
    }


def proxy_environment() -> dict[str, str]:
    """Environment of the proxy process (besides the keys from the Secret)."""
    return {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "JSON_LOGS": "True",
        # callbacks.py imports request_log.py from the config directory.
        "PYTHONPATH": CONFIG_DIR,
        "HOME": "/tmp",
    }


def proxy_args() -> list[str]:
    return ["--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--port", str(PORT), "--num_workers", "1"]


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 3,
    }


def request_budget_seconds(cfg: GatewayConfig, models: Sequence[str]) -> int:
    """Longest one non-streamed request can run: its model's timeout, then each of its
    fallbacks' in turn (a timeout is not retried; it falls back at once), each with the
    back-off of its retries. A stream's timeout bounds the gap between chunks, not its
    length: a stream longer than this is cut when a replica stops."""
    chains = [(m, *cfg.route(m).fallbacks) for m in models]
    return math.ceil(
        max(
            sum(cfg.route(x).timeout_seconds + retry_backoff_seconds(cfg) for x in chain)
            for chain in chains
        )
    )


def drain_seconds(cfg: GatewayConfig, models: Sequence[str]) -> int:
    """Grace period of a stopping replica: the preStop pause, then the proxy's own
    graceful shutdown (the request budget), and a margin before SIGKILL."""
    return PRE_STOP_SECONDS + request_budget_seconds(cfg, models) + 15


def render_deployment(
    cfg: GatewayConfig, models: Sequence[str], config_hash: str
) -> dict[str, Any]:
    """The proxy Deployment: on the system nodes (never a GPU node), spread over zones,
    non-root with a read-only root filesystem."""
    env: list[dict[str, Any]] = [
        {"name": k, "value": v} for k, v in sorted(proxy_environment().items())
    ]
    # uvicorn cancels what still runs GRACEFUL_SHUTDOWN_TIMEOUT after SIGTERM (30 s by
    # default: litellm/proxy/shutdown/graceful_shutdown_manager.py, passed as
    # timeout_graceful_shutdown in proxy_cli.py at 1.108.0): the whole request budget.
    env.append(
        {"name": "GRACEFUL_SHUTDOWN_TIMEOUT", "value": str(request_budget_seconds(cfg, models))}
    )
    env += [
        {
            "name": var,
            "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}},
        }
        for var, key in SECRET_ENV.items()
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": cfg.namespace, "labels": dict(LABELS)},
        "spec": {
            "replicas": cfg.replicas,
            "selector": {"matchLabels": dict(LABELS)},
            # One replica at a time is replaced in place: the system node group has no
            # autoscaler and its spare room may not hold a surge pod (the rollout would
            # stall), while at least 2 replicas (gateway.replicas) keep one serving.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "template": {
                "metadata": {
                    "labels": dict(LABELS),
                    # A changed config rolls the pods (LiteLLM reads it at start only).
                    "annotations": {"llm-platform.io/config-hash": config_hash},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "nodeSelector": dict(SYSTEM_NODE_LABELS),
                    "tolerations": [dict(SYSTEM_TOLERATION)],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": ZONE_LABEL,
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": dict(LABELS)},
                        },
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": dict(LABELS)},
                        },
                    ],
                    # In-flight requests finish (the request budget) before SIGKILL.
                    "terminationGracePeriodSeconds": drain_seconds(cfg, models),
                    "containers": [
                        {
                            "name": "litellm",
                            "image": cfg.image,
                            "command": ["litellm"],
                            "args": proxy_args(),
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "env": env,
                            "resources": cfg.resources.render(),
                            "startupProbe": _probe("/health/liveliness", 5, 24),
                            "readinessProbe": _probe("/health/readiness", 5, 2),
                            "livenessProbe": _probe("/health/liveliness", 15, 4),
                            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": NAME}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                    ],
                },
            },
        },
    }


def render_service(cfg: GatewayConfig) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": cfg.namespace, "labels": dict(LABELS)},
        "spec": {
            "selector": dict(LABELS),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }


def render_pdb(cfg: GatewayConfig) -> dict[str, Any]:
    """A drain never takes the last serving replica (there are always two or more)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": NAME, "namespace": cfg.namespace, "labels": dict(LABELS)},
        "spec": {"selector": {"matchLabels": dict(LABELS)}, "minAvailable": cfg.replicas - 1},
    }


def render_service_monitor(cfg: GatewayConfig) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {
            "name": NAME,
            "namespace": cfg.namespace,
            "labels": {**LABELS, **PROMETHEUS_SELECTOR_LABELS},
        },
        "spec": {
            "selector": {"matchLabels": dict(LABELS)},
            "namespaceSelector": {"matchNames": [cfg.namespace]},
            # LiteLLM authenticates /metrics by default: Prometheus sends its own key,
            # from the gateway Secret (SafeAuthorization, prometheus-operator v0.93).
            "endpoints": [
                {
                    "port": "http",
                    "path": "/metrics/",
                    "interval": "15s",
                    "authorization": {
                        "type": "Bearer",
                        "credentials": {"name": SECRET_NAME, "key": SECRET_ENV[METRICS_KEY_ENV]},
                    },
                }
            ],
        },
    }


def render_network_policy(
    cfg: GatewayConfig, serving_namespace: str, model_port: int
) -> dict[str, Any]:
    """Clients (the allowed namespaces) and Prometheus reach the gateway; the gateway
    reaches only DNS and the model servers (so nothing at startup or later goes to the
    internet)."""
    clients = (
        [namespaces_peer(cfg.allowed_client_namespaces)] if cfg.allowed_client_namespaces else []
    )
    ingress_from = [*clients, prometheus_peer()]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": NAME, "namespace": cfg.namespace, "labels": dict(LABELS)},
        "spec": {
            "podSelector": {"matchLabels": dict(LABELS)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": ingress_from, "ports": [{"protocol": "TCP", "port": PORT}]}],
            "egress": [
                {
                    "to": [namespaces_peer(["kube-system"])],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                {
                    "to": [namespaces_peer([serving_namespace])],
                    "ports": [{"protocol": "TCP", "port": model_port}],
                },
            ],
        },
    }


def model_server_sources(cfg: GatewayConfig) -> dict[str, Any]:
    """The NetworkPolicy peer of the model servers' ingress: the gateway's pods only."""
    return {
        **namespaces_peer([cfg.namespace]),
        "podSelector": {"matchLabels": dict(LABELS)},
    }


def derive_key(seed: str, purpose: str) -> str:
    """A key derived from the ``gatewayKeySecret`` Pulumi secret (HMAC-SHA256): stable
    across updates, different per purpose, all rotated by changing the secret."""
    return "sk-" + hmac.new(seed.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def master_key(seed: str) -> str:
    """LiteLLM's master key: the proxy refuses to start without one. Only the gateway's
    Secret holds it; no client gets it (``user_api_key_auth`` accepts client keys only)."""
    return derive_key(seed, "master")


def metrics_key(seed: str) -> str:
    """Prometheus's key: accepted on ``/metrics`` only."""
    return derive_key(seed, "metrics")


def client_keys(seed: str, clients: Sequence[str]) -> dict[str, str]:
    """One key per client namespace (``client/<namespace>``: no namespace can be
    ``master``'s purpose, a DNS label has no ``/``)."""
    return {ns: derive_key(seed, f"client/{ns}") for ns in clients}


def route_table(cfg: GatewayConfig, backends: Sequence[Backend]) -> list[dict[str, Any]]:
    """What each model name does at the gateway (the offline plan prints it)."""
    return [
        {
            "model": b.name,
            "backend": f"{b.url} ({b.served_model_name})",
            "fallbacks": list(cfg.route(b.name).fallbacks),
            "retries": cfg.num_retries,
            "timeout_seconds": cfg.route(b.name).timeout_seconds,
            "first_token_timeout_seconds": cfg.route(b.name).first_token_timeout_seconds,
        }
        for b in backends
    ]
