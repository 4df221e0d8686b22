"""Capture of API traffic: one vcrpy cassette per endpoint and case.

vcrpy records and replays; on top of its patched transports we keep an ordered
log of every exchange (replayed or recorded) so usage can be attributed to the
case, and turn a request with no recording into a clear, non-retried API error
instead of a connection error the SDK would retry.

When another recorder drives the test (pytest-recording, pytest-vcr, or a
`vcr.use_cassette` of the team's), its cassette answers the requests: vcrpy's
patch of the transports is per cassette, and the one entered last wins. Then we
observe instead of owning: every exchange a foreign cassette plays or records is
logged, named after its recorder, and we open no cassette, block no network and
report no stale recording of our own.

Other mocks keep serving their tests. A request replay has no recording of is offered
to a mock below the transport (respx replaces httpcore's pools) with every socket
refused, and what it answers is served as without the plugin (and never recorded); with
no mock below, it is a miss. A request that is no LLM API call and has no recording is
passed on untouched, and may reach a server of the test's own on loopback only.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.cache.volatile import Span, volatile_spans
from pytest_tokenbudget.capture.counting import (
    COUNTED_FIELDS,
    CountCache,
    CountResult,
    count_async,
    count_key,
    count_sync,
    counted_request,
)
from pytest_tokenbudget.capture.matching import request_key
from pytest_tokenbudget.capture.network import blocked, is_loopback, refused
from pytest_tokenbudget.errors import CassetteError, SecretError
from pytest_tokenbudget.files.atomic import write_atomic
from pytest_tokenbudget.modes import RECORD_MODES
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.scrub import (
    REQUEST_HEADERS,
    RESPONSE_HEADERS,
    decoded_body,
    refuse_if_body_secret,
    refuse_if_secret,
    scrub_message,
    scrub_url,
)
from pytest_tokenbudget.providers.usage import is_api_route

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

# httpx's transport methods, patched on the class: (transport, request) -> response.
SyncHandler = Callable[[Any, Any], Any]
AsyncHandler = Callable[[Any, Any], Awaitable[Any]]

OWN_RECORDER = "pytest-tokenbudget"
VCRPY = "vcrpy"  # a cassette no plugin we know of opened: the team's own vcr.use_cassette
MOCK = "mock"  # answered below the transport with the network refused: respx and the like


@dataclass(frozen=True)
class Recorder:
    """Another recorder driving a test: its name, and the vcrpy cassette it opened."""

    name: str  # pytest-recording | pytest-vcr | vcrpy
    cassette: Any = None


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
    errors: list[str] = field(default_factory=list)
    counts: dict[int, tuple[int, bool]] = field(
        default_factory=dict
    )  # exchange -> (count, recounted)
    volatile: dict[int, list[Span]] = field(default_factory=dict)  # exchange -> what differed
    served_by: list[str] = field(default_factory=list)  # per exchange: the recorder that served it

    @property
    def recorders(self) -> list[str]:
        """The recorders that served this case's exchanges, in order of first use."""
        return list(dict.fromkeys(self.served_by))


def _match(r1: Any, r2: Any) -> bool:
    return request_key(r1) == request_key(r2)


def _scrub_request(request: Any) -> Any:
    from vcr.request import Request

    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    # Matching sees the scrubbed request on both sides (recorded and sent), so a
    # prompt that quotes a key still matches its scrubbed recording.
    headers, body = scrub_message(dict(request.headers), body or b"", REQUEST_HEADERS)
    return Request(request.method, scrub_url(request.uri), body or request.body, headers)


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("body", {}).get("string")
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if not isinstance(raw, bytes):
        raw = b""
    headers, cleaned = scrub_message(response.get("headers", {}), raw, RESPONSE_HEADERS)
    response["headers"] = headers
    if raw:
        response["body"]["string"] = cleaned
    return response


def _persister(
    mode: str,
    scrub_hook: Callable[[dict[str, Any]], None] | None,
    refused: Callable[[SecretError], None] | None = None,
) -> type:
    """A vcrpy persister that writes atomically, refuses secrets and names corrupt files.

    A refused write raises SecretError, or with ``refused`` is handed to it: vcrpy saves on
    leaving the cassette, and an error raised there would skip undoing its patches.
    """
    import yaml
    from vcr.persisters.filesystem import CassetteNotFoundError
    from vcr.serialize import deserialize, serialize

    from pytest_tokenbudget.capture.replay import NOT_A_CASSETTE, unreadable

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
            except (yaml.YAMLError, *NOT_A_CASSETTE) as err:
                raise unreadable(err, path) from None

        @staticmethod
        def save_cassette(
            cassette_path: str, cassette_dict: dict[str, Any], serializer: Any
        ) -> None:
            if scrub_hook is not None:
                cassette_dict = _run_scrub_hook(cassette_dict, scrub_hook)
            text = serialize(cassette_dict, serializer)
            try:
                _refuse_secrets(cassette_dict, text, str(cassette_path))
            except SecretError as err:
                if refused is None:
                    raise
                refused(err)
                return
            write_atomic(Path(cassette_path), text)

    return AtomicPersister


