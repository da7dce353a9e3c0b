"""Stack configuration: the sections of every capability composed into the whole
``llm-platform:`` namespace of one stack, and how a stack file is loaded.

``__main__.py`` collects the raw stack config and calls :func:`load_config` before it
registers any resource. Every other module receives typed sections, never
``pulumi.Config``. Each field documents its default; a stack file only states what
differs from it (``docs/configuration.md`` lists every key).

Validation reports *all* problems at once, in three passes:

1. field checks by pydantic (types, ranges, closed sets, unknown keys);
2. each section's own ``check`` (``infra.core.schema.section_problems``) and the checks
   that span sections (``infra.stack.checks``);
3. the renderers, run once on the config (``infra.stack.render_checks``).

Each problem is one line ``<key path> = <value>: <what is allowed>``; the value of a
secret is never printed.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

from infra.ci.config import CiConfig
from infra.cluster.config import ClusterConfig
from infra.core.arns import Arns
from infra.core.conventions import COST_CENTER_TAG, ENVIRONMENT_TAG, OWNER_TAG, PROJECT_TAG
from infra.core.naming import model_bucket_name
from infra.core.pricing import ON_DEMAND_USD_PER_HOUR, PRICES_AS_OF
from infra.core.regions import MIN_ZONES, ZONES
from infra.core.schema import NAMESPACE, ConfigError, DnsLabel, Section, section_problems
from infra.cost.config import CostConfig
from infra.gpu_operator.config import GpuOperatorConfig
from infra.karpenter.config import CpuPoolConfig, GpuPoolConfig, KarpenterConfig, NodeClassConfig
from infra.log_shipping.config import LoggingConfig
from infra.network.config import NetworkConfig
from infra.observability.alert_rules import AlertInputs
from infra.observability.config import ObservabilityConfig
from infra.registry.config import RegistryConfig
from infra.stack.checks import stack_problems
from infra.stack.policy import PolicyConfig
from infra.stack.render_checks import render_problems
from workloads.gateway.config import GatewayConfig
from workloads.gateway.litellm import Backend
from workloads.serving.config import ModelConfig, ServingConfig
from workloads.serving.vllm import service_url


class PlatformConfig(Section):
    """The whole ``llm-platform:`` namespace of one stack."""

    stack: DnsLabel
    """Stack name (from Pulumi, not from the stack file); used in names and tags."""
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
    """AWS region (from ``aws:region``, the one place it is set)."""
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    """The AWS account the stack deploys into, quoted (``"444455556666"``). The program
    refuses to run with credentials of another account, and composes the ARNs of its
    resources from it so that every policy document is known at preview."""
    zones: Annotated[tuple[str, ...], Field(min_length=1, max_length=6)]
    """Availability zones of ``aws:region`` to run in, e.g. ``[us-east-1a, us-east-1b]``;
    subnets, NAT gateways and NodePools span them."""
    tags: dict[str, str]
    """Cost-allocation tags on every AWS resource; must include ``cost-center`` and ``owner``."""
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig
    karpenter: KarpenterConfig = KarpenterConfig()
    node_class: NodeClassConfig = NodeClassConfig()
    gpu_pools: Annotated[tuple[GpuPoolConfig, ...], Field(min_length=1)]
    cpu_pool: CpuPoolConfig = CpuPoolConfig()
    gpu_operator: GpuOperatorConfig = GpuOperatorConfig()
    serving: ServingConfig = ServingConfig()
    registry: RegistryConfig = RegistryConfig()
    models: tuple[ModelConfig, ...] = ()
    gateway: GatewayConfig = GatewayConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    logging: LoggingConfig = LoggingConfig()
    cost: CostConfig
    policy: PolicyConfig
    ci: CiConfig
    slack_webhook_url: SecretStr | None = None
    """Secret. Alertmanager Slack incoming-webhook URL."""
    pagerduty_routing_key: SecretStr | None = None
    """Secret. PagerDuty Events API v2 integration (routing) key."""
    model_api_key: SecretStr | None = None
    """Secret. API key vLLM requires on every request (``--api-key``)."""
    grafana_admin_password: SecretStr | None = None
    """Secret. Grafana admin password."""
    docker_hub_username: SecretStr | None = None
    """Secret. Docker Hub user of the ECR pull-through cache (``registry.pullThroughCache``)."""
    docker_hub_access_token: SecretStr | None = None
    """Secret. Docker Hub access token (read-only, public repositories) of that user."""
    gateway_key_secret: SecretStr | None = None
    """Secret. The gateway derives each client namespace's API key from it
    (``workloads.gateway.litellm.client_keys``); changing it rotates every client key."""

    def check(self, at: str) -> list[str]:
        """The region's prices, zones of the region, the cost tags and the required secrets."""
        problems = _region_problems(at, self.region, self.zones)
        if len(set(self.zones)) != len(self.zones):
            problems.append(f"{at}:zones = {json.dumps(list(self.zones))}: zones must be unique")
        missing = [t for t in REQUIRED_TAGS if not self.tags.get(t)]
        if missing:
            problems.append(
                f"{at}:tags = {json.dumps(self.tags)}: cost tags {', '.join(missing)} are required"
            )
        problems += [
            f"{at}:{key}: required secret is not set "
            f"(pulumi config set --secret {at}:{key} <value>)"
            for key in (*REQUIRED_SECRETS, *self._registry_secrets)
            if getattr(self, _snake(key)) is None
        ]
        return problems

    @property
    def _registry_secrets(self) -> tuple[str, ...]:
        return REGISTRY_SECRETS if self.registry.pull_through_cache else ()

    @property
    def all_tags(self) -> dict[str, str]:
        """Tags applied to every taggable AWS resource."""
        return {PROJECT_TAG: NAMESPACE, ENVIRONMENT_TAG: self.stack, **self.tags}

    @property
    def arns(self) -> Arns:
        """ARNs of the stack's account and region (``infra.core.arns``)."""
        return Arns(account_id=self.account_id, region=self.region)

    @property
    def runbook_base_url(self) -> str:
        """``observability.runbookBaseUrl``, or this repository's ``docs/runbooks``."""
        return self.observability.runbook_base_url or (
            f"https://github.com/{self.ci.github_repository}/blob/main/docs/runbooks"
        )

    @property
    def model_bucket(self) -> str:
        """Name of the stack's model bucket (``infra.core.naming``)."""
        return model_bucket_name(self.account_id, self.region, self.stack)

    @property
    def alert_inputs(self) -> AlertInputs:
        """What the platform alert rules need from the stack config."""
        return AlertInputs(
            thresholds=self.observability.thresholds,
            serving_namespace=self.serving.namespace,
            runbook_base_url=self.runbook_base_url,
            spot_fallback_pools=tuple(
                p.name for p in self.gpu_pools if {"spot", "on-demand"} <= set(p.capacity_types)
            ),
        )

    @property
    def enabled_models(self) -> tuple[ModelConfig, ...]:
        return tuple(m for m in self.models if m.enabled)

    @property
    def gateway_backends(self) -> tuple[Backend, ...]:
        """Every enabled model as the gateway routes to it (its Service)."""
        return tuple(
            Backend(m.name, m.served_model_name, service_url(m.name, self.serving.namespace))
            for m in self.enabled_models
        )


