"""A loopback emulator of the Anthropic Messages API, for tests and the example's cassettes.

Real HTTP on 127.0.0.1 so the real `anthropic` SDK talks to it through `base_url`, and
the plugin's capture sees exactly what it would see on the wire.

Tokenizer (deterministic, so tests can reason about counts): a text has as many
tokens as `re.findall(r"\\w+|[^\\w\\s]", text)` finds. A request's prompt is, in order,
its tools (each `json.dumps(tool without cache_control, sort_keys=True)`), its system
(a string, or the texts of its blocks), then each message: 3 tokens + its content (a
string; text blocks as their text; tool_use as `json.dumps(input)`; tool_result as its
content text; an image is 1000 tokens; any other block as its sorted JSON).
`thinking` and other parameters add nothing. `count_tokens` answers the whole prompt.

Prompt cache: a `cache_control` on a tool, system block or content block is a
breakpoint (at most 4; a "1h" one may not follow a "5m" one); a top-level
`cache_control` (automatic caching) puts one on the last content block unless it has
one. A breakpoint writes one entry, keyed by the model and the prefix up to it, when
that prefix is at least the model's minimum length (512 for Opus 5, 2048 for Opus 4.7
and Haiku before 4.5, 4096 for Opus 4.5/4.6 and Haiku 4.5, 1024 otherwise). A read
looks back from each breakpoint, last first, over at most 20 positions (the breakpoint
itself first; a run of tool_use or of tool_result blocks is one position; a message's
role marker is no position) for an entry an earlier request wrote, and reads the
longest unexpired one, restarting its lifetime at the TTL it was written with. The rest
up to the last breakpoint is written, each segment at the TTL of the breakpoint that
ends it: "5m" (default, 300 s) or "1h" (3600 s), measured on the injected clock.

Anatomy (`Emulator.anatomy`): each part of a prompt (tools, system, history,
tool_results, documents, latest_turn), from these block counts, as count_tokens' prefixes
split it (docs/report.md#anatomy): a message's 3 tokens go with the first of its parts in
the order history (an earlier turn's blocks, or a tool result's envelope), documents,
latest_turn; a tool result's content is tool_results. `strict_turns` (off by default)
refuses, as the API does, a request with no message, and a tool call whose result is not
in the next message (or a result with no call before it).

Replies are "Echo: " plus the words of the last user text, cut to max_tokens tokens
(stop_reason "max_tokens" when cut); ids are `msg_emu_` + sha256 of the request.

Claude on the cloud platforms, as `anthropic.AnthropicBedrock` and
`anthropic.AnthropicVertex` call it (point `base_url` here; Vertex's with `/v1`):
Amazon Bedrock's `POST /model/{id}/invoke` and `/invoke-with-response-stream` (AWS
event-stream frames, each chunk `{"bytes": base64(event)}`, CRC32s and all, so the
SDK's own botocore decoder reads them), authenticated by a SigV4 `authorization`
or a Bedrock API key as a Bearer token; Vertex AI's
`POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict`,
`:streamRawPredict` (SSE) and `models/count-tokens:rawPredict`, with a Bearer token.
Their bodies carry `anthropic_version` (any version: the SDK sends its own) and no
`model`: the model is the URL's id, and it is what `Served.model` records and what
the prompt cache is keyed by. Responses name the underlying model
(`claude-sonnet-4-5-20250929`), as the platforms do.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD = 3
IMAGE_TOKENS = 1000
MAX_BREAKPOINTS = 4
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
LOOKBACK_POSITIONS = 20
LOOKBACK_RUNS = ("tool_use", "tool_result")  # a run of either counts as one position
ORGANIZATION_ID = "org-emulator-secret-id"
_ROUTES = ("/v1/messages", "/v1/messages/count_tokens")
_BEDROCK_ROUTE = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)$")
_VERTEX_ROUTE = re.compile(
    r"^(?:/v1)?/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/"
    r"(?P<model>[^/:]+):(?P<op>rawPredict|streamRawPredict)$"
)
EVENT_STREAM = "application/vnd.amazon.eventstream"
AWS_REQUEST_ID = "emulator-aws-request-id"
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def min_cacheable(model: str) -> int:
    if "opus-5" in model:
        return 512
    if any(m in model for m in ("opus-4-5", "opus-4-6", "haiku-4-5")):
        return 4096
    return 2048 if "haiku" in model or "opus-4-7" in model else 1024


class RequestError(ValueError):
    """A request the real API would refuse with 400 invalid_request_error."""


@dataclass
class Served:
    """One answered request. `usage` is exactly what the response carried (for a
    stream, the final cumulative usage; for count_tokens, `{"input_tokens": N}`)."""

    path: str
    request: dict
    headers: dict[str, str]
    status: int
    stream: bool  # the answer was an SSE stream
    model: str | None
    usage: dict | None


@dataclass
class _Block:
    """One unit of the prompt, in order, with its cache TTL when it is a breakpoint."""

    tokens: int
    canonical: str  # what the cache key hashes: cache_control never takes part
    ttl: str | None = None
    kind: str = ""  # "tool", "system", or the content block's type ("text" for a string)
    position: bool = True  # a block boundary the lookback may stop at (not a role marker)


def _without_cache_control(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != "cache_control"}


def _ttl(obj: Any) -> str | None:
    if not isinstance(obj, dict) or "cache_control" not in obj:
        return None
    control = obj["cache_control"]
    if control is None:  # an explicit null is no breakpoint
        return None
    ttl = control.get("ttl", "5m") if isinstance(control, dict) else None
    if ttl not in TTL_SECONDS:
        raise RequestError(f"cache_control.ttl: Input should be '5m' or '1h', got {ttl!r}")
    return ttl


def _content_tokens(block: Any) -> int:
    if isinstance(block, str):
        return tokens(block)
    if not isinstance(block, dict):
        return tokens(json.dumps(block, sort_keys=True))
    kind = block.get("type")
    if kind == "text":
        return tokens(str(block.get("text", "")))
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


ANATOMY_PARTS = ("tools", "system", "history", "tool_results", "documents", "latest_turn")


def _emptied(block: dict) -> dict:
    """A tool result without what the tool returned (its content)."""
    content = block.get("content")
    if block.get("type") == "tool_result" or content is None:
        return {k: v for k, v in block.items() if k != "content"}
    if isinstance(content, (list, str)):
        return {**block, "content": type(content)()}
    return block


def _check_turns(messages: Any) -> None:
    """What the API refuses about turns: none at all, a tool call whose result is not in
    the next message, a tool result with no call just before it."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: at least one message is required")

    def ids(message: Any, kind: str, field: str) -> set[str]:
        content = message.get("content") if isinstance(message, dict) else None
        return {
            str(b.get(field))
            for b in (content if isinstance(content, list) else [])
            if isinstance(b, dict) and b.get("type") == kind
        }

    for i, message in enumerate(messages):
        calls = ids(message, "tool_use", "id")
        after = (
            ids(messages[i + 1], "tool_result", "tool_use_id") if i + 1 < len(messages) else None
        )
        if calls and after is not None and not calls <= after:
            missing = ", ".join(sorted(calls - after))
            raise RequestError(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {missing}"
            )
        results = ids(message, "tool_result", "tool_use_id")
        before = ids(messages[i - 1], "tool_use", "id") if i else set()
        if not results <= before:
            raise RequestError(
                f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(sorted(results - before))}"
            )


