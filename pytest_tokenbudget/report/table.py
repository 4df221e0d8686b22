"""The terminal summary: the budget table, what failed and the fix, notes, the verdict line.

Rendered from the run's one `Report` (report/model.py), as report.json, report.md and
report.html are, so pytest's summary never says something the files do not. Names,
case ids, models and messages in it come from config, cassettes and responses, and CI
logs read workflow commands out of it: every line goes out through plain_text.safe_line.
"""

from __future__ import annotations

from pytest_tokenbudget import formatting as fmt
from pytest_tokenbudget.measure.accounting import cause_lines
from pytest_tokenbudget.measure.metrics import metric as facts
from pytest_tokenbudget.plain_text import one_line, safe_line, safe_lines
from pytest_tokenbudget.report.findings import terminal_lines
from pytest_tokenbudget.report.model import CASES, PROBLEM, EndpointReport, Report, Reprice
from pytest_tokenbudget.report.reader import FAIL, NOT_RUN
from pytest_tokenbudget.report.why import why_lines

COLUMNS = (
    ("endpoint", "<"),
    ("calls", ">"),
    ("cases", ">"),
    ("p95 in", ">"),
    ("p95 out", ">"),
    ("escalation", ">"),
    ("cache hit", ">"),
    ("$/request", ">"),
    ("$/month", ">"),
    ("status", "<"),
)
NAMED_IN_VERDICT = 3  # failed endpoints the verdict line names


def cases_cell(ep: EndpointReport) -> str:
    """The cases that ran; "6/20" when only 6 of them could be measured."""
    if ep.complete:
        return f"{ep.cases:,}"
    return f"{ep.cases - len(ep.unmeasured):,}/{ep.cases:,}"


def _row(ep: EndpointReport) -> list[str]:
    return [
        one_line(ep.name),
        str(ep.calls),
        cases_cell(ep),
        *fmt.summary_cells(dict(ep.metrics)),
        ep.status.upper(),
    ]


def render_table(report: Report) -> list[str]:
    rows = [[c for c, _ in COLUMNS]] + [_row(ep) for ep in report.endpoints]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(w) if align == "<" else cell.rjust(w)
            for cell, w, (_, align) in zip(row, widths, COLUMNS, strict=True)
        ]
        lines.append(safe_line("  ".join(cells).rstrip()))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render_findings(report: Report) -> list[str]:
    """With a baseline, what moved and why first (report/why.py); then what failed,
    endpoint by endpoint and worst first (with the cases behind it), the fixes said once
    for the run, then notes and warnings."""
    lines: list[str] = []
    config = report.config
    if report.diff is not None:  # why, first: the parts that moved against the baseline
        found, more = why_lines(report.diff)
        lines += [f"change {why.endpoint}: {why.text}" for why in found]
        lines += [f"change: {more} more endpoints changed (report.md)"] if more else []
    for ep in report.endpoints:
        lines += _failure_lines(ep, config)
    for fix in report.fixes:
        lines.append(f"fix: {fix.what}:")
        lines.append(f"  {fix.command}")
    if report.diff is not None:  # growth in the warn band: below the gate, worth a look
        lines += terminal_lines(report.diff, config)
    for ep in report.endpoints:
        if ep.status == NOT_RUN:
            continue
        measured = ep.cases - len(ep.unmeasured)
        if not ep.complete and ep.measured and measured:
            lines.append(
                f"note {ep.name}: its figures are over the {measured} case"
                f"{'s' if measured != 1 else ''} measured, not all {ep.cases}: none is the "
                "endpoint's, no budget is checked on them, no monthly cost is projected "
                "(report.json: partial_metrics)"
            )
        elif ep.complete:
            for b in ep.budgets:
                if b.ok is None:
                    lines.append(f"note {ep.name}: {b.key} {b.note}")
        for warning in ep.warnings:
            lines.append(f"warn {ep.name}: {warning}")
    lines += reprice_lines(report)
    lines += [f"note: {note}" for note in report.notes]
    return safe_lines(lines)


