"""Usage parsing: one recorded HTTP exchange -> the token usage of each API call in it.

Anthropic's ``input_tokens`` excludes cached tokens; ``Usage`` keeps that meaning
(``input_tokens`` is the uncached part) and ``prompt_tokens`` is the whole prompt,
so turning caching on never looks like a shrinking prompt. OpenAI counts cached
tokens inside the prompt, so its usage is split the same way here.

Claude on Amazon Bedrock and Vertex AI is the Messages API under other URLs: the
model is in the path, and a Bedrock stream comes in AWS event-stream frames
(providers/bedrock.py). Those calls are named by the model id as called, which is what the
platform bills and what `pricing:` entries name.

Usage billed outside the top-level ``usage`` (``usage.iterations``: a compaction step,
an advisor's sub-inference, a fallback model's answer) comes out as calls of kind
``iteration`` right after the call they belong to; measure/samples.py folds them into it, so
every iteration is counted once, at its own model, and the top-level usage is never
added on top of the iterations it sums.

A token count that is not a whole number of at least 0 (negative, fractional, NaN, a
boolean, a string) or a ``usage`` that is not an object is a ``CassetteError`` naming the
field: never a 0, never a negative cost.

Stdlib only (yaml is imported where a file is read): this module is imported by
every pytest run.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from pytest_tokenbudget.errors import CassetteError, kind_of
from pytest_tokenbudget.providers import bedrock
from pytest_tokenbudget.providers.counts import MAX_TOKEN_COUNT, token_count  # noqa: F401 (re-exported)
from pytest_tokenbudget.providers.recorders import (
    GZIP_WBITS,
    RAW_DEFLATE_WBITS,
    ZLIB_WBITS,
    Exchange,
    exchanges_from_document,
    inflate,
    read_recording,
)


@dataclass(frozen=True)
class Usage:
    """Tokens of one API call, split the way they are priced."""

    input_tokens: int = 0  # uncached input
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    # What else the request is billed by (Anthropic's usage object): web searches made by
    # the server tool, fast mode, the geography that served it (data residency).
    web_search_requests: int = 0
    speed: str = ""
    inference_geo: str = ""

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    @property
    def pricing_context(self) -> str:
        """What, beyond its tokens, sets the request's rates, as one short key: "" for a
        standard request, else e.g. "speed=fast,inference_geo=us"."""
        parts = []
        if self.speed and self.speed != "standard":
            parts.append(f"speed={self.speed}")
        if self.inference_geo not in ANY_GEO:
            parts.append(f"inference_geo={self.inference_geo}")
        return ",".join(parts)


# usage.inference_geo values that name no single geography (no data-residency premium).
ANY_GEO = frozenset({"", "global", "not_available"})


def context_fields(key: str) -> dict[str, str]:
    """A pricing_context key back as its fields: {"speed": ..., "inference_geo": ...}."""
    return dict(part.split("=", 1) for part in key.split(",") if part)


@dataclass(frozen=True)
class Call:
    """One API call found in an exchange."""

    provider: str  # "anthropic" (also on Bedrock and Vertex AI) | "openai" | "bedrock" (Converse)
    # "messages" | "count_tokens" | "batch" | "chat" | "responses" | "iteration" (ITERATION)
    kind: str
    model: str
    usage: Usage
    batch: bool = False
    streamed: bool = False
    note: str = ""  # e.g. "stream carried no usage"; ITERATION_NOTE + type for an iteration
    recounted: bool = False  # input tokens re-counted with count_tokens (count mode)
    input_only: bool = False  # counted, never generated: no output tokens measured

    @property
    def iteration(self) -> str:
        """The ``usage.iterations`` type this part of the call before it bills
        (``compaction``, ``advisor_message``, ...); "" for a call of its own."""
        return iteration_type(self.note) if self.kind == ITERATION else ""


# Usage billed in `usage.iterations` beyond the call's own sampling: a Call of this kind,
# following the call it belongs to, whose note is ITERATION_NOTE + the iteration's type.
# The note is what carries it into the samples (a sample row has no kind): measure/samples.py folds
# such a row into the call before it.
ITERATION = "iteration"
ITERATION_NOTE = "usage.iterations: "
# `message`: the executor's own sampling steps. Their sum is the call's own usage (the
# top-level usage is the executor's view of the same steps, never added to them): the first
# is the call, each later one an ITERATION of it, priced by its own prompt's length.
EXECUTOR_STEP = "message"
# The steps that answer: the executor's, or a fallback model's in its place.
ANSWERING_STEPS = (EXECUTOR_STEP, "fallback_message")
# Billed beside it: the same model summarising the conversation (priced at the call's
# model), another model's sub-inference or answer (priced at the iteration's `model`).
KNOWN_ITERATIONS = {
    "compaction": "the call's model",
    "advisor_message": "its model",
    "fallback_message": "its model",
}


def iteration_type(note: str) -> str:
    """The iteration type a sample's note names; "" for any other note."""
    return note[len(ITERATION_NOTE) :] if note.startswith(ITERATION_NOTE) else ""


