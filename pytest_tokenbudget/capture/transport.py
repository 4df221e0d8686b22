"""The HTTP clients' transports, patched: every request of a case goes through its capture.

httpx's HTTPTransport and AsyncHTTPTransport (and httpx2's) are patched on the class for
the length of one case. A request is answered by the capture's cassette (replayed, or
recorded through vcrpy), by a mock below the transport (respx), or passed on when it is
none of the capture's business; one with no recording gets a 400 the SDKs do not retry.
What to answer is the capture's to say (capture/recording.py): this module only plumbs
each request through it, the same way for sync and async clients.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any, Protocol
from urllib.parse import urlsplit

from pytest_tokenbudget.capture.counting import (
    CountCache,
    count_async,
    count_parts_async,
    count_parts_sync,
    count_sync,
)
from pytest_tokenbudget.capture.network import blocked, is_loopback, refused
from pytest_tokenbudget.capture.vcrpy_cassettes import is_cassette
from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.providers.scrub import REQUEST_HEADERS, decoded_body, scrub_message

# httpx's transport methods, patched on the class: (transport, request) -> response.
SyncHandler = Callable[[Any, Any], Any]
AsyncHandler = Callable[[Any, Any], Awaitable[Any]]


class Traffic(Protocol):
    """What a patched transport asks of the case's capture (capture/recording.py's Capture).

    ``httpx`` is the module whose transport was called (httpx or httpx2), for building
    its responses; ``request`` and responses are that module's.
    """

    closed: bool  # a patch left behind by a later one only passes calls on
    counter: CountCache | None  # count mode: each Messages request's input is counted
    can_count_online: bool  # count_tokens may be asked: its prefixes are counted too

    @property
    def replaying(self) -> bool: ...

    def passes_through(self, request: Any) -> bool:
        """A request that is none of the cassette's business: sent on untouched."""
        ...

    def count_body(self, request: Any) -> dict[str, Any]:
        """The Messages request to count, or a CassetteError saying why it cannot be."""
        ...

    def replay(self, httpx: Any, request: Any) -> Any:
        """The recording of this request, or None."""
        ...

    def unmatched(
        self, httpx: Any, request: Any, counted: int | None
    ) -> tuple[Any, bool, int | None]:
        """(response or None, recounted, count) for a request with no exact recording."""
        ...

    def served_by_mock(self, httpx: Any, request: Any, response: Any) -> Any: ...

    async def served_by_mock_async(self, httpx: Any, request: Any, response: Any) -> Any: ...

    def log_exchange(
        self, request: Any, response: Any, body: bytes, counted: int | None, recounted: bool
    ) -> None: ...

    def fail(self, httpx: Any, request: Any, message: str) -> Any:
        """The 400 answer to a request the capture cannot serve, its message kept."""
        ...

    def miss(self, httpx: Any, request: Any) -> Any:
        """The 400 answer to a request with no recording, the miss kept."""
        ...


def patch(stack: ExitStack, cls: type, name: str, replacement: object) -> None:
    """Set a class attribute until `stack` closes (mock.patch.object's job, at a third of
    its cost: this runs for every case)."""
    own = name in vars(cls)
    original = vars(cls).get(name)
    setattr(cls, name, replacement)

    def restore() -> None:
        if vars(cls).get(name) is not replacement:
            # Patched over since (a test's mock, torn down after the capture closes):
            # that patch puts ours back, and ours, closed, only passes calls on.
            return
        if own:
            setattr(cls, name, original)
        else:  # inherited: deleting ours uncovers it again
            delattr(cls, name)

    stack.callback(restore)


def patch_transports(stack: ExitStack, capture: Traffic) -> None:
    """Send every request of httpx's network transports through `capture`."""
    for httpx in httpx_modules():
        patch(
            stack,
            httpx.HTTPTransport,
            "handle_request",
            _sync_handler(capture, httpx.HTTPTransport.handle_request, httpx),
        )
        patch(
            stack,
            httpx.AsyncHTTPTransport,
            "handle_async_request",
            _async_handler(capture, httpx.AsyncHTTPTransport.handle_async_request, httpx),
        )


