"""The configuration reference, generated from the typed config schema.

``python -m tools config-reference`` writes ``docs/configuration.md``: every key under
``llm-platform:`` with its type, default, allowed values and description (the docstring
under the field in the section's ``config.py``). ``--check`` only compares, and a test runs it,
so the reference cannot drift from the schema.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from infra.core.schema import NAMESPACE
from infra.stack.config import _INJECTED, REQUIRED_SECRETS, PlatformConfig

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "configuration.md"
CONSTRAINTS = {
    "ge": ">= {}",
    "gt": "> {}",
    "le": "<= {}",
    "lt": "< {}",
    "min_length": "at least {} item(s)",
    "max_length": "at most {} item(s)",
    "pattern": "matches `{}`",
}


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model(arg)
        if found is not None:
            return found
    return None


def _constraints(metadata: list[Any], *, text: bool = False) -> list[str]:
    out = []
    for item in metadata:
        if isinstance(item, FieldInfo):  # Field(...) inside Annotated, e.g. list items
            out += _constraints(list(item.metadata), text=text)
            continue
        func = getattr(item, "func", None)  # AfterValidator: its docstring says the rule
        if func is not None and func.__doc__:
            out.append(" ".join(func.__doc__.split()))
        for attr, template in CONSTRAINTS.items():
            value = getattr(item, attr, None)
            if value is not None:
                if text and attr in ("min_length", "max_length"):
                    template = template.replace("item(s)", "character(s)")
                out.append(template.format(value))
    return out


def _type(annotation: Any) -> tuple[str, list[str]]:
    """A readable type and the constraints found inside it."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        inner, notes = _type(args[0])
        return inner, notes + _constraints(list(args[1:]), text=args[0] is str)
    if origin is Literal:
        return "one of " + ", ".join(f"`{json.dumps(a)}`" for a in args), []
    if origin in (Union, types.UnionType):
        parts = [_type(a) for a in args if a is not type(None)]
        names = " or ".join(p[0] for p in parts)
        return (f"{names} (optional)" if type(None) in args else names), [
            n for p in parts for n in p[1]
        ]
    if origin is tuple:
        inner, notes = _type(args[0])
        return f"list of {inner}", notes
    if origin is dict:
        key, key_notes = _type(args[0])
        value, value_notes = _type(args[1])
        return f"map of {key} to {value}", key_notes + value_notes
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section", []
        if issubclass(annotation, SecretStr):
            return "secret string", []
        if issubclass(annotation, ipaddress.IPv4Network):
            return "IPv4 CIDR", []
        if issubclass(annotation, enum.Enum):
            return "one of " + ", ".join(f"`{m.value}`" for m in annotation), []
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        ), []
    return str(annotation), []


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined:
        return "**required**"
    value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, ipaddress.IPv4Network):
        value = str(value)
    if value in ((), {}, None):
        return "none"
    return f"`{json.dumps(value, default=str)}`"


def _markdown(text: str | None) -> str:
    """A docstring as one Markdown line: Sphinx-style ``literals`` become `code`."""
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join((text or "").split())).replace("|", "\\|")


def _describe(field: FieldInfo) -> str:
    text = field.description
    nested = _model(field.annotation)
    if not text and nested is not None:
        text = (nested.__doc__ or "").strip().split("\n\n")[0]
    return _markdown(text)


def _rows(
    model: type[BaseModel], path: str, sections: list[tuple[str, type[BaseModel]]]
) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if model is PlatformConfig and name in _INJECTED:
            continue
        key = f"{path}.{field.alias}" if path else str(field.alias)
        type_, notes = _type(field.annotation)
        notes += _constraints(list(field.metadata), text=field.annotation is str)
        nested = _model(field.annotation)
        if nested is not None and nested is not model:
            section = f"{key}[]" if type_.startswith("list of") else key
            sections.append((section, nested))
            anchor = re.sub(r"[^a-z0-9-]", "", section.lower())
            type_ = type_.replace("section", f"[{nested.__name__}](#{anchor})")
        default = _default(field)
        if path == "" and field.alias in REQUIRED_SECRETS:
            type_ = "secret string"
            default = "**required** (`pulumi config set --secret`)"
        allowed = "; ".join(notes).replace("|", "\\|")
        rows.append(f"| `{key}` | {type_} | {default} | {allowed} | {_describe(field)} |")
    return rows


def render() -> str:
    """``docs/configuration.md`` as generated from :class:`infra.stack.config.PlatformConfig`."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m tools config-reference` from the config sections; "
        "do not edit. -->",
        "",
        f"Every key of a stack file under `{NAMESPACE}:` (and `aws:region`, which sets the",
        "region). Keys are camelCase; a stack file states only what differs from the",
        "default. Unknown keys are rejected. Beyond the per-key rules below, the stack is",
        "checked as a whole before anything is created: each section's own rules (its",
        "`check`, next to the model named under its heading) and those that span sections",
        "(pool references, GPU memory fit, access entries, CI reachability:",
        "`infra/stack/checks.py`).",
        "",
    ]
    header = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    sections: list[tuple[str, type[BaseModel]]] = []
    lines += [f"## `{NAMESPACE}:`", "", *header, *_rows(PlatformConfig, "", sections), ""]
    seen: set[str] = set()
    while sections:
        key, model = sections.pop(0)
        if key in seen:
            continue
        seen.add(key)
        doc = _markdown(model.__doc__)
        where = f"`{model.__name__}` in `{model.__module__.replace('.', '/')}.py`"
        lines += [f"## {key}", "", doc, "", f"Defined by {where}.", ""]
        lines += [*header, *_rows(model, key, sections), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(*, check: bool = False, output: Path = OUTPUT) -> int:
    """Write (or, with ``check``, compare) the reference; 1 when it is out of date."""
    text = render()
    if output.is_file() and output.read_text() == text:
        return 0
    shown = output.relative_to(ROOT) if output.is_relative_to(ROOT) else output
    if check:
        print(f"{shown} is out of date: run python -m tools config-reference")
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(f"wrote {shown}", file=sys.stderr)
    return 0