def _canonical(section: str, obj: Any) -> str:
    body = _without_cache_control(obj) if isinstance(obj, dict) else obj
    return section + ":" + json.dumps(body, sort_keys=True)


def prompt_blocks(request: dict) -> list[_Block]:
    """The prompt in cache order: tools, system, messages."""
    blocks: list[_Block] = []
    for tool in request.get("tools") or []:
        text = json.dumps(_without_cache_control(tool), sort_keys=True)
        blocks.append(_Block(tokens(text), _canonical("tool", tool), _ttl(tool), "tool"))
    system = request.get("system")
    if isinstance(system, str):
        blocks.append(
            _Block(tokens(system), _canonical("system", system), None, "system", bool(system))
        )
    elif isinstance(system, list):
        for block in system:
            text = str(block.get("text", "")) if isinstance(block, dict) else str(block)
            blocks.append(_Block(tokens(text), _canonical("system", block), _ttl(block), "system"))
    for message in request.get("messages") or []:
        content = message.get("content", "")
        role = _Block(MESSAGE_OVERHEAD, _canonical("role", message.get("role")), position=False)
        blocks.append(role)
        if isinstance(content, str):
            blocks.append(_Block(tokens(content), _canonical("content", content), kind="text"))
        else:
            for block in content:
                canonical = _canonical("content", block)
                kind = str(block.get("type", "")) if isinstance(block, dict) else "text"
                blocks.append(_Block(_content_tokens(block), canonical, _ttl(block), kind))
    return blocks


