"""Stack files: ``Pulumi.<stack>.yaml`` read the way the Pulumi CLI hands them to the
program, for the tools and tests that need a stack's config without running it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from infra.core.schema import NAMESPACE, ConfigError
from infra.stack.config import REGISTRY_SECRETS, REQUIRED_SECRETS, PlatformConfig, load_stack_config

ROOT = Path(__file__).resolve().parents[2]
"""The project directory (``Pulumi.yaml`` and the stack files)."""
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader on libyaml (in its wheels): the same documents, parsed about ten
times faster, which the tests and tools that read stack files over and over feel."""


def stack_names(root: Path = ROOT) -> list[str]:
    """The stacks that have a ``Pulumi.<stack>.yaml`` in ``root``, sorted."""
    return sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))


@dataclass(frozen=True)
class StackFile:
    """Config of one stack file, in the form the Pulumi CLI hands it to the program."""

    config: dict[str, str]
    secret_keys: frozenset[str]
    placeholders: dict[str, str]
    """Secret key -> the placeholder value the plan used in its place."""


def load_stack_file(stack: str, root: Path = ROOT) -> StackFile:
    """Read ``Pulumi.<stack>.yaml``.

    Encrypted values (``secure: v1:...``) cannot be decrypted offline, and required
    secrets are normally set with ``pulumi config set --secret`` rather than committed:
    both become unique placeholder values, marked secret, so the plan can prove that
    no secret reaches its output in clear.
    """
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        stacks = ", ".join(stack_names(root))
        raise ConfigError([f"no stack file {path.name}; stacks: {stacks}"])
    try:
        document = yaml.load(path.read_text(), Loader=_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path.name} is not valid YAML: {exc}"]) from None
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path.name}: 'config' must be a mapping of keys to values"])
    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    placeholders: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            placeholders[key] = config[key] = f"offline-placeholder-{key.replace(':', '-')}"
            secret_keys.add(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    for name in (*REQUIRED_SECRETS, *REGISTRY_SECRETS):
        key = f"{NAMESPACE}:{name}"
        if key not in config:
            placeholders[key] = config[key] = f"offline-placeholder-{NAMESPACE}-{name}"
            secret_keys.add(key)
    return StackFile(config, frozenset(secret_keys), placeholders)


def typed_stack_config(stack: str, root: Path = ROOT) -> PlatformConfig:
    """The validated config of ``Pulumi.<stack>.yaml`` (placeholders for secrets).

    For tools that need a stack's settings without running the program (preflight,
    model sync, summaries, tests). Raises :class:`ConfigError` like the program does.
    """
    stack_file = load_stack_file(stack, root)
    return load_stack_config(stack_file.config, stack=stack, secret_keys=stack_file.secret_keys)
