"""The gateway as it really behaves: the LiteLLM proxy of ``requirements-gateway.txt``
run as a process with the config the program renders for a committed stack, in front
of two loopback stand-ins for vLLM (``tests/vllm_standin.py``).

The stack is the first committed one with a model that has fallbacks; the primary is
that model, the backup its first fallback. Only what would make the scenarios slow is
shortened (the primary's timeouts and the cooldown); retries, allowed failures, the
fallback graph, the callbacks and the key check are the stack's. One proxy serves the
whole module (LiteLLM takes seconds to import); the scenarios run in order, each
starting from healthy backends with no cooldown. Every process runs in its own process
group and is killed with it at the end; ports are picked free; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from infra.core import request_log
from infra.log_shipping.fluent_bit import default_routes, saved_queries
from infra.stack.config import PlatformConfig
from infra.stack.files import ROOT, typed_stack_config
from tests.conftest import STACKS
from tests.known_metrics import LITELLM
from tests.test_gateway_alerts import assert_gateway_rules_fire_and_stay_quiet
from workloads.gateway.alerts import COOLDOWNS, FAILED_FALLBACKS
from workloads.gateway.config import GatewayRoute
from workloads.gateway.litellm import (
    CALLBACKS_MODULE,
    CLIENT_KEYS_ENV,
    MASTER_KEY_ENV,
    METRICS_KEY_ENV,
    MODEL_API_KEY_ENV,
    REQUEST_LOG_MODULE,
    Backend,
    client_keys,
    master_key,
    metrics_key,
    proxy_config,
    proxy_environment,
    retry_backoff_seconds,
)

pytestmark = pytest.mark.stacks
Test = TypeVar("Test", bound=Callable[..., None])


def real_proxy(test: Test) -> Test:
    """On each test that talks to the proxy: ``make test E2E=1`` runs it, ``make test``
    does not; and all of them go to one pytest-xdist worker (``--dist loadgroup``), so
    the proxy (about 30 s of CPU to start) starts once."""
    return pytest.mark.e2e(pytest.mark.xdist_group("litellm")(test))


GATEWAY_VENV = Path(sys.prefix).parent / ".venv-gateway"
"""Next to the program's venv (also when the README-recipes test runs the suite in a copy)."""
STARTUP_TIMEOUT = 240.0
"""LiteLLM imports for tens of seconds on a loaded two-core machine."""
REQUEST_TIMEOUT = 60.0
TIMEOUT_SECONDS = 2.0
"""The primary's request timeout here (the stack's is a minute)."""
COOLDOWN_SECONDS = 10.0
"""Also the window LiteLLM counts a model's failures in (the counter's TTL)."""
MARGIN_SECONDS = 4.0
"""What a request may take on top of what the config allows (event loop, a loaded CI)."""
MODEL_KEY = "model-key-for-the-stand-ins"
SEED = "gateway-key-secret-for-the-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the process group, then kill it; bounded."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def http(
    method: str, url: str, body: dict[str, Any] | None = None, key: str | None = None
) -> tuple[int, dict[str, Any] | str]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as err:
        text, status = err.read().decode(), err.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def wait_until(ready: Any, what: str, timeout: float, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.2)
    raise AssertionError(f"{what} not ready within {timeout:.0f}s")


@dataclass
class StandIn:
    """One loopback vLLM stand-in process."""

    backend: Backend
    port: int
    process: subprocess.Popen[bytes]

    def control(self, mode: str | None = None) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/control"
        status, body = http("POST" if mode else "GET", url, {"mode": mode} if mode else None)
        assert status == 200 and isinstance(body, dict), body
        return body

    @property
    def requests(self) -> int:
        return int(self.control()["requests"])


def start_standin(backend: Backend, logs: Path) -> StandIn:
    port = free_port()
    out = (logs / f"standin-{backend.name}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.vllm_standin",
            "--port",
            str(port),
            "--served-model-name",
            backend.served_model_name,
            "--api-key",
            MODEL_KEY,
        ],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    standin = StandIn(
        Backend(backend.name, backend.served_model_name, f"http://127.0.0.1:{port}"), port, process
    )
    wait_until(lambda: http("GET", f"http://127.0.0.1:{port}/health")[0] == 200, backend.name, 30)
    return standin