def unpatch_in_process_transports(stack: ExitStack) -> None:
    """vcrpy also records httpx's in-process transports (MockTransport, an app's
    ASGI/WSGI transport): those answers are a test's own, never the cassette's."""
    for httpx in httpx_modules():
        for cls_name in ("MockTransport", "ASGITransport", "WSGITransport"):
            cls = getattr(httpx, cls_name, None)
            if cls is None:
                continue
            for name in ("handle_request", "handle_async_request"):
                method = vars(cls).get(name)
                if method is not None and inspect.unwrap(method) is not method:
                    patch(stack, cls, name, inspect.unwrap(method))


def _sync_handler(capture: Traffic, inner: SyncHandler, httpx: Any) -> SyncHandler:
    unrecorded = _unrecorded_errors(capture.replaying)
    network = inspect.unwrap(inner)  # the real transport, under vcrpy's patch

    def handle_request(transport: Any, request: Any) -> Any:
        if capture.closed:
            return inner(transport, request)
        if capture.passes_through(request):
            with blocked(loopback=is_loopback(request.url.host)):
                return inner(transport, request)
        mocked = _mock_below(transport, "handle_request")
        if mocked and not capture.replaying:  # a mock's answer is never recorded
            return capture.served_by_mock(httpx, request, network(transport, request))
        counted = None
        counter = capture.counter
        if counter is not None and is_messages(request):

            def send(fields: dict[str, Any]) -> tuple[int, Any, bytes]:
                response = network(transport, _count_request(httpx, request, fields))
                return response.status_code, response.headers, response.read()

            try:
                sent = capture.count_body(request)
                counted = count_sync(counter, sent, send).input_tokens
            except CassetteError as err:
                return capture.fail(httpx, request, str(err))
            if capture.can_count_online:  # its anatomy, exactly (cache/parts.py)
                count_parts_sync(counter, sent, send)
        recounted = False
        if capture.replaying:
            response = capture.replay(httpx, request)
        else:
            try:
                response = inner(transport, request)
            except unrecorded:
                response = None
        if response is None:
            response, recounted, counted = capture.unmatched(httpx, request, counted)
        if response is None and capture.replaying and mocked:
            try:
                with blocked():
                    answer = inner(transport, request)
            except Exception as err:
                if not refused(err):
                    raise  # the mock's own error, for the test to see
            else:
                return capture.served_by_mock(httpx, request, answer)
        if response is None:
            return capture.miss(httpx, request)
        capture.log_exchange(request, response, b"".join(response.stream), counted, recounted)
        return response

    return handle_request


def _async_handler(capture: Traffic, inner: AsyncHandler, httpx: Any) -> AsyncHandler:
    unrecorded = _unrecorded_errors(capture.replaying)
    network = inspect.unwrap(inner)

    async def handle_async_request(transport: Any, request: Any) -> Any:
        if capture.closed:
            return await inner(transport, request)
        if capture.passes_through(request):
            with blocked(loopback=is_loopback(request.url.host)):
                return await inner(transport, request)
        mocked = _mock_below(transport, "handle_async_request")
        if mocked and not capture.replaying:
            answer = await network(transport, request)
            return await capture.served_by_mock_async(httpx, request, answer)
        counted = None
        counter = capture.counter
        if counter is not None and is_messages(request):

            async def send(fields: dict[str, Any]) -> tuple[int, Any, bytes]:
                response = await network(transport, _count_request(httpx, request, fields))
                return response.status_code, response.headers, await response.aread()

            try:
                sent = capture.count_body(request)
                counted = (await count_async(counter, sent, send)).input_tokens
            except CassetteError as err:
                return capture.fail(httpx, request, str(err))
            if capture.can_count_online:
                await count_parts_async(counter, sent, send)
        recounted = False
        if capture.replaying:
            response = capture.replay(httpx, request)
        else:
            try:
                response = await inner(transport, request)
            except unrecorded:
                response = None
        if response is None:
            response, recounted, counted = capture.unmatched(httpx, request, counted)
        if response is None and capture.replaying and mocked:
            try:
                with blocked():
                    answer = await inner(transport, request)
            except Exception as err:
                if not refused(err):
                    raise
            else:
                return await capture.served_by_mock_async(httpx, request, answer)
        if response is None:
            return capture.miss(httpx, request)
        body = b"".join([chunk async for chunk in response.stream])
        response.stream = httpx.ByteStream(body)
        capture.log_exchange(request, response, body, counted, recounted)
        return response

    return handle_async_request