def _refuse_secrets(cassette_dict: dict[str, Any], text: str, path: str) -> None:
    """The last gate: the cassette's text, then every body in it as it decodes (binary ones
    are stored as base64 in the YAML, where no text scan sees a key)."""
    refuse_if_secret(text, path=path)
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.startswith("- request:")]
    pairs = zip(cassette_dict["requests"], cassette_dict["responses"], strict=True)
    for index, (request, response) in enumerate(pairs):
        line = lines[index] if index < len(lines) else None
        refuse_if_body_secret(
            request.body,
            request.headers,
            path=path,
            line=line,
            where=f"the request body of interaction {index + 1}",
        )
        if isinstance(response, dict):
            refuse_if_body_secret(
                (response.get("body") or {}).get("string"),
                response.get("headers") or {},
                path=path,
                line=line,
                where=f"the response body of interaction {index + 1}",
            )


def _run_scrub_hook(
    cassette_dict: dict[str, Any], hook: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Let plugins scrub each interaction, as plain dicts, before it is serialized."""
    from vcr.request import Request

    requests, responses = [], []
    for request, response in zip(
        cassette_dict["requests"], cassette_dict["responses"], strict=True
    ):
        interaction = {"request": request._to_dict(), "response": response}
        hook(interaction)
        r = interaction["request"]
        requests.append(Request(r["method"], r["uri"], r["body"], r["headers"]))
        responses.append(interaction["response"])
    return {**cassette_dict, "requests": requests, "responses": responses}


def _placeholder_response(httpx: Any, request: Any, message: str) -> Any:
    # 400 is not retried by the SDKs, so the test fails once, fast, with our message.
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return httpx.Response(400, json=body, request=request)


class Capture:
    """Context manager: the cassette of one case, with an ordered log of its exchanges.

    With a count cache (count mode), the input tokens of every Messages request are
    counted as sent now, and a request whose prompt changed since recording is
    answered by the recording at the same position, so output usage still comes
    from the cassette and no generation call is made.

    With a ``driver`` (another recorder's cassette), or when a vcrpy cassette is
    already active on entry, the capture only observes: see the module docstring.
    """

    def __init__(
        self,
        path: Path,
        mode: str,
        *,
        record_hint: str,
        counter: CountCache | None = None,
        can_count_online: bool = False,
        scrub_hook: Callable[[dict[str, Any]], None] | None = None,
        driver: Recorder | None = None,
        committed: CountCache | None = None,
    ) -> None:
        if mode not in RECORD_MODES:
            raise ValueError(mode)
        self.path = path
        self.mode = mode
        self.record_hint = record_hint
        self.counter = counter
        self.can_count_online = can_count_online
        self.scrub_hook = scrub_hook
        self.driver = driver
        self.committed = committed  # token_counts.json: replay measures a changed prompt by it
        self.log = CaptureLog()
        self._stack = ExitStack()
        self._cassette: Any = None  # vcrpy's Cassette, or a replay.Recording
        self._replaying = False
        self._vcrpy_unseen = False  # replay skipped observing vcrpy: it was not imported
        self.closed = False  # a patch left behind by a later one only passes calls on

    def __enter__(self) -> Self:
        try:
            self._observe_vcrpy()
            if self.driver is None:
                active = _active_vcrpy_cassette()
                if active is not None:  # e.g. a module-scoped fixture's vcr.use_cassette
                    self.driver = Recorder(VCRPY, active)
            if self.driver is None:
                self._own()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        """Close the case; its recording is written unless the case was interrupted
        (KeyboardInterrupt): a partial recording never replaces the cassette on disk."""
        self.closed = True
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._stack.__exit__(exc_type, exc, tb)  # vcrpy: no save, on record_on_exception=False
        else:
            self._stack.close()
        if self._vcrpy_unseen and "vcr" in sys.modules and not self.log.exchanges:
            self._vcrpy_unseen = False
            self.log.errors.append(
                "vcrpy was first imported inside this test, so its cassette could not be "
                "measured: import vcr at the top of the test module (or in conftest.py)"
            )

    # -- the plugin's own cassette ----------------------------------------------------
    def _own(self) -> None:
        if self.mode == "none":  # replay: our own engine (capture/replay.py), vcrpy only records
            from pytest_tokenbudget.capture.replay import Recording

            self._cassette = Recording.load(self.path)
            self._replaying = True
            self._patch_transports()
            return
        import vcr

        recorder = vcr.VCR(
            record_mode=self.mode,
            match_on=["tokenbudget"],
            # Bodies are decoded by scrub_message, bounded (vcrpy's decoding is not), so that
            # they are scrubbed as text and stay readable for review.
            decode_compressed_response=False,
            before_record_request=_scrub_request,
            before_record_response=_scrub_response,
            record_on_exception=False,  # see __exit__
        )
        recorder.register_matcher("tokenbudget", _match)
        recorder.register_persister(
            _persister(self.mode, self.scrub_hook, lambda err: self.log.errors.append(str(err)))
        )
        self._cassette = self._stack.enter_context(recorder.use_cassette(str(self.path)))
        self._unpatch_in_process_transports()
        self._patch_transports()

    def _unpatch_in_process_transports(self) -> None:
        """vcrpy also records httpx's in-process transports (MockTransport, an app's
        ASGI/WSGI transport): those answers are a test's own, never the cassette's."""
        for httpx in _httpx_modules():
            for cls_name in ("MockTransport", "ASGITransport", "WSGITransport"):
                cls = getattr(httpx, cls_name, None)
                if cls is None:
                    continue
                for name in ("handle_request", "handle_async_request"):
                    method = vars(cls).get(name)
                    if method is not None and inspect.unwrap(method) is not method:
                        self._patch(cls, name, inspect.unwrap(method))

    # -- other recorders' cassettes ---------------------------------------------------
    def _observe_vcrpy(self) -> None:
        """Log what any vcrpy cassette but ours plays or records, for any HTTP client.

        Patched on the Cassette class, so a cassette opened before this capture (an
        outer fixture's) or after it (inside the test) is seen alike. Loading a
        cassette appends its recordings too: those are not exchanges.
        """
        if self.mode == "none" and "vcr" not in sys.modules:
            # Replay does not need vcrpy (142 ms to import): with vcrpy not imported, no
            # vcrpy cassette is open; one first imported inside the test is caught on exit.
            self._vcrpy_unseen = True
            return
        from vcr.cassette import Cassette

        capture = self
        play, append, load = Cassette.play_response, Cassette.append, Cassette._load
        loading: set[int] = set()

        def play_response(cassette: Any, request: Any) -> Any:
            response = play(cassette, request)
            if not capture.closed:
                capture._log_vcrpy(cassette, request, response)
            return response

        def append_recording(cassette: Any, request: Any, response: Any) -> None:
            if id(cassette) not in loading and not capture.closed:
                capture._log_vcrpy(cassette, request, response)
            append(cassette, request, response)

        def load_recordings(cassette: Any) -> None:
            loading.add(id(cassette))
            try:
                load(cassette)
            finally:
                loading.discard(id(cassette))

        for name, replacement in (
            ("play_response", play_response),
            ("append", append_recording),
            ("_load", load_recordings),
        ):
            self._patch(Cassette, name, replacement)

    def _log_vcrpy(self, cassette: Any, request: Any, response: Any) -> None:
        if cassette is self._cassette:
            return  # ours: logged by the transport wrapper, with counting and matching
        driver = self.driver
        name = driver.name if driver is not None and cassette is driver.cassette else VCRPY
        self.log.exchanges.append(_vcrpy_exchange(request, response))
        self.log.served_by.append(name)

    # -- transports -------------------------------------------------------------
    def _patch(self, cls: type, name: str, replacement: object) -> None:
        """Set a class attribute until the capture closes (mock.patch.object's job, at a
        third of its cost: this runs for every case)."""
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

        self._stack.callback(restore)

    def _patch_transports(self) -> None:
        for httpx in _httpx_modules():
            for cls, name, is_async in (
                (httpx.HTTPTransport, "handle_request", False),
                (httpx.AsyncHTTPTransport, "handle_async_request", True),
            ):
                inner = getattr(cls, name)
                wrapper = self._wrap_async(inner, httpx) if is_async else self._wrap(inner, httpx)
                self._patch(cls, name, wrapper)

    def _wrap(self, inner: SyncHandler, httpx: Any) -> SyncHandler:
        capture = self
        unrecorded = _unrecorded_errors(self._replaying)
        network = inspect.unwrap(inner)  # the real transport, under vcrpy's patch

        def handle_request(transport: Any, request: Any) -> Any:
            if capture.closed:
                return inner(transport, request)
            if capture._not_ours(request):
                with blocked(loopback=is_loopback(request.url.host)):
                    return inner(transport, request)
            mocked = _mock_below(transport, "handle_request")
            if mocked and not capture._replaying:  # a mock's answer is never recorded
                return capture._served_by_mock(httpx, request, network(transport, request))
            counted = None
            counter = capture.counter
            if counter is not None and _is_messages(request):

                def send(fields: dict[str, Any]) -> tuple[int, Any, bytes]:
                    response = network(transport, _count_request(httpx, request, fields))
                    return response.status_code, response.headers, response.read()

                try:
                    counted = capture._count(request, lambda body: count_sync(counter, body, send))
                except CassetteError as err:
                    return capture._fail(httpx, request, str(err))
            recounted = False
            if capture._replaying:
                response = capture._replay(httpx, request)
            else:
                try:
                    response = inner(transport, request)
                except unrecorded:
                    response = None
            if response is None:
                response, recounted, counted = capture._unmatched(httpx, request, counted)
            if response is None and capture._replaying and mocked:
                try:
                    with blocked():
                        answer = inner(transport, request)
                except Exception as err:
                    if not refused(err):
                        raise  # the mock's own error, for the test to see
                else:
                    return capture._served_by_mock(httpx, request, answer)
            if response is None:
                return capture._miss(httpx, request)
            capture._log(request, response, b"".join(response.stream), counted, recounted)
            return response

        return handle_request

    def _wrap_async(self, inner: AsyncHandler, httpx: Any) -> AsyncHandler:
        capture = self
        unrecorded = _unrecorded_errors(self._replaying)
        network = inspect.unwrap(inner)

        async def handle_async_request(transport: Any, request: Any) -> Any:
            if capture.closed:
                return await inner(transport, request)
            if capture._not_ours(request):
                with blocked(loopback=is_loopback(request.url.host)):
                    return await inner(transport, request)
            mocked = _mock_below(transport, "handle_async_request")
            if mocked and not capture._replaying:
                answer = await network(transport, request)
                return await capture._served_by_mock_async(httpx, request, answer)
            counted = None
            counter = capture.counter
            if counter is not None and _is_messages(request):

                async def send(fields: dict[str, Any]) -> tuple[int, Any, bytes]:
                    response = await network(transport, _count_request(httpx, request, fields))
                    return response.status_code, response.headers, await response.aread()

                try:
                    sent = capture._count_body(request)
                    counted = (await count_async(counter, sent, send)).input_tokens
                except CassetteError as err:
                    return capture._fail(httpx, request, str(err))
            recounted = False
            if capture._replaying:
                response = capture._replay(httpx, request)
            else:
                try:
                    response = await inner(transport, request)
                except unrecorded:
                    response = None
            if response is None:
                response, recounted, counted = capture._unmatched(httpx, request, counted)
            if response is None and capture._replaying and mocked:
                try:
                    with blocked():
                        answer = await inner(transport, request)
                except Exception as err:
                    if not refused(err):
                        raise
                else:
                    return await capture._served_by_mock_async(httpx, request, answer)
            if response is None:
                return capture._miss(httpx, request)
            body = b"".join([chunk async for chunk in response.stream])
            response.stream = httpx.ByteStream(body)
            capture._log(request, response, body, counted, recounted)
            return response

        return handle_async_request

    # -- requests that are not the cassette's -----------------------------------------
    def _not_ours(self, request: Any) -> bool:
        """In replay, a request that is no LLM API call and has no recording here: the
        test's own business (a server of its own, a mock), passed on untouched."""
        if not self._replaying:
            return False
        url = str(request.url)
        if is_api_route(url):
            return False
        method, urls = request.method.upper(), (url, scrub_url(url))  # recorded: scrubbed
        return not any(
            recorded.method.upper() == method and recorded.uri in urls
            for recorded, _ in self._cassette.data
        )

    def _served_by_mock(self, httpx: Any, request: Any, response: Any) -> Any:
        body = b"".join(response.stream)
        close = getattr(response.stream, "close", None)
        if close is not None:
            close()
        response.stream = httpx.ByteStream(body)  # the SDK reads it next
        self._log(request, response, body, None, False, MOCK)
        return response

    async def _served_by_mock_async(self, httpx: Any, request: Any, response: Any) -> Any:
        body = b"".join([chunk async for chunk in response.stream])
        close = getattr(response.stream, "aclose", None)
        if close is not None:
            await close()
        response.stream = httpx.ByteStream(body)
        self._log(request, response, body, None, False, MOCK)
        return response

    # -- counting -----------------------------------------------------------------
    def _count_body(self, request: Any) -> dict[str, Any]:
        try:
            body: dict[str, Any] = json.loads(_sent_body(request))
        except ValueError:
            raise CassetteError("count mode: the Messages request body is not JSON") from None
        if not self.can_count_online:
            assert self.counter is not None
            if self.counter.get(count_key(counted_request(body))) is None:
                raise CassetteError(
                    f"no recorded count for this request in {self.counter.path}: count it "
                    "with a key (counting is free): ANTHROPIC_API_KEY=... "
                    "pytest --token-budget --token-budget-count"
                )
        return body

    def _count(self, request: Any, count: Callable[[dict[str, Any]], CountResult]) -> int:
        return count(self._count_body(request)).input_tokens

    def _unmatched(
        self, httpx: Any, request: Any, counted: int | None
    ) -> tuple[Any, bool, int | None]:
        """(response, recounted, count) for a request with no exact recording: the
        recording it differs from only in volatile values, or, when its prompt was counted
        (count mode, or in replay a count committed in token_counts.json), the recording at
        its position, whose output stands."""
        response = self._volatile_match(httpx, request)
        if response is None and counted is None and self._replaying:
            counted = self._committed_count(request)
        if response is None and counted is not None:
            return self._by_position(httpx, request), True, counted
        return response, False, counted

    def _committed_count(self, request: Any) -> int | None:
        if self.committed is None or not _is_messages(request):
            return None
        body = _json_body(_sent_body(request))
        if not isinstance(body, dict):
            return None
        try:
            return self.committed.get(count_key(counted_request(body)))
        except CassetteError as err:
            if str(err) not in self.log.errors:
                self.log.errors.append(str(err))
            return None

    def _by_position(self, httpx: Any, request: Any) -> Any:
        """The first unplayed recording among the case's Messages requests, when it differs
        from this one only in the prompt count_tokens counts: a changed model, max_tokens or
        any other field changes what is generated and billed, and needs a new recording."""
        sent = _json_body(_sent_body(request))
        for index, (recorded, _) in enumerate(self._cassette.data):
            if index in self._cassette.play_counts or not _is_messages_url(
                recorded.method, recorded.uri
            ):
                continue
            was = _json_body(recorded.body)
            if not isinstance(sent, dict) or not isinstance(was, dict):
                return None
            if _uncounted(sent) != _uncounted(was):
                return None
            return self._play(httpx, request, index)
        return None

    def _volatile_match(self, httpx: Any, request: Any) -> Any:
        """An unplayed recording this request differs from only in volatile values
        (cache/volatile.py has the rule), played as if it matched; what differed is logged."""
        from urllib.parse import urlsplit

        sent = _json_body(_scrubbed_body(request))
        if not isinstance(sent, dict):
            return None
        query = urlsplit(scrub_url(str(request.url))).query  # as recorded: scrubbed
        route = (request.method.upper(), request.url.path, query)
        for index, (recorded, _) in enumerate(self._cassette.data):
            parts = urlsplit(recorded.uri)
            if index in self._cassette.play_counts or route != (
                recorded.method.upper(),
                parts.path,
                parts.query,
            ):
                continue
            was = _json_body(recorded.body)
            if isinstance(was, dict) and any(sent.get(k) != was.get(k) for k in _NEVER_VOLATILE):
                continue  # another model or length: another bill, never a volatile value
            spans = volatile_spans(was, sent)
            if spans:
                self.log.volatile[len(self.log.exchanges)] = spans
                return self._play(httpx, request, index)
        return None

    def _replay(self, httpx: Any, request: Any) -> Any:
        """The recording of this request (matched as vcrpy matched it: scrubbed), or None."""
        from pytest_tokenbudget.capture.replay import RecordedRequest, response_for

        url, body = str(request.url), b"".join(request.stream)
        # Recordings are scrubbed: a request with nothing to scrub matches as sent, so
        # scrubbing (the costly part) is only needed when that finds nothing.
        index = self._cassette.play(RecordedRequest(request.method, url, body))
        if index is None:
            index = self._cassette.play(
                RecordedRequest(request.method, scrub_url(url), _scrubbed_body(request))
            )
        if index is None:
            return None
        return response_for(httpx, request, self._cassette.data[index][1])

    def _play(self, httpx: Any, request: Any, index: int) -> Any:
        from pytest_tokenbudget.capture.replay import response_for

        self._cassette.play_counts[index] += 1
        recorded = dict(self._cassette.data[index][1])
        body = recorded["body"]["string"]
        if isinstance(body, str):
            recorded["body"] = {"string": body.encode("utf-8")}
        return response_for(httpx, request, recorded)

    # -- the log ------------------------------------------------------------------
    def _log(
        self,
        request: Any,
        response: Any,
        body: bytes,
        counted: int | None,
        recounted: bool,
        served: str = OWN_RECORDER,
    ) -> None:
        headers: dict[str, list[str]] = {}
        for name, value in response.headers.multi_items():
            headers.setdefault(name.lower(), []).append(value)
        if counted is not None:
            self.log.counts[len(self.log.exchanges)] = (counted, recounted)
        self.log.served_by.append(served)
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

    def _fail(self, httpx: Any, request: Any, message: str) -> Any:
        self.log.errors.append(message)
        return _placeholder_response(httpx, request, f"pytest-tokenbudget: {message}")

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


def _sent_body(request: Any) -> bytes:
    """An httpx request's body as the app wrote it: its content encoding undone."""
    return decoded_body(request.headers, b"".join(request.stream))


def _scrubbed_body(request: Any) -> bytes:
    """An httpx request's body as a recording holds it: decoded and scrubbed."""
    return scrub_message(request.headers, b"".join(request.stream), REQUEST_HEADERS)[1]


def _vcrpy_exchange(request: Any, response: Any) -> Exchange:
    """One interaction as a vcrpy cassette holds it: what the app sent and received.

    Also reads the status_code/content layout older vcrpy versions wrote for httpx.
    """
    if "status_code" in response:
        status, body = response["status_code"], response.get("content")
    else:
        status, body = response["status"]["code"], (response.get("body") or {}).get("string")
    headers: dict[str, list[str]] = {}
    for name, values in (response.get("headers") or {}).items():
        values = values if isinstance(values, list) else [values]
        headers.setdefault(name.lower(), []).extend(str(v) for v in values)
    sent = request.body
    return Exchange(
        method=request.method,
        url=request.uri,
        request_body=sent.encode("utf-8") if isinstance(sent, str) else sent or b"",
        status=int(status),
        headers=headers,
        body=body.encode("utf-8") if isinstance(body, str) else body or b"",
    )


def _active_vcrpy_cassette() -> Any:
    """The vcrpy cassette whose patch answers httpx requests now, if any.

    vcrpy replaces a transport's handle_request by a closure over its cassette.
    """
    for httpx in _httpx_modules():
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


def is_cassette(value: Any) -> bool:
    from vcr.cassette import Cassette

    return isinstance(value, Cassette)


def _json_body(body: Any) -> Any:
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        return json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None


# Fields whose change changes what is generated and billed: a request that differs there
# is stale, however much the change looks like a timestamp or a counter.
_NEVER_VOLATILE = ("model", "max_tokens", "service_tier", "speed", "inference_geo")


def _uncounted(body: dict[str, Any]) -> dict[str, Any]:
    """What a Messages request says besides its prompt: the model and every field that
    count_tokens does not count (max_tokens, context_management, service_tier, ...)."""
    prompt = set(COUNTED_FIELDS) - {"model"}
    return {k: v for k, v in body.items() if k not in prompt}


def _mock_below(transport: Any, method: str) -> bool:
    """Whether a mock replaced the connection pool under this transport (respx does):
    then what the transport sends is answered in-process, not on the network."""
    pool = getattr(transport, "_pool", None)
    handler = getattr(type(pool), method, None) if pool is not None else None
    return handler is not None and not (getattr(handler, "__module__", "") or "").startswith(
        "httpcore"
    )


def _is_messages_url(method: str, url: str) -> bool:
    from urllib.parse import urlsplit

    return method.upper() == "POST" and urlsplit(str(url)).path.rstrip("/").endswith("/v1/messages")


def _is_messages(request: Any) -> bool:
    return _is_messages_url(request.method, str(request.url))


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
def _httpx_modules() -> list[Any]:
    modules = []
    for name in ("httpx2", "httpx"):
        try:
            modules.append(__import__(name))
        except ImportError:
            continue
    return modules
