"""What a request is matched on when it is replayed: one key, computed once per request.

Shared by vcrpy's matcher (recording modes) and the replay engine, so both sides of
the match see the same thing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

_KEY_ATTR = "_tokenbudget_key"


def request_key(request: Any) -> tuple[str, str, str, str]:
    """What a request is matched on: method, path, query and canonical JSON body.

    Host and port are left out so a cassette recorded against a proxy or the
    loopback emulator replays for code that targets the real API. Cached on the
    request object: vcrpy compares each request with every recorded one.
    """
    cached: tuple[str, str, str, str] | None = getattr(request, _KEY_ATTR, None)
    if cached is not None:
        return cached
    parts = urlsplit(request.uri)
    key = (request.method.upper(), parts.path, parts.query, _body_digest(request.body))
    setattr(request, _KEY_ATTR, key)
    return key


def exact_key(request: Any) -> tuple[str, str, str, bytes]:
    """The request byte for byte: method, path, query and raw body (host left out, as above).

    The SDK sends the same compact JSON the cassette holds, so nearly every request is
    found by this key, without the parse, sorted dump and hash of request_key.
    """
    parts = urlsplit(request.uri)
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    return (request.method.upper(), parts.path, parts.query, body or b"")


def _body_digest(body: Any) -> str:
    if not body:  # no body and an empty one are the same request
        return ""
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    except (ValueError, UnicodeDecodeError):
        return hashlib.sha256(bytes(body)).hexdigest()
