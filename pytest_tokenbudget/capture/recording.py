"""Capture of API traffic: one cassette per endpoint and case, and the ordered log of
every exchange (replayed or recorded) that attributes usage to the case.

Replay answers from our own engine (capture/replay.py); recording goes through vcrpy
(capture/vcrpy_cassettes.py). Every request of the case reaches the capture through the
patched transports (capture/transport.py); a request with no recording becomes a clear,
non-retried API error instead of a connection error the SDK would retry. This module
decides what answers each request: the recording that matches, one that differs only in
volatile values, or (count mode, committed counts) the recording at its position.

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

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.cache.volatile import Span, volatile_spans
from pytest_tokenbudget.capture.counting import (
    COUNTED_FIELDS,
    CountCache,
    count_key,
    counted_request,
)
from pytest_tokenbudget.capture.transport import (
    active_vcrpy_cassette,
    is_messages,
    is_messages_url,
    patch,
    patch_transports,
    placeholder_response,
    scrubbed_body,
    sent_body,
    unpatch_in_process_transports,
)
from pytest_tokenbudget.capture.vcrpy_cassettes import vcr_cassette, vcrpy_exchange
from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.modes import RECORD_MODES
from pytest_tokenbudget.providers.exchanges import is_api_route
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.scrub import scrub_url

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

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
                active = active_vcrpy_cassette()
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
            patch_transports(self._stack, self)
            return
        cassette = vcr_cassette(
            self.path, self.mode, self.scrub_hook, lambda err: self.log.errors.append(str(err))
        )
        self._cassette = self._stack.enter_context(cassette)
        unpatch_in_process_transports(self._stack)
        patch_transports(self._stack, self)

    @property
    def replaying(self) -> bool:
        """Our own cassette answers in replay (mode none), vcrpy's otherwise."""
        return self._replaying

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
            patch(self._stack, Cassette, name, replacement)

    def _log_vcrpy(self, cassette: Any, request: Any, response: Any) -> None:
        if cassette is self._cassette:
            return  # ours: logged by the transport wrapper, with counting and matching
        driver = self.driver
        name = driver.name if driver is not None and cassette is driver.cassette else VCRPY
        self.log.exchanges.append(vcrpy_exchange(request, response))
        self.log.served_by.append(name)

    # -- requests that are not the cassette's -----------------------------------------
    def passes_through(self, request: Any) -> bool:
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

    def served_by_mock(self, httpx: Any, request: Any, response: Any) -> Any:
        body = b"".join(response.stream)
        close = getattr(response.stream, "close", None)
        if close is not None:
            close()
        response.stream = httpx.ByteStream(body)  # the SDK reads it next
        self.log_exchange(request, response, body, None, False, MOCK)
        return response

    async def served_by_mock_async(self, httpx: Any, request: Any, response: Any) -> Any:
        body = b"".join([chunk async for chunk in response.stream])
        close = getattr(response.stream, "aclose", None)
        if close is not None:
            await close()
        response.stream = httpx.ByteStream(body)
        self.log_exchange(request, response, body, None, False, MOCK)
        return response

    # -- counting -----------------------------------------------------------------
    def count_body(self, request: Any) -> dict[str, Any]:
        try:
            body: dict[str, Any] = json.loads(sent_body(request))
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

    def unmatched(
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
        if self.committed is None or not is_messages(request):
            return None
        body = _json_body(sent_body(request))
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
        sent = _json_body(sent_body(request))
        for index, (recorded, _) in enumerate(self._cassette.data):
            if index in self._cassette.play_counts or not is_messages_url(
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

        sent = _json_body(scrubbed_body(request))
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

    def replay(self, httpx: Any, request: Any) -> Any:
        """The recording of this request (matched as vcrpy matched it: scrubbed), or None."""
        from pytest_tokenbudget.capture.replay import RecordedRequest, response_for

        url, body = str(request.url), b"".join(request.stream)
        # Recordings are scrubbed: a request with nothing to scrub matches as sent, so
        # scrubbing (the costly part) is only needed when that finds nothing.
        index = self._cassette.play(RecordedRequest(request.method, url, body))
        if index is None:
            index = self._cassette.play(
                RecordedRequest(request.method, scrub_url(url), scrubbed_body(request))
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
    def log_exchange(
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

    def fail(self, httpx: Any, request: Any, message: str) -> Any:
        self.log.errors.append(message)
        return placeholder_response(httpx, request, f"pytest-tokenbudget: {message}")

    def miss(self, httpx: Any, request: Any) -> Any:
        body = b"".join(request.stream)
        closest = self._closest_recording(request.method, request.url.path, len(self.log.misses))
        self.log.misses.append(Miss(request.method, str(request.url), body, closest))
        return placeholder_response(
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