# -- bodies -----------------------------------------------------------------------------
_GZIP_MAGIC = b"\x1f\x8b"
_SSE_FIELDS = (b"event:", b"data:", b"id:", b"retry:", b":")


def _header(headers: Mapping[str, Any], name: str) -> str:
    """A header's value, whatever the case of its name; repeated values joined with ', '."""
    for key, value in headers.items():
        if key.lower() == name:
            if isinstance(value, (list, tuple)):
                return ", ".join(str(v) for v in value)
            return str(value)
    return ""


def _looks_decoded(body: bytes) -> bool:
    head = body.lstrip()
    return head[:1] in (b"{", b"[") or head.startswith(_SSE_FIELDS)


def decode_body(headers: Mapping[str, Any], body: bytes) -> bytes:
    """Undo gzip/deflate content-encoding.

    vcrpy stores bodies decoded when ``decode_compressed_response`` is on, sometimes
    leaving the header behind, so a body that is not compressed passes through.
    Codings the stdlib cannot undo (br, zstd) are left as they are.
    """
    codings = [c.strip().lower() for c in _header(headers, "content-encoding").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings and body.startswith(_GZIP_MAGIC):
        codings = ["gzip"]  # the header was dropped but the body was not decoded
    for coding in reversed(codings):  # applied in order, so undone from the last
        # inflated a chunk at a time, to at most MAX_DECODED_BODY (BodyTooLarge): a bomb
        # of a few MB would otherwise decode to gigabytes
        if coding in ("gzip", "x-gzip") and body.startswith(_GZIP_MAGIC):
            try:
                body = inflate(body, GZIP_WBITS)
            except (OSError, EOFError, zlib.error) as err:
                raise CassetteError(f"gzip body is corrupt or truncated ({err})") from None
        elif coding == "deflate" and not _looks_decoded(body):
            try:
                body = inflate(body, ZLIB_WBITS)  # zlib-wrapped, as RFC 9110 says
            except (EOFError, zlib.error):
                try:
                    body = inflate(body, RAW_DEFLATE_WBITS)  # raw, as some servers send
                except (EOFError, zlib.error):
                    return body
        else:
            break
    return body


def _is_stream(headers: Mapping[str, Any], body: bytes) -> bool:
    if "text/event-stream" in _header(headers, "content-type").lower():
        return True
    return body.lstrip().startswith(_SSE_FIELDS)


def _sse_events(body: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, JSON payload) of each server-sent event; [DONE] and non-JSON skipped."""
    text = body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    name = ""
    data: list[str] = []

    def dispatch() -> tuple[str, dict[str, Any]] | None:
        payload = "\n".join(data)
        if not payload.strip() or payload.strip() == "[DONE]":
            return None
        try:
            parsed = json.loads(payload)
        except ValueError:
            return None  # a stream cut mid-event: what came before still counts
        except RecursionError:
            raise CassetteError("a stream event is nested too deeply to read") from None
        return (name, parsed) if isinstance(parsed, dict) else None

    for line in text.split("\n"):
        if line.startswith("event:") and data:
            event = dispatch()  # a recording that lost the blank line between events
            if event:
                yield event
            name, data = "", []
        if not line:
            event = dispatch() if data else None
            if event:
                yield event
            name, data = "", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value.removeprefix(" "))
    if data:
        event = dispatch()
        if event:
            yield event


def _event_type(name: str, event: Mapping[str, Any]) -> str:
    kind = event.get("type")
    return kind if isinstance(kind, str) and kind else name


def _json(body: bytes, headers: Mapping[str, Any]) -> Any:
    if not body.strip():
        raise CassetteError("response body is empty")
    try:
        return json.loads(body)
    except RecursionError:
        raise CassetteError("response is nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError):
        encoding = _header(headers, "content-encoding")
        if encoding and not _looks_decoded(body):
            raise CassetteError(
                f"response is not JSON: it is encoded with {encoding!r}, which cannot be "
                "decoded here; re-record the cassette (bodies are recorded decoded)"
            ) from None
        raise CassetteError(f"response is not JSON (starts with {body[:40]!r})") from None


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _usage_object(value: Any, where: str) -> Mapping[str, Any]:
    """A usage object: missing or null is empty; anything but an object is an error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CassetteError(f"{where} is {kind_of(value)}, not an object of token counts")
    return value


def _header_count(value: str, where: str) -> int:
    """A count in an HTTP header (Bedrock's): decimal digits only."""
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise CassetteError(f"token count {value!r} is not a whole number of at least 0 ({where})")
    return int(text)


# -- usage objects ------------------------------------------------------------------------
def usage_from_api(
    data: Any, where: str = "usage", names: Mapping[str, str] | None = None
) -> Usage:
    """An Anthropic usage object: cache writes split by TTL, 5-minute when unsplit.

    ``where`` names the object in errors; ``names`` the place of a field when it was read
    from another shape (Bedrock's camelCase fields), else ``where.field``.
    """
    data = _usage_object(data, where)

    def field(key: str, within: Mapping[str, Any] = data, prefix: str = where) -> int:
        name = (names or {}).get(key) or f"{prefix}.{key}"
        return token_count(within.get(key), name)

    written = field("cache_creation_input_tokens")
    split = _usage_object(data.get("cache_creation"), f"{where}.cache_creation")
    if split:
        w5m = field("ephemeral_5m_input_tokens", split, f"{where}.cache_creation")
        w1h = field("ephemeral_1h_input_tokens", split, f"{where}.cache_creation")
        if written and w5m + w1h != written:
            # Trust the total (it is what is billed); the split only says how much is 1-hour.
            w1h = min(w1h, written)
            w5m = written - w1h
    else:
        w5m, w1h = written, 0
    tools = _usage_object(data.get("server_tool_use"), f"{where}.server_tool_use")
    return Usage(
        input_tokens=field("input_tokens"),
        output_tokens=field("output_tokens"),
        cache_write_5m_tokens=w5m,
        cache_write_1h_tokens=w1h,
        cache_read_tokens=field("cache_read_input_tokens"),
        web_search_requests=field("web_search_requests", tools, f"{where}.server_tool_use"),
        speed=_label(data.get("speed"), f"{where}.speed"),
        inference_geo=_label(data.get("inference_geo"), f"{where}.inference_geo"),
    )


def _label(value: Any, where: str) -> str:
    """A usage field naming how the request was served (``speed``, ``inference_geo``)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CassetteError(f"{where} is {kind_of(value)}, not a name")
    return value


def add_usage(a: Usage, b: Usage) -> Usage:
    """Two parts of one request: tokens and searches add up, the request's context is the
    first part's that names one."""
    i, o, w5, w1, r = (x + y for x, y in zip(_fields(a), _fields(b), strict=True))
    return Usage(
        i,
        o,
        w5,
        w1,
        r,
        a.web_search_requests + b.web_search_requests,
        a.speed or b.speed,
        a.inference_geo or b.inference_geo,
    )


def _fields(u: Usage) -> tuple[int, int, int, int, int]:
    return (
        u.input_tokens,
        u.output_tokens,
        u.cache_write_5m_tokens,
        u.cache_write_1h_tokens,
        u.cache_read_tokens,
    )


def _iterations(value: Any, where: str) -> list[tuple[str, str, Usage]]:
    """(type, model or "", usage) of each entry of ``usage.iterations``, in order."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise CassetteError(f"{where} is {kind_of(value)}, not a list")
    found = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise CassetteError(f"{at} is {kind_of(item)}, not an object")
        kind = item.get("type")
        if not isinstance(kind, str) or not kind:
            raise CassetteError(f"{at}.type is {kind_of(kind)}: an iteration names its type")
        model = item.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise CassetteError(f"{at}.model is {kind_of(model)}, not a model name")
        if model is None and KNOWN_ITERATIONS.get(kind) == "its model":
            raise CassetteError(f"{at}.model is missing: a {kind} is billed at its model's rates")
        found.append((kind, model or "", usage_from_api(item, at)))
    return found


def anthropic_calls(
    kind: str, model: str, data: Any, where: str = "usage", **fields: Any
) -> list[Call]:
    """The call of a Messages usage object, then one ITERATION call for each entry of its
    ``usage.iterations`` after the executor's first sampling (a ``message`` step).

    With iterations, what is billed is their sum, each at its model and each by its own
    prompt's length (a long-context band is per sampling, not per call): the call's own
    usage is its first ``message`` step, each later ``message`` step an ITERATION of the
    call's model (the top-level usage, which sums them, only when no step answered: no
    ``message`` nor ``fallback_message``); compaction is priced at the call's model, an
    advisor or fallback step at its ``model``, and a type not known here at its ``model``
    if it names one, else the call's.
    """
    data = _usage_object(data, where)
    top = usage_from_api(data, where)
    steps = _iterations(data.get("iterations"), f"{where}.iterations")
    first = next((i for i, (step, _, _) in enumerate(steps) if step == EXECUTOR_STEP), None)
    # The top level is the answering steps' usage: when a fallback model answered, it is that
    # step's (priced at its model below), so it only stands in when no step answered at all.
    answered = any(step in ANSWERING_STEPS for step, _, _ in steps)
    # What the whole request is billed by (searches, speed, geography) is top-level only.
    billed = Usage(
        web_search_requests=top.web_search_requests,
        speed=top.speed,
        inference_geo=top.inference_geo,
    )
    usage = top if not answered else billed
    if first is not None:
        usage = add_usage(usage, steps[first][2])
    calls = [Call("anthropic", kind, model, usage, **fields)]
    for index, (step, named, u) in enumerate(steps):
        if index == first:
            continue
        u = replace(
            u, speed=u.speed or top.speed, inference_geo=u.inference_geo or top.inference_geo
        )
        own = step == EXECUTOR_STEP or KNOWN_ITERATIONS.get(step) == "the call's model"
        priced = model if own else named or model
        calls.append(
            Call(
                "anthropic",
                ITERATION,
                priced,
                u,
                batch=fields.get("batch", False),
                streamed=fields.get("streamed", False),
                note=ITERATION_NOTE + step,
            )
        )
    return calls


def _openai_usage(data: Any, where: str = "usage") -> Usage:
    """Chat Completions or Responses usage; the cached part is taken out of the prompt."""
    data = _usage_object(data, where)
    if "prompt_tokens" in data or "completion_tokens" in data:  # Chat Completions
        prompt = token_count(data.get("prompt_tokens"), f"{where}.prompt_tokens")
        at = f"{where}.prompt_tokens_details"
        details = _usage_object(data.get("prompt_tokens_details"), at)
        output = token_count(data.get("completion_tokens"), f"{where}.completion_tokens")
    else:  # Responses
        prompt = token_count(data.get("input_tokens"), f"{where}.input_tokens")
        at = f"{where}.input_tokens_details"
        details = _usage_object(data.get("input_tokens_details"), at)
        output = token_count(data.get("output_tokens"), f"{where}.output_tokens")
    cached = min(token_count(details.get("cached_tokens"), f"{at}.cached_tokens"), prompt)
    return Usage(input_tokens=prompt - cached, output_tokens=output, cache_read_tokens=cached)


# -- exchanges ----------------------------------------------------------------------------
_BATCH_RESULTS = re.compile(r"/v1/messages/batches/[^/]+/results$")
# Amazon Bedrock (AnthropicBedrock): the model id, URL-quoted, names the route.
_BEDROCK = re.compile(r"/model/(?P<model>[^/]+)/(?P<op>invoke|invoke-with-response-stream)$")
# Vertex AI (AnthropicVertex): .../publishers/anthropic/models/{model}:rawPredict
_VERTEX = re.compile(
    r"/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/"
    r"(?P<model>[^/:]+)(?::|%3[Aa])(?P<op>rawPredict|streamRawPredict)$"
)
_VERTEX_COUNT = "count-tokens"
_CONVERSE = bedrock.CONVERSE  # Bedrock's Converse, ConverseStream and CountTokens


@dataclass(frozen=True)
class _Route:
    provider: str
    kind: str
    platform: str = ""  # "bedrock" | "vertex": Claude on a cloud platform
    model: str = ""  # the model id as called, when the URL names it


def _route(url: str) -> _Route | None:
    """The provider and kind of an API call by its path; None for anything else.

    By path, not host: cassettes are recorded through proxies and the loopback
    emulator. ``/v1/`` is required for Anthropic so that OpenAI's
    ``/v1/threads/{id}/messages`` is not taken for a Messages call. Bedrock and
    Vertex AI calls are Anthropic Messages calls whose model is in the URL.
    """
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/v1/messages"):
        return _Route("anthropic", "messages")
    if path.endswith("/v1/messages/count_tokens"):
        return _Route("anthropic", "count_tokens")
    if _BATCH_RESULTS.search(path):
        return _Route("anthropic", "batch")
    bedrock = _BEDROCK.search(path)
    if bedrock:
        return _Route("anthropic", "messages", "bedrock", unquote(bedrock["model"]))
    converse = _CONVERSE.search(path)  # Bedrock's own API (boto3): providers/bedrock.py reads it
    if converse:
        kind = "count_tokens" if converse["op"] == "count-tokens" else "converse"
        return _Route("anthropic", kind, "bedrock", unquote(converse["model"]))
    vertex = _VERTEX.search(path)
    if vertex:
        model = unquote(vertex["model"])
        if model == _VERTEX_COUNT:  # count_tokens names its model in the body
            return _Route("anthropic", "count_tokens", "vertex")
        return _Route("anthropic", "messages", "vertex", model)
    if path.endswith("/chat/completions"):
        return _Route("openai", "chat")
    if path.endswith("/responses"):
        return _Route("openai", "responses")
    return None


def is_api_route(url: str) -> bool:
    """An LLM API call by its path (the legacy Text Completions endpoint included)."""
    return _route(url) is not None or urlsplit(url).path.rstrip("/").endswith("/v1/complete")


def parse_provider(exchange: Exchange, provider: str) -> list[Call] | None:
    """The calls of one exchange if it is an API call of ``provider``, else None.

    Raises ``CassetteError`` naming the URL when a response of a known endpoint
    cannot be read.
    """
    route = _route(exchange.url)
    if route is None or route.provider != provider:
        return None
    status = exchange.status
    if isinstance(status, bool) or not isinstance(status, int):
        raise CassetteError(
            f"{exchange.method} {exchange.url}: status code {status!r} is not an HTTP status code"
        )
    if not 200 <= status < 300:
        return []
    kind = route.kind
    try:
        body = decode_body(exchange.headers, exchange.body)
        model = route.model or str(_object(exchange.request_json).get("model") or "")
        if provider == "openai":
            return _openai(kind, exchange.headers, body, model)
        if route.platform == "bedrock" and kind != "messages":
            return _converse(kind, exchange.headers, body, model)
        if kind == "count_tokens":
            return _count_tokens(exchange.headers, body, model)
        if kind == "batch":
            return _batch_results(body)
        return _messages(exchange.headers, body, model, as_called=bool(route.model))
    except CassetteError as err:
        raise CassetteError(f"{exchange.method} {exchange.url}: {err.message}") from None
    except RecursionError:  # JSON nested deeper than Python's stack: json.loads gives up
        raise CassetteError(
            f"{exchange.method} {exchange.url}: the response (or request) is nested too deeply "
            "to read; it is no API response"
        ) from None


def parse_exchange(exchange: Exchange) -> list[Call]:
    """The API calls in one exchange, any provider: none for errors and unknown endpoints."""
    for provider in PROVIDERS:
        calls = parse_provider(exchange, provider)
        if calls is not None:
            return calls
    return []


PROVIDERS = ("anthropic", "openai")


def _is_error(data: Mapping[str, Any]) -> bool:
    return data.get("type") == "error" or bool(data.get("error"))


def _count_tokens(headers: Mapping[str, Any], body: bytes, model: str) -> list[Call]:
    data = _object(_json(body, headers))
    if _is_error(data):
        return []
    if "input_tokens" not in data:
        raise CassetteError("count_tokens response has no input_tokens")
    usage = Usage(input_tokens=token_count(data["input_tokens"], "input_tokens"))
    return [Call("anthropic", "count_tokens", model, usage)]


def _messages(
    headers: Mapping[str, Any], body: bytes, model: str, *, as_called: bool = False
) -> list[Call]:
    """A Messages response: JSON, an SSE stream or a Bedrock event stream.

    ``as_called``: the model came from the URL (Bedrock, Vertex AI) and names the call,
    not the response's ``model`` (the platform's id is what is billed and priced).
    """
    content_type = _header(headers, "content-type").lower()
    if bedrock.CONTENT_TYPE in content_type or bedrock.is_event_stream(body):
        return _messages_stream(bedrock.stream_events(body), model, as_called=as_called)
    if _is_stream(headers, body):
        return _messages_stream(_sse_events(body), model, as_called=as_called)
    data = _json(body, headers)
    if not isinstance(data, dict):
        raise CassetteError("response is not a JSON object")
    if _is_error(data):
        return []
    usage_data = _usage_object(data.get("usage"), "usage") or _bedrock_header_usage(headers)
    if not usage_data:  # every Messages answer reports it: a 0 would pass any budget
        raise CassetteError("the Messages response carries no usage: its tokens are unknown")
    named = model if as_called else str(data.get("model") or model)
    return anthropic_calls("messages", named, usage_data)


def _converse(kind: str, headers: Mapping[str, Any], body: bytes, model: str) -> list[Call]:
    """Bedrock's Converse, ConverseStream or CountTokens response, any model it serves."""
    found = bedrock.converse_usage(_header(headers, "content-type"), body)
    if found is None:
        return []
    usage = usage_from_api(found.usage)
    if kind == "count_tokens":
        return [Call("bedrock", "count_tokens", model, usage)]
    return [Call("bedrock", "messages", model, usage, streamed=found.streamed, note=found.note)]


