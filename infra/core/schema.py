"""Schema types every config section is built from (pydantic).

Keys are camelCase in ``Pulumi.<stack>.yaml`` (Pulumi convention) and snake_case in
Python. Each capability package defines its section in its ``config.py``: field checks
by pydantic (types, ranges, closed sets, unknown keys), and a ``check`` method for the
rules that span the section's own fields. Checks that span sections live in
``infra.stack``. Each problem is one line ``<key path> = <value>: <what is allowed>``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from infra.core.durations import is_go_duration

NAMESPACE = "llm-platform"


class ConfigError(pulumi.RunError):
    """Invalid stack configuration.

    A ``RunError`` is reported by the Pulumi CLI as its message alone, without a Python
    traceback; the offline plan prints the same message and exits 2.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"invalid stack configuration ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n" + "\n".join(f"  - {p}" for p in problems)
        )


_BOOL_ANNOTATIONS: tuple[object, ...] = (bool, bool | None)


class Section(BaseModel):
    """Base of every config section: immutable, unknown keys rejected, camelCase keys."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        # The docstring under each field is its description (docs/configuration.md).
        use_attribute_docstrings=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _real_bool(cls, value: object, info: ValidationInfo) -> object:
        # pydantic turns "false", "no", "off" and 0 into False: a quoted `"false"` in a
        # stack file, or a number, is a mistake that would pass unnoticed.
        field = cls.model_fields.get(info.field_name or "")
        optional = value is None and field is not None and field.annotation is not bool
        is_bool = field is not None and field.annotation in _BOOL_ANNOTATIONS
        if is_bool and not optional and not isinstance(value, bool):
            raise ValueError("must be true or false (a YAML boolean, unquoted)")
        return value

    def check(self, at: str) -> list[str]:
        """Problems among this section's own fields; ``at`` is its key path
        (``llm-platform:cluster``, ``llm-platform:gpuPools[0]``). None by default."""
        return []


def _dns_label(value: str) -> str:
    """a DNS label: lowercase letters, digits and '-', starting with a letter, at most 40
    characters"""
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", value):
        raise ValueError(
            "must be a DNS label: lowercase letters, digits and '-', starting with a letter, "
            "at most 40 characters"
        )
    return value


def _duration(value: str) -> str:
    """a Go duration such as `30s`, `10m`, `720h` or `1h30m`"""
    if not is_go_duration(value):
        raise ValueError("must be a Go duration such as '30s', '10m', '720h' or '1h30m'")
    return value


DnsLabel = Annotated[str, AfterValidator(_dns_label)]

Duration = Annotated[str, AfterValidator(_duration)]

PositiveInt = Annotated[int, Field(ge=1)]

CapacityType = Literal["spot", "on-demand"]

IamRoleArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")]


class ContainerResources(Section):
    """CPU and memory of one container: requests, with the memory limit equal to the
    request and no CPU limit (a busy pod is never throttled while its node has spare CPU)."""

    cpu: Annotated[str, Field(pattern=r"^(\d+m|\d+(\.\d+)?)$")]
    """CPU request, e.g. ``500m`` or ``2``."""
    memory: Annotated[str, Field(pattern=r"^\d+(Mi|Gi)$")]
    """Memory request and limit, e.g. ``512Mi`` or ``4Gi``."""

    def render(self) -> dict[str, dict[str, str]]:
        """The Kubernetes ``resources`` block."""
        return {
            "requests": {"cpu": self.cpu, "memory": self.memory},
            "limits": {"memory": self.memory},
        }


def gib(quantity: str) -> float:
    """A ``512Mi``/``4Gi`` memory quantity in GiB."""
    return int(quantity[:-2]) / (1024 if quantity.endswith("Mi") else 1)


def cores(quantity: str) -> float:
    """A ``500m``/``2`` CPU quantity in cores."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def duplicates(at: str, names: list[str]) -> list[str]:
    """One problem per name that appears more than once in the list at ``at``."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    return [f"{at}: duplicate name {json.dumps(n)}" for n in dupes]


def repeated(at: str, values: tuple[str, ...]) -> list[str]:
    """A problem when a list that names each value once repeats one."""
    twice = sorted({v for v in values if values.count(v) > 1})
    if not twice:
        return []
    return [f"{at} = {json.dumps(list(values))}: repeats {', '.join(twice)}; list each once"]


def section_problems(section: Section, at: str) -> list[str]:
    """``section.check`` and that of every section inside it, depth first; lists of named
    sections (``gpuPools``, ``models``, ``cost.budgets``) must not repeat a name.

    ``at`` is the key path of ``section``: the namespace for the root, whose keys follow
    a ``:`` (``llm-platform:cluster``), nested keys a ``.``.
    """
    problems = section.check(at)
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        path = f"{at}{':' if at == NAMESPACE else '.'}{field.alias or name}"
        if isinstance(value, Section):
            problems += section_problems(value, path)
        elif isinstance(value, tuple) and value and isinstance(value[0], Section):
            if all(hasattr(item, "name") for item in value):
                problems += duplicates(path, [item.name for item in value])
            for i, item in enumerate(value):
                problems += section_problems(item, f"{path}[{i}]")
    return problems
