"""Amazon Bedrock: its model ids and the AWS event-stream framing of its streams.

`invoke-with-response-stream` answers in binary frames, not server-sent events:
prelude (total length, headers length, CRC32 of both), typed headers, a payload,
CRC32 of the whole frame. A chunk's payload is ``{"bytes": base64(Messages event)}``.
Decoded here with the stdlib, so reading a cassette never needs botocore; encoded
again only to scrub inside a recorded stream.

Model ids: ``[geo.]anthropic.<model>[-vN[:M]]``, where ``geo`` is a cross-region
inference profile (``us.``, ``eu.``, ``apac.``, ``global.``, ...), or the ARN of a
foundation model or of a system inference profile that ends in such an id.

Bedrock's own Converse API (boto3's ``converse``, ``converse_stream``, ``count_tokens``)
is not the Messages API: usage comes in camelCase fields, and a stream's usage is in its
``metadata`` event. ``converse_usage`` reads both into the Messages API's field names.

Stdlib only: imported by usage parsing and pricing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_tokenbudget.errors import CassetteError, kind_of
from pytest_tokenbudget.providers.counts import token_count

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_PRELUDE = struct.Struct(">III")  # total length, headers length, prelude CRC
_CRC = struct.Struct(">I")
_MIN_FRAME = _PRELUDE.size + _CRC.size
_MAX_FRAME = 16 * 1024 * 1024  # the service's limit; anything larger is not a frame
# Header value types holding a fixed-size integer (byte, short, int, long, timestamp).
_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}


@dataclass(frozen=True)
class Frame:
    headers: dict[str, Any]
    payload: bytes


def _crc(data: bytes, start: int = 0) -> int:
    return zlib.crc32(data, start) & 0xFFFFFFFF


def _frame_at(body: bytes, offset: int) -> tuple[int, int] | None:
    """(total length, headers length) of a whole, valid frame at offset; None if cut short."""
    if len(body) - offset < _PRELUDE.size:
        return None
    total, headers_length, prelude_crc = _PRELUDE.unpack_from(body, offset)
    if _crc(body[offset : offset + 8]) != prelude_crc:
        raise CassetteError(f"event stream frame at byte {offset} is corrupt (prelude CRC)")
    if total < _MIN_FRAME + headers_length or total > _MAX_FRAME:
        raise CassetteError(f"event stream frame at byte {offset} has an impossible length")
    if len(body) - offset < total:
        return None
    (message_crc,) = _CRC.unpack_from(body, offset + total - _CRC.size)
    if _crc(body[offset : offset + total - _CRC.size]) != message_crc:
        raise CassetteError(f"event stream frame at byte {offset} is corrupt (message CRC)")
    return total, headers_length


def is_event_stream(body: bytes) -> bool:
    """True when body starts with a valid event-stream prelude (its CRC checks out)."""
    if len(body) < _MIN_FRAME:
        return False
    total: int
    headers_length: int
    prelude_crc: int
    total, headers_length, prelude_crc = _PRELUDE.unpack_from(body, 0)
    return _crc(body[:8]) == prelude_crc and _MIN_FRAME + headers_length <= total <= _MAX_FRAME


def _headers(raw: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    i = 0
    try:
        while i < len(raw):
            size = raw[i]
            name = raw[i + 1 : i + 1 + size].decode("utf-8")
            i += 1 + size
            kind = raw[i]
            i += 1
            value: Any
            if kind in (0, 1):
                value = kind == 0
            elif kind in _FIXED:
                fmt = struct.Struct(_FIXED[kind])
                (value,) = fmt.unpack_from(raw, i)
                i += fmt.size
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", raw, i)
                value = raw[i + 2 : i + 2 + length]
                value = value.decode("utf-8") if kind == 7 else value
                i += 2 + length
            elif kind == 9:
                value = raw[i : i + 16]
                i += 16
            else:
                raise CassetteError(f"event stream header {name!r} has unknown type {kind}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        raise CassetteError("event stream headers are malformed") from None
    return headers


def decode_frames(body: bytes) -> tuple[list[Frame], bool]:
    """The whole frames of a recorded stream, and whether it was cut short after them.

    A cut stream keeps what came before (as a cut SSE stream does); a frame whose
    CRC fails is a corrupt recording.
    """
    frames: list[Frame] = []
    offset = 0
    while offset < len(body):
        found = _frame_at(body, offset)
        if found is None:
            return frames, True
        total, headers_length = found
        start = offset + _PRELUDE.size
        headers = _headers(body[start : start + headers_length])
        payload = body[start + headers_length : offset + total - _CRC.size]
        frames.append(Frame(headers, payload))
        offset += total
    return frames, False


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One frame with string headers (all a Bedrock chunk carries)."""
    raw = b""
    for name, value in headers.items():
        key, text = name.encode("utf-8"), value.encode("utf-8")
        raw += bytes([len(key)]) + key + b"\x07" + struct.pack(">H", len(text)) + text
    total = _MIN_FRAME + len(raw) + len(payload)
    prelude = struct.pack(">II", total, len(raw))
    head = prelude + _CRC.pack(_crc(prelude)) + raw + payload
    return head + _CRC.pack(_crc(head))