def active_vcrpy_cassette() -> Any:
    """The vcrpy cassette whose patch answers httpx requests now, if any.

    vcrpy replaces a transport's handle_request by a closure over its cassette.
    """
    for httpx in httpx_modules():
        for cls, name in (
            (httpx.HTTPTransport, "handle_request"),
            (httpx.AsyncHTTPTransport, "handle_async_request"),
        ):
            handler = getattr(cls, name)
            code = getattr(handler, "__code__", None)
            if code is None or not code.co_name.startswith("_inner_handle"):
                continue
            try:
                cassette = inspect.getclosurevars(handler).nonlocals.get("cassette")
            except (TypeError, ValueError):
                continue
            if is_cassette(cassette):
                return cassette
    return None


def placeholder_response(httpx: Any, request: Any, message: str) -> Any:
    # 400 is not retried by the SDKs, so the test fails once, fast, with our message.
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return httpx.Response(400, json=body, request=request)


def sent_body(request: Any) -> bytes:
    """An httpx request's body as the app wrote it: its content encoding undone."""
    return decoded_body(request.headers, b"".join(request.stream))


def scrubbed_body(request: Any) -> bytes:
    """An httpx request's body as a recording holds it: decoded and scrubbed."""
    return scrub_message(request.headers, b"".join(request.stream), REQUEST_HEADERS)[1]


def is_messages_url(method: str, url: str) -> bool:
    return method.upper() == "POST" and urlsplit(str(url)).path.rstrip("/").endswith("/v1/messages")


def is_messages(request: Any) -> bool:
    return is_messages_url(request.method, str(request.url))


def _mock_below(transport: Any, method: str) -> bool:
    """Whether a mock replaced the connection pool under this transport (respx does):
    then what the transport sends is answered in-process, not on the network."""
    pool = getattr(transport, "_pool", None)
    handler = getattr(type(pool), method, None) if pool is not None else None
    return handler is not None and not (getattr(handler, "__module__", "") or "").startswith(
        "httpcore"
    )


def _count_request(httpx: Any, request: Any, fields: dict[str, Any]) -> Any:
    """A count_tokens request with the original's credentials and API version headers."""
    keep = {"authorization", "x-api-key", "anthropic-version", "anthropic-beta", "user-agent"}
    headers = {k: v for k, v in request.headers.items() if k.lower() in keep}
    headers["content-type"] = "application/json"
    url = request.url.copy_with(path=request.url.path.rstrip("/") + "/count_tokens")
    return httpx.Request("POST", url, headers=headers, content=json.dumps(fields).encode("utf-8"))


def _unrecorded_errors(replaying: bool) -> tuple[type[BaseException], ...]:
    """What vcrpy raises for a request its cassette cannot answer; replay imports no vcrpy
    (and catches nothing: an empty tuple)."""
    if replaying:
        return ()
    from vcr.errors import CannotOverwriteExistingCassetteException

    return (CannotOverwriteExistingCassetteException,)


@functools.lru_cache(maxsize=1)  # a failed import is not cached by Python: try once per run
def httpx_modules() -> list[Any]:
    modules = []
    for name in ("httpx2", "httpx"):
        try:
            modules.append(__import__(name))
        except ImportError:
            continue
    return modules