def _bedrock_header_usage(headers: Mapping[str, Any]) -> dict[str, Any] | None:
    """Bedrock's usage headers, for a response body without usage (Text Completions)."""
    fields = {
        "input_tokens": "x-amzn-bedrock-input-token-count",
        "output_tokens": "x-amzn-bedrock-output-token-count",
        "cache_read_input_tokens": "x-amzn-bedrock-cache-read-input-token-count",
        "cache_creation_input_tokens": "x-amzn-bedrock-cache-write-input-token-count",
    }
    found = {key: (_header(headers, name), name) for key, name in fields.items()}
    return {
        key: _header_count(value, f"header {name}") for key, (value, name) in found.items() if value
    } or None


def _messages_stream(
    events: Iterable[tuple[str, dict[str, Any]]], model: str, *, as_called: bool = False
) -> list[Call]:
    """message_start holds the prompt's usage; each message_delta's fields replace it.

    The delta's counts are cumulative: adding them would count the prompt twice
    on newer streams, whose message_delta repeats input and cache counts.
    """
    usage: dict[str, Any] = {}
    started = finished = False
    for name, event in events:
        kind = _event_type(name, event)
        if kind == "message_start":
            message = _object(event.get("message"))
            if not as_called:
                model = str(message.get("model") or model)
            usage.update(_stream_usage(message.get("usage"), "message_start message.usage"))
            started = True
        elif kind == "message_delta":
            delta = _stream_usage(event.get("usage"), "message_delta usage")
            usage.update({k: v for k, v in delta.items() if v is not None})
            finished = True
        elif kind == "error":
            return []
    if not started:
        raise CassetteError("stream has no message_start event (truncated recording?)")
    if not finished:  # the output (and any iterations) come in the final message_delta
        raise CassetteError(
            "stream ends before its message_delta (truncated recording?): its output "
            "tokens are unknown"
        )
    # usage.iterations comes whole in the last message_delta that carries it (it replaces)
    return anthropic_calls("messages", model, usage, streamed=True)


