"""A pytest plugin for the benchmarks: where a session's time goes, by phase.

Load it with ``-p phase_timer`` (benchmarks/ on PYTHONPATH) and set
``PHASE_TIMER_OUT`` to a file: at the end of the session it writes there, as
JSON, the seconds until configure and until sessionstart, collection, each runtest phase (summed
over all tests, perf_counter precision rather than --durations' 10 ms), the
report hooks (where pytest-tokenbudget parses each test's exchanges) and
sessionfinish (where it aggregates and writes its report).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict

import pytest

_T: dict[str, float] = defaultdict(float)
_START = time.perf_counter()


def _timed(name: str):
    start = time.perf_counter()
    try:
        return (yield)  # the hook's result, handed back by the wrapper
    finally:
        _T[name] += time.perf_counter() - start


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _T["startup_until_configure"] = time.perf_counter() - _START


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    # configure hooks (pytest-tokenbudget loads its config and cases there) end before this
    _T["startup_until_sessionstart"] = time.perf_counter() - _START


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_collection(session):
    return (yield from _timed("collection"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    return (yield from _timed("setup"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item):
    return (yield from _timed("call"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    return (yield from _timed("teardown"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    return (yield from _timed("makereport"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session):
    return (yield from _timed("runtestloop"))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    return (yield from _timed("sessionfinish"))


def pytest_unconfigure(config):
    out = os.environ.get("PHASE_TIMER_OUT")
    if out and not hasattr(config, "workerinput"):  # the xdist controller, or a serial run
        _T["in_test"] = _T["setup"] + _T["call"] + _T["teardown"]
        _T["total_until_unconfigure"] = time.perf_counter() - _START
        with open(out, "w") as f:
            json.dump(dict(_T), f)
