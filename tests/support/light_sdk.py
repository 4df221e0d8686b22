"""A stand-in for the Anthropic SDK, for the tests that run the bundled example many times
over to test CI plumbing (baselines, artifacts, comments), not the client.

`import anthropic` is ~2.5 s of CPU in every pytest process (the SDK builds ~1,500 pydantic
models at import); the docs' recipes and the action's runs start ~40 of them. This module
is the part of the SDK the example's support_bot.py uses, on plain httpx: it sends the
requests the SDK sends (the same JSON, so the committed cassettes replay) and reads the
answers the way the SDK does. project_files.copy_example(..., light_sdk=True) puts it in
the project and points the app's `import anthropic` at it. Whether it sends exactly the
SDK's requests is tested: tests/integration/test_light_sdk.py.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import json
import os
import ssl
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx

# The installed SDK's credential header: a bearer token from 2.x on, x-api-key before.
_BEARER = int(metadata.version("anthropic").split(".")[0]) >= 2


class Anthropic:
    """`anthropic.Anthropic()`: the base URL and key from the environment, as the SDK reads
    them. Its options (max_retries, ...) are taken and left unused: one request each."""

    def __init__(self, **options: Any) -> None:
        self.messages = _Messages()


class _Messages:
    def create(self, **params: Any) -> SimpleNamespace:
        message = _post(_ordered(params)).json()
        blocks = [SimpleNamespace(**block) for block in message["content"]]
        return SimpleNamespace(**{**message, "content": blocks})

    def stream(self, **params: Any) -> _Stream:
        return _Stream(params)


class _Stream:
    """`messages.stream(...)`: the server-sent events of one request, read whole."""

    def __init__(self, params: dict[str, Any]) -> None:
        self._events = [
            json.loads(line[len("data: ") :])
            for line in _post({**_ordered(params), "stream": True}).text.splitlines()
            if line.startswith("data: ")
        ]

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def text_stream(self) -> Iterator[str]:
        for event in self._events:
            delta = event.get("delta", {})
            if event["type"] == "content_block_delta" and delta.get("type") == "text_delta":
                yield delta["text"]

    def get_final_message(self) -> SimpleNamespace:
        stop = [e["delta"].get("stop_reason") for e in self._events if e["type"] == "message_delta"]
        return SimpleNamespace(stop_reason=stop[-1] if stop else None)


def _ordered(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters in the order the SDK writes them: by name (a stream's flag last)."""
    return {name: params[name] for name in sorted(params)}


def _post(body: dict[str, Any]) -> httpx.Response:
    base = os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    headers = {**_credentials(), "anthropic-version": "2023-06-01"}
    headers["content-type"] = "application/json"
    content = json.dumps(body, separators=(",", ":")).encode()  # the SDK's bytes, compact
    with httpx.Client(timeout=60, verify=_ssl_context()) as client:
        response = client.post(f"{base.rstrip('/')}/v1/messages", content=content, headers=headers)
    response.raise_for_status()
    return response


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The context httpx builds by default (certifi's bundle, or SSL_CERT_FILE), built once:
    loading the bundle is ~30 ms of CPU, and the example makes a client for each call (a
    third of a replay's CPU). A client per call still: no socket outlives its request."""
    return httpx.create_ssl_context()


def _credentials() -> dict[str, str]:
    """The SDK's credential header (x-api-key before 2.x, a bearer token since); like the
    SDK, no request at all without a key or token, so a run relies on the plugin's
    placeholder credentials as it does with the SDK."""
    key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
    if not key:
        raise TypeError(
            "Could not resolve authentication method. Expected either api_key or auth_token"
        )
    return {"Authorization": f"Bearer {key}"} if _BEARER else {"x-api-key": key}
