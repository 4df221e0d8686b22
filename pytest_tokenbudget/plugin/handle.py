"""The `token_budget` fixture's handle, and the capture state of one test."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.capture.case_ids import cassette_path
from pytest_tokenbudget.capture.recording import OWN_RECORDER, Capture, Miss, Recorder
from pytest_tokenbudget.capture.vcrpy_cassettes import is_cassette
from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.measure.samples import CaseRun
from pytest_tokenbudget.providers.anthropic import usage_from_api
from pytest_tokenbudget.providers.exchanges import is_api_route, parse_exchange
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import Call, Usage, with_count

if TYPE_CHECKING:
    from pytest_tokenbudget.measure.run import BudgetRun


@dataclass
class CaseCapture:
    """Everything captured for one test: its cassette, and usage recorded by hand."""

    endpoint: str
    case_id: str
    capture: Capture | None
    parse: Callable[[Exchange], list[Call]] = parse_exchange
    manual: list[Call] = field(default_factory=list)
    closed: bool = False

    def close(self, *, interrupted: bool = False) -> None:
        """End the capture; an interrupted case's partial recording is not written."""
        if not self.closed:
            self.closed = True
            if self.capture is not None:
                if interrupted:
                    self.capture.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
                else:
                    self.capture.__exit__(None, None, None)

    @property
    def misses(self) -> list[Miss]:
        return self.capture.log.misses if self.capture else []

    @property
    def errors(self) -> list[str]:
        return self.capture.log.errors if self.capture else []

    @property
    def recorders(self) -> list[str]:
        return self.capture.log.recorders if self.capture else []

    def calls(self) -> list[Call]:
        """Calls in the order they happened: HTTP exchanges, then hand-recorded usage."""
        return [c for _, calls in self.exchange_calls() for c in calls] + self.manual

    def exchange_calls(self) -> list[tuple[Exchange, list[Call]]]:
        """Each HTTP exchange with the calls parsed from it, in order."""
        found: list[tuple[Exchange, list[Call]]] = []
        if self.capture is not None:
            counts = self.capture.log.counts
            for index, exchange in enumerate(self.capture.log.exchanges):
                try:
                    calls = self.parse(exchange)
                except CassetteError as err:
                    raise self._recording_at_fault(index, exchange, err) from None
                if index in counts:
                    calls = [with_count(c, *counts[index]) for c in calls]
                found.append((exchange, calls))
        return found

    def _recording_at_fault(self, index: int, exchange: Exchange, err: CassetteError) -> Exception:
        """In replay, a response the case's own cassette served is that cassette's fault."""
        capture = self.capture
        if capture is None or capture.mode != "none" or capture.driver is not None:
            return err
        if capture.log.served_by[index : index + 1] != [OWN_RECORDER]:
            return err
        from pytest_tokenbudget.capture.replay import malformed_recorded_response

        return malformed_recorded_response(capture.path, exchange, err)


# Plugins that drive a test with their own vcrpy cassette: (plugin name in pytest's
# plugin manager, fixture that holds the cassette, recorder name in the report).
FOREIGN_PLUGINS = (
    ("recording", "vcr", "pytest-recording"),
    ("vcr", "vcr_cassette", "pytest-vcr"),
)


def foreign_recorder(
    marked_vcr: bool,
    fixturenames: list[str],
    has_plugin: Callable[[str], bool],
    getfixturevalue: Callable[[str], Any],
) -> Recorder | None:
    """pytest-recording or pytest-vcr driving this test, with the cassette it opened.

    Asking for the fixture sets it up before our capture starts, so its cassette is
    known by identity (and a disabled recorder, whose fixture holds None, drives nothing).
    """
    for plugin, fixture, name in FOREIGN_PLUGINS:
        if not has_plugin(plugin) or not (marked_vcr or fixture in fixturenames):
            continue
        cassette = getfixturevalue(fixture)
        if is_cassette(cassette):
            return Recorder(name, cassette)
    return None