def _stream_usage(value: Any, where: str) -> Mapping[str, Any]:
    """One event's usage, every count checked where it was recorded (the events' fields
    are merged before they are read)."""
    data = _usage_object(value, where)
    usage_from_api(data, where)
    _iterations(data.get("iterations"), f"{where}.iterations")
    return data


def _batch_results(body: bytes) -> list[Call]:
    """One call per succeeded request of a Message Batches results file (JSONL)."""
    calls = []
    for number, line in enumerate(body.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise CassetteError(f"batch results line {number} is not JSON") from None
        result = _object(_object(item).get("result"))
        if result.get("type") != "succeeded":
            continue  # errored, canceled and expired requests generate nothing
        message = _object(result.get("message"))
        model = str(message.get("model") or "")
        where = f"line {number}: result.message.usage"
        calls.extend(anthropic_calls("batch", model, message.get("usage"), where, batch=True))
    return calls


def _openai(kind: str, headers: Mapping[str, Any], body: bytes, model: str) -> list[Call]:
    if _is_stream(headers, body):
        return _openai_stream(kind, body, model)
    data = _json(body, headers)
    if not isinstance(data, dict):
        raise CassetteError("response is not a JSON object")
    if _is_error(data):  # a Responses object always has "error": null
        return []
    usage_data = _usage_object(data.get("usage"), "usage")
    note = "" if usage_data else "response carried no usage"
    usage = _openai_usage(usage_data)
    return [Call("openai", kind, str(data.get("model") or model), usage, note=note)]


def _openai_stream(kind: str, body: bytes, model: str) -> list[Call]:
    """Chat: the last chunk with usage (include_usage). Responses: response.completed."""
    usage: Any = None
    for name, event in _sse_events(body):
        if kind == "chat":
            if event.get("error"):
                return []
            model = str(event.get("model") or model)
            if event.get("usage") is not None:
                usage = _usage_object(event["usage"], "chunk usage") or usage
            continue
        event_type = _event_type(name, event)
        response = _object(event.get("response"))
        if event_type in ("error", "response.failed"):
            return []
        model = str(response.get("model") or model)
        if event_type in ("response.completed", "response.incomplete"):
            usage = _usage_object(response.get("usage"), f"{event_type} response.usage") or usage
    if usage is None:
        note = (
            "stream carried no usage (set stream_options.include_usage)"
            if kind == "chat"
            else "stream carried no usage (it ended before response.completed)"
        )
        return [Call("openai", kind, model, Usage(), streamed=True, note=note)]
    return [Call("openai", kind, model, _openai_usage(usage, "usage (stream)"), streamed=True)]


# -- cassettes ----------------------------------------------------------------------------
# Exchange and the recorders' file formats live in providers/recorders.py; these two are the
# usage parser's view of a cassette file.
def exchanges_from_cassette(
    data: Any, *, path: str | os.PathLike[str] | None = None
) -> list[Exchange]:
    """The exchanges of a loaded cassette of any recorder (vcrpy, pydantic-ai, VCR)."""
    return list(exchanges_from_document(data, path=path).exchanges)


def load_cassette_file(path: str | os.PathLike[str]) -> list[Exchange]:
    """The exchanges of a cassette file of any recorder, every response checked readable.

    Every problem is a ``CassetteError`` naming the file and, where it knows, the line,
    so a corrupt cassette is one clear message, never a traceback.
    """
    recording = read_recording(path)
    for index, exchange in enumerate(recording.exchanges):
        try:
            parse_exchange(exchange)
        except CassetteError as err:
            raise CassetteError(
                f"interaction {index}: {err.message}", path=path, line=recording.line_of(index)
            ) from None
    return list(recording.exchanges)


def with_count(call: Call, counted: int, recounted: bool) -> Call:
    """The recorded call, with its whole prompt taken from count_tokens.

    The recorded cache split is kept while it fits in the new prompt (a re-counted
    call's cache figures are stale, and the report says so); otherwise all is uncached.
    """
    if call.kind != "messages":
        return call
    u = call.usage
    cached = u.cache_write_tokens + u.cache_read_tokens
    if cached <= counted:
        usage = replace(u, input_tokens=counted - cached)
    else:
        usage = Usage(input_tokens=counted, output_tokens=u.output_tokens)
    return replace(call, usage=usage, recounted=recounted)
