"""Response bodies as recorded: content encodings undone, server-sent events split,
JSON read with an error that says what is wrong, usage objects and header counts checked.

Shared by the providers' parsers (providers/anthropic.py, providers/openai.py). A token
count or usage object that cannot be read is a ``CassetteError`` naming the field: never
a 0, never a negative cost.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from pytest_tokenbudget.errors import CassetteError, kind_of
from pytest_tokenbudget.providers.recorders import (
    GZIP_WBITS,
    RAW_DEFLATE_WBITS,
    ZLIB_WBITS,
    inflate,
)

_GZIP_MAGIC = b"\x1f\x8b"
_SSE_FIELDS = (b"event:", b"data:", b"id:", b"retry:", b":")


def header(headers: Mapping[str, Any], name: str) -> str:
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
    codings = [c.strip().lower() for c in header(headers, "content-encoding").split(",")]
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


def is_stream(headers: Mapping[str, Any], body: bytes) -> bool:
    """A server-sent event stream, by its content type or, when that was lost, its body."""
    if "text/event-stream" in header(headers, "content-type").lower():
        return True
    return body.lstrip().startswith(_SSE_FIELDS)


def sse_events(body: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
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


def event_kind(name: str, event: Mapping[str, Any]) -> str:
    """An event's type: its payload's ``type``, else the SSE event name."""
    kind = event.get("type")
    return kind if isinstance(kind, str) and kind else name


def read_json(body: bytes, headers: Mapping[str, Any]) -> Any:
    """A JSON response body, or a CassetteError saying why it cannot be read."""
    if not body.strip():
        raise CassetteError("response body is empty")
    try:
        return json.loads(body)
    except RecursionError:
        raise CassetteError("response is nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError):
        encoding = header(headers, "content-encoding")
        if encoding and not _looks_decoded(body):
            raise CassetteError(
                f"response is not JSON: it is encoded with {encoding!r}, which cannot be "
                "decoded here; re-record the cassette (bodies are recorded decoded)"
            ) from None
        raise CassetteError(f"response is not JSON (starts with {body[:40]!r})") from None


def as_object(value: Any) -> Mapping[str, Any]:
    """A JSON object, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def usage_object(value: Any, where: str) -> Mapping[str, Any]:
    """A usage object: missing or null is empty; anything but an object is an error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CassetteError(f"{where} is {kind_of(value)}, not an object of token counts")
    return value


def header_count(value: str, where: str) -> int:
    """A count in an HTTP header (Bedrock's): decimal digits only."""
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise CassetteError(f"token count {value!r} is not a whole number of at least 0 ({where})")
    return int(text)


def is_error(data: Mapping[str, Any]) -> bool:
    """A body that is an API error (or says one happened): nothing to count in it."""
    return data.get("type") == "error" or bool(data.get("error"))
