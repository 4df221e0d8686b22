"""OpenAI's usage: Chat Completions and Responses, as JSON or a server-sent event stream.

OpenAI counts cached tokens inside the prompt; they are taken out here, so that
``Usage.input_tokens`` is the uncached part as it is for Anthropic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.providers.bodies import (
    as_object,
    event_kind,
    is_error,
    is_stream,
    read_json,
    sse_events,
    usage_object,
)
from pytest_tokenbudget.providers.counts import token_count
from pytest_tokenbudget.providers.usage import Call, Usage


def openai_usage(data: Any, where: str = "usage") -> Usage:
    """Chat Completions or Responses usage; the cached part is taken out of the prompt."""
    data = usage_object(data, where)
    if "prompt_tokens" in data or "completion_tokens" in data:  # Chat Completions
        prompt = token_count(data.get("prompt_tokens"), f"{where}.prompt_tokens")
        at = f"{where}.prompt_tokens_details"
        details = usage_object(data.get("prompt_tokens_details"), at)
        output = token_count(data.get("completion_tokens"), f"{where}.completion_tokens")
    else:  # Responses
        prompt = token_count(data.get("input_tokens"), f"{where}.input_tokens")
        at = f"{where}.input_tokens_details"
        details = usage_object(data.get("input_tokens_details"), at)
        output = token_count(data.get("output_tokens"), f"{where}.output_tokens")
    cached = min(token_count(details.get("cached_tokens"), f"{at}.cached_tokens"), prompt)
    return Usage(input_tokens=prompt - cached, output_tokens=output, cache_read_tokens=cached)


def openai_calls(kind: str, headers: Mapping[str, Any], body: bytes, model: str) -> list[Call]:
    if is_stream(headers, body):
        return _openai_stream(kind, body, model)
    data = read_json(body, headers)
    if not isinstance(data, dict):
        raise CassetteError("response is not a JSON object")
    if is_error(data):  # a Responses object always has "error": null
        return []
    usage_data = usage_object(data.get("usage"), "usage")
    note = "" if usage_data else "response carried no usage"
    usage = openai_usage(usage_data)
    return [Call("openai", kind, str(data.get("model") or model), usage, note=note)]


def _openai_stream(kind: str, body: bytes, model: str) -> list[Call]:
    """Chat: the last chunk with usage (include_usage). Responses: response.completed."""
    usage: Any = None
    for name, event in sse_events(body):
        if kind == "chat":
            if event.get("error"):
                return []
            model = str(event.get("model") or model)
            if event.get("usage") is not None:
                usage = usage_object(event["usage"], "chunk usage") or usage
            continue
        event_type = event_kind(name, event)
        response = as_object(event.get("response"))
        if event_type in ("error", "response.failed"):
            return []
        model = str(response.get("model") or model)
        if event_type in ("response.completed", "response.incomplete"):
            usage = usage_object(response.get("usage"), f"{event_type} response.usage") or usage
    if usage is None:
        note = (
            "stream carried no usage (set stream_options.include_usage)"
            if kind == "chat"
            else "stream carried no usage (it ended before response.completed)"
        )
        return [Call("openai", kind, model, Usage(), streamed=True, note=note)]
    return [Call("openai", kind, model, openai_usage(usage, "usage (stream)"), streamed=True)]
