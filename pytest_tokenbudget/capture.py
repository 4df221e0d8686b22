"""Capture of API traffic: one vcrpy cassette per endpoint and case.

vcrpy records and replays; on top of its patched transports we keep an ordered
log of every exchange (replayed or recorded) so usage can be attributed to the
case, and turn a request with no recording into a clear, non-retried API error
instead of a connection error the SDK would retry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import CassetteError
from .scrub import (
    REQUEST_HEADERS,
    RESPONSE_HEADERS,
    refuse_if_secret,
    scrub_bytes,
    scrub_headers,
    scrub_text,
)
from .usage import Exchange

RECORD_MODES = ("none", "once", "new_episodes", "all")
_KEY_ATTR = "_tokenbudget_key"


@dataclass(frozen=True)
class Miss:
    """A request the cassette had no recording for (replay only)."""

    method: str
    url: str
    body: bytes
    closest: bytes | None  # body of the recorded request it most likely replaces


@dataclass
class CaptureLog:
    exchanges: list[Exchange] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)


def request_key(request: Any) -> tuple[str, str, str, str]:
    """What a request is matched on: method, path, query and canonical JSON body.

    Host and port are left out so a cassette recorded against a proxy or the
    loopback emulator replays for code that targets the real API. Cached on the
    request object: vcrpy compares each request with every recorded one.
    """
    cached = getattr(request, _KEY_ATTR, None)
    if cached is not None:
        return cached
    from urllib.parse import urlsplit

    parts = urlsplit(request.uri)
    key = (request.method.upper(), parts.path, parts.query, _body_digest(request.body))
    setattr(request, _KEY_ATTR, key)
    return key


def _body_digest(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    except (ValueError, UnicodeDecodeError):
        return hashlib.sha256(bytes(body)).hexdigest()


def _match(r1: Any, r2: Any) -> bool:
    return request_key(r1) == request_key(r2)


def _scrub_request(request: Any) -> Any:
    from vcr.request import Request

    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    clean = Request(
        request.method,
        scrub_text(request.uri),
        scrub_bytes(body) if body else body,
        scrub_headers(dict(request.headers), REQUEST_HEADERS),
    )
    # Match on what the code sent, not on its scrubbed copy.
    setattr(clean, _KEY_ATTR, request_key(request))
    return clean


def _scrub_response(response: dict) -> dict:
    response["headers"] = scrub_headers(response.get("headers", {}), RESPONSE_HEADERS)
    body = response.get("body", {}).get("string")
    if isinstance(body, (bytes, str)) and body:
        raw = body.encode("utf-8") if isinstance(body, str) else body
        response["body"]["string"] = scrub_bytes(raw)
    return response


def _persister(mode: str) -> type:
    """A vcrpy persister that writes atomically, refuses secrets and names corrupt files."""
    from vcr.persisters.filesystem import CassetteNotFoundError
    from vcr.serialize import deserialize, serialize
    import yaml

    class AtomicPersister:
        @classmethod
        def load_cassette(cls, cassette_path: str, serializer: Any) -> Any:
            path = Path(cassette_path)
            if mode == "all" or not path.is_file():
                raise CassetteNotFoundError()  # "all" re-records the case from scratch
            try:
                data = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise CassetteError(f"cannot read cassette: {err}", path=path) from None
            if not data.strip():
                raise CassetteNotFoundError()
            try:
                return deserialize(data, serializer)
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                line = mark.line + 1 if mark is not None else None
                problem = getattr(err, "problem", None) or str(err)
                raise CassetteError(
                    f"corrupt cassette (YAML: {problem}); delete it and re-record",
                    path=path,
                    line=line,
                ) from None
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                raise CassetteError(
                    f"not a vcrpy cassette ({type(err).__name__}: {err}); delete it and re-record",
                    path=path,
                ) from None

        @staticmethod
        def save_cassette(cassette_path: str, cassette_dict: dict, serializer: Any) -> None:
            text = serialize(cassette_dict, serializer)
            refuse_if_secret(text, path=str(cassette_path))
            write_atomic(Path(cassette_path), text)

    return AtomicPersister


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file and rename, so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _placeholder_response(httpx: Any, request: Any, message: str) -> Any:
    # 400 is not retried by the SDKs, so the test fails once, fast, with our message.
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return httpx.Response(400, json=body, request=request)


class Capture:
    """Context manager: the cassette of one case, with an ordered log of its exchanges."""

    def __init__(
        self,
        path: Path,
        mode: str,
        *,
        record_hint: str,
    ) -> None:
        if mode not in RECORD_MODES:
            raise ValueError(mode)
        self.path = path
        self.mode = mode
        self.record_hint = record_hint
        self.log = CaptureLog()
        self._stack = ExitStack()
        self._cassette: Any = None

    def __enter__(self) -> Capture:
        import vcr

        recorder = vcr.VCR(
            record_mode=self.mode,
            match_on=["tokenbudget"],
            decode_compressed_response=True,  # cassettes stay readable for review
            before_record_request=_scrub_request,
            before_record_response=_scrub_response,
        )
        recorder.register_matcher("tokenbudget", _match)
        recorder.register_persister(_persister(self.mode))
        try:
            self._cassette = self._stack.enter_context(recorder.use_cassette(str(self.path)))
            self._patch_transports()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    # -- transports -------------------------------------------------------------
    def _patch_transports(self) -> None:
        from unittest import mock

        for httpx in _httpx_modules():
            for cls, name, is_async in (
                (httpx.HTTPTransport, "handle_request", False),
                (httpx.AsyncHTTPTransport, "handle_async_request", True),
            ):
                inner = getattr(cls, name)
                wrapper = self._wrap_async(inner, httpx) if is_async else self._wrap(inner, httpx)
                self._stack.enter_context(mock.patch.object(cls, name, wrapper))

    def _wrap(self, inner: Callable, httpx: Any) -> Callable:
        from vcr.errors import CannotOverwriteExistingCassetteException

        capture = self

        def handle_request(transport: Any, request: Any) -> Any:
            try:
                response = inner(transport, request)
            except CannotOverwriteExistingCassetteException:
                return capture._miss(httpx, request)
            capture._log(request, response, b"".join(response.stream))
            return response

        return handle_request

    def _wrap_async(self, inner: Callable, httpx: Any) -> Callable:
        from vcr.errors import CannotOverwriteExistingCassetteException

        capture = self

        async def handle_async_request(transport: Any, request: Any) -> Any:
            try:
                response = await inner(transport, request)
            except CannotOverwriteExistingCassetteException:
                return capture._miss(httpx, request)
            body = b"".join([chunk async for chunk in response.stream])
            response.stream = httpx.ByteStream(body)
            capture._log(request, response, body)
            return response

        return handle_async_request

    def _log(self, request: Any, response: Any, body: bytes) -> None:
        headers: dict[str, list[str]] = {}
        for name, value in response.headers.multi_items():
            headers.setdefault(name.lower(), []).append(value)
        self.log.exchanges.append(
            Exchange(
                method=request.method,
                url=str(request.url),
                request_body=b"".join(request.stream),
                status=response.status_code,
                headers=headers,
                body=body,
            )
        )

    def _miss(self, httpx: Any, request: Any) -> Any:
        body = b"".join(request.stream)
        closest = self._closest_recording(request.method, request.url.path, len(self.log.misses))
        self.log.misses.append(Miss(request.method, str(request.url), body, closest))
        return _placeholder_response(
            httpx,
            request,
            f"pytest-tokenbudget: no recording of {request.method} {request.url.path} "
            f"in {self.path}. {self.record_hint}",
        )

    def _closest_recording(self, method: str, path: str, nth: int) -> bytes | None:
        """The recorded request this one most likely replaces: same route, unplayed, in order."""
        from urllib.parse import urlsplit

        unplayed = [
            req
            for index, (req, _) in enumerate(self._cassette.data)
            if index not in self._cassette.play_counts
            and req.method.upper() == method.upper()
            and urlsplit(req.uri).path == path
        ]
        if not unplayed:
            return None
        body = unplayed[min(nth, len(unplayed) - 1)].body
        return body.encode("utf-8") if isinstance(body, str) else body


def _httpx_modules() -> list[Any]:
    modules = []
    for name in ("httpx2", "httpx"):
        try:
            modules.append(__import__(name))
        except ImportError:
            continue
    return modules
