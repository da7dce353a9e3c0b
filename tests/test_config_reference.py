"""docs/configuration.md is generated from the config schema and kept up to date."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from infra.stack.config import PlatformConfig
from tools import config_reference


def _keys(model: type[BaseModel], path: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if model is PlatformConfig and name in ("stack", "region"):
            continue
        key = f"{path}.{field.alias}" if path else str(field.alias)
        keys.append(key)
        nested = config_reference._model(field.annotation)
        if nested is not None:
            listed = "list of" in config_reference._type(field.annotation)[0]
            keys += _keys(nested, f"{key}[]" if listed else key)
    return keys


def test_the_committed_reference_is_up_to_date() -> None:
    assert config_reference.OUTPUT.read_text() == config_reference.render(), (
        "docs/configuration.md is out of date: run python -m tools config-reference"
    )


def test_every_key_is_documented_once_with_a_description() -> None:
    text = config_reference.render()
    rows: dict[str, Any] = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.*) \| (.*) \| (.*) \| (.*) \|$", line)
        if match:
            assert match.group(1) not in rows, match.group(1)
            rows[match.group(1)] = match.groups()
    assert sorted(rows) == sorted(_keys(PlatformConfig))
    undocumented = [k for k, (_, _, _, _, description) in rows.items() if not description.strip()]
    assert undocumented == []  # a new field needs its docstring (the description)


def test_check_mode_reports_a_stale_reference(tmp_path: Any) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    assert config_reference.main(check=True, output=stale) == 1
    assert stale.read_text() == "old\n"


def test_constraints_inside_lists_and_optionals_are_shown() -> None:
    rows = {
        line.split(" | ")[0].strip("| `"): line
        for line in config_reference.render().splitlines()
        if line.startswith("| `")
    }
    assert "matches `^arn:aws[a-z-]*:iam::\\d{12}:(role\\|user)/.+$`" in rows["cluster.admins"]
    assert ">= 1; <= 100" in rows["gpuPools[].weight"]
    assert "matches `^arn:aws" in rows["ci.githubConnectionArn"]
    assert ">= 1" in rows["ci.allowedActorIds"]
    # Every table row has exactly five cells: no unescaped "|" inside a cell.
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 6 for line in rows.values())
