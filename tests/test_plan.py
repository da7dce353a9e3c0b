"""Offline plan: outputs, determinism, secret masking and exit codes.

The tool's behaviour is tested on the fixture stacks (``tests/fixtures/``); that every
committed stack plans clean, after apply and at preview, with what its config asks for
in the summary, is the stack-level part (``stack_plan``: each committed stack planned
once).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra.stack.files import ROOT, stack_names, typed_stack_config
from tests.conftest import STACKS, StackPlan
from tests.harness import FIXTURE_STACKS, FIXTURES, SMALL, planned
from tools import plan as plan_tool
from tools.__main__ import main as cli

pytestmark = pytest.mark.stacks


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _unknown(stacks: tuple[str, ...] | list[str]) -> str:
    """A stack name no stack file has."""
    name = "no-such-stack"
    assert name not in stacks
    return name


# --------------------------------------------------------------------------- every stack


def test_plan_writes_resources_manifests_helm_and_summary(stack_plan: StackPlan) -> None:
    result, out = stack_plan
    assert result.exit_code == 0
    resources = json.loads((out / "resources.json").read_text())
    assert resources == sorted(resources, key=lambda r: (r["type"], r["name"]))
    assert {"type", "name", "parent", "dependsOn", "inputs"} <= set(resources[0])
    assert len(resources) == len(result.resources)
    assert (out / "manifests").is_dir() and (out / "helm").is_dir()
    assert (out / "summary.txt").read_text().startswith("Resources by kind:\n")


def test_every_planned_secret_keeps_its_keys(stack_plan: StackPlan) -> None:
    secrets = sorted((stack_plan.out / "manifests").glob("secret-*.yaml"))
    assert secrets
    for path in secrets:
        data = yaml.safe_load(path.read_text())["stringData"]
        assert isinstance(data, dict) and data, path.name
        assert set(data.values()) == {"[secret]"}, path.name


def test_summary_shows_each_models_revision_and_gateway_route(
    stack: str, stack_plan: StackPlan
) -> None:
    result = stack_plan.result
    cfg = typed_stack_config(stack)
    start = result.summary.index("Models (vLLM):") + 1
    header, *rows = result.summary[start : start + 1 + len(cfg.enabled_models)]
    assert header.split() == [
        "name", "served", "model", "revision", "pool", "GPUs/replica", "memory", "replicas",
        "Service", "weights",
    ]  # fmt: skip
    for model, row in zip(cfg.enabled_models, rows, strict=True):
        assert row.split() == [
            model.name,
            model.served_model_name,
            model.revision,
            model.gpu_pool,
            str(model.tensor_parallel_size),
            row.split()[5],
            f"{model.replicas.min}-{model.replicas.max}",
            f"http://{model.name}.{cfg.serving.namespace}.svc:8000",
            row.split()[-1],
        ]
        assert row.endswith(f"/models/{model.name}/{model.revision}/")
    start = next(i for i, line in enumerate(result.summary) if line.startswith("Gateway (")) + 2
    routes = {r.split()[0]: r.split() for r in result.summary[start : start + len(rows)]}
    for model in cfg.enabled_models:
        route = cfg.gateway.route(model.name)
        assert routes[model.name][1:3] == [
            f"http://{model.name}.{cfg.serving.namespace}.svc:8000/v1",
            ",".join(route.fallbacks) or "-",
        ]


def test_every_fake_output_answers_a_type_the_program_registers() -> None:
    """The mocks answer for what the program makes, and nothing else (no dead entries)."""
    from tools.mock_runtime import FAKE_OUTPUTS

    registered = {r.type for stack in STACKS for r in planned(stack, ROOT)}
    registered |= {r.type for stack in FIXTURE_STACKS for r in planned(stack)}
    assert set(FAKE_OUTPUTS) <= registered


def test_unknown_stack_exits_2_listing_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    unknown = _unknown(STACKS)
    assert cli(["plan", unknown]) == 2
    stacks = ", ".join(stack_names())
    assert f"no stack file Pulumi.{unknown}.yaml; stacks: {stacks}" in capsys.readouterr().err


# --------------------------------------------------------------------------- the tool


def test_plan_is_byte_for_byte_deterministic_and_needs_no_build_dir(tmp_path: Path) -> None:
    for out in ("one", "two"):
        assert not (tmp_path / out).exists()
        result = plan_tool.plan(
            SMALL, stack_dir=FIXTURES, out_root=tmp_path / out, log=lambda _: None
        )
        assert result.exit_code == 0
    assert (tmp_path / "one" / SMALL / "summary.txt").is_file()
    assert _tree(tmp_path / "one" / SMALL) == _tree(tmp_path / "two" / SMALL)


def test_secure_values_and_absent_secrets_become_masked_placeholders(tmp_path: Path) -> None:
    document = yaml.safe_load((FIXTURES / f"Pulumi.{SMALL}.yaml").read_text())
    document["config"]["llm-platform:modelApiKey"] = {"secure": "v1:AAAABBBBCCCC"}
    (tmp_path / f"Pulumi.{SMALL}.yaml").write_text(yaml.safe_dump(document))
    stack_file = plan_tool.load_stack_file(SMALL, tmp_path)
    assert stack_file.placeholders["llm-platform:modelApiKey"] == (
        "offline-placeholder-llm-platform-modelApiKey"
    )
    assert (
        set(stack_file.placeholders)
        == set(stack_file.secret_keys)
        == {
            "llm-platform:slackWebhookUrl",
            "llm-platform:pagerdutyRoutingKey",
            "llm-platform:modelApiKey",
            "llm-platform:grafanaAdminPassword",
            "llm-platform:dockerHubUsername",
            "llm-platform:dockerHubAccessToken",
            "llm-platform:gatewayKeySecret",
        }
    )
    result = plan_tool.plan(
        SMALL, stack_dir=tmp_path, out_root=tmp_path / "out", log=lambda _: None
    )
    assert result.leaks == []
    written = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "offline-placeholder" not in written
    assert "v1:AAAABBBBCCCC" not in written


def test_masked_replaces_every_secret() -> None:
    from tools.mock_runtime import Secret

    assert plan_tool.masked({"a": [Secret("x"), {"b": Secret(1)}], "c": "y"}) == {
        "a": ["[secret]", {"b": "[secret]"}],
        "c": "y",
    }
    # A secret mapping keeps its keys, so a masked Secret object stays schema-valid.
    assert plan_tool.masked({"stringData": Secret({"api-key": "k", "n": [1]})}) == {
        "stringData": {"api-key": "[secret]", "n": ["[secret]"]}
    }


def test_bad_config_exits_2_with_the_message_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load((FIXTURES / f"Pulumi.{SMALL}.yaml").read_text())
    document["config"]["llm-platform:gpuPools"][0]["gpuLimit"] = 0
    (tmp_path / f"Pulumi.{SMALL}.yaml").write_text(yaml.safe_dump(document))
    code = cli(["plan", SMALL, "--stack-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "error: invalid stack configuration (1 problem):\n"
        "  - llm-platform:gpuPools[0].gpuLimit = 0: input should be greater than or equal to 1\n"
    )
    assert "Traceback" not in err
    assert not (tmp_path / "out" / SMALL).exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("config:\n  llm-platform:region: [us-west-2\n", " is not valid YAML: "),
        ("config:\n- llm-platform:region\n", ": 'config' must be a mapping of keys to values"),
    ],
    ids=["not YAML", "config not a mapping"],
)
def test_an_unreadable_stack_file_exits_2_naming_the_file(
    text: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / f"Pulumi.{SMALL}.yaml").write_text(text)
    code = cli(["plan", SMALL, "--stack-dir", str(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: invalid stack configuration (1 problem):\n")
    assert f"  - Pulumi.{SMALL}.yaml{problem}" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / SMALL).exists()


def test_several_stacks_in_one_process_exit_with_the_worst_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = _unknown(FIXTURE_STACKS)
    args = ["--stack-dir", str(FIXTURES), "--out", str(tmp_path)]
    assert cli(["plan", SMALL, unknown, *args]) == 2
    assert (tmp_path / SMALL / "summary.txt").is_file()
    out = capsys.readouterr()
    assert f"offline plan of stack {SMALL}: clean" in out.out
    assert f"no stack file Pulumi.{unknown}.yaml" in out.err
