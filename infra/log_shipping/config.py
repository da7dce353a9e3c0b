"""The ``logging`` section: Fluent Bit to CloudWatch Logs."""

from __future__ import annotations

from infra.core.cloudwatch import LOG_RETENTION_DAYS
from infra.core.schema import Section


class LoggingConfig(Section):
    """Fluent Bit to CloudWatch Logs."""

    retention_days: int = 30
    """CloudWatch retention; one of the values CloudWatch accepts (default 30)."""
    kms_encryption: bool = True
    """Encrypt log groups with a platform KMS key (default on)."""

    def check(self, at: str) -> list[str]:
        if self.retention_days in LOG_RETENTION_DAYS:
            return []
        return [
            f"{at}.retentionDays = {self.retention_days}: CloudWatch allows "
            f"{', '.join(map(str, LOG_RETENTION_DAYS))}"
        ]