def _chunk_event(frame: Frame) -> dict[str, Any] | None:
    """The Messages event inside a chunk frame, or None for a chunk with none."""
    try:
        outer = json.loads(frame.payload)
        inner = base64.b64decode(outer["bytes"], validate=True)
        event = json.loads(inner)
    except RecursionError:
        raise CassetteError("event stream chunk is nested too deeply to read") from None
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise CassetteError("event stream chunk is not base64 JSON under `bytes`") from None
    return event if isinstance(event, dict) else None


def stream_events(body: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event type, Messages event) of each chunk; an exception frame is an `error` event.

    A model that is not Claude (Titan, Nova, Llama through InvokeModel) streams chunks
    of its own format; the last one carries Bedrock's ``amazon-bedrock-invocationMetrics``,
    read here as the message_start and message_delta usage a Claude stream would carry.
    """
    frames, _cut = decode_frames(body)
    for frame in frames:
        message_type = frame.headers.get(":message-type", "event")
        if message_type in ("exception", "error"):
            kind = frame.headers.get(":exception-type") or frame.headers.get(":error-code")
            yield "error", {"type": "error", "error": {"type": str(kind or "error")}}
            return
        if frame.headers.get(":event-type", "chunk") != "chunk":
            continue
        event = _chunk_event(frame)
        if event is None:
            continue
        metrics = event.get(_INVOCATION_METRICS)
        if not event.get("type") and isinstance(metrics, dict):
            yield from _metrics_events(metrics)
            continue
        yield str(event.get("type") or ""), event


_INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"


def _metrics_events(metrics: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Bedrock's invocation metrics as a Messages stream's usage events."""

    def count(name: str) -> int | None:
        value = metrics.get(name)
        return None if value is None else _token_count(value, f"{_INVOCATION_METRICS}.{name}")

    prompt = {
        "input_tokens": count("inputTokenCount"),
        "cache_read_input_tokens": count("cacheReadInputTokenCount"),
        "cache_creation_input_tokens": count("cacheWriteInputTokenCount"),
    }
    usage = {k: v for k, v in prompt.items() if v is not None}
    yield "message_start", {"type": "message_start", "message": {"usage": usage}}
    output = {"output_tokens": count("outputTokenCount")}
    yield "message_delta", {"type": "message_delta", "usage": output}


def _token_count(value: Any, where: str) -> int:
    return token_count(value, where)


def rewrite_chunks(body: bytes, clean: Callable[[str], str]) -> bytes:
    """The stream with ``clean`` applied to the text of every chunk's event, CRCs redone.

    Unchanged frames are kept byte for byte; a body that is not a whole, valid
    stream is returned as it is (the caller's other checks still apply).
    """
    try:
        frames, cut = decode_frames(body)
    except CassetteError:
        return body
    if cut or not all(isinstance(v, str) for f in frames for v in f.headers.values()):
        return body
    out = []
    changed = False
    for frame in frames:
        try:
            outer = json.loads(frame.payload)
            text = base64.b64decode(outer["bytes"], validate=True).decode("utf-8")
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            text = None
        cleaned = clean(text) if text is not None else None
        if cleaned is None or cleaned == text:
            out.append(encode_frame(frame.headers, frame.payload))
            continue
        changed = True
        outer["bytes"] = base64.b64encode(cleaned.encode("utf-8")).decode("ascii")
        payload = json.dumps(outer, separators=(",", ":")).encode("utf-8")
        out.append(encode_frame(frame.headers, payload))
    return b"".join(out) if changed else body


# -- the Converse API -------------------------------------------------------------------
# POST /model/{model id}/converse | converse-stream | count-tokens (the id URL-quoted).
CONVERSE = re.compile(r"/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream|count-tokens)$")


@dataclass(frozen=True)
class ConverseUsage:
    """One Converse response's usage, in the Messages API's field names."""

    usage: dict[str, Any]  # input_tokens, output_tokens, cache_*: usage.usage_from_api reads it
    streamed: bool = False
    note: str = ""  # why the usage is missing or incomplete


