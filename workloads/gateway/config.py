"""The ``gateway`` section: one LiteLLM proxy in front of every served model.

Clients call the gateway, never a model Service: it routes by model name, retries with
exponential back-off, fails over by priority to the fallbacks of a model, cools a
failing backend down, and logs every request. Seed 000's setup is the default shape:
retries 3, a 60 s request timeout, and (in the stack files) ``chat`` falling back to
``code``. Latency targets default to seeds 001/003, the availability goal to their 99.9 %.
Which models exist is the ``models`` section's; that a route or fallback names an enabled
model is checked across sections (``infra.stack.checks``).
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field

from infra.core.conventions import PLATFORM_NAMESPACES
from infra.core.schema import ContainerResources, DnsLabel, Duration, Section, repeated

LITELLM_VERSION = "1.108.0"
"""The LiteLLM release every key, flag, endpoint and metric here was checked against
(``requirements-gateway.txt`` pins the same version for the real-process tests)."""


class GatewayRoute(Section):
    """How the gateway serves one model (``gateway.routes[]``); a model without an entry
    gets every default and no fallback."""

    model: DnsLabel
    """The model (``models[].name``, also the name clients send as ``model``)."""
    fallbacks: tuple[DnsLabel, ...] = ()
    """Models to try, in priority order, once this one failed after its retries, timed
    out or is cooled down (LiteLLM ``router_settings.fallbacks``; default none)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 60
    """Longest a request to this model may take before the gateway gives up on it and
    fails over (LiteLLM ``timeout``; default 60 s, seed 000's ``LLM_REQUEST_TIMEOUT``)."""
    first_token_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 15
    """Time-to-first-token budget of a streamed request: longest wait for the stream to
    start (and between chunks) before failing over (LiteLLM ``stream_timeout``; 15 s)."""
    ttft_p95_target_seconds: Annotated[float, Field(gt=0)] = 2.5
    """Alert when the p95 time to first token through the gateway exceeds this (default
    2.5 s: the strictest p95 target of seeds 001 and 003)."""
    latency_p95_target_seconds: Annotated[float, Field(gt=0)] = 4.5
    """Alert when the p95 end-to-end latency through the gateway exceeds this (default
    4.5 s: seed 003's p95 latency alert)."""

    def check(self, at: str) -> list[str]:
        problems = repeated(f"{at}.fallbacks", self.fallbacks)
        if self.model in self.fallbacks:
            problems.append(
                f"{at}.fallbacks = {json.dumps(list(self.fallbacks))}: a model cannot fall "
                f"back to itself ({self.model})"
            )
        if self.first_token_timeout_seconds > self.timeout_seconds:
            problems.append(
                f"{at}.firstTokenTimeoutSeconds = {self.first_token_timeout_seconds}: must be "
                f"at most timeoutSeconds ({self.timeout_seconds})"
            )
        return problems


class GatewayConfig(Section):
    """The LiteLLM proxy (``workloads.gateway``)."""

    namespace: DnsLabel = "gateway"
    """Namespace of the gateway (default ``gateway``); only its pods (and Prometheus)
    reach the model servers."""
    image: Annotated[str, Field(pattern=r"^[\w./-]+:v\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")] = (
        f"ghcr.io/berriai/litellm:v{LITELLM_VERSION}"
    )
    """LiteLLM proxy image, pinned to a release tag, optionally with its digest (default
    ``v1.108.0``: LiteLLM's release notes publish each release as
    ``ghcr.io/berriai/litellm:v<version>``, e.g. docs/my-website/release_notes of
    BerriAI/litellm; the ``main-v`` form is not published for these releases)."""
    replicas: Annotated[int, Field(ge=2, le=20)] = 2
    """Gateway replicas, spread over zones (default 2; at least 2 so one can be lost)."""
    resources: ContainerResources = ContainerResources(cpu="1", memory="2Gi")
    """CPU and memory of each replica, one worker process (default 1 vCPU, 2Gi). LiteLLM's
    production guide (https://docs.litellm.ai/docs/proxy/prod) recommends 4 vCPU / 8 GB per
    machine running several workers; scale out with ``replicas`` rather than workers, so a
    lost node takes little capacity."""
    allowed_client_namespaces: tuple[DnsLabel, ...] = ()
    """Namespaces whose pods may call the gateway (NetworkPolicy). Each gets its own API
    key in the Secret ``llm-gateway-key`` of that namespace, which is created if missing
    and adopted (labelled, never deleted) if it exists."""
    num_retries: Annotated[int, Field(ge=0, le=10)] = 3
    """Retries of a failed request on the same model before its fallbacks, with LiteLLM's
    exponential back-off (0.5 s, 1 s, 2 s, ... up to 8 s; default 3 as in seed 000). A
    timed-out request is not retried: it fails over at once."""
    allowed_fails: Annotated[int, Field(ge=0, le=100)] = 3
    """Server errors, timeouts or rate limits of a model within ``cooldownSeconds`` after
    which the gateway cools it down and sends its traffic straight to the fallbacks
    (LiteLLM ``allowed_fails_policy``; default 3). Connection errors never cool a model
    down in LiteLLM: each request retries before failing over."""
    cooldown_seconds: Annotated[float, Field(gt=0, le=3600)] = 30
    """How long a cooled-down model gets no traffic before it is tried again (LiteLLM
    ``cooldown_time``; default 30 s). Each replica keeps its own failure counts and
    cooldowns (LiteLLM shares them only through Redis, which the platform does not run)."""
    routes: tuple[GatewayRoute, ...] = ()
    """Per-model routing: fallbacks, timeouts and latency targets."""
    availability_target: Annotated[float, Field(gt=0.9, lt=1)] = 0.999
    """Availability SLO of the gateway: the share of requests answered without a server
    error (default 0.999, seeds 001/003's 99.9 % uptime goal)."""
    slo_window: Duration = "720h"
    """Window of the SLO's error budget (default 30 days); the burn-rate alerts are the
    multi-window ones of the Google SRE workbook for it."""

    def route(self, model: str) -> GatewayRoute:
        """The route of ``model``: its entry, or every default."""
        return next((r for r in self.routes if r.model == model), GatewayRoute(model=model))

    def check(self, at: str) -> list[str]:
        problems = repeated(f"{at}.routes[].model", tuple(r.model for r in self.routes))
        problems += repeated(f"{at}.allowedClientNamespaces", self.allowed_client_namespaces)
        platform = [self.namespace, *self.allowed_client_namespaces]
        problems += [
            f"{at}.{'namespace' if i == 0 else f'allowedClientNamespaces[{i - 1}]'} = "
            f"{json.dumps(ns)}: a platform namespace; use another (platform namespaces: "
            f"{', '.join(PLATFORM_NAMESPACES)})"
            for i, ns in enumerate(platform)
            if ns in PLATFORM_NAMESPACES
        ]
        return problems
