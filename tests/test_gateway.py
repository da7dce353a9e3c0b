"""The gateway: its config section, the LiteLLM config and Kubernetes objects it renders,
and what the program registers for it (fixture stacks; the real proxy is exercised in
``tests/test_gateway_proxy.py``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from infra.core.conventions import (
    GPU_RESOURCE,
    GPU_TOLERATION,
    MONITORING_NAMESPACE,
    SYSTEM_NODE_LABELS,
    ZONE_LABEL,
)
from infra.core.schema import ConfigError
from infra.stack.files import load_stack_file
from tests.harness import FIXTURES, HA, SMALL, find, find_all, planned, run_stack, typed_config
from tools.mock_runtime import Recorded, Secret, revealed
from tools.models_summary import gateway_summary
from workloads.gateway.config import GatewayConfig
from workloads.gateway.litellm import (
    CLIENT_LABEL,
    CLIENT_SECRET_NAME,
    CONFIG_FILE,
    LABELS,
    LATENCY_BUCKETS,
    NAME,
    SECRET_ENV,
    SECRET_NAME,
    client_keys,
    derive_key,
    latency_buckets,
    master_key,
    metrics_key,
    proxy_config,
    render_deployment,
    render_network_policy,
    render_pdb,
    request_budget_seconds,
    retry_backoff_seconds,
)
from workloads.serving.vllm import PORT as MODEL_PORT

NS = "llm-platform"
Config = dict[str, Any]
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _with_fallbacks() -> str:
    """A fixture stack whose gateway has a fallback."""
    assert any(r.fallbacks for r in typed_config(HA).gateway.routes)
    return HA


def test_one_route_per_enabled_model_with_its_fallbacks_retries_and_timeouts() -> None:
    cfg = typed_config(_with_fallbacks())
    proxy = proxy_config(cfg.gateway, cfg.gateway_backends)
    routes = {r["model_name"]: r["litellm_params"] for r in proxy["model_list"]}
    assert list(routes) == [m.name for m in cfg.enabled_models]
    for model in cfg.enabled_models:
        params = routes[model.name]
        route = cfg.gateway.route(model.name)
        assert params == {
            "model": f"hosted_vllm/{model.served_model_name}",
            "api_base": f"http://{model.name}.{cfg.serving.namespace}.svc:{MODEL_PORT}/v1",
            "api_key": "os.environ/MODEL_API_KEY",
            "timeout": route.timeout_seconds,
            "stream_timeout": route.first_token_timeout_seconds,
        }
    router = proxy["router_settings"]
    assert router["fallbacks"] == [
        {r.model: list(r.fallbacks)} for r in cfg.gateway.routes if r.fallbacks
    ]
    assert router["num_retries"] == cfg.gateway.num_retries
    assert router["retry_policy"] == {"TimeoutErrorRetries": 0}
    assert router["cooldown_time"] == cfg.gateway.cooldown_seconds
    assert set(router["allowed_fails_policy"].values()) == {cfg.gateway.allowed_fails}
    assert "InternalServerErrorAllowedFails" in router["allowed_fails_policy"]
    assert proxy["litellm_settings"]["callbacks"] == ["callbacks.request_log", "prometheus"]
    assert proxy["general_settings"] == {"custom_auth": "callbacks.user_api_key_auth"}


def test_retry_back_off_follows_litellm() -> None:
    assert retry_backoff_seconds(GatewayConfig(num_retries=3)) == 0.5 + 1 + 2 + 4 + 4 * 0.75
    assert retry_backoff_seconds(GatewayConfig(num_retries=0)) == 0.5 + 0.75
    assert retry_backoff_seconds(GatewayConfig(num_retries=6)) == 31.5 + 7 * 0.75  # capped at 8 s


def test_the_proxy_runs_on_system_nodes_spread_over_zones_and_hardened() -> None:
    cfg = GatewayConfig(replicas=3, routes=({"model": "m1", "timeoutSeconds": 90},))
    d = render_deployment(cfg, ["m1", "m2"], "abc")
    spec = d["spec"]["template"]["spec"]
    assert d["spec"]["replicas"] == 3
    # Replaced in place, one at a time: no surge pod that the system nodes may not hold.
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1, "maxSurge": 0}
    assert spec["nodeSelector"] == SYSTEM_NODE_LABELS
    assert GPU_TOLERATION not in spec["tolerations"]
    (zone,) = [c for c in spec["topologySpreadConstraints"] if c["topologyKey"] == ZONE_LABEL]
    assert zone["whenUnsatisfiable"] == "DoNotSchedule"
    (container,) = spec["containers"]
    assert container["image"] == "ghcr.io/berriai/litellm:v1.108.0"
    assert container["command"] == ["litellm"]
    assert container["args"] == [
        "--config", "/etc/litellm/config.yaml", "--port", "4000", "--num_workers", "1",
    ]  # fmt: skip
    assert GPU_RESOURCE not in json.dumps(container["resources"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in container["env"]}
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"]["value"] == "True"
    assert env["JSON_LOGS"]["value"] == "True"
    for var, key in SECRET_ENV.items():
        assert env[var] == {
            "name": var,
            "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}},
        }
    # The longest request finishes before the proxy cancels it, and the proxy stops
    # before the kubelet kills a stopping replica.
    budget = math.ceil(90 + retry_backoff_seconds(cfg))
    assert env["GRACEFUL_SHUTDOWN_TIMEOUT"]["value"] == str(budget)
    assert spec["terminationGracePeriodSeconds"] == 10 + budget + 15
    assert d["spec"]["template"]["metadata"]["annotations"] == {
        "llm-platform.io/config-hash": "abc"
    }
    assert render_pdb(cfg)["spec"]["minAvailable"] == 2


def test_a_stopping_replica_waits_for_a_request_through_its_whole_fallback_chain() -> None:
    """A timed-out request falls back at once (no retry of a timeout), so the longest
    request runs every model of its chain to its timeout, each after its retries."""
    cfg = GatewayConfig(
        routes=(
            {"model": "a", "timeoutSeconds": 60, "fallbacks": ["b"]},
            {"model": "b", "timeoutSeconds": 45},
        )
    )
    budget = request_budget_seconds(cfg, ["a", "b"])
    assert budget == math.ceil(60 + 45 + 2 * retry_backoff_seconds(cfg))
    assert request_budget_seconds(cfg, ["b"]) == math.ceil(45 + retry_backoff_seconds(cfg))
    container = render_deployment(cfg, ["a", "b"], "h")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in container["containers"][0]["env"]}
    assert env["GRACEFUL_SHUTDOWN_TIMEOUT"] == str(budget)
    assert container["terminationGracePeriodSeconds"] > 10 + budget


def test_keys_differ_per_purpose_and_namespace_and_follow_the_secret() -> None:
    keys = client_keys("s", ["a", "b"])
    assert len({*keys.values(), master_key("s"), metrics_key("s")}) == 4
    assert keys == client_keys("s", ["a", "b"])
    assert keys["a"] == derive_key("s", "client/a") != client_keys("t", ["a"])["a"]
    assert all(k.startswith("sk-") and len(k) == 67 for k in keys.values())


def _named(resources: tuple[Recorded, ...], type_: str, name: str, ns: str) -> dict[str, Any]:
    (found,) = [
        r.inputs
        for r in find_all(resources, type_)
        if r.inputs["metadata"]["name"] == name and r.inputs["metadata"]["namespace"] == ns
    ]
    return found


def test_latency_histograms_have_a_bound_at_every_p95_target() -> None:
    cfg = GatewayConfig.model_validate(
        {"routes": [{"model": "m1", "ttftP95TargetSeconds": 1.5, "latencyP95TargetSeconds": 8}]}
    )
    buckets = latency_buckets(cfg, ["m1", "m2"])
    assert buckets == sorted(buckets)
    assert {1.5, 8.0, 2.5, 4.5} <= set(buckets)  # m2 keeps the default targets
    assert set(LATENCY_BUCKETS) <= set(buckets)
    assert proxy_config(cfg, [])["litellm_settings"]["prometheus_latency_buckets"] == sorted(
        set(LATENCY_BUCKETS)
    )


def test_without_client_namespaces_only_prometheus_reaches_the_gateway() -> None:
    policy = render_network_policy(GatewayConfig(), "inference", MODEL_PORT)
    (ingress,) = policy["spec"]["ingress"]
    (peer,) = ingress["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus"


def test_only_the_gateway_and_prometheus_reach_the_models(
    fixture_resources: tuple[Recorded, ...], fixture_stack: str
) -> None:
    cfg = typed_config(fixture_stack)
    # Prometheus's pods alone, by the labels the chart's Prometheus Service selects them
    # by (kube-prometheus-stack 88.5.3 templates/prometheus/service.yaml): not Grafana,
    # Alertmanager or anything else in the namespace.
    prometheus = {
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": [MONITORING_NAMESPACE],
                }
            ]
        },
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "prometheus",
                "operator.prometheus.io/name": "kube-prometheus-stack-prometheus",
            }
        },
    }
    for model in cfg.enabled_models:
        policy = _named(fixture_resources, POLICY, model.name, cfg.serving.namespace)
        (rule,) = policy["spec"]["ingress"]
        assert rule["from"] == [
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "In",
                            "values": [cfg.gateway.namespace],
                        }
                    ]
                },
                "podSelector": {"matchLabels": LABELS},
            },
            prometheus,
        ]
    gateway = _named(fixture_resources, POLICY, NAME, cfg.gateway.namespace)["spec"]
    (ingress,) = gateway["ingress"]
    *clients, scraper = ingress["from"]
    assert scraper == prometheus
    assert [c["namespaceSelector"]["matchExpressions"][0]["values"] for c in clients] == (
        [sorted(cfg.gateway.allowed_client_namespaces)]
        if cfg.gateway.allowed_client_namespaces
        else []
    )
    assert all("podSelector" not in c for c in clients)
    assert ingress["ports"] == [{"protocol": "TCP", "port": 4000}]
    dns, models = gateway["egress"]
    assert dns["to"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system"]
    assert models["to"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        cfg.serving.namespace
    ]
    assert models["ports"] == [{"protocol": "TCP", "port": MODEL_PORT}]


def test_keys_are_secrets_in_secrets_and_nowhere_else(
    fixture_resources: tuple[Recorded, ...], fixture_stack: str
) -> None:
    cfg = typed_config(fixture_stack)
    gateway = _named(fixture_resources, SECRET, SECRET_NAME, cfg.gateway.namespace)
    assert isinstance(gateway["stringData"], Secret)
    assert set(revealed(gateway["stringData"])) == set(SECRET_ENV.values())
    for client in cfg.gateway.allowed_client_namespaces:
        secret = _named(fixture_resources, SECRET, CLIENT_SECRET_NAME, client)
        assert isinstance(secret["stringData"], Secret)
        url = f"http://{NAME}.{cfg.gateway.namespace}.svc:4000/v1"
        assert revealed(secret["stringData"])["base-url"] == url
    seed = load_stack_file(fixture_stack, FIXTURES).placeholders[f"{NS}:gatewayKeySecret"]
    keys = [*client_keys(seed, cfg.gateway.allowed_client_namespaces).values(), master_key(seed)]
    plain = json.dumps([r.inputs for r in fixture_resources if r.type != SECRET], default=repr)
    assert not any(k in plain for k in keys)
    config = _named(fixture_resources, CONFIGMAP, NAME, cfg.gateway.namespace)["data"]
    assert set(config) == {CONFIG_FILE, "callbacks.py", "request_log.py"}
    assert "sk-" not in config[CONFIG_FILE]


def test_client_namespaces_are_applied_never_owned(
    fixture_resources: tuple[Recorded, ...], fixture_stack: str
) -> None:
    """Created when missing, adopted when they exist, left in place when a client is
    removed: the gateway only ever patches its label onto them. Its own namespace, and
    no client's, is a plain Namespace the stack deletes."""
    cfg = typed_config(fixture_stack)
    clients = cfg.gateway.allowed_client_namespaces
    assert clients
    patches = find_all(fixture_resources, "kubernetes:core/v1:NamespacePatch")
    assert {p.inputs["metadata"]["name"]: p.inputs["metadata"]["labels"] for p in patches} == {
        c: {CLIENT_LABEL: "true"} for c in clients
    }
    owned = {
        r.inputs["metadata"]["name"]
        for r in find_all(fixture_resources, "kubernetes:core/v1:Namespace")
    }
    assert cfg.gateway.namespace in owned and not owned & set(clients)
    for client in clients:
        secret = next(
            r
            for r in find_all(fixture_resources, SECRET)
            if r.inputs["metadata"] == {"name": CLIENT_SECRET_NAME, "namespace": client}
        )
        (patch,) = [p for p in patches if p.inputs["metadata"]["name"] == client]
        assert patch.name in secret.depends_on


