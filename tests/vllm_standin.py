"""A stand-in for a vLLM OpenAI server on loopback, for the gateway's real-process tests.

``python -m tests.vllm_standin --port N --served-model-name M --api-key K`` answers like
``vllm serve`` does where the gateway looks: ``/health``, ``/v1/models`` and
``/v1/chat/completions`` (plain and streamed as server-sent events, with ``usage``),
requiring ``Authorization: Bearer K`` on ``/v1``. ``POST /control`` with
``{"mode": "ok" | "fail" | "hang"}`` makes it answer normally, with 500, or never (until
the mode changes); killing the process is a dead backend. Every ``/v1`` request is
counted (``GET /control`` returns ``{"mode": ..., "requests": n}``), so a test can prove
that nothing reached a backend. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROMPT_TOKENS = 7
COMPLETION_TOKENS = 3


class State:
    def __init__(self, served_model_name: str, api_key: str) -> None:
        self.served_model_name = served_model_name
        self.api_key = api_key
        self.mode = "ok"
        self.requests = 0
        self.lock = threading.Lock()


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads the gateway's logs, not these."""

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            return dict(json.loads(raw or b"{}"))

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {})
            elif self.path == "/control":
                self._send(200, {"mode": state.mode, "requests": state.requests})
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": state.served_model_name}]})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/control":
                state.mode = str(body["mode"])
                self._send(200, {"mode": state.mode})
                return
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": "not found"})
                return
            with state.lock:
                state.requests += 1
            if self.headers.get("Authorization") != f"Bearer {state.api_key}":
                self._send(401, {"error": "Unauthorized"})
                return
            while state.mode == "hang":
                time.sleep(0.05)
            if state.mode == "fail":
                self._send(500, {"error": {"message": "engine dead", "type": "InternalError"}})
                return
            if body.get("stream"):
                self._stream()
            else:
                self._send(200, self._completion())

        def _completion(self) -> dict[str, Any]:
            return {
                "id": f"chatcmpl-{time.monotonic_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": state.served_model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hello"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": COMPLETION_TOKENS,
                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                },
            }

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            base = {
                "id": f"chatcmpl-{time.monotonic_ns()}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": state.served_model_name,
            }
            for i, word in enumerate(("hel", "lo", "!")):
                delta = {"content": word} if i else {"role": "assistant", "content": word}
                chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            final = {
                **base,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": COMPLETION_TOKENS,
                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                },
            }
            self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
            self.close_connection = True

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    state = State(args.served_model_name, args.api_key)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
