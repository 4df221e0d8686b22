"""Anthropic's usage: the Messages API (JSON, a server-sent event stream, a batch's
results file, count_tokens) on the Claude API, Amazon Bedrock and Vertex AI.

Claude on Bedrock and Vertex AI is the Messages API under other URLs: the model is in
the path (providers/exchanges.py routes it), and a Bedrock stream comes in AWS
event-stream frames (providers/bedrock.py). Those calls are named by the model id as
called, which is what the platform bills and what `pricing:` entries name. Bedrock's own
Converse API, whatever model it serves, is read here too: its usage is Anthropic's shape.

A ``usage.iterations`` list (compaction, an advisor, a fallback model) comes out as
ITERATION calls after the call they belong to (providers/usage.py says how they are
counted).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pytest_tokenbudget.errors import CassetteError, kind_of
from pytest_tokenbudget.providers import bedrock
from pytest_tokenbudget.providers.bodies import (
    as_object,
    event_kind,
    header,
    header_count,
    is_error,
    is_stream,
    read_json,
    sse_events,
    usage_object,
)
from pytest_tokenbudget.providers.counts import token_count
from pytest_tokenbudget.providers.usage import (
    ANSWERING_STEPS,
    EXECUTOR_STEP,
    ITERATION,
    ITERATION_NOTE,
    KNOWN_ITERATIONS,
    Call,
    Usage,
    add_usage,
)


def usage_from_api(
    data: Any, where: str = "usage", names: Mapping[str, str] | None = None
) -> Usage:
    """An Anthropic usage object: cache writes split by TTL, 5-minute when unsplit.

    ``where`` names the object in errors; ``names`` the place of a field when it was read
    from another shape (Bedrock's camelCase fields), else ``where.field``.
    """
    data = usage_object(data, where)

    def field(key: str, within: Mapping[str, Any] = data, prefix: str = where) -> int:
        name = (names or {}).get(key) or f"{prefix}.{key}"
        return token_count(within.get(key), name)

    written = field("cache_creation_input_tokens")
    split = usage_object(data.get("cache_creation"), f"{where}.cache_creation")
    if split:
        w5m = field("ephemeral_5m_input_tokens", split, f"{where}.cache_creation")
        w1h = field("ephemeral_1h_input_tokens", split, f"{where}.cache_creation")
        if written and w5m + w1h != written:
            # Trust the total (it is what is billed); the split only says how much is 1-hour.
            w1h = min(w1h, written)
            w5m = written - w1h
    else:
        w5m, w1h = written, 0
    tools = usage_object(data.get("server_tool_use"), f"{where}.server_tool_use")
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
    data = usage_object(data, where)
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


def count_tokens_calls(headers: Mapping[str, Any], body: bytes, model: str) -> list[Call]:
    data = as_object(read_json(body, headers))
    if is_error(data):
        return []
    if "input_tokens" not in data:
        raise CassetteError("count_tokens response has no input_tokens")
    usage = Usage(input_tokens=token_count(data["input_tokens"], "input_tokens"))
    return [Call("anthropic", "count_tokens", model, usage)]


def messages_calls(
    headers: Mapping[str, Any], body: bytes, model: str, *, as_called: bool = False
) -> list[Call]:
    """A Messages response: JSON, an SSE stream or a Bedrock event stream.

    ``as_called``: the model came from the URL (Bedrock, Vertex AI) and names the call,
    not the response's ``model`` (the platform's id is what is billed and priced).
    """
    content_type = header(headers, "content-type").lower()
    if bedrock.CONTENT_TYPE in content_type or bedrock.is_event_stream(body):
        return _messages_stream(bedrock.stream_events(body), model, as_called=as_called)
    if is_stream(headers, body):
        return _messages_stream(sse_events(body), model, as_called=as_called)
    data = read_json(body, headers)
    if not isinstance(data, dict):
        raise CassetteError("response is not a JSON object")
    if is_error(data):
        return []
    usage_data = usage_object(data.get("usage"), "usage") or _bedrock_header_usage(headers)
    if not usage_data:  # every Messages answer reports it: a 0 would pass any budget
        raise CassetteError("the Messages response carries no usage: its tokens are unknown")
    named = model if as_called else str(data.get("model") or model)
    return anthropic_calls("messages", named, usage_data, tools_called=tools_called(data))


def tools_called(message: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of the tools a response's content calls (`tool_use`, `server_tool_use`,
    `mcp_tool_use` blocks), in order: the cost checklist's evidence that a tool is used."""
    content = message.get("content")
    return tuple(
        block["name"]
        for block in (content if isinstance(content, list) else ())
        if isinstance(block, dict)
        and str(block.get("type", "")).endswith("tool_use")
        and isinstance(block.get("name"), str)
    )


def converse_calls(kind: str, headers: Mapping[str, Any], body: bytes, model: str) -> list[Call]:
    """Bedrock's Converse, ConverseStream or CountTokens response, any model it serves."""
    found = bedrock.converse_usage(header(headers, "content-type"), body)
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
    found = {key: (header(headers, name), name) for key, name in fields.items()}
    return {
        key: header_count(value, f"header {name}") for key, (value, name) in found.items() if value
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
    blocks: list[Any] = []  # each content_block_start's block: the tools it calls
    for name, event in events:
        kind = event_kind(name, event)
        if kind == "content_block_start":
            blocks.append(event.get("content_block"))
        elif kind == "message_start":
            message = as_object(event.get("message"))
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
    called = tools_called({"content": blocks})
    return anthropic_calls("messages", model, usage, streamed=True, tools_called=called)


def _stream_usage(value: Any, where: str) -> Mapping[str, Any]:
    """One event's usage, every count checked where it was recorded (the events' fields
    are merged before they are read)."""
    data = usage_object(value, where)
    usage_from_api(data, where)
    _iterations(data.get("iterations"), f"{where}.iterations")
    return data


def batch_calls(body: bytes) -> list[Call]:
    """One call per succeeded request of a Message Batches results file (JSONL)."""
    calls = []
    for number, line in enumerate(body.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise CassetteError(f"batch results line {number} is not JSON") from None
        result = as_object(as_object(item).get("result"))
        if result.get("type") != "succeeded":
            continue  # errored, canceled and expired requests generate nothing
        message = as_object(result.get("message"))
        model = str(message.get("model") or "")
        where = f"line {number}: result.message.usage"
        calls.extend(anthropic_calls("batch", model, message.get("usage"), where, batch=True))
    return calls
