"""The request log: one JSON line per request the gateway answers.

This module is the contract between who writes the lines and who reads them, so the
two can never disagree: the gateway's LiteLLM callback (``workloads/gateway/callbacks.py``,
which gets this file next to it in the gateway's ConfigMap) builds each line with
:func:`request_record`, and the saved Logs Insights queries
(``infra.log_shipping.fluent_bit.saved_queries``) name these fields. Fluent Bit merges a
JSON line's keys into top-level fields of the CloudWatch event.

Standard library only: it also runs inside the LiteLLM image.
"""

from __future__ import annotations

from typing import Any, Final

EVENT_KEY: Final = "event"
EVENT: Final = "inference_request"
"""Value of ``event`` on every request line (seed 002's structured request log)."""
REQUEST_ID: Final = "request_id"
MODEL: Final = "model"
"""The model the client asked for (the gateway's route name)."""
SERVED_BY: Final = "served_by"
"""The model that answered: differs from ``model`` when the request failed over."""
STATUS: Final = "status"
"""HTTP status the client got (200, or the error's status)."""
LATENCY_MS: Final = "latency_ms"
"""From the gateway receiving the request to the last byte of the answer."""
TTFT_MS: Final = "ttft_ms"
"""Time to the first token: the whole answer for a non-streamed request."""
INPUT_TOKENS: Final = "input_tokens"
OUTPUT_TOKENS: Final = "output_tokens"
CLIENT: Final = "client"
"""The client namespace whose key made the request."""
ERROR: Final = "error"
"""Error class of a failed request (absent on success)."""

FIELDS: Final = (
    EVENT_KEY,
    REQUEST_ID,
    MODEL,
    SERVED_BY,
    STATUS,
    LATENCY_MS,
    TTFT_MS,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    CLIENT,
)
"""Keys every line carries (``error`` only on failures)."""


def request_record(
    *,
    request_id: str,
    model: str,
    served_by: str | None,
    status: int,
    latency_ms: float,
    ttft_ms: float | None,
    input_tokens: int,
    output_tokens: int,
    client: str | None,
    error: str | None = None,
) -> dict[str, Any]:
    """One request line (``json.dumps`` of it is what the gateway prints)."""
    record: dict[str, Any] = {
        EVENT_KEY: EVENT,
        REQUEST_ID: request_id,
        MODEL: model,
        SERVED_BY: served_by,
        STATUS: status,
        LATENCY_MS: round(latency_ms, 1),
        TTFT_MS: None if ttft_ms is None else round(ttft_ms, 1),
        INPUT_TOKENS: input_tokens,
        OUTPUT_TOKENS: output_tokens,
        CLIENT: client,
    }
    if error is not None:
        record[ERROR] = error
    return record
