"""Offline plan: what ``pulumi up`` would create for a stack, without cloud or CLI.

Runs the real ``__main__.py`` under Pulumi's mock runtime with the config of
``Pulumi.<stack>.yaml`` and writes, under ``build/<stack>/``:

- ``resources.json``: every resource (type, name, parent, dependencies, inputs, earlier
  URNs it is aliased to), sorted, secrets masked as ``"[secret]"``;
- ``urns.txt``: the URN of every resource, as the engine forms it (``tests/deployed/``
  keeps those of the deployed stacks);
- ``manifests/``: one YAML file per native Kubernetes object;
- ``helm/``: chart, repository, version, namespace and values of every Helm release;
- ``summary.txt``: the summary printed at the end.

Exit status: 0 clean, 1 on mandatory policy violations or a secret written in clear,
2 on configuration errors. Same input, same bytes.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.core.schema import ConfigError
from infra.stack.config import PlatformConfig, load_stack_config
from infra.stack.files import ROOT, load_stack_file
from tools import policy
from tools.alerts_summary import alerts_summary
from tools.cold_start_summary import cold_start_section
from tools.cost_summary import cost_section
from tools.gpu_capacity import gpu_capacity_section
from tools.logging_summary import logging_summary
from tools.mock_runtime import Recorded, Secret, run_program
from tools.models_summary import gateway_summary, models_summary

MASK = "[secret]"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


def masked(value: Any) -> Any:
    """Inputs with every secret replaced by ``"[secret]"``.

    A secret mapping or list keeps its shape (``stringData: {api-key: "[secret]"}``), so
    a masked object stays schema-valid and a reviewer still sees which keys it sets.

    Whole numbers are shown as integers: the engine carries every number as a double,
    but ``replicas: 2`` is what the stack file said and what Kubernetes stores.
    """
    if isinstance(value, Secret):
        return _mask_leaves(value.value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def _mask_leaves(value: Any) -> Any:
    if isinstance(value, Secret):
        return _mask_leaves(value.value)
    if isinstance(value, dict):
        return {k: _mask_leaves(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_leaves(v) for v in value]
    return MASK


def is_kubernetes_object(r: Recorded) -> bool:
    """Native Kubernetes objects (built-in kinds and our custom resources)."""
    return (
        r.type.startswith("kubernetes:")
        and r.type != HELM_RELEASE
        and "kind" in r.inputs
        and "apiVersion" in r.inputs
    )


def manifest_filename(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or "_cluster"
    return f"{obj['kind'].lower()}-{namespace}-{meta.get('name', 'unnamed')}.yaml"


def helm_release(r: Recorded) -> dict[str, Any]:
    """The part of a Helm release that decides what gets installed."""
    return {
        "name": r.inputs.get("name", r.name),
        "chart": r.inputs.get("chart"),
        "version": r.inputs.get("version"),
        # OCI charts carry their registry in the chart reference itself; Pulumi rejects
        # an oci:// URL in repositoryOpts.
        "repository": (r.inputs.get("repositoryOpts") or {}).get("repo")
        or str(r.inputs.get("chart", "")).rpartition("/")[0]
        or None,
        "namespace": r.inputs.get("namespace"),
        "values": r.inputs.get("values") or {},
    }


def _dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, width=100)


# A summary section takes the run's resources and the stack's typed config and returns
# its lines. Each layer adds its section here (GPU capacity, cost, alerts, verdicts).
SummarySection = Callable[[list[Recorded], PlatformConfig], list[str]]


def _resources_by_kind(resources: list[Recorded], _cfg: PlatformConfig) -> list[str]:
    counts = Counter(r.type for r in resources)
    width = max((len(t) for t in counts), default=0)
    return (
        ["Resources by kind:"]
        + [f"  {t.ljust(width)}  {n:>3}" for t, n in sorted(counts.items())]
        + [f"  {'total'.ljust(width)}  {sum(counts.values()):>3}"]
    )


def _helm_releases(resources: list[Recorded], _cfg: PlatformConfig) -> list[str]:
    rows = [helm_release(r) for r in resources if r.type == HELM_RELEASE]
    if not rows:
        return []
    return ["Helm releases:"] + [
        f"  {h['name']}: {h['chart']} {h['version']} ({h['repository']}) -> ns {h['namespace']}"
        for h in sorted(rows, key=lambda h: str(h["name"]))
    ]


SUMMARY_SECTIONS: list[SummarySection] = [
    _resources_by_kind,
    _helm_releases,
    gpu_capacity_section,
    models_summary,
    cold_start_section,
    gateway_summary,
    cost_section,
    logging_summary,
    alerts_summary,
]


@dataclass
class PlanResult:
    """What one offline plan produced."""

    stack: str
    resources: list[Recorded] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    mandatory_violations: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.leaks or self.mandatory_violations else 0


def _find_leaks(text: str, placeholders: Iterable[str]) -> list[str]:
    return sorted(p for p in placeholders if p in text)


def plan(
    stack: str,
    *,
    stack_dir: Path = ROOT,
    out_root: Path | None = None,
    log: Callable[[str], None] = print,
) -> PlanResult:
    """Run the offline plan of ``stack``; raises :class:`ConfigError` on bad config."""
    out = (out_root or ROOT / "build") / stack
    log(f"[1/4] reading Pulumi.{stack}.yaml")
    stack_file = load_stack_file(stack, stack_dir)
    log(f"[2/4] running __main__.py under the mock runtime (stack {stack}): apply, preview")
    run = run_program(stack_file.config, stack=stack, secret_keys=stack_file.secret_keys)
    if run.error is not None:
        raise run.error
    # Once more as the first `pulumi preview` of a new stack sees it: what the policy
    # pack must decide there (with outputs of resources not yet created unknown) is what
    # lets `pulumi up --policy-pack` start at all.
    preview = run_program(
        stack_file.config, stack=stack, secret_keys=stack_file.secret_keys, preview=True
    )
    if preview.error is not None:
        raise preview.error
    # The program accepted this config, so loading it again cannot fail.
    cfg = load_stack_config(stack_file.config, stack=stack, secret_keys=stack_file.secret_keys)
    resources = sorted(run.resources, key=lambda r: (r.type, r.name))
    result = PlanResult(stack=stack, resources=resources)

    log(f"[3/4] writing {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/")
    if out.exists():
        shutil.rmtree(out)
    (out / "manifests").mkdir(parents=True)
    (out / "helm").mkdir()
    files: dict[Path, str] = {}
    files[out / "resources.json"] = (
        json.dumps(
            [
                {
                    "type": r.type,
                    "name": r.name,
                    "parent": f"{r.parent_type}::{r.parent}" if r.parent else None,
                    "dependsOn": list(r.depends_on),
                    "inputs": masked(r.inputs),
                    **({"aliases": list(r.aliases)} if r.aliases else {}),
                }
                for r in resources
            ],
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    files[out / "urns.txt"] = "".join(f"{urn}\n" for urn in sorted(r.urn for r in resources))
    for r in resources:
        if is_kubernetes_object(r):
            files[out / "manifests" / manifest_filename(r.inputs)] = _dump_yaml(masked(r.inputs))
        elif r.type == HELM_RELEASE:
            files[out / "helm" / f"{r.name}.yaml"] = _dump_yaml(masked(helm_release(r)))

    log("[4/4] summarising and evaluating the policy pack")
    for section in SUMMARY_SECTIONS:
        lines = section(resources, cfg)
        if lines:
            result.summary += [*lines, ""]
    verdicts = policy.verdicts(resources, cfg)
    previewed = policy.verdicts(preview.resources, cfg)
    result.mandatory_violations = policy.mandatory_violations(
        previewed, "at preview"
    ) + policy.mandatory_violations(verdicts)
    result.summary += [*policy.summary(verdicts, previewed, cfg), ""]
    for warning in sorted(set(run.warnings)):
        result.summary.append(f"warning: {warning}")
    files[out / "summary.txt"] = "\n".join(result.summary) + "\n"

    for path, text in sorted(files.items()):
        leaks = _find_leaks(text, stack_file.placeholders.values())
        result.leaks += [f"{path.name}: secret written in clear ({leak})" for leak in leaks]
        path.write_text(text)
    return result


def main(stack: str, stack_dir: Path = ROOT, out_root: Path | None = None) -> int:
    """CLI entry: print progress and summary, return the exit status."""
    try:
        result = plan(stack, stack_dir=stack_dir, out_root=out_root)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print("\n".join(result.summary))
    for leak in result.leaks:
        print(f"error: {leak}", file=sys.stderr)
    for violation in result.mandatory_violations:
        print(f"error: mandatory policy violation: {violation}", file=sys.stderr)
    print(f"offline plan of stack {stack}: " + ("clean" if result.exit_code == 0 else "FAILED"))
    return result.exit_code
