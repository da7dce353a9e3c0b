"""Offline-plan summary of what the LogShipping component ships where."""

from __future__ import annotations

from infra.stack.config import PlatformConfig
from tools.mock_runtime import Recorded

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
QUERY = "aws:cloudwatch/queryDefinition:QueryDefinition"


def logging_summary(resources: list[Recorded], _cfg: PlatformConfig) -> list[str]:
    """Log groups with retention and encryption, and the saved Insights queries."""
    groups = sorted(
        (
            r
            for r in resources
            if r.type == LOG_GROUP and r.parent_type == "llm-platform:logging:LogGroups"
        ),
        key=lambda r: str(r.inputs.get("name")),
    )
    if not groups:
        return []
    lines = ["Logs (CloudWatch):"]
    for group in groups:
        kms = "KMS" if group.inputs.get("kmsKeyId") else "no KMS"
        lines.append(
            f"  {group.inputs['name']}: {int(group.inputs['retentionInDays'])} days, {kms}"
        )
    queries = sorted(str(r.inputs["name"]) for r in resources if r.type == QUERY)
    lines += [f"  saved query {q}" for q in queries]
    return lines