SECRET_KEYS: tuple[str, ...] = tuple(
    to_camel(n) for n, f in PlatformConfig.model_fields.items() if "SecretStr" in str(f.annotation)
)
REQUIRED_SECRETS: tuple[str, ...] = (
    "slackWebhookUrl",
    "pagerdutyRoutingKey",
    "modelApiKey",
    "grafanaAdminPassword",
    "gatewayKeySecret",
)
REGISTRY_SECRETS: tuple[str, ...] = ("dockerHubUsername", "dockerHubAccessToken")
"""Required while ``registry.pullThroughCache`` is on."""
REQUIRED_TAGS: tuple[str, ...] = (COST_CENTER_TAG, OWNER_TAG)


def _region_problems(at: str, region: str, zones: tuple[str, ...]) -> list[str]:
    """A priced region (``infra.core.pricing``) and at least two of its real zones
    (``infra.core.regions``)."""
    if region not in ON_DEMAND_USD_PER_HOUR:
        return [
            f"aws:region = {json.dumps(region)}: no price data for this region (the price "
            f"table of infra/core/pricing.py, as of {PRICES_AS_OF}, covers "
            f"{', '.join(sorted(ON_DEMAND_USD_PER_HOUR))}); add its prices there and its zones "
            "to infra/core/regions.py, or use one of these"
        ]
    known = ZONES[region]
    problems = [
        f"{at}:zones[{i}] = {json.dumps(zone)}: not a zone of region {region} "
        f"(zones: {', '.join(known)})"
        for i, zone in enumerate(zones)
        if zone not in known
    ]
    if len(zones) < MIN_ZONES:
        problems.append(
            f"{at}:zones = {json.dumps(list(zones))}: EKS needs subnets in at least "
            f"{MIN_ZONES} availability zones; list {MIN_ZONES} or more of {', '.join(known)}"
        )
    return problems


_INJECTED = ("stack", "region")


# --------------------------------------------------------------------------- loading


