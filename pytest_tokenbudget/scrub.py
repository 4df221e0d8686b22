"""Credentials never reach a cassette: scrub what we know, refuse what still looks like a key."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import bedrock
from .errors import SecretError

# Request headers that carry credentials in any SDK generation (0.x/1.x x-api-key,
# 2.x Authorization: Bearer, Azure api-key, admin keys) and identifying ones. On the
# cloud platforms `authorization` is an AWS SigV4 signature or a Bedrock API key
# (AnthropicBedrock) or a Google OAuth token (AnthropicVertex); AWS sends temporary
# credentials' session token beside it, Vertex AI express mode an API key.
REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "anthropic-admin-api-key",
        "openai-organization",
        "openai-project",
        "cookie",
        "proxy-authorization",
        "x-amz-security-token",
        "x-goog-api-key",
    }
)
RESPONSE_HEADERS = frozenset(
    {"anthropic-organization-id", "openai-organization", "openai-project", "set-cookie"}
)
REDACTED = "REDACTED"

# Key-shaped values in any text: Anthropic and OpenAI keys, bearer tokens, Google OAuth
# access tokens (ya29.) and API keys (AIza), AWS access key ids (AKIA long-term, ASIA
# temporary: the SigV4 `Credential=` names one), AWS session tokens (their two known
# openings) and Bedrock API keys (ABSK long-term, bedrock-api-key- short-term). Short
# prefixes that base64 could spell must start a token, so an image or a binary body is
# never taken for a key.
_NOT_MID_BASE64 = r"(?<![A-Za-z0-9+/_\-])"
# (must start a token, literal opening, the rest): every key shape opens with a literal.
_KEY_SHAPES = (
    (False, "sk-", r"(?:ant-)?[A-Za-z0-9_\-]{16,}"),
    (False, "Bearer", r"\s+[A-Za-z0-9._\-]{12,}"),
    (False, "ya29.", r"[A-Za-z0-9._\-]{20,}"),
    (True, "AIza", r"[A-Za-z0-9_\-]{35}"),
    (True, "AKIA", r"[A-Z0-9]{16}(?![A-Za-z0-9])"),
    (True, "ASIA", r"[A-Z0-9]{16}(?![A-Za-z0-9])"),
    (True, "ABSK", r"[A-Za-z0-9+/=]{20,}"),
    (False, "IQoJb3JpZ2luX2Vj", r"[A-Za-z0-9+/=]{20,}"),
    (False, "FwoGZXIvYXdzE", r"[A-Za-z0-9+/=]{20,}"),
    (False, "bedrock-api-key-", r"[A-Za-z0-9+/=%]{20,}"),
)
_SECRET = re.compile(
    "|".join(
        f"{_NOT_MID_BASE64 if starts else ''}{re.escape(opening)}{rest}"
        for starts, opening, rest in _KEY_SHAPES
    )
)
# Text with none of the openings holds no key: a substring test is ~100x faster than the
# search, which tries every position (the reports of 1,000 cases: 134 ms -> 5 ms).
_OPENINGS = tuple(opening for _, opening, _ in _KEY_SHAPES)


def _may_hold_key(text: str) -> bool:
    return any(opening in text for opening in _OPENINGS)


_QUERY_SECRET = re.compile(r"(?i)([?&](?:api[-_]?key|key|token|access_token)=)[^&#]+")


def scrub_text(text: str) -> str:
    if _may_hold_key(text):
        text = _SECRET.sub(REDACTED, text)
    return _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)


def replace_keys(text: str, replacement: Callable[[str], str]) -> str:
    """Every key-shaped value in text replaced by replacement(value)."""
    if not _may_hold_key(text):
        return text
    return _SECRET.sub(lambda match: replacement(match.group(0)), text)


def scrub_bytes(body: bytes) -> bytes:
    """Scrub a body: text as text; a Bedrock event stream inside each chunk, reframed."""
    if not body:
        return body
    if bedrock.is_event_stream(body):
        return bedrock.rewrite_chunks(body, scrub_text)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body  # compressed or binary: the final scan still checks what is written
    cleaned = scrub_text(text)
    return body if cleaned == text else cleaned.encode("utf-8")


def scrub_headers(headers: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """Drop credential headers by name; redact key-shaped values in any other header
    (custom gateway headers, ANTHROPIC_CUSTOM_HEADERS)."""

    def clean(value: Any) -> Any:
        if isinstance(value, list):
            return [clean(v) for v in value]
        return scrub_text(value) if isinstance(value, str) else value

    return {k: clean(v) for k, v in headers.items() if k.lower() not in names}


def find_secret(text: str) -> str | None:
    """The first key-shaped value in text, shortened so the message itself leaks nothing."""
    match = _SECRET.search(text) if _may_hold_key(text) else None
    if match:
        return match.group(0)[:10] + "…"
    return None


def refuse_if_secret(text: str, *, path: str) -> None:
    """Last gate before a file is written: a surviving key aborts the write."""
    found = find_secret(text)
    if found is None:
        return
    line = text[: text.find(found[:-1])].count("\n") + 1
    raise SecretError(
        f"refusing to write: a value shaped like a credential ({found}) survived scrubbing. "
        "Nothing was written; remove the key from the request or add a "
        "pytest_tokenbudget_scrub hook.",
        path=path,
        line=line,
    )
