"""A loopback emulator of the Anthropic Messages API, for tests and the example's cassettes.

Real HTTP on 127.0.0.1 so the real `anthropic` SDK talks to it through `base_url`.

Tokenizer (deterministic, so tests can reason about counts): a text has as many
tokens as `re.findall(r"\\w+|[^\\w\\s]", text)` finds. A request's prompt is, in order,
its tools (each `json.dumps(tool without cache_control, sort_keys=True)`), its system
(string or text blocks), then each message: 3 tokens + its content (text; tool_use as
json.dumps(input); tool_result as its text; an image is 1000 tokens).

Prompt cache: a `cache_control` on a tool, system block or content block is a
breakpoint; the prefix up to it is cacheable when at least the model's minimum
length (4096 for Opus 4.5+/Haiku 4.5, 2048 for other Haiku, 1024 otherwise). The
longest cached prefix is read; the rest up to the last breakpoint is written, with a
5-minute (default) or 1-hour TTL measured on the injected clock.

Replies are "Echo: " plus the words of the last user text, cut to max_tokens.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

_TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD = 3
IMAGE_TOKENS = 1000
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


def tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def min_cacheable(model: str) -> int:
    if any(m in model for m in ("opus-4-5", "opus-4-6", "opus-4-7", "haiku-4-5")):
        return 4096
    return 2048 if "haiku" in model else 1024


@dataclass
class Served:
    path: str
    request: dict
    headers: dict[str, str]
    status: int
    stream: bool
    model: str | None
    usage: dict | None


@dataclass
class _Block:
    """One unit of the prompt, in order, with its cache breakpoint if any."""

    tokens: int
    canonical: str
    ttl: str | None = None  # set when this block carries cache_control


def _without_cache_control(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != "cache_control"}


def _ttl(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("cache_control"), dict):
        return obj["cache_control"].get("ttl", "5m")
    return None


def _content_tokens(block: Any) -> int:
    if isinstance(block, str):
        return tokens(block)
    kind = block.get("type")
    if kind == "text":
        return tokens(block.get("text", ""))
    if kind == "tool_use":
        return tokens(json.dumps(block.get("input", {})))
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, list):
            return sum(_content_tokens(c) for c in content)
        return tokens(str(content))
    if kind == "image":
        return IMAGE_TOKENS
    return tokens(json.dumps(_without_cache_control(block), sort_keys=True))


def prompt_blocks(request: dict) -> list[_Block]:
    blocks: list[_Block] = []
    for tool in request.get("tools") or []:
        text = json.dumps(_without_cache_control(tool), sort_keys=True)
        blocks.append(_Block(tokens(text), text, _ttl(tool)))
    system = request.get("system")
    if isinstance(system, str):
        blocks.append(_Block(tokens(system), system))
    elif isinstance(system, list):
        for block in system:
            blocks.append(_Block(tokens(block.get("text", "")), block.get("text", ""), _ttl(block)))
    for message in request.get("messages") or []:
        content = message.get("content", "")
        blocks.append(_Block(MESSAGE_OVERHEAD, f"<{message.get('role')}>"))
        if isinstance(content, str):
            blocks.append(_Block(tokens(content), content))
        else:
            for block in content:
                canonical = json.dumps(_without_cache_control(block), sort_keys=True)
                blocks.append(_Block(_content_tokens(block), canonical, _ttl(block)))
    return blocks


def _last_user_text(request: dict) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content", "")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""


class Emulator:
    """Context manager running the emulator on a free loopback port."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, gzip_responses: bool = False):
        self.clock = clock
        self.gzip_responses = gzip_responses
        self.served: list[Served] = []
        self._cache: dict[str, float] = {}
        self._failures: list[tuple[int, float | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> Emulator:
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    # -- controls --------------------------------------------------------------------
    def fail_next(self, status: int, *, retry_after: float | None = None, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def count(self, request: dict) -> int:
        return sum(b.tokens for b in prompt_blocks(request))

    # -- the model -------------------------------------------------------------------
    def usage_for(self, request: dict) -> dict:
        """Whole-prompt split into uncached, cache-written and cache-read tokens."""
        model = request.get("model", "")
        blocks = prompt_blocks(request)
        total = sum(b.tokens for b in blocks)
        breakpoints = [i for i, b in enumerate(blocks) if b.ttl]
        if len(breakpoints) > 4:
            raise ValueError("A maximum of 4 blocks with cache_control may be provided.")
        now = self.clock()
        read = written = written_1h = 0
        minimum = min_cacheable(model)
        with self._lock:
            cached_upto = -1
            for i in reversed(breakpoints):
                key = self._key(model, blocks[: i + 1])
                if self._cache.get(key, -1.0) > now and self._prefix(blocks, i) >= minimum:
                    cached_upto = i
                    read = self._prefix(blocks, i)
                    self._cache[key] = now + TTL_SECONDS[blocks[i].ttl or "5m"]  # refreshed
                    break
            if breakpoints and breakpoints[-1] > cached_upto:
                last = breakpoints[-1]
                if self._prefix(blocks, last) >= minimum:
                    ttl = blocks[last].ttl or "5m"
                    amount = self._prefix(blocks, last) - read
                    written, written_1h = (0, amount) if ttl == "1h" else (amount, 0)
                    for i in breakpoints:
                        if i > cached_upto and self._prefix(blocks, i) >= minimum:
                            key = self._key(model, blocks[: i + 1])
                            self._cache[key] = now + TTL_SECONDS[blocks[i].ttl or "5m"]
        return {
            "input_tokens": total - read - written - written_1h,
            "cache_creation_input_tokens": written + written_1h,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written,
                "ephemeral_1h_input_tokens": written_1h,
            },
        }

    @staticmethod
    def _prefix(blocks: list[_Block], upto: int) -> int:
        return sum(b.tokens for b in blocks[: upto + 1])

    @staticmethod
    def _key(model: str, blocks: list[_Block]) -> str:
        digest = hashlib.sha256(model.encode())
        for b in blocks:
            digest.update(b.canonical.encode())
            digest.update(b"\x00")
        return digest.hexdigest()

    def reply_for(self, request: dict) -> tuple[str, int, str]:
        max_tokens = int(request["max_tokens"])
        words = _TOKEN.findall(_last_user_text(request))
        reply = ["Echo", ":"] + words
        stop = "end_turn"
        if len(reply) > max_tokens:
            reply, stop = reply[:max_tokens], "max_tokens"
        text = " ".join(reply).replace(" :", ":")
        return text, tokens(text), stop

    def record(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def take_failure(self) -> tuple[int, float | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None


class _Handler(BaseHTTPRequestHandler):
    emu: Emulator
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    # -- plumbing --------------------------------------------------------------------
    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        extra = dict(headers or {})
        if self.emu.gzip_responses and "gzip" in self.headers.get("Accept-Encoding", ""):
            raw = gzip.compress(raw)
            extra["content-encoding"] = "gzip"
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self._common_headers()
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _common_headers(self) -> None:
        self.send_header("request-id", "req_emu_" + hashlib.sha256(self.path.encode()).hexdigest()[:12])
        self.send_header("anthropic-organization-id", "org-emulator-secret-id")
        self.send_header("set-cookie", "session=emulator-cookie; Path=/")

    def _error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        self._send(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length", 0))
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?")[0]
        status, usage, stream = self._handle(path, request, headers)
        self.emu.record(
            Served(path, request, headers, status, stream, request.get("model"), usage)
        )

    def _handle(self, path: str, request: dict, headers: dict[str, str]):
        auth = headers.get("authorization", "")
        if not (auth.startswith("Bearer ") and len(auth) > 7) and not headers.get("x-api-key"):
            self._error(401, "authentication_error", "invalid x-api-key")
            return 401, None, False
        failure = self.emu.take_failure()
        if failure is not None:
            status, retry_after = failure
            extra = {}
            if retry_after is not None:
                extra = {"retry-after": str(retry_after), "retry-after-ms": str(int(retry_after * 1000))}
            kind = "rate_limit_error" if status == 429 else "overloaded_error"
            self._error(status, kind, "emulated failure", extra)
            return status, None, False
        if path == "/v1/messages/count_tokens":
            usage = {"input_tokens": self.emu.count(request)}
            self._send(200, usage)
            return 200, usage, False
        if path != "/v1/messages":
            self._error(404, "not_found_error", f"no route {path}")
            return 404, None, False
        if "max_tokens" not in request or "model" not in request:
            self._error(400, "invalid_request_error", "model and max_tokens: Field required")
            return 400, None, False
        try:
            usage = self.emu.usage_for(request)
        except ValueError as err:
            self._error(400, "invalid_request_error", str(err))
            return 400, None, False
        text, output_tokens, stop = self.emu.reply_for(request)
        usage = {**usage, "output_tokens": output_tokens, "service_tier": "standard"}
        message_id = "msg_emu_" + hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
        if request.get("stream"):
            self._stream(message_id, request["model"], text, stop, usage)
            return 200, usage, True
        self._send(
            200,
            {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": request["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            },
        )
        return 200, usage, False

    def _stream(self, message_id: str, model: str, text: str, stop: str, usage: dict) -> None:
        start_usage = {**usage, "output_tokens": 1}
        words = text.split(" ")
        events: list[tuple[str, dict]] = [
            ("message_start", {"type": "message_start", "message": {
                "id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("ping", {"type": "ping"}),
        ]  # fmt: skip
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                   "delta": {"type": "text_delta", "text": piece}}))  # fmt: skip
        delta_usage = {k: usage[k] for k in (
            "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")}  # fmt: skip
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": delta_usage}),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("content-length", str(len(body)))
        self._common_headers()
        self.end_headers()
        self.wfile.write(body)