def test_the_gateway_starts_after_what_its_pods_mount(
    fixture_resources: tuple[Recorded, ...], fixture_stack: str
) -> None:
    namespace = typed_config(fixture_stack).gateway.namespace
    (deployment,) = [
        r
        for r in find_all(fixture_resources, "kubernetes:apps/v1:Deployment")
        if r.inputs["metadata"]["namespace"] == namespace
    ]
    mounted = [
        r
        for r in (*find_all(fixture_resources, SECRET), *find_all(fixture_resources, CONFIGMAP))
        if r.inputs["metadata"].get("namespace") == namespace
    ]
    assert {r.inputs["metadata"]["name"] for r in mounted} == {SECRET_NAME, NAME}
    assert {r.name for r in mounted} <= set(deployment.depends_on)


def test_the_plan_prints_the_route_table() -> None:
    cfg = typed_config(_with_fallbacks())
    lines = gateway_summary(list(planned(HA)), cfg)
    assert lines[0].startswith(
        f"Gateway (LiteLLM 1.108.0, http://llm-gateway.{cfg.gateway.namespace}"
    )
    rows = {line.split()[0]: line.split() for line in lines[2 : 2 + len(cfg.enabled_models)]}
    for model in cfg.enabled_models:
        route = cfg.gateway.route(model.name)
        row = rows[model.name]
        assert row[1] == f"http://{model.name}.{cfg.serving.namespace}.svc:{MODEL_PORT}/v1"
        assert row[2] == (",".join(route.fallbacks) or "-")
        assert row[-3:] == [
            str(cfg.gateway.num_retries),
            f"{route.timeout_seconds:g}s",
            f"{route.first_token_timeout_seconds:g}s",
        ]


