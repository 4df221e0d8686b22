"""Findings: what a run's report (or a baseline comparison) says is wrong, placed on the lines
of token_budgets.yml.

One `Finding` per broken budget, regression past the gate, growth in the warn band, case
not measured, other problem or failed budget update. ci/annotations.py writes them as
GitHub workflow commands and GitLab Code Quality entries; the terminal summary
(report/table.py) shows the warn band from here. A finding sits on the line of the budget
key of its metric, or on the endpoint's line when it has no budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_tokenbudget import formatting as fmt
from pytest_tokenbudget.measure.accounting import cause_lines, fix_command
from pytest_tokenbudget.plain_text import safe_line
from pytest_tokenbudget.report.diff_model import BUDGET, REGRESSION, WARN, Diff
from pytest_tokenbudget.report.model import CASES, PROBLEM, UPDATE, Report

MAX_LINE = 10**7  # a line number past this is not one of token_budgets.yml's


@dataclass(frozen=True)
class Finding:
    kind: str  # budget | regression | warn | cases | problem | update
    severity: str  # error | warning
    endpoint: str
    key: str  # the budget key, or the metric when it has no budget
    line: int | None
    message: str


Source = Report | Diff  # a run's report, or a comparison alone (`tokenbudget diff`)


def findings(source: Source) -> list[Finding]:
    if isinstance(source, Diff):
        return _diff_findings(source)
    return _report_findings(source)


def _report_findings(report: Report) -> list[Finding]:
    """Every failure of the run; with a baseline, the comparison's rows say the budgets
    and regressions (with the baseline's value) and add the warn band."""
    out = []
    for ep in report.endpoints:
        for f in ep.failures:
            if f.kind == CASES:  # why, which cases, and the command that fixes them
                fix = fix_command(ep.unmeasured)
                message = "; ".join([f.message, *cause_lines(ep.unmeasured)])
                message += f". Fix: {fix}" if fix else ""
                out.append(Finding(CASES, "error", ep.name, "cases", ep.line, message))
            elif f.kind == PROBLEM:
                out.append(Finding(PROBLEM, "error", ep.name, "problem", ep.line, f.message))
        if report.diff is not None:
            continue
        for b in ep.budgets:
            if b.ok is False:
                message = (
                    f"{b.metric} = {fmt.metric(b.metric, b.actual)} breaks "
                    f"{b.key}: {fmt.metric(b.metric, b.limit)}" + _cases(b.drivers)
                )
                out.append(Finding(BUDGET, "error", ep.name, b.key, b.line, message))
    if report.diff is not None:
        out += _diff_findings(report.diff)
    out += [
        Finding(UPDATE, "error", "", "update", None, f.message)
        for f in report.failures
        if f.kind == UPDATE
    ]
    return out


def _diff_findings(diff: Diff) -> list[Finding]:
    out = []
    for endpoint, m in diff.rows():
        if m.status not in (BUDGET, REGRESSION, WARN):
            continue
        key = m.budget.key if m.budget is not None else m.metric
        line = m.budget.line if m.budget is not None and m.budget.line else endpoint.line
        head = fmt.metric(m.metric, m.head)
        was = ""
        if m.base is not None and m.pct is not None:
            was = f" ({fmt.metric(m.metric, m.base)} on the baseline, {m.pct:+.1f}%)"
        elif m.base is not None:
            was = f" ({fmt.metric(m.metric, m.base)} on the baseline)"
        cases = [d.case_id for d in m.drivers] or (list(m.budget.drivers) if m.budget else [])
        if m.status == BUDGET and m.budget is not None:
            message = (
                f"{m.metric} = {head} breaks {key}: {fmt.metric(m.metric, m.budget.limit)}{was}"
            )
        elif m.status == REGRESSION:
            message = (
                f"{m.metric} = {head}{was} got worse by more than the "
                f"{endpoint.max_regression_pct:g}% regression gate"
            )
        else:
            message = f"{m.metric} = {head}{was} got worse by more than {endpoint.warn_pct:g}%" + (
                f" (the regression gate is {endpoint.max_regression_pct:g}%)"
                if endpoint.max_regression_pct is not None
                else ""
            )
        severity = "warning" if m.status == WARN else "error"
        out.append(Finding(m.status, severity, endpoint.name, key, line, message + _cases(cases)))
    return out


def line_number(value: object) -> int | None:
    """A line of token_budgets.yml, or None: a report.json may say anything here."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_LINE:
        return value
    return None


def _cases(case_ids: list[str] | tuple[str, ...]) -> str:
    return f"; driven by cases: {', '.join(case_ids[:3])}" if case_ids else ""


def terminal_lines(diff: Diff, config_path: str) -> list[str]:
    """The warn band for pytest's summary (the Report's failures name the broken budgets
    and the regressions past the gate)."""
    lines = []
    for f in _diff_findings(diff):
        if f.kind != WARN:
            continue
        line = line_number(f.line)
        where = f" ({config_path}:{line})" if line else ""
        lines.append(safe_line(f"warn {f.endpoint}: {f.message}{where}"))
    return lines
