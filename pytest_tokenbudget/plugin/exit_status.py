"""A failed token budget fails the pytest run: its exit status, and pytest's last line.

pytest's own ExitCode is the convention here: a run whose tests passed but whose budget
(or regression gate, or report) failed ends as TESTS_FAILED (1), as syrupy does for a
failed snapshot; a worse status pytest already set is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_tokenbudget.report.model import Report


def fail_session(session: pytest.Session, report: Report) -> None:
    """The run fails, and pytest's last line says why: "25 passed, 1 token budget failed"
    (an extra key in the reporter's stats, as pytest-rerunfailures' "rerun")."""
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        failed = [endpoint.name for endpoint in report.failed_endpoints] or [""]
        key = "token budget failed" if len(failed) == 1 else "token budgets failed"
        reporter.stats.setdefault(key, []).extend(BudgetFailed(name) for name in failed)


class BudgetFailed:
    """One entry of pytest's final line ("1 token budget failed"): shaped like a test report
    where plugins that walk every entry of the reporter's stats look (hypothesis does)."""

    count_towards_summary = True
    outcome = when = ""
    longrepr = None
    duration = 0.0
    sections: tuple[tuple[str, str], ...] = ()
    user_properties: tuple[tuple[str, object], ...] = ()

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.nodeid = f"token_budget::{endpoint}" if endpoint else "token_budget"
        self.location = ("token_budgets.yml", None, self.nodeid)
        self.keywords: dict[str, object] = {}