def load_config(
    raw: Mapping[str, Any], *, stack: str, region: str, secret_keys: frozenset[str]
) -> PlatformConfig:
    """Validate the raw ``llm-platform:`` config of a stack.

    ``raw`` maps keys without the namespace (``gpuPools``) to values as Pulumi passes
    them: structured values as JSON strings or already decoded. ``secret_keys`` holds
    the keys (without namespace) that were set with ``--secret``. Raises
    :class:`ConfigError` listing every problem.
    """
    data: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        if key in _INJECTED:
            source = "the stack name" if key == "stack" else "aws:region"
            problems.append(f"{NAMESPACE}:{key}: not a stack-file key; it comes from {source}")
            continue
        data[key] = _decode(value)
    for key in SECRET_KEYS:
        if key in data and key not in secret_keys:
            problems.append(
                f"{NAMESPACE}:{key} is set in clear text: it must be a secret "
                f"(pulumi config set --secret {NAMESPACE}:{key} <value>)"
            )
    if problems:
        raise ConfigError(problems)
    try:
        cfg = PlatformConfig.model_validate({**data, "stack": stack, "region": region})
    except ValidationError as exc:
        errors = exc.errors()
        # A list that failed because an item failed adds no information: drop it.
        locs = [tuple(e["loc"]) for e in errors]
        raise ConfigError(
            [
                _describe(err)
                for err, loc in zip(errors, locs, strict=True)
                if not any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs)
            ]
        ) from None
    problems = section_problems(cfg, NAMESPACE) + stack_problems(cfg)
    if problems:
        raise ConfigError(problems)
    problems = render_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


def load_stack_config(
    values: Mapping[str, Any], *, stack: str, secret_keys: Collection[str]
) -> PlatformConfig:
    """:func:`load_config` from a stack's config as Pulumi passes it to a program.

    ``values`` has fully qualified keys (``llm-platform:gpuPools``, ``aws:region``);
    ``secret_keys`` likewise. Used by ``__main__.py`` (with the runtime config) and by
    the offline plan (with the stack file), so both read config the same way.
    """
    prefix = f"{NAMESPACE}:"
    typos = _namespace_typos(values)
    if typos:
        raise ConfigError(typos)
    region = values.get("aws:region")
    if not region:
        raise ConfigError(["aws:region: required (pulumi config set aws:region <region>)"])
    return load_config(
        {k.removeprefix(prefix): v for k, v in values.items() if k.startswith(prefix)},
        stack=stack,
        region=str(region),
        secret_keys=frozenset(k.removeprefix(prefix) for k in secret_keys if k.startswith(prefix)),
    )


CONFIG_NAMESPACES: tuple[str, ...] = (NAMESPACE, "aws")
"""The config namespaces the program reads (``aws`` for ``aws:region``)."""


def _namespace_typos(values: Mapping[str, Any]) -> list[str]:
    """Keys in a namespace one or two typos away from one the program reads.

    Pulumi accepts a key in any namespace (``kubernetes:``, ``pulumi:`` are others'), so
    ``llm-platfrom:zones`` would be silently ignored and the stack deployed with the
    defaults; an edit distance of at most a fifth of the name (one letter for ``aws``)
    catches the typo without rejecting real namespaces.
    """
    problems = []
    for key in values:
        namespace, sep, rest = str(key).partition(":")
        if not sep or namespace in CONFIG_NAMESPACES:
            continue
        for meant in CONFIG_NAMESPACES:
            if _edit_distance(namespace.lower(), meant) <= max(1, len(meant) // 5):
                problems.append(
                    f"{key}: unknown config namespace {json.dumps(namespace)}; did you mean "
                    f"{meant}:{rest}?"
                )
    return problems


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance counting a swap of neighbours as one edit."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to Python as JSON text; scalars stay strings."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _path(loc: tuple[int | str, ...]) -> str:
    out = f"{NAMESPACE}:{loc[0]}" if loc else NAMESPACE
    for part in loc[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _describe(err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    path = _path(loc)
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc[:-1]))
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if err["type"] == "missing":
        return f"{path}: required key is missing"
    value = err.get("input")
    shown = "<secret>" if loc and loc[0] in SECRET_KEYS else json.dumps(value, default=str)
    # Config lists are tuples inside the model; users wrote YAML lists.
    message = str(err["msg"]).removeprefix("Value error, ").replace("Tuple ", "List ")
    return f"{path} = {shown}: {message[:1].lower()}{message[1:]}"


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """camelCase keys of the section at ``loc`` (for 'unknown key' messages)."""
    model: Any = PlatformConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return sorted(str(f.alias) for n, f in model.model_fields.items() if n not in _INJECTED)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, tuple, Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower()
