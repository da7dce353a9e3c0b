"""Runs inside the LiteLLM proxy (not in the Pulumi program): client keys and the
request log.

The gateway's ConfigMap holds this file next to ``config.yaml`` together with
``infra/core/request_log.py`` as ``request_log.py`` (on the proxy's ``PYTHONPATH``), and
the config names the two objects below (LiteLLM loads them from the config's directory,
``litellm/proxy/types_utils/utils.py`` ``get_instance_fn``, v1.108.0):

- ``general_settings.custom_auth: callbacks.user_api_key_auth``: one key per client
  namespace, read from ``GATEWAY_CLIENT_KEYS`` (a JSON object namespace -> key, from the
  gateway's Secret), and Prometheus's ``GATEWAY_METRICS_KEY`` for ``/metrics`` alone
  (LiteLLM authenticates ``/metrics`` by default,
  ``proxy/middleware/prometheus_auth_middleware.py``); any other key is refused with 401
  before anything reaches a model.
- ``litellm_settings.callbacks: [callbacks.request_log, prometheus]``: one JSON line per
  request on stdout (``infra.core.request_log``), for successes and failures alike.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import time
from typing import Any

from fastapi import HTTPException, Request
from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy._types import UserAPIKeyAuth
from request_log import request_record

_KEYS: dict[str, str] = json.loads(os.environ.get("GATEWAY_CLIENT_KEYS") or "{}")
_METRICS_KEY = os.environ.get("GATEWAY_METRICS_KEY") or ""
METRICS_PATH = "/metrics"


def _same(key: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(key.encode(), expected.encode())


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    """The client namespace whose key this is, as the key's alias; Prometheus's key on
    ``/metrics`` only; else refuse."""
    key = api_key.removeprefix("Bearer ").strip()
    if request.url.path.rstrip("/") == METRICS_PATH:
        if _same(key, _METRICS_KEY):
            return UserAPIKeyAuth(api_key=key, key_alias="prometheus")
    else:
        for client, expected in _KEYS.items():
            if _same(key, expected):
                return UserAPIKeyAuth(api_key=key, key_alias=client)
    # An HTTPException keeps its status (proxy/auth/auth_exception_handler.py).
    raise HTTPException(status_code=401, detail="invalid API key")


def _client(kwargs: dict[str, Any]) -> str | None:
    metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
    return metadata.get("user_api_key_alias")


def _proxy_request(data: dict[str, Any]) -> dict[str, Any]:
    """What the proxy recorded of the client's request: its body and arrival time
    (``proxy/litellm_pre_call_utils.py``, ``proxy_server_request``)."""
    request = data.get("proxy_server_request") or (data.get("litellm_params") or {}).get(
        "proxy_server_request"
    )
    return request or {}


def _seconds(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    return value.timestamp() if hasattr(value, "timestamp") else None


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


class RequestLog(CustomLogger):
    """One line per client request: on success from the call that answered (after any
    retries and fallbacks), on failure from the proxy's final error."""

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        payload = kwargs.get("standard_logging_object") or {}
        request = _proxy_request(kwargs)
        end = _seconds(end_time) or time.time()
        arrived = _seconds(request.get("arrival_time")) or _seconds(start_time) or end
        first = _seconds(kwargs.get("completion_start_time")) or end
        served = payload.get("model_group")
        _emit(
            request_record(
                request_id=str(kwargs.get("litellm_call_id") or payload.get("id")),
                # The model the client asked for; ``served`` differs after a fallback.
                model=str((request.get("body") or {}).get("model") or served),
                served_by=served,
                status=200,
                latency_ms=(end - arrived) * 1000,
                ttft_ms=(first - arrived) * 1000,
                input_tokens=int(payload.get("prompt_tokens") or 0),
                output_tokens=int(payload.get("completion_tokens") or 0),
                client=_client(kwargs),
            )
        )

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: UserAPIKeyAuth,
        traceback_str: str | None = None,
    ) -> None:
        request = _proxy_request(request_data)
        now = time.time()
        arrived = _seconds(request.get("arrival_time")) or now
        _emit(
            request_record(
                request_id=str(request_data.get("litellm_call_id") or ""),
                model=str(request_data.get("model") or ""),
                served_by=None,
                status=int(getattr(original_exception, "status_code", None) or 500),
                latency_ms=(now - arrived) * 1000,
                ttft_ms=None,
                input_tokens=0,
                output_tokens=0,
                client=getattr(user_api_key_dict, "key_alias", None),
                error=type(original_exception).__name__,
            )
        )


request_log = RequestLog()