def converse_usage(content_type: str, body: bytes) -> ConverseUsage | None:
    """The usage of a Converse, ConverseStream or CountTokens response; None for a stream
    that ended in an exception (a failed call, as an `error` event is).

    Converse's ``inputTokens`` is the uncached input, as Anthropic's ``input_tokens`` is:
    ``totalTokens`` is inputTokens + outputTokens + cacheReadInputTokens +
    cacheWriteInputTokens. ``cacheDetails`` splits the writes by TTL (5m, 1h).
    """
    if CONTENT_TYPE in content_type.lower() or is_event_stream(body):
        return _converse_stream(body)
    try:
        data = json.loads(body)
    except RecursionError:
        raise CassetteError("response is nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError):
        raise CassetteError(f"response is not JSON (starts with {body[:40]!r})") from None
    if not isinstance(data, dict):
        raise CassetteError("response is not a JSON object")
    if "inputTokens" in data and "usage" not in data:  # CountTokens: {"inputTokens": N}
        return ConverseUsage({"input_tokens": _token_count(data["inputTokens"], "inputTokens")})
    usage = data.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise CassetteError(f"usage is {kind_of(usage)}, not an object of token counts")
    if not usage:
        return ConverseUsage({}, note="response carried no usage")
    return ConverseUsage(_messages_fields(usage, "usage"))


def _converse_stream(body: bytes) -> ConverseUsage | None:
    frames, cut = decode_frames(body)
    usage: dict[str, Any] | None = None
    for frame in frames:
        if frame.headers.get(":message-type", "event") in ("exception", "error"):
            return None
        if frame.headers.get(":event-type") != "metadata":
            continue
        try:
            event = json.loads(frame.payload)
        except RecursionError:
            raise CassetteError("event stream metadata event is nested too deeply") from None
        except (ValueError, UnicodeDecodeError):
            raise CassetteError("event stream metadata event is not JSON") from None
        found = event.get("usage") if isinstance(event, dict) else None
        if found is not None and not isinstance(found, dict):
            raise CassetteError(
                f"metadata event usage is {kind_of(found)}, not an object of token counts"
            )
        usage = found if found is not None else usage
    if usage is None:
        why = "it was cut short" if cut else "it has no metadata event"
        return ConverseUsage({}, streamed=True, note=f"stream carried no usage ({why})")
    return ConverseUsage(_messages_fields(usage, "metadata event usage"), streamed=True)


def _messages_fields(usage: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Converse's camelCase counts under the Messages API's names, each checked under the
    name it was recorded with (a negative or fractional count is an error, never a 0)."""

    def count(name: str) -> int | None:
        value = usage.get(name)
        return None if value is None else _token_count(value, f"{where}.{name}")

    fields: dict[str, Any] = {
        "input_tokens": count("inputTokens"),
        "output_tokens": count("outputTokens"),
        "cache_read_input_tokens": count("cacheReadInputTokens"),
        "cache_creation_input_tokens": count("cacheWriteInputTokens"),
    }
    details = usage.get("cacheDetails")
    if isinstance(details, list) and details:
        split: dict[str, Any] = {}
        for index, detail in enumerate(details):
            if isinstance(detail, dict) and detail.get("ttl") in ("5m", "1h"):
                at = f"{where}.cacheDetails[{index}].inputTokens"
                split[f"ephemeral_{detail['ttl']}_input_tokens"] = _token_count(
                    detail.get("inputTokens"), at
                )
        if split:
            fields["cache_creation"] = split
    return fields


# -- model ids ----------------------------------------------------------------------------
_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:(?:foundation-model|inference-profile)/")
_MODEL_ID = re.compile(
    r"^(?:(?P<geo>[a-z]{2,6}(?:-gov)?)\.)?anthropic\.(?P<model>claude-[a-z0-9.-]+?)"
    r"(?:-v\d+(?::\d+)?)?(?::\d+k)?$"
)
GLOBAL = "global"


@dataclass(frozen=True)
class BedrockModel:
    model: str  # the Anthropic model id it runs, e.g. claude-sonnet-4-5-20250929
    geography: str | None  # the cross-region profile ("us", "eu", "global"); None in-region

    @property
    def regional(self) -> bool:
        """Served within a region or a geography: not the global profile."""
        return self.geography != GLOBAL


def bedrock_model(model_id: str) -> BedrockModel | None:
    """The Anthropic model behind a Bedrock model id or ARN; None for any other id.

    ``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` -> claude-sonnet-4-5-20250929 in
    geography "us". Application inference profiles and provisioned models have opaque
    ARNs: they are priced only by a `pricing:` entry for the id as called.
    """
    name = _ARN.sub("", model_id.strip())
    match = _MODEL_ID.match(name)
    if match is None:
        return None
    return BedrockModel(match["model"], match["geo"])
