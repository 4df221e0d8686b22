"""Usage parsing: one recorded HTTP exchange -> the token usage of each API call in it.

Anthropic's ``input_tokens`` excludes cached tokens; ``Usage`` keeps that meaning
(``input_tokens`` is the uncached part) and ``prompt_tokens`` is the whole prompt,
so turning caching on never looks like a shrinking prompt.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    """Tokens of one API call, split the way they are priced."""

    input_tokens: int = 0  # uncached input
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens


@dataclass(frozen=True)
class Call:
    """One API call found in an exchange."""

    provider: str  # "anthropic" | "openai"
    kind: str  # "messages" | "count_tokens" | "batch" | "chat" | "responses"
    model: str
    usage: Usage
    batch: bool = False
    streamed: bool = False
    note: str = ""  # e.g. "stream carried no usage"


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its response, bodies as bytes (possibly still compressed)."""

    method: str
    url: str
    request_body: bytes
    status: int
    headers: dict[str, list[str]]  # response headers, any case
    body: bytes


# -- parsing ---------------------------------------------------------------------------
import gzip  # noqa: E402
import json  # noqa: E402
import zlib  # noqa: E402
from typing import Any, Mapping  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from .errors import CassetteError  # noqa: E402


def _header(headers: Mapping[str, Any], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            if isinstance(value, (list, tuple)):
                return ", ".join(str(v) for v in value)
            return str(value)
    return ""


def decode_body(headers: Mapping[str, Any], body: bytes) -> bytes:
    """Undo gzip/deflate; a body already decoded (as vcrpy may store it) passes through."""
    encoding = _header(headers, "content-encoding").lower()
    if body[:2] == b"\x1f\x8b" or "gzip" in encoding:
        try:
            return gzip.decompress(body)
        except (OSError, EOFError):
            return body
    if "deflate" in encoding:
        try:
            return zlib.decompress(body)
        except zlib.error:
            return body
    return body


def usage_from_api(data: Mapping[str, Any] | None) -> Usage:
    """An Anthropic usage object: cache writes split by TTL, 5-minute when unsplit."""
    data = data or {}
    written = int(data.get("cache_creation_input_tokens") or 0)
    split = data.get("cache_creation") or {}
    w1h = int(split.get("ephemeral_1h_input_tokens") or 0)
    w5m = int(split.get("ephemeral_5m_input_tokens") or 0) if split else written
    if split and w5m + w1h != written and written:
        w5m = written - w1h  # trust the total; the split only says how much is 1-hour
    return Usage(
        input_tokens=int(data.get("input_tokens") or 0),
        output_tokens=int(data.get("output_tokens") or 0),
        cache_write_5m_tokens=w5m,
        cache_write_1h_tokens=w1h,
        cache_read_tokens=int(data.get("cache_read_input_tokens") or 0),
    )


def _openai_usage(data: Mapping[str, Any] | None) -> Usage:
    """OpenAI counts cached tokens inside the prompt; split them out to match Anthropic's meaning."""
    data = data or {}
    prompt = int(data.get("prompt_tokens", data.get("input_tokens")) or 0)
    details = data.get("prompt_tokens_details") or data.get("input_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    output = int(data.get("completion_tokens", data.get("output_tokens")) or 0)
    return Usage(input_tokens=prompt - cached, output_tokens=output, cache_read_tokens=cached)


def _sse_events(text: str) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if not data:
            continue
        payload = "\n".join(data)
        if payload.strip() == "[DONE]":
            continue
        try:
            parsed = json.loads(payload)
        except ValueError:
            continue
        events.append((name or str(parsed.get("type", "")), parsed))
    return events


def _json(body: bytes, url: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CassetteError(f"response of {url} is not JSON") from None


def _request_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_stream(headers: Mapping[str, Any], body: bytes) -> bool:
    return "text/event-stream" in _header(headers, "content-type") or body.lstrip().startswith(
        (b"event:", b"data:")
    )


def parse_exchange(exchange: Exchange) -> list[Call]:
    """The API calls in one exchange: none for errors and endpoints we do not know."""
    if exchange.status >= 400:
        return []
    path = urlsplit(exchange.url).path.rstrip("/")
    body = decode_body(exchange.headers, exchange.body)
    request = _request_json(exchange.request_body)
    model = str(request.get("model", ""))
    if path.endswith("/messages/count_tokens"):
        data = _json(body, exchange.url)
        return [Call("anthropic", "count_tokens", model, Usage(input_tokens=int(data.get("input_tokens", 0))))]
    if path.endswith("/messages"):
        return _anthropic_messages(exchange.url, exchange.headers, body, model)
    if "/messages/batches/" in path and path.endswith("/results"):
        return _anthropic_batch(body)
    if path.endswith("/chat/completions"):
        return _openai(exchange.url, exchange.headers, body, model, "chat")
    if path.endswith("/responses"):
        return _openai(exchange.url, exchange.headers, body, model, "responses")
    return []


def _anthropic_messages(url: str, headers: Mapping[str, Any], body: bytes, model: str) -> list[Call]:
    if _is_stream(headers, body):
        usage: dict[str, Any] = {}
        for name, event in _sse_events(body.decode("utf-8", "replace")):
            if name == "message_start":
                message = event.get("message", {})
                model = message.get("model") or model
                usage.update(message.get("usage") or {})
            elif name == "message_delta":
                # Cumulative: each field the delta carries replaces the earlier value.
                usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            elif name == "error":
                return []
        if not usage:
            return []
        return [Call("anthropic", "messages", model, usage_from_api(usage), streamed=True)]
    data = _json(body, url)
    if not isinstance(data, dict) or data.get("type") == "error":
        return []
    return [Call("anthropic", "messages", data.get("model") or model, usage_from_api(data.get("usage")))]


def _anthropic_batch(body: bytes) -> list[Call]:
    calls = []
    for line in body.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        result = item.get("result") or {}
        if result.get("type") != "succeeded":
            continue
        message = result.get("message") or {}
        calls.append(
            Call("anthropic", "batch", message.get("model", ""), usage_from_api(message.get("usage")), batch=True)
        )
    return calls


def _openai(url: str, headers: Mapping[str, Any], body: bytes, model: str, kind: str) -> list[Call]:
    if _is_stream(headers, body):
        usage = None
        for _, event in _sse_events(body.decode("utf-8", "replace")):
            if kind == "responses" and event.get("type") == "response.completed":
                response = event.get("response") or {}
                usage = response.get("usage")
                model = response.get("model") or model
            elif kind == "chat":
                model = event.get("model") or model
                if event.get("usage"):
                    usage = event["usage"]
        if usage is None:
            return [
                Call("openai", kind, model, Usage(), streamed=True,
                     note="stream carried no usage (set stream_options.include_usage)")
            ]  # fmt: skip
        return [Call("openai", kind, model, _openai_usage(usage), streamed=True)]
    data = _json(body, url)
    if not isinstance(data, dict) or "error" in data:
        return []
    return [Call("openai", kind, data.get("model") or model, _openai_usage(data.get("usage")))]


# -- cassette files --------------------------------------------------------------------
def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value).encode("utf-8")


def exchanges_from_cassette(data: Any, *, path: str = "<cassette>") -> list[Exchange]:
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError("not a vcrpy cassette (no `interactions` list)", path=path)
    exchanges = []
    for index, interaction in enumerate(data["interactions"]):
        try:
            request, response = interaction["request"], interaction["response"]
            body = response.get("body") or {}
            raw_headers = response.get("headers") or {}
            headers = {
                k.lower(): (v if isinstance(v, list) else [v]) for k, v in raw_headers.items()
            }
            exchanges.append(
                Exchange(
                    method=str(request.get("method", "POST")),
                    url=str(request["uri"]),
                    request_body=_as_bytes(request.get("body", request.get("parsed_body"))),
                    status=int((response.get("status") or {}).get("code", 200)),
                    headers=headers,
                    body=_as_bytes(body.get("string", body.get("parsed_body"))),
                )
            )
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise CassetteError(
                f"interaction {index} is malformed ({type(err).__name__}: {err})", path=path
            ) from None
    return exchanges


def load_cassette_file(path: Any) -> list[Exchange]:
    import yaml

    try:
        text = open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as err:
        raise CassetteError(f"cannot read cassette: {err}", path=path) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise CassetteError(
            f"corrupt cassette (YAML: {getattr(err, 'problem', None) or err})",
            path=path,
            line=mark.line + 1 if mark else None,
        ) from None
    return exchanges_from_cassette(data, path=str(path))
