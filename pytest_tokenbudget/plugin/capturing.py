"""The capture around each marked test: its cassette opened at setup, its calls handed to
the run when it ends, and a test whose recording is missing or wrong failed with why.

Registered by pytest_configure only with --token-budget, so that without it no test of the
project pays for either (an autouse fixture runs for every test).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

from pytest_tokenbudget.plugin.item_cases import case_id, endpoint_of, marked_endpoint
from pytest_tokenbudget.plugin.stash import CAPTURE_KEY, CASE_PROBLEM_KEY

if TYPE_CHECKING:
    from pytest_tokenbudget.measure.run import BudgetRun
    from pytest_tokenbudget.plugin.handle import CaseCapture

# On an item whose capture could not start: why (and, for its cassette, that it is unreadable).
SETUP_ERROR_KEY = pytest.StashKey[tuple[str, bool]]()


class Capturing:
    """An autouse fixture and a report hook, registered as one plugin object."""

    def __init__(self, run: BudgetRun) -> None:
        self.run = run
        self.interrupted = False

    def pytest_keyboard_interrupt(self) -> None:
        # Called before the session tears down the interrupted test's fixtures.
        self.interrupted = True

    @pytest.fixture(autouse=True)
    def _token_budget_capture(self, request: pytest.FixtureRequest) -> Iterator[None]:
        marker = request.node.get_closest_marker("token_budget")
        if marker is None:
            yield
            return
        from pytest_tokenbudget.errors import CassetteError
        from pytest_tokenbudget.plugin.handle import foreign_recorder, open_case

        item = request.node
        problem = item.stash.get(CASE_PROBLEM_KEY, None)
        if problem is not None:
            item.stash[SETUP_ERROR_KEY] = (problem, False)
            pytest.fail(f"pytest-tokenbudget: {problem}", pytrace=False)
        driver = foreign_recorder(  # pytest-recording or pytest-vcr: measure what it serves
            item.get_closest_marker("vcr") is not None,
            request.fixturenames,
            request.config.pluginmanager.has_plugin,
            request.getfixturevalue,
        )
        try:
            state = open_case(self.run, endpoint_of(marker), case_id(item), item.nodeid, driver)
        except CassetteError as err:
            item.stash[SETUP_ERROR_KEY] = (str(err), True)
            pytest.fail(f"pytest-tokenbudget: {err}", pytrace=False)
        item.stash[CAPTURE_KEY] = state
        try:
            yield
        finally:
            state.close(interrupted=self.interrupted)  # Ctrl-C keeps the previous cassette

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        state = item.stash.get(CAPTURE_KEY, None)
        failure = None
        if state is not None and call.when == "call":
            state.close()
            if state.misses or state.errors:
                failure = _capture_failure(item, state)
                _report_only(item, call, failure)
        report = yield
        if state is None:
            if report.when == "setup" and report.failed:
                _setup_failed(self.run, item)
            return report
        if report.when == "setup" and not report.passed:
            _finish(self.run, item, state, "skipped" if report.skipped else "failed")
        elif report.when == "call":
            if failure is not None:
                report.outcome = "failed"
                report.longrepr = failure
            _finish(self.run, item, state, report.outcome)
        return report


def _setup_failed(run: BudgetRun, item: pytest.Item) -> None:
    """A marked test that failed before its capture started still counts: as a case not
    measured, with why (every case is accounted for in the report)."""
    from pytest_tokenbudget.measure.accounting import UNREADABLE
    from pytest_tokenbudget.measure.samples import CaseRun

    endpoint = marked_endpoint(item)
    if endpoint is None:
        return
    # a capture that could not start says why; any other setup error is the test's own
    error, unreadable = item.stash.get(SETUP_ERROR_KEY, (None, False))
    errors = (error,) if error is not None else ()
    run.add_case_run(CaseRun(endpoint, case_id(item), item.nodeid, "failed", errors))
    if unreadable:
        run.note_recording(item.nodeid, UNREADABLE)


def _finish(run: BudgetRun, item: pytest.Item, state: CaseCapture, outcome: str) -> None:
    from pytest_tokenbudget.measure.accounting import MISSING, STALE
    from pytest_tokenbudget.plugin.handle import finish_case

    if state.misses and state.capture is not None:  # its recording, not its test, is wrong
        run.note_recording(item.nodeid, STALE if state.capture.path.exists() else MISSING)
    finish_case(run, item.nodeid, state, outcome)
    # Free the cassette and its bodies now, not at the end of the session.
    del item.stash[CAPTURE_KEY]
    if state.closed:
        state.capture = None


def _report_only(item: pytest.Item, call: pytest.CallInfo[None], failure: str) -> None:
    """The report of a case whose recording failed is `failure` alone, so pytest need not
    format the test's own exception: a traceback through the SDK and httpx, every file of
    it parsed, took about half a second per failing case, and was then thrown away. Under
    --pdb the debugger still gets the test's own exception."""
    if call.excinfo is None or item.config.getoption("usepdb", False):
        return
    try:
        pytest.fail(failure, pytrace=False)
    except pytest.fail.Exception:
        call.excinfo = pytest.ExceptionInfo.from_current()


def _capture_failure(item: pytest.Item, state: CaseCapture) -> str:
    from pytest_tokenbudget.capture.staleness import describe_misses

    lines = [f"pytest-tokenbudget: {error}" for error in state.errors]
    if state.misses:
        lines.append(describe_misses(state, item.nodeid))
    return "\n".join(lines)
