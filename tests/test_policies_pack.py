"""The pack as CrossGuard runs it: names, pins, per-stack config, and a real analyzer
process answering the engine's gRPC calls."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as pb
from pulumi.runtime.proto import analyzer_pb2_grpc as rpc
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE

from policies.rules import RULE_NAMES, RULES
from tests.harness import FIXTURE_STACKS, FIXTURES, HA, SMALL, typed_config
from tools import policy

ROOT = policy.ROOT
LEVELS = {"advisory": pb.ADVISORY, "mandatory": pb.MANDATORY, "disabled": pb.DISABLED}
TIMEOUT = 60
"""Seconds a subprocess of these tests may take (the analyzer: to start)."""


def test_rule_names_are_unique_kebab_case_and_in_module_order() -> None:
    assert len(set(RULE_NAMES)) == len(RULE_NAMES) >= 20
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", n) for n in RULE_NAMES)


def _pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==") for line in lines if line)


def test_pack_requirements_pin_what_the_project_pins() -> None:
    pack = _pins(ROOT / "policies" / "requirements.txt")
    assert set(pack) == {"pulumi", "pulumi-policy"}
    assert pack.items() <= _pins(ROOT / "requirements.txt").items()


def test_the_rules_import_nothing_outside_the_pack_requirements() -> None:
    code = "import sys, policies.rules, policies.crossguard; print(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    )
    # The pack's own virtualenv has only what policies/requirements.txt pins.
    loaded = set(out.stdout.split())
    assert not loaded & {"pulumi_aws", "pulumi_eks", "pulumi_kubernetes", "boto3", "pydantic"}
    # ... because the pack imports only the core layer of the program.
    project = {m.split(".")[0] + "." + m.split(".")[1] for m in loaded if m.startswith("infra.")}
    assert project == {"infra.core"}


def _pack_config(stack: str) -> dict[str, Any]:
    return dict(json.loads(policy.render(typed_config(stack))))


def test_pack_config_has_every_rule_with_its_settings(fixture_stack: str) -> None:
    document = _pack_config(fixture_stack)
    assert list(document) == sorted(RULE_NAMES)
    for rule in RULES:
        assert set(document[rule.name]) == {"enforcementLevel", *rule.settings}


def test_enforcement_and_limits_come_from_the_stacks_policy_section(fixture_stack: str) -> None:
    cfg = typed_config(fixture_stack)
    document = _pack_config(fixture_stack)
    for rule in RULE_NAMES:  # every rule defaults to mandatory
        level = cfg.policy.enforcement.get(rule, "mandatory")
        assert document[rule]["enforcementLevel"] == level, rule
    limits = document["gpu-nodepool-requires-gpu-limit"]
    assert limits["maxGpusPerPool"] == cfg.policy.max_gpus_per_pool


def test_the_fixtures_enforce_the_endpoint_rule_differently() -> None:
    rule = "eks-endpoint-not-open-to-world"
    levels = {_pack_config(s)[rule]["enforcementLevel"] for s in FIXTURE_STACKS}
    assert levels == {"advisory", "mandatory"}


def test_stale_pack_config_is_reported(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    source = FIXTURES / f"Pulumi.{SMALL}.yaml"
    (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "policies" / f"config.{SMALL}.json").write_text("{}\n")
    assert policy.main([SMALL], check=True, root=tmp_path) == 1
    assert policy.main([SMALL], root=tmp_path) == 0
    assert policy.main([SMALL], check=True, root=tmp_path) == 0
    written = (tmp_path / "policies" / f"config.{SMALL}.json").read_text()
    assert written == policy.render(typed_config(SMALL))


# --------------------------------------------------------------------------- CrossGuard


def _read_port(proc: subprocess.Popen[str]) -> str:
    """The port the analyzer prints first; fails after :data:`TIMEOUT` seconds."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=TIMEOUT).strip()
    except queue.Empty:
        pytest.fail(f"the policy analyzer printed no port within {TIMEOUT} s")


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    """The pack started the way the CLI starts it (``python -m pulumi.policy <engine> .``
    in the pack directory); yields a gRPC stub configured with the pack config of the
    fixture stack that enforces every rule."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=ROOT / "policies",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = _read_port(proc)
        if not port.isdigit():
            proc.kill()
            _, err = proc.communicate(timeout=TIMEOUT)
            pytest.fail(f"the policy analyzer did not start: {port}{err}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rpc.AnalyzerStub(channel)
            request = pb.ConfigureAnalyzerRequest()
            for name, entry in _pack_config(HA).items():
                props = struct_pb2.Struct()
                props.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
                request.policyConfig[name].CopyFrom(
                    pb.PolicyConfig(
                        enforcementLevel=LEVELS[entry["enforcementLevel"]], properties=props
                    )
                )
            stub.Configure(request, timeout=TIMEOUT)
            yield stub
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_analyzer_declares_every_rule_with_its_config_schema(analyzer: Any) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=TIMEOUT)
    assert info.name == "llm-platform-guardrails"
    assert [p.name for p in info.policies] == list(RULE_NAMES)
    for p, rule in zip(info.policies, RULES, strict=True):
        assert sorted(p.configSchema.required) == sorted(rule.settings)


def _analyze(analyzer: Any, type_: str, props: dict[str, Any]) -> list[tuple[str, str, str]]:
    struct = struct_pb2.Struct()
    struct.update(props)
    response = analyzer.Analyze(
        pb.AnalyzeRequest(
            type=type_, name="r", urn=f"urn:pulumi:{HA}::p::{type_}::r", properties=struct
        ),
        timeout=TIMEOUT,
    )
    return [
        (d.policyName, pb.EnforcementLevel.Name(d.enforcementLevel), d.message.splitlines()[-1])
        for d in response.diagnostics
    ]


def test_an_unknown_gpu_limit_fails_the_mandatory_rule_at_preview(analyzer: Any) -> None:
    pool = {
        "spec": {
            "limits": {"nvidia.com/gpu": UNKNOWN_NUMBER_VALUE},
            "template": {
                "spec": {
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                        {
                            "key": "topology.kubernetes.io/zone",
                            "operator": "In",
                            "values": ["us-east-1a", "us-east-1b", "us-east-1c"],
                        },
                        {
                            "key": "karpenter.k8s.aws/instance-family",
                            "operator": "In",
                            "values": ["g6e"],
                        },
                        {
                            "key": "karpenter.k8s.aws/instance-size",
                            "operator": "In",
                            "values": ["xlarge"],
                        },
                    ],
                    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                }
            },
        }
    }
    assert _analyze(analyzer, "kubernetes:karpenter.sh/v1:NodePool", pool) == [
        (
            "gpu-nodepool-requires-gpu-limit",
            "MANDATORY",
            'spec.limits["nvidia.com/gpu"] cannot be verified at preview (unknown until apply)',
        )
    ]


def test_a_world_open_endpoint_is_mandatory_where_the_config_says(analyzer: Any) -> None:
    assert _pack_config(HA)["eks-endpoint-not-open-to-world"]["enforcementLevel"] == "mandatory"
    cluster = {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}
    found = _analyze(analyzer, "eks:index:Cluster", cluster)
    assert (
        "eks-endpoint-not-open-to-world",
        "MANDATORY",
        "publicAccessCidrs includes 0.0.0.0/0: the API endpoint is open to the whole internet",
    ) in found


def test_stack_rules_see_dependencies(analyzer: Any) -> None:
    bucket = pb.AnalyzerResource(
        type="aws:s3/bucket:Bucket",
        name="models",
        urn=f"urn:pulumi:{HA}::p::aws:s3/bucket:Bucket::models",
    )
    response = analyzer.AnalyzeStack(pb.AnalyzeStackRequest(resources=[bucket]), timeout=TIMEOUT)
    messages = {d.policyName: d.message.splitlines()[-1] for d in response.diagnostics}
    assert messages["s3-bucket-public-access-blocked"].startswith(
        "aws:s3/bucket:Bucket models: no aws:s3/bucketPublicAccessBlock"
    )