def _route(c: Config) -> dict[str, Any]:
    gateway = c.setdefault(f"{NS}:gateway", {})
    routes = gateway.setdefault("routes", [])
    if not routes:
        routes.append({"model": c[f"{NS}:models"][0]["name"]})
    return dict(routes[0])


def _set_route(**fields: Any) -> Callable[[Config], object]:
    def mutate(c: Config) -> None:
        route = _route(c) | fields
        c[f"{NS}:gateway"]["routes"] = [route]

    return mutate


def _first_model(c: Config) -> str:
    return str(c[f"{NS}:models"][0]["name"])


INVALID: list[tuple[str, Callable[[Config], object], Callable[[Config], str]]] = [
    (
        "fallback to an unknown model",
        _set_route(fallbacks=["nonexistent"]),
        lambda c: (
            f'{NS}:gateway.routes[0].fallbacks[0] = "nonexistent": model nonexistent '
            "is not in models; routes and fallbacks name enabled models "
            f"({', '.join(sorted(m['name'] for m in c[f'{NS}:models']))})"
        ),
    ),
    (
        "fallback to a disabled model",
        lambda c: (
            c[f"{NS}:models"][1].update(enabled=False),
            _set_route(fallbacks=[c[f"{NS}:models"][1]["name"]])(c),
        ),
        lambda c: (
            f'{NS}:gateway.routes[0].fallbacks[0] = "{c[f"{NS}:models"][1]["name"]}": '
            f"model {c[f'{NS}:models'][1]['name']} is disabled; routes and fallbacks name enabled "
            f"models ({_first_model(c)})"
        ),
    ),
    (
        "route for an unknown model",
        lambda c: c.setdefault(f"{NS}:gateway", {}).update(routes=[{"model": "ghost"}]),
        lambda c: (
            f'{NS}:gateway.routes[0].model = "ghost": model ghost is not in models; '
            "routes and fallbacks name enabled models "
            f"({', '.join(sorted(m['name'] for m in c[f'{NS}:models']))})"
        ),
    ),
    (
        "fallback to itself",
        lambda c: _set_route(fallbacks=[_first_model(c)])(c),
        lambda c: (
            f'{NS}:gateway.routes[0].fallbacks = ["{_first_model(c)}"]: a model cannot '
            f"fall back to itself ({_first_model(c)})"
        ),
    ),
    (
        "gateway in the serving namespace",
        lambda c: c.setdefault(f"{NS}:gateway", {}).update(namespace="inference"),
        lambda c: (
            f'{NS}:gateway.namespace = "inference": the model servers\' namespace '
            "(serving.namespace); the gateway needs its own"
        ),
    ),
    (
        "client in a platform namespace",
        lambda c: c.setdefault(f"{NS}:gateway", {}).update(allowedClientNamespaces=["monitoring"]),
        lambda c: (
            f'{NS}:gateway.allowedClientNamespaces[0] = "monitoring": a platform '
            "namespace; use another (platform namespaces: karpenter, gpu-operator, monitoring, "
            "logging, keda, kubecost)"
        ),
    ),
    (
        "a single replica",
        lambda c: c.setdefault(f"{NS}:gateway", {}).update(replicas=1),
        lambda c: f"{NS}:gateway.replicas = 1: input should be greater than or equal to 2",
    ),
    (
        "first-token budget above the request timeout",
        _set_route(timeoutSeconds=10, firstTokenTimeoutSeconds=20),
        lambda c: (
            f"{NS}:gateway.routes[0].firstTokenTimeoutSeconds = 20.0: must be at most "
            "timeoutSeconds (10.0)"
        ),
    ),
]


