"""What the AWS tools (preflight, model sync) share: turning AWS failures into one line.

A missing credential or a denied call is something the user fixes, not a bug: the tools
print ``error: <message>`` and exit 2 instead of showing a botocore traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError


class ToolError(Exception):
    """A failure the user can fix; printed as ``error: <message>`` without a traceback."""


@contextmanager
def aws_errors(target: str) -> Iterator[None]:
    """Re-raise AWS failures as :class:`ToolError`; ``target`` names the account/region."""
    try:
        yield
    except NoCredentialsError:
        raise ToolError(
            f"no AWS credentials found for {target}: set AWS_PROFILE (or run `aws sso login`), "
            "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ToolError(
            f"AWS {exc.operation_name} failed for {target}: "
            f"{error.get('Code', 'error')}: {error.get('Message', '')}"
        ) from None
    except BotoCoreError as exc:
        raise ToolError(f"AWS call failed for {target}: {exc}") from None
