"""Offline plan section: GPU cap and worst-case / expected monthly GPU spend vs budget."""

from __future__ import annotations

from infra.config import NAMESPACE, PlatformConfig, load_config
from infra.cost_estimator import HOURS_PER_MONTH, MissingPriceError, check_budget, environment_spend
from tools.mock_runtime import Recorded


def stack_of(resources: list[Recorded]) -> str | None:
    """The stack the resources belong to (``urn:pulumi:<stack>::<project>::...``)."""
    return resources[0].urn.split("::", 1)[0].removeprefix("urn:pulumi:") if resources else None


def stack_config(stack: str) -> PlatformConfig:
    """Typed config of the committed ``Pulumi.<stack>.yaml``, as the plan loaded it."""
    # Imported here: tools.plan imports this module to list the section.
    from tools.plan import load_stack_file

    stack_file = load_stack_file(stack)
    prefix = f"{NAMESPACE}:"
    return load_config(
        {k.removeprefix(prefix): v for k, v in stack_file.config.items() if k.startswith(prefix)},
        stack=stack,
        region=stack_file.config["aws:region"],
        secret_keys=frozenset(k.removeprefix(prefix) for k in stack_file.secret_keys),
    )


def gpu_spend_lines(cfg: PlatformConfig) -> list[str]:
    """Per pool and in total: GPU cap, worst-case and expected monthly cost, budget, headroom."""
    try:
        spend = environment_spend(cfg)
    except MissingPriceError as exc:
        return ["GPU spend (USD/month):", f"  cannot estimate: {exc}"]
    width = max(len(p.pool) for p in spend.pools)
    lines = [
        f"GPU spend (USD/month, {HOURS_PER_MONTH} h, on-demand worst case; expected with "
        f"{cfg.cost.spot_discount:.0%} spot discount where spot is allowed):"
    ]
    for p in spend.pools:
        lines.append(
            f"  {p.pool.ljust(width)}  {p.gpu_limit:>3} GPUs  worst "
            f"{p.worst_case_monthly_usd:>12,.2f} ({p.worst_instances} x {p.worst_instance_type})"
            f"  expected {p.expected_monthly_usd:>12,.2f}"
        )
    lines += [
        f"  {'total'.ljust(width)}  {spend.gpu_cap:>3} GPUs  worst "
        f"{spend.worst_case_monthly_usd:>12,.2f}  expected {spend.expected_monthly_usd:>12,.2f}",
        f"  cluster budget {spend.cluster_budget_usd:,.2f}  headroom {spend.headroom_usd:,.2f}",
    ]
    return lines + [f"  OVER BUDGET: {problem}" for problem in check_budget(cfg)]


def gpu_spend_section(resources: list[Recorded]) -> list[str]:
    """Summary section of the offline plan (``tools.plan.SUMMARY_SECTIONS``)."""
    stack = stack_of(resources)
    return gpu_spend_lines(stack_config(stack)) if stack else []