def reprice_lines(report: Report) -> list[str]:
    """--token-budget-reprice: one line per endpoint, then the tokenizer caveat when an
    input figure is estimated (plain text: each renderer makes it safe for its sink)."""
    from pytest_tokenbudget.measure.reprice import TOKENIZER_CAVEAT

    repriced = [(ep.name, ep.reprice) for ep in report.endpoints if ep.reprice]
    lines = [reprice_line(name, r) for name, r in repriced]
    if any(not r.input_exact for _, r in repriced):
        lines.append(f"note: {TOKENIZER_CAVEAT}")
    return lines


def reprice_line(name: str, reprice: Reprice) -> str:
    """`chat_reply on claude-haiku-4-5: $0.0012/request, $72/month (input estimated: same
    tokens; output as recorded)`, as plain text (each renderer escapes it for its sink)."""
    figures = [f"{fmt.usd(reprice.cost_per_request_usd)}/request"]
    if reprice.monthly_cost_usd is not None:
        figures.append(f"{fmt.usd(reprice.monthly_cost_usd)}/month")
    model = reprice.model
    source = f"input counted for {model}" if reprice.input_exact else "input estimated: same tokens"
    return f"{name} on {model}: {', '.join(figures)} ({source}; output {reprice.output})"


def _failure_lines(ep: EndpointReport, config: str) -> list[str]:
    lines = []
    for failure in ep.failures:
        if failure.kind == CASES:
            lines.append(f"FAIL {ep.name}: {failure.message}")
            lines += [f"     {line}" for line in cause_lines(ep.unmeasured)]
        elif failure.kind == PROBLEM:
            lines.append(f"FAIL {ep.name}: {failure.message}")
    for b in ep.budgets:
        if b.ok is False:
            m = facts(b.metric)
            lines.append(
                f"FAIL {ep.name}: {b.metric} = {m.show(b.actual)} breaks {b.key} "
                f"{m.show(b.limit)} ({config}:{b.line})"
            )
            if b.drivers:
                lines.append(f"     driven by cases: {', '.join(b.drivers)}")
    for r in ep.regressions or ():
        m = facts(r.metric)
        was = f" ({m.show(r.base)} on the baseline" + (
            f", {r.pct:+.1f}%)" if r.pct is not None else ", from 0)"
        )
        where = f" ({config}:{r.line})" if r.line else ""
        lines.append(
            f"FAIL {ep.name}: {r.metric} = {m.show(r.head)}{was} got worse by more than the "
            f"{r.gate_pct:g}% regression gate{where}"
        )
        if r.drivers:
            lines.append(f"     driven by cases: {', '.join(r.drivers)}")
    return lines


def render_verdict(report: Report, *, written: bool = True) -> str:
    """The last line of the summary: the run's verdict, and what broke it."""
    if report.status != FAIL and written:
        return safe_line(f"token budget: PASS: {report.headline}")
    named = [f"{ep.name}: {ep.headline}" for ep in report.failed_endpoints[:NAMED_IN_VERDICT]]
    more = len(report.failed_endpoints) - NAMED_IN_VERDICT
    if more > 0:
        named.append(f"{more} more")
    headline = report.headline if report.status == FAIL else ""
    if not written:
        headline = "; ".join(filter(None, [headline, "the report could not be written"]))
    return safe_line(
        f"token budget: FAIL: {headline}" + (f" — {'; '.join(named)}" if named else "")
    )


def render_cache_findings(report: Report) -> list[str]:
    """One line per prompt-cache finding, under the budgets."""
    lines = []
    for f in report.findings:
        cases = ", ".join(f.cases[:5]) + (" ..." if len(f.cases) > 5 else "")
        fix = f" Fix: {f.fix}." if f.fix else ""
        lines.append(
            f"{f.level} {f.code} {f.endpoint} {f.where}: {f.message} (cases: {cases}).{fix}"
        )
    return safe_lines(lines)
