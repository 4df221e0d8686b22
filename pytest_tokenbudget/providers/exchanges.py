"""One recorded exchange -> the API calls in it: the provider and endpoint by the URL's
path (the Claude API, Bedrock, Vertex AI, OpenAI), then that provider's parser; and a
cassette file of any recorder read with every response checked.

Stdlib only (yaml is imported where a file is read): this module is imported by
every pytest run.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.providers import bedrock
from pytest_tokenbudget.providers.anthropic import (
    batch_calls,
    converse_calls,
    count_tokens_calls,
    messages_calls,
)
from pytest_tokenbudget.providers.bodies import as_object, decode_body
from pytest_tokenbudget.providers.openai import openai_calls
from pytest_tokenbudget.providers.recorders import Exchange, exchanges_from_document, read_recording
from pytest_tokenbudget.providers.usage import Call

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
        model = route.model or str(as_object(exchange.request_json).get("model") or "")
        if provider == "openai":
            return openai_calls(kind, exchange.headers, body, model)
        if route.platform == "bedrock" and kind != "messages":
            return converse_calls(kind, exchange.headers, body, model)
        if kind == "count_tokens":
            return count_tokens_calls(exchange.headers, body, model)
        if kind == "batch":
            return batch_calls(body)
        return messages_calls(exchange.headers, body, model, as_called=bool(route.model))
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