def open_case(
    run: BudgetRun, endpoint: str, case_id: str, nodeid: str, driver: Recorder | None = None
) -> CaseCapture:
    """Start capturing one case: its cassette entered, its transports patched.

    With a driver (another recorder's cassette), only observe what that recorder serves.
    """
    assert run.options.cassettes is not None  # set by pytest_configure
    path = cassette_path(run.options.cassettes, endpoint, case_id)
    mode = "all" if path.exists() else "once"
    capture = Capture(
        path,
        run.options.record_mode,
        record_hint=(
            "Record it (with ANTHROPIC_API_KEY set): "
            f"pytest --token-budget --token-budget-record={mode} {shlex.quote(nodeid)}"
        ),
        counter=run.counts if run.options.count else None,
        can_count_online=run.can_count_online,
        scrub_hook=run.scrub_hook,
        driver=driver,
        committed=run.counts,
    )
    capture.__enter__()
    return CaseCapture(endpoint, case_id, capture, parse=run.parse)


def finish_case(run: BudgetRun, nodeid: str, state: CaseCapture, outcome: str) -> None:
    """Hand the case's calls and outcome to the run."""
    errors = list(state.errors)
    if state.misses:
        errors.append(f"{len(state.misses)} request(s) had no recording")
    try:
        exchanges = state.exchange_calls()
        calls = [c for _, found in exchanges for c in found] + state.manual
    except CassetteError as err:
        exchanges, calls, outcome = [], [], "failed"
        errors.append(str(err))
    run.add_calls(calls, endpoint=state.endpoint, case_id=state.case_id, test_id=nodeid)
    if run.options.reprice:
        from pytest_tokenbudget.measure.reprice import repriced_rows

        rows = repriced_rows(run, run.options.reprice, exchanges, state.manual)
        run.add_repriced(rows, endpoint=state.endpoint, case_id=state.case_id, test_id=nodeid)
    volatile = state.capture.log.volatile if state.capture else {}
    run.diagnose(state.endpoint, state.case_id, exchanges, volatile, nodeid)
    unmeasured = tuple(unmeasured_request(exchange) for exchange, found in exchanges if not found)
    run.add_case_run(
        CaseRun(
            state.endpoint,
            state.case_id,
            nodeid,
            outcome,
            tuple(errors),
            tuple(state.recorders),
            tuple(u for u in unmeasured if u),
        )
    )


def unmeasured_request(exchange: Exchange) -> str:
    """An API request whose answer carried no usage, described; "" for any other request.

    Never silent: the legacy Text Completions endpoint reports none, nor does an error.
    """
    from urllib.parse import urlsplit

    if not is_api_route(exchange.url):
        return ""
    path = urlsplit(exchange.url).path
    if path.rstrip("/").endswith("/v1/complete"):
        return f"{exchange.method} {path} (legacy Text Completions: no usage)"
    if not 200 <= exchange.status < 300:
        return f"{exchange.method} {path} (HTTP {exchange.status})"
    return f"{exchange.method} {path} (no usage in the answer)"


class TokenBudget:
    """What a test sees of the plugin: its endpoint, its case, the calls so far."""

    def __init__(self, state: CaseCapture, case: dict[str, Any]) -> None:
        self._state = state
        self.endpoint = state.endpoint
        self.case = case

    @property
    def calls(self) -> list[Call]:
        return [c for c in self._state.calls() if c.kind != "count_tokens"]

    def record(self, usage: Any, *, model: str, batch: bool = False) -> None:
        """Usage that did not go over HTTP (another transport, a cached result, a batch job).

        Takes a ``Usage``, an API usage dict, or an SDK usage object.
        """
        if not isinstance(usage, Usage):
            if not isinstance(usage, dict):
                usage = usage.model_dump() if hasattr(usage, "model_dump") else vars(usage)
            usage = usage_from_api(usage)
        self._state.manual.append(
            Call(provider="anthropic", kind="messages", model=model, usage=usage, batch=batch)
        )

    def count(self, **request: Any) -> int:
        """Input tokens of a Messages request, from the count_tokens endpoint.

        Goes over HTTP like any other call, so it is recorded and replayed with the case.
        """
        import anthropic

        counted = {k: v for k, v in request.items() if k not in _NOT_COUNTED}
        client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY"))
        return client.messages.count_tokens(**counted).input_tokens


# count_tokens takes the prompt, not the sampling parameters.
_NOT_COUNTED = frozenset(
    {
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "metadata",
        "service_tier",
    }
)
