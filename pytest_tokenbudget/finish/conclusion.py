"""The end of a run: every verdict into one Report, then everything rendered from it.

The order is the point. The measurement and its budgets (report/build.py), the regression
gate (report/diff.py) and the budget update (report/ratchet.py) each give their verdict first; only
then is the Report rendered, once each: report.json, report.md (and the job summary),
report.html, annotations, the terminal summary and the exit code. Nothing changes the
verdict after a file is written, so no two of them can disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_tokenbudget.errors import TokenBudgetError
from pytest_tokenbudget.measure.run import BudgetRun
from pytest_tokenbudget.report.build import report_of, with_gate, with_notes, with_update
from pytest_tokenbudget.report.html import render_html
from pytest_tokenbudget.report.json_io import report_from_json, report_json, write_report
from pytest_tokenbudget.report.markdown import cap_markdown, render_markdown
from pytest_tokenbudget.report.model import Report, UpdateVerdict
from pytest_tokenbudget.report.reader import FAIL
from pytest_tokenbudget.report.table import (
    render_cache_findings,
    render_findings,
    render_table,
    render_verdict,
)


@dataclass(frozen=True)
class Conclusion:
    report: Report
    lines: list[str]  # the terminal summary, its verdict last
    written: bool  # the report files were written

    @property
    def failed(self) -> bool:
        """What the exit code says: the report's verdict, or files that could not be written."""
        return self.report.status == FAIL or not self.written

    @property
    def failed_endpoints(self) -> int:
        return len(self.report.failed_endpoints)


def conclude(
    run: BudgetRun,
    *,
    baseline: dict[str, Any] | None,
    max_regression_pct: float | None,
    config_path: str,
    report_hook: Callable[[dict[str, Any]], list[str | None]],
    github: bool,
    display: Callable[[Path], str],
    update: Callable[[Report], UpdateVerdict] | None = None,
) -> Conclusion:
    """Judge, then render and write; the lines are the terminal summary. `baseline` is a
    checked report.json (report/reader.load_report)."""
    report = report_of(run)
    base = report_from_json(baseline) if baseline is not None else None
    if base is not None:
        from pytest_tokenbudget.report.diff import compare

        report = with_gate(report, compare(base, report, max_regression_pct=max_regression_pct))
    elif max_regression_pct is not None:
        report = with_notes(
            report, "--token-budget-max-regression needs --token-budget-baseline; not checked"
        )
    if update is not None:  # reads the budgets as judged, writes token_budgets.yml
        report = with_update(report, update(report))
    # Every verdict is in: from here on the report is only rendered, report.json once.
    data = report_json(report)
    sections = [s for s in report_hook(data) if s]
    markdown = cap_markdown("\n".join([render_markdown(report), *sections]))
    lines = render_table(report) + [""] + render_findings(report) + render_cache_findings(report)
    if report.update is not None:
        lines += report.update.lines
    if github:
        from pytest_tokenbudget.ci.annotations import github_annotations

        lines += github_annotations(report, config_path)
    sent, cached = run.count_stats
    if run.options.count or sent or cached:
        lines.append(f"count_tokens: {sent} requests sent, {cached} answered from the count cache")
    written = True
    try:
        html = render_html(report, baseline=base)
        json_path, _ = write_report(run.options.report_dir, data, markdown, html=html)
        lines.append(f"report: {display(json_path)}")
    except (TokenBudgetError, OSError) as err:
        lines.append(f"FAIL could not write the report: {err}")
        written = False
    if github and written:  # report.md as written: past the secret scan, never without it
        from pytest_tokenbudget.ci.annotations import append_step_summary

        try:
            append_step_summary(markdown)
        except OSError as err:
            lines.append(f"could not add the report to the job summary: {err}")
    lines.append(render_verdict(report, written=written))
    return Conclusion(report, lines, written)
