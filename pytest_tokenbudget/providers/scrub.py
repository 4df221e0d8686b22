"""Credentials never reach a written file: scrub them by what they are, refuse what still looks
like one.

Recording passes every request and response through here before vcrpy keeps it: URL userinfo
is removed, headers and query parameters named like credentials are dropped or redacted,
and key-shaped values are redacted wherever they sit, bodies included once their content
encoding is undone (they are stored decoded). Before a cassette, report or comment is
written, its text and every body in it, decoded (content encoding, base64 runs such as a
Bedrock stream's chunks, binary as Latin-1), are scanned again: a key that survived, or a
body that cannot be decoded to check it, refuses the write.
"""

from __future__ import annotations

import binascii
import io
import re
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from pytest_tokenbudget.errors import CassetteError, SecretError
from pytest_tokenbudget.providers import bedrock

REDACTED = "REDACTED"

# -- by name ---------------------------------------------------------------------------
# Headers dropped whatever their value: credentials in any SDK generation (0.x/1.x
# x-api-key, 2.x Authorization: Bearer, Azure api-key, admin keys) and identifying ones.
# On the cloud platforms `authorization` is an AWS SigV4 signature or a Bedrock API key
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

# Any other header or query parameter is a credential's when a part of its name (split at
# punctuation and camelCase) is, or ends with, one of these words: x-portkey-api-key,
# x-auth-token, auth_token, access-token, clientSecret, X-Amz-Signature, X-Amz-Credential,
# sig, apikey, oauth. "tokens" is not "token": anthropic-ratelimit-tokens-limit stays.
CREDENTIAL_WORDS = (
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "signature",
    "sig",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "session",
    "sessionid",
    "cookie",
    "jwt",
)
# ... unless the name says it is a quantity: x-amzn-bedrock-input-token-count, and rate
# limits (anthropic-ratelimit-*, x-ratelimit-remaining-tokens).
QUANTITY_PARTS = ("count", "limit", "remaining", "reset")