def scenario_stack() -> tuple[PlatformConfig, str, str]:
    """The first committed stack with a fallback: (config, primary, backup)."""
    for stack in STACKS:
        cfg = typed_stack_config(stack)
        for model in cfg.enabled_models:
            fallbacks = cfg.gateway.route(model.name).fallbacks
            if fallbacks:
                return cfg, model.name, fallbacks[0]
    raise AssertionError("no committed stack has a gateway fallback (seed 000's failover)")


@dataclass
class Gateway:
    url: str
    primary: StandIn
    backup: StandIn
    client: str
    key: str
    log: Path
    process: subprocess.Popen[bytes]
    backoff: float
    """Longest the retries of one request may wait (``retry_backoff_seconds``)."""
    allowed_fails: int

    def chat(self, *, key: str | None = None, stream: bool = False) -> tuple[int, Any, float]:
        body: dict[str, Any] = {
            "model": self.primary.backend.name,
            "messages": [{"role": "user", "content": "hi"}],
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        started = time.monotonic()
        status, answer = http("POST", f"{self.url}/v1/chat/completions", body, key or self.key)
        return status, answer, time.monotonic() - started

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"the proxy exited ({self.process.returncode}):\n{self.stderr()}")

    def stderr(self) -> str:
        return (self.log.parent / "proxy.err").read_text()[-4000:]

    def request_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if (
                    isinstance(record, dict)
                    and record.get(request_log.EVENT_KEY) == request_log.EVENT
                ):
                    lines.append(record)
        return lines

    def served_by(self, answer: Any) -> str:
        """The model that answered: what the stand-in put in the response."""
        assert isinstance(answer, dict), answer
        served = {s.backend.served_model_name: s.backend.name for s in (self.primary, self.backup)}
        model = str(answer["model"])
        return served.get(model, model)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    litellm = GATEWAY_VENV / "bin" / "litellm"
    if not litellm.is_file():
        pytest.fail(f"{litellm} is missing: run `make setup` (requirements-gateway.txt)")
    cfg, primary_name, backup_name = scenario_stack()
    by_name = {b.name: b for b in cfg.gateway_backends}
    directory = tmp_path_factory.mktemp("gateway")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        primary = start_standin(by_name[primary_name], directory)
        processes.append(primary.process)
        backup = start_standin(by_name[backup_name], directory)
        processes.append(backup.process)
        route = cfg.gateway.route(primary_name)
        gw = cfg.gateway.model_copy(
            update={
                "cooldown_seconds": COOLDOWN_SECONDS,
                "routes": (
                    *(r for r in cfg.gateway.routes if r.model != primary_name),
                    GatewayRoute.model_validate(
                        {
                            **route.model_dump(),
                            "timeout_seconds": TIMEOUT_SECONDS,
                            "first_token_timeout_seconds": TIMEOUT_SECONDS,
                        }
                    ),
                ),
            }
        )
        # Only the two stand-ins exist: their routes, the primary's fallbacks among them.
        gw = gw.model_copy(
            update={
                "routes": tuple(
                    r.model_copy(
                        update={"fallbacks": tuple(f for f in r.fallbacks if f == backup_name)}
                    )
                    for r in gw.routes
                )
            }
        )
        config = proxy_config(gw, [primary.backend, backup.backend])
        (directory / "config.yaml").write_text(yaml.safe_dump(config))
        (directory / f"{CALLBACKS_MODULE}.py").write_text(
            (ROOT / "workloads" / "gateway" / "callbacks.py").read_text()
        )
        (directory / f"{REQUEST_LOG_MODULE}.py").write_text(
            (ROOT / "infra" / "core" / "request_log.py").read_text()
        )
        client = "client-apps"
        keys = client_keys(SEED, [client])
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **proxy_environment(),
            "PYTHONPATH": str(directory),
            "HOME": str(directory),
            MODEL_API_KEY_ENV: MODEL_KEY,
            MASTER_KEY_ENV: master_key(SEED),
            CLIENT_KEYS_ENV: json.dumps(keys),
            METRICS_KEY_ENV: metrics_key(SEED),
            # No telemetry or update checks from a test.
            "LITELLM_TELEMETRY": "False",
        }
        log = directory / "proxy.out"
        process = subprocess.Popen(
            [
                str(litellm),
                "--config",
                str(directory / "config.yaml"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            cwd=directory,
            env=env,
            stdout=log.open("wb"),
            stderr=(directory / "proxy.err").open("wb"),
            start_new_session=True,
        )
        processes.append(process)
        gateway = Gateway(
            f"http://127.0.0.1:{port}",
            primary,
            backup,
            client,
            keys[client],
            log,
            process,
            retry_backoff_seconds(gw),
            gw.allowed_fails,
        )
        wait_until(
            lambda: http("GET", f"{gateway.url}/health/readiness")[0] == 200,
            "the LiteLLM proxy",
            STARTUP_TIMEOUT,
            alive=gateway.alive,
        )
        yield gateway
    finally:
        for p in reversed(processes):
            stop(p)


def test_each_stacks_gateway_alerts_fire_and_stay_quiet(stack: str, tmp_path: Path) -> None:
    """promtool on the gateway rules with each committed stack's targets (no proxy)."""
    cfg = typed_stack_config(stack)
    models = [m.name for m in cfg.enabled_models]
    assert_gateway_rules_fire_and_stay_quiet(cfg.gateway, models, tmp_path)


def healthy_backends_serve_the_requested_model(gateway: Gateway) -> None:
    before = gateway.backup.requests
    for _ in range(3):
        status, answer, _ = gateway.chat()
        assert status == 200, answer
        assert gateway.served_by(answer) == gateway.primary.backend.name
    status, _, _ = gateway.chat(stream=True)
    assert status == 200
    assert gateway.backup.requests == before


def a_wrong_key_is_rejected_before_any_backend(gateway: Gateway) -> None:
    before = (gateway.primary.requests, gateway.backup.requests)
    status, answer, _ = gateway.chat(key="sk-not-a-client-key")
    assert 400 <= status < 500, answer
    status, answer, _ = gateway.chat(key=master_key("another secret"))
    assert 400 <= status < 500, answer
    assert (gateway.primary.requests, gateway.backup.requests) == before


def a_hung_primary_fails_over_within_its_timeout(gateway: Gateway) -> None:
    gateway.primary.control("hang")
    try:
        status, answer, took = gateway.chat()
    finally:
        gateway.primary.control("ok")
    assert status == 200, answer
    assert gateway.served_by(answer) == gateway.backup.backend.name
    # Not retried: a timeout fails over at once (retry_policy TimeoutErrorRetries 0).
    assert TIMEOUT_SECONDS <= took < TIMEOUT_SECONDS + MARGIN_SECONDS


def server_errors_fail_over_then_traffic_returns_after_the_cooldown(
    gateway: Gateway,
) -> None:
    """More failed requests than ``allowedFails`` at once (a request's retries count once
    in the proxy): each is answered by the backup, the primary is cooled down, and once
    it answers again it gets the traffic back after the cooldown."""
    gateway.primary.control("fail")
    with ThreadPoolExecutor(gateway.allowed_fails + 1) as pool:
        results = list(pool.map(lambda _: gateway.chat(), range(gateway.allowed_fails + 1)))
    for status, answer, took in results:
        assert status == 200, answer
        assert gateway.served_by(answer) == gateway.backup.backend.name
        assert took < gateway.backoff + MARGIN_SECONDS
    gateway.primary.control("ok")
    recovered = time.monotonic()
    status, answer, _ = gateway.chat()
    assert (status, gateway.served_by(answer)) == (200, gateway.backup.backend.name)
    while True:
        status, answer, _ = gateway.chat()
        assert status == 200, answer
        if gateway.served_by(answer) == gateway.primary.backend.name:
            break
        assert time.monotonic() - recovered < COOLDOWN_SECONDS + MARGIN_SECONDS, "no return"
        time.sleep(0.5)


def a_killed_primary_fails_over_within_the_retry_budget(gateway: Gateway) -> None:
    """Connection refused: retried with back-off, then the fallback answers. LiteLLM
    never cools a model down for connection errors (``_is_cooldown_required``), so each
    request pays the retries (seed 000: "3 retries, then an answer in 10-30 s")."""
    stop(gateway.primary.process)
    status, answer, took = gateway.chat()
    assert status == 200, answer
    assert gateway.served_by(answer) == gateway.backup.backend.name
    assert took < gateway.backoff + MARGIN_SECONDS


SCENARIOS: tuple[Callable[[Gateway], None], ...] = (
    healthy_backends_serve_the_requested_model,
    a_wrong_key_is_rejected_before_any_backend,
    a_hung_primary_fails_over_within_its_timeout,
    server_errors_fail_over_then_traffic_returns_after_the_cooldown,
    a_killed_primary_fails_over_within_the_retry_budget,
)
"""In this order, on one proxy (the last one kills the primary)."""


@pytest.fixture(scope="module")
def scenarios(gateway: Gateway) -> dict[str, AssertionError | None]:
    """Every scenario run once, in order, whichever of this module's tests a pytest-xdist
    worker gets first: the request log and the metrics tests read what they sent."""
    outcomes: dict[str, AssertionError | None] = {}
    for scenario in SCENARIOS:
        try:
            scenario(gateway)
            outcomes[scenario.__name__] = None
        except AssertionError as exc:
            outcomes[scenario.__name__] = exc
    return outcomes


@real_proxy
@pytest.mark.parametrize("scenario", [s.__name__ for s in SCENARIOS])
def test_scenario(scenario: str, scenarios: dict[str, AssertionError | None]) -> None:
    failure = scenarios[scenario]
    if failure is not None:
        raise failure


@real_proxy
def test_every_request_is_one_json_log_line(gateway: Gateway, scenarios: object) -> None:
    """The scenarios' lines are the real request log (point 3)."""
    lines = gateway.request_lines()
    assert lines, gateway.stderr()
    for line in lines:
        assert set(request_log.FIELDS) <= set(line), line
    primary, backup = gateway.primary.backend.name, gateway.backup.backend.name
    served = [ln for ln in lines if ln[request_log.STATUS] == 200]
    assert {(ln[request_log.MODEL], ln[request_log.SERVED_BY]) for ln in served} == {
        (primary, primary),
        (primary, backup),
    }
    for line in served:
        assert line[request_log.CLIENT] == gateway.client
        assert line[request_log.INPUT_TOKENS] > 0 and line[request_log.OUTPUT_TOKENS] > 0
        assert 0 <= line[request_log.TTFT_MS] <= line[request_log.LATENCY_MS]
    failed_over = [ln for ln in served if ln[request_log.SERVED_BY] == backup]
    assert max(ln[request_log.LATENCY_MS] for ln in failed_over) >= TIMEOUT_SECONDS * 1000
    rejected = [ln for ln in lines if ln[request_log.STATUS] == 401]
    assert len(rejected) == 2 and all(ln[request_log.SERVED_BY] is None for ln in rejected)
    assert len({ln[request_log.REQUEST_ID] for ln in lines}) == len(lines)
    print(json.dumps(lines[-1]))


def query_fields(query: str) -> set[str]:
    """The log fields a Logs Insights query reads (selected, filtered, aggregated, grouped)."""
    names = {f.strip() for f in re.findall(r"fields ([^|]+)", query)[0].split(",")}
    names |= set(re.findall(r"\b(?:avg|max|min|sum)\((\w+)\)", query))
    names |= set(re.findall(r"(?:filter|and) (\w+) [=><]", query))
    for group in re.findall(r"\bby ([^|\n]+)", query):
        names |= {g.strip() for g in group.split(",") if "(" not in g}
    return {n for n in names if not n.startswith("@")}


@real_proxy
def test_the_saved_queries_read_the_fields_of_the_real_log_lines(
    gateway: Gateway, scenarios: object
) -> None:
    """Point 3: the request queries of ``infra.log_shipping`` name exactly fields the
    gateway's lines carry, with the types their filters compare."""
    served = [ln for ln in gateway.request_lines() if ln[request_log.STATUS] == 200]
    assert served
    queries = [
        q
        for q in saved_queries(default_routes("inference"))
        if f'{request_log.EVENT_KEY} = "{request_log.EVENT}"' in q.query
    ]
    assert {q.name for q in queries} == {"slow-requests-by-model", "token-usage-per-hour-by-model"}
    for query in queries:
        fields = query_fields(query.query)
        assert fields and fields <= set(request_log.FIELDS), (query.name, fields)
        for line in served:
            assert line[request_log.EVENT_KEY] == request_log.EVENT
            for name in fields:
                assert line[name] is not None, (query.name, name, line)
            assert isinstance(line[request_log.LATENCY_MS], int | float)


@real_proxy
def test_the_metrics_the_rules_use_are_exported_to_prometheus_only(
    gateway: Gateway, scenarios: object
) -> None:
    """After the scenarios, every series the alerts and the dashboard read exists, behind
    Prometheus's key (which opens nothing else)."""
    url = f"{gateway.url}/metrics/"
    assert http("GET", url)[0] == 401
    assert http("GET", url, key=gateway.key)[0] == 401
    status, answer, _ = gateway.chat(key=metrics_key(SEED))
    assert status == 401, answer
    status, text = http("GET", url, key=metrics_key(SEED))
    assert status == 200, text
    lines = str(text).splitlines()
    sampled = {ln.split("{")[0].split(" ")[0] for ln in lines if ln and not ln.startswith("#")}
    suffix = {"histogram": "_bucket"}  # counters are declared with their _total
    declared = {
        name + suffix.get(kind, "")
        for ln in lines
        if ln.startswith("# TYPE ")
        for name, kind in [ln.split()[2:4]]
    }
    assert declared >= LITELLM
    # What the scenarios exercised has samples too (a fallback never failed here).
    assert sampled >= LITELLM - {FAILED_FALLBACKS}
    # The latency histograms have a bound at each route's p95 targets.
    cfg, _primary, _backup = scenario_stack()
    bounds = set(
        re.findall(r'^litellm_request_total_latency_metric_bucket\{.*le="([^"]+)"', str(text), re.M)
    )
    for model in (gateway.primary.backend.name, gateway.backup.backend.name):
        route = cfg.gateway.route(model)
        for target in (route.ttft_p95_target_seconds, route.latency_p95_target_seconds):
            assert str(float(target)) in bounds, (model, target, sorted(bounds))


@real_proxy
def test_a_cooldown_is_counted_under_the_route_the_outage_alert_names(
    gateway: Gateway, scenarios: object
) -> None:
    """``GatewayBackendOutage`` reads the cooldown counter by route and ``api_base``: the
    cooldown scenario's cooldowns are there, under the primary's route and the base URL
    of its Service, with the status that caused them."""
    status, text = http("GET", f"{gateway.url}/metrics/", key=metrics_key(SEED))
    assert status == 200, text
    labels = [
        dict(re.findall(r'(\w+)="([^"]*)"', line))
        for line in str(text).splitlines()
        if line.startswith(COOLDOWNS + "{")
    ]
    assert labels, f"no {COOLDOWNS} sample after the cooldown scenario"
    assert {(x["litellm_model_name"], x["exception_status"]) for x in labels} == {
        (gateway.primary.backend.name, "500")
    }
    assert {x["api_base"] for x in labels} == {f"{gateway.primary.backend.url}/v1"}