def _automatic(request: dict, blocks: list[_Block]) -> None:
    """A top-level cache_control is a breakpoint on the last content block."""
    ttl = _ttl(request)
    last = next((b for b in reversed(blocks) if b.position), None)
    if ttl is None or last is None:
        return
    if last.ttl not in (None, ttl):
        raise RequestError("the last block's cache_control ttl differs from the top-level one")
    last.ttl = ttl


def _lookback(blocks: list[_Block], breakpoint: int) -> list[int]:
    """Block indices a read through `breakpoint` checks, longest prefix first."""
    found: list[int] = []
    positions, after = 0, None
    for j in range(breakpoint, -1, -1):
        block = blocks[j]
        if not block.position:
            continue
        if not (block.kind in LOOKBACK_RUNS and block.kind == after):
            positions += 1
            if positions > LOOKBACK_POSITIONS:
                break
        found.append(j)
        after = block.kind
    return found


def _last_user_text(request: dict) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") != "user":
            continue
        content = message.get("content", "")
        if isinstance(content, str):
            return content
        blocks = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
        texts = [str(b.get("text", "")) for b in blocks]
        if texts:
            return " ".join(texts)
    return ""


def message_id(request: dict) -> str:
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode())
    return "msg_emu_" + digest.hexdigest()[:16]


@dataclass(frozen=True)
class _Platform:
    """A cloud platform route: which platform, the model id from the URL, streamed or not."""

    name: str  # "bedrock" | "vertex"
    model: str
    stream: bool


def _platform_route(path: str) -> _Platform | None:
    from urllib.parse import unquote

    found = _BEDROCK_ROUTE.match(path)
    if found:
        model = unquote(found["model"])
        return _Platform("bedrock", model, found["op"] == "invoke-with-response-stream")
    found = _VERTEX_ROUTE.match(path)
    if found:
        return _Platform("vertex", unquote(found["model"]), found["op"] == "streamRawPredict")
    return None


def served_model(model_id: str) -> str:
    """The Anthropic model a platform id runs, as the platform's responses name it:
    `us.anthropic.claude-sonnet-4-5-20250929-v1:0` and `claude-sonnet-4-5@20250929` are
    both `claude-sonnet-4-5-20250929`."""
    name = model_id.rsplit("/", 1)[-1]  # an inference profile ARN ends in the profile id
    name = re.sub(r"^(?:[a-z-]+\.)?anthropic\.", "", name)
    name = re.sub(r"-v\d+(?::\d+)?$", "", name)
    return name.replace("@", "-")


def event_stream_frame(event: dict, padding: int = 0) -> bytes:
    """One AWS event-stream message carrying a Bedrock chunk, framed as the service does:
    prelude (total length, headers length, CRC32), string headers, the JSON payload
    `{"bytes": base64(event), "p": padding}`, CRC32 of all that."""
    import base64
    import struct
    import zlib

    data = base64.b64encode(json.dumps(event).encode()).decode()
    payload = json.dumps({"bytes": data, "p": "abcdefghijklmnopqrstuvwxyz"[: padding % 27]})
    headers = b""
    for name, value in (
        (":event-type", "chunk"),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ):
        headers += bytes([len(name)]) + name.encode() + b"\x07"
        headers += struct.pack(">H", len(value)) + value.encode()
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload.encode()
    return message + struct.pack(">I", zlib.crc32(message))