@pytest.mark.parametrize(("what", "mutate", "problem"), INVALID, ids=[i[0] for i in INVALID])
def test_bad_gateway_config_is_rejected_before_any_resource(
    what: str, mutate: Callable[[Config], object], problem: Callable[[Config], str]
) -> None:
    seen: list[Config] = []

    def apply(c: Config) -> None:
        mutate(c)
        seen.append(c)

    run = run_stack(SMALL, apply)
    assert isinstance(run.error, ConfigError), what
    assert run.error.problems == [problem(seen[0])]
    assert run.resources == []


def test_the_gateway_key_secret_must_be_a_secret() -> None:
    key = f"{NS}:gatewayKeySecret"
    run = run_stack(SMALL, lambda c: c.update({key: "plain"}), clear_text=frozenset({key}))
    assert isinstance(run.error, ConfigError)
    assert run.error.problems == [
        f"{key} is set in clear text: it must be a secret "
        f"(pulumi config set --secret {key} <value>)"
    ]


def test_the_proxy_config_is_yaml_litellm_reads(
    fixture_resources: tuple[Recorded, ...], fixture_stack: str
) -> None:
    cfg = typed_config(fixture_stack)
    data = _named(fixture_resources, CONFIGMAP, NAME, cfg.gateway.namespace)["data"]
    assert yaml.safe_load(data[CONFIG_FILE]) == proxy_config(cfg.gateway, cfg.gateway_backends)
    (deployment,) = [
        r.inputs for r in find_all(fixture_resources, DEPLOYMENT)
        if r.inputs["metadata"]["namespace"] == cfg.gateway.namespace
    ]  # fmt: skip
    assert deployment["spec"]["replicas"] == cfg.gateway.replicas
    assert find(fixture_resources, "llm-platform:gateway:Gateway", "gateway")
