"""The typed config of a stack, read from its stack file the way the offline plan does.

The command-line tools that talk to AWS (preflight, model sync) need the same validated
:class:`~infra.config.PlatformConfig` the program gets, without the Pulumi CLI: the stack
file is read by :func:`tools.plan.load_stack_file` and validated by
:func:`infra.config.load_config`, exactly as in the plan.
"""

from __future__ import annotations

from pathlib import Path

from infra.config import NAMESPACE, ConfigError, PlatformConfig, load_config
from tools.plan import ROOT, load_stack_file


def load_platform_config(stack: str, root: Path = ROOT) -> PlatformConfig:
    """Validated config of ``Pulumi.<stack>.yaml``; raises :class:`ConfigError`."""
    stack_file = load_stack_file(stack, root)
    region = stack_file.config.get("aws:region")
    if region is None:
        raise ConfigError([f"Pulumi.{stack}.yaml: aws:region is required"])
    prefix = f"{NAMESPACE}:"
    raw = {k.removeprefix(prefix): v for k, v in stack_file.config.items() if k.startswith(prefix)}
    secret_keys = frozenset(
        k.removeprefix(prefix) for k in stack_file.secret_keys if k.startswith(prefix)
    )
    return load_config(raw, stack=stack, region=region, secret_keys=secret_keys)