class Emulator:
    """Context manager running the emulator on a free loopback port.

    The model (`count`, `usage_for`, `reply_for`) also works without starting the
    server, so cassettes can be synthesized offline with the same numbers.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, gzip_responses: bool = False
    ) -> None:
        self.clock = clock
        self.gzip_responses = gzip_responses
        self.served: list[Served] = []
        self.base_url = ""
        self._cache: dict[str, tuple[float, str]] = {}  # key -> (expiry on self.clock, ttl)
        self._failures: list[tuple[int, float | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Optional (off by default): server-side steps billed beside the answer. Called with
        # the request and the answer's usage; a list it returns becomes `usage.iterations`
        # (in a stream, in the final message_delta only, as the API sends it).
        self.iterations: Callable[[dict, dict], list[dict] | None] | None = None
        self.strict_turns = False  # refuse what the API refuses about turns (see above)

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Emulator:
        handler = type("Handler", (_Handler,), {"emu": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )  # a short poll: shutdown() waits for it
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- controls ----------------------------------------------------------------------
    def fail_next(self, status: int, *, retry_after: float | None = None, times: int = 1) -> None:
        """The next `times` authenticated requests get `status` (with retry-after headers)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def count(self, request: dict) -> int:
        """The whole prompt, as count_tokens answers it (no cache split)."""
        return sum(b.tokens for b in prompt_blocks(request))

    def anatomy(self, request: dict) -> dict[str, int]:
        """Each part's tokens, from this emulator's own count of each block (see the module's
        docstring); they add up to `count(request)`."""
        parts = dict.fromkeys(ANATOMY_PARTS, 0)
        blocks = prompt_blocks(request)
        parts["tools"] = sum(b.tokens for b in blocks if b.kind == "tool")
        parts["system"] = sum(b.tokens for b in blocks if b.kind == "system")
        messages = request.get("messages") or []
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        newest = users[-1] if users else len(messages)
        for i, message in enumerate(messages):
            content = message.get("content", "")
            items = [content] if isinstance(content, str) else content
            if i > newest:  # a prefill after the newest user turn is part of it
                parts["latest_turn"] += MESSAGE_OVERHEAD + sum(map(_content_tokens, items))
                continue
            own = "history" if i < newest else "latest_turn"
            kinds = set()
            for block in items:
                kind = block.get("type") if isinstance(block, dict) else "text"
                if str(kind).endswith("tool_result"):
                    envelope = _content_tokens(_emptied(block))
                    parts["history"] += envelope
                    parts["tool_results"] += _content_tokens(block) - envelope
                    kinds.add("history")
                elif kind in ("document", "image", "search_result"):
                    parts["documents"] += _content_tokens(block)
                    kinds.add("documents")
                else:
                    parts[own] += _content_tokens(block)
                    kinds.add(own)
            first = next((p for p in ("history", "documents") if p in kinds), "latest_turn")
            parts[first] += MESSAGE_OVERHEAD
        assert sum(parts.values()) == self.count(request)
        return parts

    # -- the model ---------------------------------------------------------------------
    def usage_for(self, request: dict) -> dict:
        """Split the whole prompt into uncached, cache-written and cache-read tokens,
        updating the cache. Raises RequestError for what the API refuses."""
        model = str(request.get("model", ""))
        blocks = prompt_blocks(request)
        _automatic(request, blocks)
        prefix: list[int] = []
        running = 0
        for b in blocks:
            running += b.tokens
            prefix.append(running)
        breakpoints = [i for i, b in enumerate(blocks) if b.ttl]
        if len(breakpoints) > MAX_BREAKPOINTS:
            raise RequestError(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(breakpoints)}."
            )
        ttls = [blocks[i].ttl for i in breakpoints]
        if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
            raise RequestError("a ttl='1h' cache_control block must not come after a ttl='5m' one")
        minimum = min_cacheable(model)
        now = self.clock()
        read = 0
        written = {"5m": 0, "1h": 0}
        with self._lock:
            cached_upto = -1
            for i in reversed(breakpoints):
                for j in _lookback(blocks, i):
                    key = self._key(model, blocks[: j + 1])
                    expiry, ttl = self._cache.get(key, (float("-inf"), "5m"))
                    if prefix[j] >= minimum and expiry > now:
                        cached_upto, read = j, prefix[j]
                        self._cache[key] = (now + TTL_SECONDS[ttl], ttl)
                        break
                if cached_upto >= 0:
                    break
            done = read
            for i in breakpoints:
                if i <= cached_upto or prefix[i] < minimum:
                    continue
                ttl = blocks[i].ttl or "5m"
                written[ttl] += prefix[i] - done
                done = prefix[i]
                self._cache[self._key(model, blocks[: i + 1])] = (now + TTL_SECONDS[ttl], ttl)
        total = prefix[-1] if prefix else 0
        creation = written["5m"] + written["1h"]
        return {
            "input_tokens": total - read - creation,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": written["5m"],
                "ephemeral_1h_input_tokens": written["1h"],
            },
        }

    @staticmethod
    def _key(model: str, blocks: list[_Block]) -> str:
        digest = hashlib.sha256(model.encode())
        for b in blocks:
            digest.update(b"\x00" + b.canonical.encode())
        return digest.hexdigest()

    def reply_for(self, request: dict) -> tuple[str, int, str]:
        """(text, output_tokens, stop_reason): deterministic, so re-recordings match."""
        max_tokens = int(request["max_tokens"])
        reply = ["Echo", ":"] + _TOKEN.findall(_last_user_text(request))
        stop = "end_turn"
        if len(reply) > max_tokens:
            reply, stop = reply[:max_tokens], "max_tokens"
        text = " ".join(reply).replace(" :", ":")
        return text, tokens(text), stop

    def message_for(self, request: dict) -> dict:
        """The full non-streaming response body (updates the cache)."""
        usage = self.usage_for(request)
        text, output_tokens, stop = self.reply_for(request)
        steps = (
            self.iterations(request, {**usage, "output_tokens": output_tokens})
            if (self.iterations is not None)
            else None
        )
        if steps is not None:
            usage = {**usage, "iterations": steps}
        return {
            "id": message_id(request),
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": output_tokens, "service_tier": "standard"},
        }

    def _record(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def _take_failure(self) -> tuple[int, float | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None


def _sse_events(message: dict) -> list[tuple[str, dict]]:
    """The event sequence the API streams for `message` (one text block)."""
    usage = message["usage"]
    steps = {k: v for k, v in usage.items() if k == "iterations"}  # only with emu.iterations
    usage = {k: v for k, v in usage.items() if k != "iterations"}
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    words = message["content"][0]["text"].split(" ")
    events: list[tuple[str, dict]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for i, word in enumerate(words):
        delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
        event = {"type": "content_block_delta", "index": 0, "delta": delta}
        events.append(("content_block_delta", event))
        if i == 0:
            events.append(("ping", {"type": "ping"}))
    # message_delta usage is cumulative and repeats the input/cache counts, as the API does
    fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    delta_usage = {k: usage[k] for k in (*fields, "output_tokens")}
    delta_usage.update(steps)
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "usage": delta_usage,
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events


def _sigv4(headers: dict[str, str]) -> bool:
    """An AWS SigV4 signature for Bedrock: the shape is checked, not the signature."""
    auth = headers.get("authorization", "")
    return (
        auth.startswith("AWS4-HMAC-SHA256 Credential=")
        and "/bedrock/aws4_request" in auth
        and "Signature=" in auth
        and bool(headers.get("x-amz-date"))
    )


def _number(value: float) -> str:
    """Header numbers as the API writes them: integers without a decimal point."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Handler(BaseHTTPRequestHandler):
    emu: Emulator
    _request_id = ""
    _answered = False
    _platform = ""  # "bedrock" | "vertex" while answering a cloud platform route
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    # -- plumbing ------------------------------------------------------------------------
    def _common_headers(self, request_id: str) -> None:
        if self._platform == "bedrock":
            self.send_header("x-amzn-requestid", AWS_REQUEST_ID)
            return
        self.send_header("request-id", request_id)
        self.send_header("anthropic-organization-id", ORGANIZATION_ID)
        self.send_header("set-cookie", "_cfuvid=emulator-cookie; path=/; HttpOnly; Secure")

    def _send_json(
        self, status: int, body: dict, served: Served, extra: dict[str, str] | None = None
    ) -> None:
        raw = json.dumps(body).encode()
        headers = dict(extra or {})
        if self.emu.gzip_responses and "gzip" in self.headers.get("accept-encoding", ""):
            raw = gzip.compress(raw, mtime=0)
            headers["content-encoding"] = "gzip"
        self.emu._record(served)  # before the answer, so the caller never races the record
        self._answered = True
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self._common_headers(self._request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _send_stream(self, message: dict, served: Served) -> None:
        """A real chunked SSE body, flushed event by event."""
        self.emu._record(served)
        self._answered = True
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self._common_headers(self._request_id)
        self.end_headers()
        for name, data in _sse_events(message):
            chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _send_event_stream(self, message: dict, served: Served) -> None:
        """Bedrock's invoke-with-response-stream: chunked AWS event-stream frames."""
        self.emu._record(served)
        self._answered = True
        self.send_response(200)
        self.send_header("content-type", EVENT_STREAM)
        self.send_header("x-amzn-bedrock-content-type", "application/json")
        self.send_header("transfer-encoding", "chunked")
        self._common_headers(self._request_id)
        self.end_headers()
        events = _sse_events(message)
        usage = message["usage"]
        metrics = {  # Bedrock adds these to message_stop; the usage above is the bill
            "inputTokenCount": usage["input_tokens"],
            "outputTokenCount": usage["output_tokens"],
            "invocationLatency": 42,
            "firstByteLatency": 7,
            "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
            "cacheWriteInputTokenCount": usage["cache_creation_input_tokens"],
        }
        name, last = events[-1]
        events[-1] = (name, {**last, "amazon-bedrock-invocationMetrics": metrics})
        for i, (_, data) in enumerate(events):
            frame = event_stream_frame(data, padding=i)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _error(self, served: Served, message: str, extra: dict[str, str] | None = None) -> None:
        kind = _ERROR_TYPES.get(served.status, "api_error")
        error = {"type": kind, "message": message}
        body = {"type": "error", "error": error, "request_id": self._request_id}
        self._send_json(served.status, body, served, extra)

    # -- routing -------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

    def _dispatch(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.headers.get("content-encoding") == "gzip":  # as a gateway in front accepts
            raw = gzip.decompress(raw)
        self._answered = False
        self._platform = ""
        self._request_id = "req_emu_" + hashlib.sha256(raw).hexdigest()[:24]
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0]
        try:
            request = json.loads(raw) if raw else {}
        except ValueError:
            request = None
        body = request if isinstance(request, dict) else {}
        served = Served(path, body, headers, status=0, stream=False, model=None, usage=None)
        if isinstance(request, dict) and isinstance(request.get("model"), str):
            served.model = request["model"]
        try:
            self._handle(served, request)
        except (BrokenPipeError, ConnectionResetError):  # the client went away mid-answer
            self.close_connection = True
        except Exception as err:  # noqa: BLE001 - an emulator bug must answer, not hang the client
            if self._answered:
                self.close_connection = True
                return
            served.status = 500
            self._error(served, f"emulator error: {err!r}")

    def _handle(self, served: Served, request: Any) -> None:
        platform = _platform_route(served.path) if self.command == "POST" else None
        self._platform = platform.name if platform else ""
        auth, api_key = served.headers.get("authorization", ""), served.headers.get("x-api-key", "")
        signed = platform is not None and platform.name == "bedrock" and _sigv4(served.headers)
        if not (auth.startswith("Bearer ") and auth[7:].strip()) and not api_key and not signed:
            served.status = 401
            return self._error(served, "x-api-key header or Authorization: Bearer is required")
        failure = self.emu._take_failure()
        if failure is not None:
            served.status, retry_after = failure
            extra = {}
            if retry_after is not None:
                extra = {
                    "retry-after": _number(retry_after),
                    "retry-after-ms": _number(retry_after * 1000),
                }
            return self._error(served, "emulated failure", extra)
        if platform is None and (self.command != "POST" or served.path not in _ROUTES):
            served.status = 404
            return self._error(served, f"Not found: {self.command} {served.path}")
        if not isinstance(request, dict):
            served.status = 400
            return self._error(served, "The request body is not valid JSON.")
        if platform is not None:
            return self._handle_platform(served, request, platform)
        try:
            answer = self._answer(served.path, request)
        except (RequestError, AttributeError, TypeError) as err:  # malformed shapes, too
            served.status = 400
            return self._error(served, str(err) or "invalid request")
        served.status, served.usage = 200, answer.get("usage", answer)
        if answer.get("type") == "message" and request.get("stream"):
            served.stream = True
            return self._send_stream(answer, served)
        return self._send_json(200, answer, served)

    def _handle_platform(self, served: Served, request: dict, platform: _Platform) -> None:
        """A Bedrock or Vertex AI call: the Messages API with the model in the URL."""
        counting = platform.name == "vertex" and platform.model == "count-tokens"
        try:
            version = request.get("anthropic_version")
            if not isinstance(version, str) or not version:  # the SDK sends its API version
                raise RequestError("anthropic_version: Field required")
            if counting:
                answer = self._answer("/v1/messages/count_tokens", request)
            else:
                if "model" in request:
                    raise RequestError("model: Extra inputs are not permitted (it is in the URL)")
                if platform.name == "bedrock" and "stream" in request:
                    raise RequestError("stream: Extra inputs are not permitted")
                if platform.name == "vertex" and bool(request.get("stream")) != platform.stream:
                    raise RequestError("stream: must be true on :streamRawPredict only")
                served.model = platform.model
                answer = self._answer("/v1/messages", {**request, "model": platform.model})
                answer["model"] = served_model(platform.model)
        except (RequestError, AttributeError, TypeError) as err:
            served.status = 400
            return self._error(served, str(err) or "invalid request")
        served.status, served.usage = 200, answer.get("usage", answer)
        if counting:
            return self._send_json(200, answer, served)
        served.stream = platform.stream
        if platform.stream and platform.name == "bedrock":
            return self._send_event_stream(answer, served)
        if platform.stream:
            return self._send_stream(answer, served)
        extra = {}
        if platform.name == "bedrock":  # Bedrock also reports the counts in headers
            extra = {
                "x-amzn-bedrock-input-token-count": str(answer["usage"]["input_tokens"]),
                "x-amzn-bedrock-output-token-count": str(answer["usage"]["output_tokens"]),
                "x-amzn-bedrock-invocation-latency": "42",
            }
        return self._send_json(200, answer, served, extra)

    def _answer(self, path: str, request: dict) -> dict:
        """The successful body for a valid request; RequestError otherwise."""
        if "model" not in request:
            raise RequestError("model: Field required")
        if self.emu.strict_turns:
            _check_turns(request.get("messages"))
        if path == "/v1/messages/count_tokens":
            return {"input_tokens": self.emu.count(request)}
        max_tokens = request.get("max_tokens")
        if max_tokens is None:
            raise RequestError("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise RequestError("max_tokens: Input should be an integer >= 1")
        return self.emu.message_for(request)