def _name_parts(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [part for part in re.split(r"[^a-z0-9]+", spaced.lower()) if part]


# Whole parts that name a credential but are too short to match inside other words
# (`x-api-pass`, Azure's `sas`, `x-custom-authz`), and openings that do (`x-tokenid`).
CREDENTIAL_PARTS = ("pass", "authz", "sas")
CREDENTIAL_OPENINGS = ("token", "secret", "key", "password", "apikey")


def _is_credential_part(part: str) -> bool:
    part = part.rstrip("0123456789")  # apikey2, auth0
    if part == "tokens":  # max_tokens, x-ratelimit-tokens: a quantity
        return False
    if part in CREDENTIAL_PARTS or part.startswith(CREDENTIAL_OPENINGS):
        return True
    # plurals too (x-api-keys, secrets), but not "tokens": that is a quantity
    return any(
        part.endswith(word) or (word != "token" and part.endswith(word + "s"))
        for word in CREDENTIAL_WORDS
    )


def is_credential_name(name: str) -> bool:
    """Whether a header or query parameter of this name carries a credential."""
    parts = _name_parts(name)
    if not parts or parts[-1] in QUANTITY_PARTS or "ratelimit" in parts:
        return False
    return any(_is_credential_part(part) for part in parts)


# -- by shape --------------------------------------------------------------------------
# Key-shaped values in any text: Anthropic and OpenAI keys, bearer and basic credentials,
# Google OAuth access tokens (ya29.) and API keys (AIza), AWS access key ids (AKIA
# long-term, ASIA temporary: the SigV4 `Credential=` names one), AWS session tokens (their
# two known openings), Bedrock API keys (ABSK long-term, bedrock-api-key- short-term),
# GitHub tokens (the comment token's kind) and JWTs. Every shape opens with a literal, at
# the start of a word: "risk-assessment-summary" holds no `sk-` key. Openings base64 could
# spell must start a base64 run, so an image or a binary body is never taken for a key.
# `_` and `-` too: base64url (Google and OpenAI reasoning signatures) spells "_sk-…" mid-run.
# A JSON escape (`\n`, `\t`, `\u2028`) ends a word too: a key on a prompt's second line is
# stored as `...\nsk-ant-...`, where the character before it is the letter n.
_ESCAPED_BREAK = r"(?<=\\[nrtbf])|(?<=\\u[0-9a-fA-F]{4})"
_WORD_START = rf"(?:(?<![A-Za-z0-9_\-])|{_ESCAPED_BREAK})"
_NOT_MID_BASE64 = r"(?<![A-Za-z0-9+/_\-])"
_KEY = r"[A-Za-z0-9_\-]"
_B64TOKEN = r"[A-Za-z0-9._~+/\-]"  # RFC 6750's b64token: what a Bearer credential is made of


def _random(chars: str) -> str:
    """After an opening that prose has too ("sk-", "Bearer", "Basic"), a credential has a
    digit, a + or /, or a capital letter past its first character; a word of prose has none."""
    return rf"(?={chars}*?(?:[0-9+/]|(?<={chars})[A-Z]))"


# (where it starts, literal opening, the rest)
_KEY_SHAPES = (
    # Anthropic's own opening is long enough to stand anywhere (KEY_sk-ant-…, x_nsk-ant-…)
    ("", "sk-ant-", rf"{_random(_KEY)}{_KEY}{{16,}}"),
    (_WORD_START, "sk-", rf"{_random(_KEY)}{_KEY}{{16,}}"),
    (_WORD_START, "Bearer", rf"\s+{_random(_B64TOKEN)}{_B64TOKEN}{{12,}}=*"),
    (_WORD_START, "Basic", rf"\s+{_random('[A-Za-z0-9+/]')}[A-Za-z0-9+/]{{8,}}={{0,2}}"),
    (_WORD_START, "ya29.", r"[A-Za-z0-9._\-]{20,}"),
    (_NOT_MID_BASE64, "AIza", r"[A-Za-z0-9_\-]{35}"),
    (_NOT_MID_BASE64, "AKIA", r"[A-Z0-9]{16}(?![A-Za-z0-9])"),
    (_NOT_MID_BASE64, "ASIA", r"[A-Z0-9]{16}(?![A-Za-z0-9])"),
    (_NOT_MID_BASE64, "ABSK", r"[A-Za-z0-9+/=]{20,}"),
    ("", "IQoJb3JpZ2luX2Vj", r"[A-Za-z0-9+/=]{20,}"),
    ("", "FwoGZXIvYXdzE", r"[A-Za-z0-9+/=]{20,}"),
    (_WORD_START, "bedrock-api-key-", r"[A-Za-z0-9+/=%]{20,}"),
    (_WORD_START, "ghp_", r"[A-Za-z0-9]{30,}"),
    (_WORD_START, "gho_", r"[A-Za-z0-9]{30,}"),
    (_WORD_START, "ghu_", r"[A-Za-z0-9]{30,}"),
    (_WORD_START, "ghs_", r"[A-Za-z0-9]{30,}"),
    (_WORD_START, "ghr_", r"[A-Za-z0-9]{30,}"),
    (_WORD_START, "github_pat_", r"[A-Za-z0-9_]{22,}"),
    (_NOT_MID_BASE64, "eyJ", r"[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
)
_SECRET = re.compile(
    "|".join(f"{start}{re.escape(opening)}{rest}" for start, opening, rest in _KEY_SHAPES)
)
# Text with none of the openings holds no key: a substring test is ~100x faster than the
# search, which tries every position (the reports of 1,000 cases: 134 ms -> 5 ms).
_OPENINGS = tuple(opening for _, opening, _ in _KEY_SHAPES)


def _may_hold_key(text: str) -> bool:
    return any(opening in text for opening in _OPENINGS)


# A URL quoted in text (a header value, a prompt): its credential-named parameters.
_PARAMETER_IN_TEXT = re.compile(r"(?<=[?&;#])([A-Za-z0-9_.\-%]+)=([^&#\s\"'<>]+)")


def _redact_parameter(match: re.Match[str]) -> str:
    name = match.group(1)
    return f"{name}={REDACTED}" if is_credential_name(unquote_plus(name)) else match.group(0)


def scrub_text(text: str) -> str:
    """Key-shaped values, and credential-named URL parameters, replaced by REDACTED."""
    if _may_hold_key(text):
        text = _SECRET.sub(REDACTED, text)
    if "=" in text:
        text = _PARAMETER_IN_TEXT.sub(_redact_parameter, text)
    return text


def replace_keys(text: str, replacement: Callable[[str], str]) -> str:
    """Every key-shaped value in text replaced by replacement(value)."""
    if not _may_hold_key(text):
        return text
    return _SECRET.sub(lambda match: replacement(match.group(0)), text)


# -- URLs and headers ------------------------------------------------------------------
_USERINFO = re.compile(r"(//)[^/?#@]*@")


def _scrub_parameters(text: str) -> str:
    def one(pair: str) -> str:
        name, equals, value = pair.partition("=")
        if equals and value and is_credential_name(unquote_plus(name)):
            return f"{name}={REDACTED}"
        return pair

    return "&".join(one(pair) for pair in text.split("&")) if text else text


def scrub_url(url: str) -> str:
    """The URL without userinfo, with credential-named query (and fragment) parameters
    redacted, and key-shaped values anywhere in it redacted."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed host: still no userinfo
        return scrub_text(_USERINFO.sub(r"\1", url))
    netloc = parts.netloc.rpartition("@")[2]
    query, fragment = _scrub_parameters(parts.query), _scrub_parameters(parts.fragment)
    if (netloc, query, fragment) != (parts.netloc, parts.query, parts.fragment):
        url = urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    return scrub_text(url)


def scrub_headers(headers: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """Drop credential headers (those listed, and any named like a credential); redact
    key-shaped values in the others (custom gateway headers, ANTHROPIC_CUSTOM_HEADERS)."""

    def clean(value: Any) -> Any:
        if isinstance(value, list):
            return [clean(v) for v in value]
        return scrub_text(value) if isinstance(value, str) else value

    return {
        k: clean(v)
        for k, v in headers.items()
        if k.lower() not in names and not is_credential_name(k)
    }


# -- bodies ----------------------------------------------------------------------------
MAX_DECODED_BYTES = 256 * 1024 * 1024  # a decompression bomb stops here


class Undecodable(ValueError):
    """A body whose content encoding cannot be undone here (unknown, corrupt, too large)."""


class _TooLarge(Undecodable):
    def __init__(self, name: str) -> None:
        super().__init__(f"its {name} content decodes past {MAX_DECODED_BYTES / 2**20:g} MiB")


def _header(headers: Mapping[str, Any], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            values = value if isinstance(value, (list, tuple)) else [value]
            return ", ".join(str(v) for v in values)
    return ""


def _inflate(body: bytes, wbits: int, name: str) -> bytes:
    """zlib, raw deflate or gzip (every member), never past MAX_DECODED_BYTES."""
    out = bytearray()
    data = body
    while data:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, MAX_DECODED_BYTES + 1 - len(out))
        except zlib.error as err:
            raise Undecodable(f"its {name} content is corrupt ({err})") from None
        if len(out) > MAX_DECODED_BYTES:
            raise _TooLarge(name)
        if not inflater.eof:
            raise Undecodable(f"its {name} content is cut short")
        # gzip: the next member (padding zeros are no member); deflate has one stream
        data = inflater.unused_data.lstrip(b"\0") if name == "gzip" else b""
    return bytes(out)


def _gunzip(body: bytes) -> bytes:
    return _inflate(body, 16 + zlib.MAX_WBITS, "gzip")


def _undeflate(body: bytes) -> bytes:
    try:
        return _inflate(body, zlib.MAX_WBITS, "deflate")  # zlib-wrapped, as RFC 9110 says
    except _TooLarge:
        raise
    except Undecodable:
        return _inflate(body, -zlib.MAX_WBITS, "deflate")  # raw, as some servers send


def _unbrotli(body: bytes) -> bytes:
    try:
        import brotli  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        try:
            import brotlicffi as brotli  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise Undecodable("it is br-encoded and brotli is not installed") from None
    decompressor = brotli.Decompressor()
    try:
        try:  # brotli >= 1.2 stops at a given output size
            out = decompressor.process(body, output_buffer_limit=MAX_DECODED_BYTES + 1)
        except TypeError:  # older: fed a KiB at a time, the size checked after each
            parts, size = [], 0
            for start in range(0, len(body), 1024):
                parts.append(decompressor.process(body[start : start + 1024]))
                size += len(parts[-1])
                if size > MAX_DECODED_BYTES:
                    break
            out = b"".join(parts)
        finished = decompressor.is_finished()
    except brotli.error as err:
        raise Undecodable(f"its br content is corrupt ({err})") from None
    if len(out) > MAX_DECODED_BYTES:
        raise _TooLarge("br")
    if not finished:
        raise Undecodable("its br content is cut short")
    return bytes(out)


def _unzstd(body: bytes) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise Undecodable("it is zstd-encoded and zstandard is not installed") from None
    out = bytearray()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(body), read_across_frames=True
        )
        while chunk := reader.read(1 << 20):
            out += chunk
            if len(out) > MAX_DECODED_BYTES:
                raise _TooLarge("zstd")
    except zstandard.ZstdError as err:
        raise Undecodable(f"its zstd content is corrupt ({err})") from None
    return bytes(out)


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _undeflate,
    "br": _unbrotli,
    "zstd": _unzstd,
}


def content_coding(headers: Mapping[str, Any]) -> str:
    """The Content-Encoding a message names, "" for none (or identity)."""
    codings = [c.strip().lower() for c in _header(headers, "content-encoding").split(",")]
    return ", ".join(c for c in codings if c and c != "identity")


def decode_content(body: bytes, coding: str) -> bytes:
    """The body with its content codings undone, the last applied first; Undecodable when
    one is unknown, corrupt or decodes past MAX_DECODED_BYTES."""
    for name in reversed([c.strip().lower() for c in coding.split(",") if c.strip()]):
        if name == "identity":
            continue
        decoder = _DECODERS.get(name)
        if decoder is None:
            raise Undecodable(f"its content encoding {name!r} is unknown")
        body = decoder(body)
    return body


def decoded_body(headers: Mapping[str, Any], body: bytes) -> bytes:
    """The body as its sender wrote it, or as it is when it cannot be decoded."""
    coding = content_coding(headers)
    if not coding or not body:
        return body
    try:
        return decode_content(body, coding)
    except Undecodable:
        return body


def _without_coding(headers: dict[str, Any], length: int) -> dict[str, Any]:
    """Headers of a body now stored decoded: no Content-Encoding, its decoded length."""
    kept: dict[str, Any] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower == "content-encoding":
            continue
        if lower == "content-length":
            value = [str(length)] if isinstance(value, list) else str(length)
        kept[name] = value
    return kept


def scrub_bytes(body: bytes) -> bytes:
    """Scrub a decoded body: text as text, any other bytes as Latin-1 (so a key beside one
    invalid UTF-8 byte is still found); a Bedrock event stream inside each chunk, reframed."""
    if not body:
        return body
    if bedrock.is_event_stream(body):
        return _scrub_event_stream(body)
    try:
        text, charset = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, charset = body.decode("latin-1"), "latin-1"
    cleaned = scrub_text(text)
    return body if cleaned == text else cleaned.encode(charset)


def _scrub_event_stream(body: bytes) -> bytes:
    """Whole frames scrubbed inside their chunks; a frame cut short keeps only its prelude
    (its partial payload, which no decoder reads, could hold part of a key)."""
    try:
        _frames, cut = bedrock.decode_frames(body)
    except CassetteError:
        return body  # corrupt: kept as it is, and checked before writing
    if not cut:
        return bedrock.rewrite_chunks(body, scrub_text)
    whole = 0
    while len(body) - whole >= _PRELUDE and len(body) - whole >= _frame_length(body, whole):
        whole += _frame_length(body, whole)
    cleaned = bedrock.rewrite_chunks(body[:whole], scrub_text) if whole else b""
    return cleaned + body[whole : whole + _PRELUDE]


_PRELUDE = 12  # an event-stream frame's total length, headers length and their CRC


def _frame_length(body: bytes, offset: int) -> int:
    return int.from_bytes(body[offset : offset + 4], "big")


def scrub_message(
    headers: Mapping[str, Any], body: bytes, names: frozenset[str]
) -> tuple[dict[str, Any], bytes]:
    """A request's or response's headers and body as recorded: credential headers dropped,
    key-shaped values redacted, the body decoded from its content encoding when that can be
    done (stored decoded, readable for review). A body that cannot be decoded is kept as it
    is: the check before writing refuses it."""
    kept = scrub_headers(headers, names)
    coding = content_coding(kept)
    if body and coding:
        try:
            body = decode_content(body, coding)
        except Undecodable:
            return kept, body
        kept = _without_coding(kept, len(body))
    return kept, scrub_bytes(body)


# -- the last gate ---------------------------------------------------------------------
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
    raise SecretError(_refusal(f"a value shaped like a credential ({found})"), path=path, line=line)


def _refusal(what: str) -> str:
    return (
        f"refusing to write: {what} survived scrubbing. Nothing was written; remove the key "
        "from the request or add a pytest_tokenbudget_scrub hook."
    )


# A run of base64 (standard or URL-safe) long enough to hide a key.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{20,}={0,2}")


# Line breaks inside base64 (MIME wraps at 76), raw or JSON-escaped: one run across them.
_WRAPPED = re.compile(r"(?:\\r)?\\n|\r?\n")


def _base64_texts(text: str) -> Iterator[str]:
    """What each base64 run in text decodes to, as Latin-1 (a Bedrock chunk, a document)."""
    for match in _BASE64_RUN.finditer(_WRAPPED.sub("", text)):
        run = match.group(0).rstrip("=").replace("-", "+").replace("_", "/")
        run = run[: len(run) - len(run) % 4]
        try:
            yield binascii.a2b_base64(run).decode("latin-1")
        except binascii.Error:
            continue


def body_texts(body: bytes, headers: Mapping[str, Any]) -> Iterator[str]:
    """Every text a body holds: decoded from its content encoding (Undecodable if it
    cannot be), as UTF-8 or else Latin-1, and each base64 run in it decoded."""
    coding = content_coding(headers)
    if coding:
        body = decode_content(body, coding)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    yield text
    yield _streamed_text(text)
    yield from _base64_texts(text)


# The pieces of a streamed answer: a key the model wrote spans several deltas.
_DELTA = re.compile(r'"(?:text|partial_json|thinking)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _streamed_text(text: str) -> str:
    """A stream's text, thinking and tool input deltas joined, as the model wrote them."""
    return "".join(match.group(1) for match in _DELTA.finditer(text)) if "delta" in text else ""


def refuse_if_body_secret(
    body: Any, headers: Mapping[str, Any], *, path: str, where: str, line: int | None = None
) -> None:
    """Last gate for a body about to be written, on what it decodes to: a surviving key,
    or a body that cannot be decoded to check it, aborts the write."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if not isinstance(body, (bytes, bytearray)) or not body:
        return
    try:
        for text in body_texts(bytes(body), headers):
            found = find_secret(text)
            if found is not None:
                what = f"a value shaped like a credential ({found}) in {where}"
                raise SecretError(_refusal(what), path=path, line=line)
    except Undecodable as err:
        raise SecretError(
            f"refusing to write: {where} cannot be checked for credentials: {err}. Nothing "
            "was written.",
            path=path,
            line=line,
        ) from None
