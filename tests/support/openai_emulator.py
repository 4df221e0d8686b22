"""A loopback emulator of OpenAI's Chat Completions and Responses APIs, plus a private
"gateway" endpoint, for the OpenAI parser and the extension hooks.

Tokens are counted as in `emulator.tokens`. A prompt seen before whose length is at
least 1024 tokens is served with `cached_tokens` (OpenAI caches in 128-token steps
from 1024), so cache-aware costs can be checked.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulator import tokens


@dataclass
class Served:
    path: str
    request: dict
    headers: dict[str, str]
    usage: dict | None


def _prompt_text(request: dict) -> str:
    if "messages" in request:
        return "\n".join(str(m.get("content", "")) for m in request["messages"])
    value = request.get("input", "")
    return value if isinstance(value, str) else json.dumps(value)


class OpenAIEmulator:
    def __init__(self) -> None:
        self.served: list[Served] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.base_url = ""

    def __enter__(self) -> OpenAIEmulator:
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def prompt_usage(self, request: dict) -> tuple[int, int, int]:
        """(prompt tokens, cached tokens, completion tokens) for a request."""
        text = _prompt_text(request)
        prompt = tokens(text)
        with self._lock:
            cached = (prompt // 128) * 128 if text in self._seen and prompt >= 1024 else 0
            self._seen.add(text)
        completion = min(
            int(request.get("max_tokens") or request.get("max_output_tokens") or 16), 12
        )
        return prompt, cached, completion


class _Handler(BaseHTTPRequestHandler):
    emu: OpenAIEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("openai-organization", "org-emulator-openai")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?")[0]
        prompt, cached, completion = self.emu.prompt_usage(request)
        model = request.get("model", "")
        if path.endswith("/chat/completions"):
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
            }
            message = {"role": "assistant", "content": "ok " * completion}
            if request.get("stream"):
                include = (request.get("stream_options") or {}).get("include_usage")
                chunks = [
                    {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "model": model,
                        "choices": [
                            {"index": 0, "delta": {"content": "ok"}, "finish_reason": None}
                        ],
                    },
                    {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "model": model,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    },
                ]
                if include:
                    chunks.append(
                        {
                            "id": "c1",
                            "object": "chat.completion.chunk",
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                self._record(path, request, headers, usage if include else None)
                self._send(body.encode(), "text/event-stream")
                return
            self._record(path, request, headers, usage)
            self._send(
                json.dumps(
                    {
                        "id": "c1",
                        "object": "chat.completion",
                        "model": model,
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                        "usage": usage,
                    }
                ).encode()
            )
        elif path.endswith("/responses"):
            usage = {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion,
            }
            self._record(path, request, headers, usage)
            self._send(
                json.dumps(
                    {
                        "id": "r1",
                        "object": "response",
                        "model": model,
                        "status": "completed",
                        "error": None,
                        "output": [
                            {
                                "type": "message",
                                "role": "assistant",
                                "content": [{"type": "output_text", "text": "ok"}],
                            }
                        ],
                        "usage": usage,
                    }
                ).encode()
            )
        elif path.endswith("/gateway/generate"):
            usage = {"tokens_in": prompt, "tokens_out": completion}
            self._record(path, request, headers, usage)
            self._send(json.dumps({"model": model, "text": "ok", "meter": usage}).encode())
        else:
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()

    def _record(
        self, path: str, request: dict, headers: dict[str, str], usage: dict | None
    ) -> None:
        with self.emu._lock:
            self.emu.served.append(Served(path, request, headers, usage))
