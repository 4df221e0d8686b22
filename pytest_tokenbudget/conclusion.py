"""The end of a run: report, optional baseline diff, annotations, files, summary lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import TokenBudgetError
from .html_report import render_html
from .markdown import cap_markdown, render_markdown
from .report import write_report
from .session import BudgetRun
from .table import render_cache_findings, render_findings, render_table


def conclude(
    run: BudgetRun,
    *,
    baseline: dict[str, Any] | None,
    max_regression_pct: float | None,
    config_path: str,
    report_hook: Callable[[dict[str, Any]], list[str | None]],
    github: bool,
    display: Callable[[Path], str],
) -> tuple[dict[str, Any], list[str]]:
    """Build and write the report; return it with the lines for the terminal summary."""
    report, results = run.report()
    lines = render_table(report) + [""] + render_findings(report) + render_cache_findings(report)
    comment = render_markdown(report)
    diff = None
    if baseline is not None:
        from .annotations import terminal_lines
        from .diff import compare, diff_json
        from .markdown import render_diff_markdown

        diff = compare(baseline, report, max_regression_pct=max_regression_pct)
        report["diff"] = diff_json(diff)
        comment = render_diff_markdown(diff, report.get("findings"))
        lines += terminal_lines(diff, config_path)
        if diff.failed:
            report["status"] = "fail"
    elif max_regression_pct is not None:
        lines.append(
            "note: --token-budget-max-regression needs --token-budget-baseline; not checked"
        )
    sections = [s for s in report_hook(report) if s]
    markdown = cap_markdown("\n".join([comment, *sections]))
    if github:
        from .annotations import append_step_summary, github_annotations

        lines += github_annotations(
            diff if diff is not None else report, config_path, report.get("findings", [])
        )
        append_step_summary(markdown)
    sent, cached = run.count_stats
    if run.options.count or sent or cached:
        lines.append(f"count_tokens: {sent} requests sent, {cached} answered from the count cache")
    try:
        html = render_html(report, results, baseline=baseline)
        json_path, _ = write_report(run.options.report_dir, report, markdown, html=html)
        lines.append(f"report: {display(json_path)}")
    except (TokenBudgetError, OSError) as err:
        lines.append(f"FAIL could not write the report: {err}")
        report["status"] = "fail"
    return report, lines
