"""report.html: the report as one page a person opens from a CI artifact, offline.

In: the run's Report (report/model.py: every verdict, and the per-call token lists and
per-tier costs report.json leaves out) and the baseline report when one was given.
Out: one HTML text with its styles, its one script and every chart (SVG written here)
inline. Its Content-Security-Policy allows nothing else, so a remote
script, style, font or image cannot creep in and work by accident. Every value from the
report, the config or a baseline is html.escape'd, in text and in attributes alike;
the page embeds no data in its script.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget import formatting as fmt
from pytest_tokenbudget.cache.finding import CHECKLIST_CODES
from pytest_tokenbudget.measure.metrics import label, show
from pytest_tokenbudget.measure.metrics import metric as metric_facts
from pytest_tokenbudget.report.diff_model import CHANGED
from pytest_tokenbudget.report.html_charts import anatomy_figure, costs_figure, distribution_figure
from pytest_tokenbudget.report.model import (
    CacheFigures,
    CaseFigures,
    EndpointReport,
    PromptCacheFinding,
    Report,
    Value,
)
from pytest_tokenbudget.report.reader import NOT_RUN
from pytest_tokenbudget.report.table import cases_cell
from pytest_tokenbudget.report.why import endpoint_why

if TYPE_CHECKING:
    from pytest_tokenbudget.report.diff_model import EndpointDiff

_HERE = Path(__file__).parent
STATUS = {"pass": "pass", "fail": "fail", "not-run": "not run"}


def render_html(report: Report, *, baseline: Report | None = None) -> str:
    style = (_HERE / "html_report.css").read_text(encoding="utf-8")
    script = (_HERE / "html_report.js").read_text(encoding="utf-8")
    base_endpoints = {ep.name: ep for ep in baseline.endpoints} if baseline is not None else {}
    gate = {e.name: e for e in report.diff.endpoints} if report.diff is not None else {}
    findings = report.findings
    names = {ep.name for ep in report.endpoints}
    sections = [
        _endpoint(
            i,
            ep,
            base_endpoints.get(ep.name),
            gate.get(ep.name),
            [f for f in findings if f.endpoint == ep.name],
        )
        for i, ep in enumerate(report.endpoints)
    ]
    stray = [f for f in findings if f.endpoint not in names]
    if stray:
        sections.append(
            f"<section><h2>Findings of other endpoints</h2>{_findings(stray)}</section>"
        )
    csp = (
        "default-src 'none'; "
        f"style-src '{_sha256(style)}'; script-src '{_sha256(script)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    title = f"Token budget: {report.status}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="color-scheme" content="light dark">',
            f"<title>{escape(title)}</title>",
            f"<style>{style}</style>",
            "</head>",
            "<body>",
            "<main>",
            _header(report, baseline),
            *sections,
            "</main>",
            f"<script>{script}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


# -- page parts -------------------------------------------------------------------------
def _badge(status: str) -> str:
    return (
        f'<span class="badge status-{escape(status)}">{STATUS.get(status, escape(status))}</span>'
    )


def _header(report: Report, baseline: Report | None) -> str:
    totals = report.totals
    monthly = (
        f"projected {fmt.usd(totals.monthly_cost_usd)} a month"
        if totals.monthly_cost_usd is not None or all(ep.complete for ep in report.endpoints)
        else "no monthly projection (not every case was measured)"
    )
    complete = all(ep.complete for ep in report.endpoints)
    facts = [
        f"{totals.calls:,} calls",
        f"{fmt.usd(totals.cost_usd)} for this run"
        if totals.cost_usd is not None or complete
        else "no total cost (not every case was measured)",
        monthly,
        f"prices: {escape(report.table_date)}",
        f"percentiles: {escape(report.percentile_method)}",
    ]
    if baseline is not None:
        facts.append("baseline overlaid (dotted)")
    nav = " ".join(
        f'<a href="#endpoint-{i}">{escape(ep.name)}</a>' for i, ep in enumerate(report.endpoints)
    )
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in report.notes)
    return (
        '<header class="run">'
        f"<h1>Token budget {_badge(report.status)}</h1>"
        f'<p><strong data-role="headline">{escape(report.headline)}</strong> · '
        f"{' · '.join(facts)}</p>"
        f"{_what_failed(report)}"
        f'<p class="muted">config {escape(report.config)}</p>'
        f"{notes}"
        f'<nav class="endpoints">{nav}</nav>'
        f"{_overview(report.endpoints)}"
        "</header>"
    )


def _what_failed(report: Report) -> str:
    """Every failure of the run, worst first per endpoint, then each fix once."""
    if not report.failures:
        return ""
    index = {ep.name: i for i, ep in enumerate(report.endpoints)}
    items = []
    for f in report.failures:
        where = (
            f'<a href="#endpoint-{index[f.endpoint]}">{escape(f.endpoint)}</a>: '
            if f.endpoint in index
            else ""
        )
        items.append(
            f'<li data-kind="{escape(f.kind)}">{where}{escape(f.message)}'
            + (f' <span class="muted">(line {f.line})</span>' if f.line else "")
            + "</li>"
        )
    fixes = "".join(
        f'<p class="fix">Fix: {escape(fix.what)}:</p><pre><code>{escape(fix.command)}</code></pre>'
        for fix in report.fixes
    )
    return f'<h2>What failed</h2><ul class="problems failures">{"".join(items)}</ul>{fixes}'


def _overview(endpoints: Sequence[EndpointReport]) -> str:
    head = "".join(
        f'<th class="{"num" if n else ""}">{escape(h)}</th>'
        for h, n in (
            ("endpoint", False),
            ("status", False),
            ("calls", True),
            ("cases", True),
            ("p95 in", True),
            ("p95 out", True),
            ("escalation", True),
            ("cache hit", True),
            ("$/request", True),
            ("$/month", True),
        )
    )
    rows = []
    for i, ep in enumerate(endpoints):
        cells = [fmt.tokens(ep.calls), escape(cases_cell(ep)), *fmt.summary_cells(dict(ep.metrics))]
        rows.append(
            f'<tr><td><a href="#endpoint-{i}">{escape(ep.name)}</a></td>'
            f"<td>{_badge(ep.status)}</td>"
            + "".join(f'<td class="num">{c}</td>' for c in cells)
            + "</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _endpoint(
    index: int,
    ep: EndpointReport,
    base: EndpointReport | None,
    gate: EndpointDiff | None,
    findings: list[PromptCacheFinding],
) -> str:
    line = f' <span class="muted">line {ep.line} of the config</span>' if ep.line else ""
    out = [
        f'<section class="endpoint" id="endpoint-{index}" data-endpoint="{escape(ep.name)}">',
        f'<div class="endpoint-head"><h2>{escape(ep.name)}</h2>{_badge(ep.status)}{line}</div>',
    ]
    if ep.headline:
        out.append(
            f'<p class="headline" data-role="headline"><strong>{escape(ep.headline)}</strong></p>'
        )
    if gate is not None and gate.change == CHANGED:
        why = endpoint_why(gate)
        if why:  # what moved against the baseline, first: the parts, then the dollars
            out.append(f'<p class="why" data-role="why">Against the baseline: {escape(why)}</p>')
    if ep.all_problems:
        items = "".join(f"<li>{_text(p)}</li>" for p in ep.all_problems)
        out.append(f'<ul class="problems">{items}</ul>')
    if ep.warnings:
        items = "".join(f"<li>{_text(w)}</li>" for w in ep.warnings)
        out.append(f'<ul class="warnings">{items}</ul>')
    if ep.status == NOT_RUN:
        out.append('<p class="note">Not run: no test of this endpoint ran (deselected).</p>')
    elif not ep.complete:
        out.append(_unmeasured(ep))
    elif not ep.measured or ep.charts is None:
        out.append('<p class="note">No statistics: see the problems above.</p>')
    else:
        base_metrics: Mapping[str, Value] = base.metrics if base is not None else {}
        if gate is not None:
            out.append(_gate(gate, ep))
        out.append(_budgets(ep, base_metrics if base is not None else None))
        charts = [
            distribution_figure(ep, side, values, base_metrics.get(f"{side}_tokens_p95"))
            for side, values in (
                ("input", ep.charts.prompt_tokens),
                ("output", ep.charts.output_tokens),
            )
        ]
        out.append(f'<div class="charts">{"".join(charts)}</div>')
        out.append(costs_figure(ep))
        out.append(anatomy_figure(ep, base))
        if ep.cache:
            out.append(_cache(ep.cache))
    cache = [f for f in findings if f.code not in CHECKLIST_CODES]
    if cache:
        out.append("<h3>Prompt-cache findings</h3>" + _findings(cache))
    checklist = [f for f in findings if f.code in CHECKLIST_CODES]
    if checklist:
        out.append("<h3>Cost checklist</h3>" + _findings(checklist))
    if ep.per_case:
        out.append(_cases(ep))
    out.append("</section>")
    return "\n".join(out)


def _unmeasured(ep: EndpointReport) -> str:
    """The cases that could not be measured, and why; what the others measured is partial."""
    rows = "".join(
        f'<tr data-case="{escape(c.case)}" data-kind="{escape(c.kind)}"><td>{escape(c.case)}</td>'
        f"<td>{escape(c.kind)}</td><td>{escape(c.message)}</td>"
        f"<td><code>{escape(c.test)}</code></td></tr>"
        for c in ep.unmeasured
    )
    measured = ep.cases - len(ep.unmeasured)
    partial = ""
    if ep.partial_metrics:
        cells = " · ".join(
            f"{escape(label(k))} {show(k, v)}"
            for k, v in ep.partial_metrics.items()
            if k in fmt.SUMMARY_METRICS and v is not None
        )
        partial = (
            f'<p class="note" data-role="partial">The {measured:,} measured case'
            f"{'s' if measured != 1 else ''} alone (partial, not the endpoint's figures; "
            f"no budget is checked on them and no monthly cost projected): {cells}</p>"
        )
    return (
        f"<h3>Cases not measured ({len(ep.unmeasured):,} of {ep.cases:,})</h3>"
        '<table class="unmeasured"><thead><tr><th>case</th><th>why</th><th>detail</th>'
        f"<th>test</th></tr></thead><tbody>{rows}</tbody></table>{partial}"
    )


def _gate(gate: EndpointDiff, ep: EndpointReport) -> str:
    """The regression gate: each metric that moved against the baseline, and its verdict."""
    rows = []
    for m in gate.metrics:
        if not (m.changed or m.status != "ok"):
            continue
        facts = metric_facts(m.metric)
        change = facts.show_delta(m.delta)
        if m.delta and m.pct is not None:
            change += f" ({m.pct:+.1f}%)"
        verdict = {"ok": "ok", "warn": "warn", "regression": "regression", "budget": "over budget"}
        css = ' class="broken"' if m.status in ("regression", "budget") else ""
        rows.append(
            f'<tr{css} data-metric="{escape(m.metric)}" data-status="{m.status}">'
            f"<td>{escape(facts.label)}</td>"
            f'<td class="num">{facts.show(m.base)}</td><td class="num">{facts.show(m.head)}</td>'
            f'<td class="num">{escape(change)}</td><td>{escape(m.trend)}</td>'
            f"<td>{verdict.get(m.status, escape(m.status))}</td></tr>"
        )
    gate_pct = (
        f"fails a metric that gets worse by more than {gate.max_regression_pct:g}% over the baseline"
        if gate.max_regression_pct is not None
        else "no regression gate set (--token-budget-max-regression): changes shown, none gated"
    )
    if not rows:
        body = '<p class="note">No metric changed against the baseline.</p>'
    else:
        body = (
            '<table class="gate"><thead><tr><th>metric</th><th class="num">baseline</th>'
            '<th class="num">this run</th><th class="num">change</th><th>trend</th>'
            f"<th>verdict</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return f'<h3>Regression gate</h3><p class="note">{escape(gate_pct)}.</p>{body}'


def _text(text: str) -> str:
    """Messages may span lines (a pricing: snippet): keep their shape."""
    lines = str(text).split("\n")
    if len(lines) == 1:
        return escape(lines[0])
    return escape(lines[0]) + "<pre><code>" + escape("\n".join(lines[1:])) + "</code></pre>"


def _budgets(ep: EndpointReport, base_metrics: Mapping[str, Value] | None) -> str:
    if not ep.budgets:
        return ""
    titles = ["limit", "actual"] + (["baseline"] if base_metrics is not None else [])
    head = "<th>budget</th><th>line</th>" + "".join(f'<th class="num">{t}</th>' for t in titles)
    head += "<th>verdict</th>"
    rows = []
    for b in ep.budgets:
        values = [b.limit, b.actual]
        if base_metrics is not None:
            values.append(base_metrics.get(b.metric))
        verdict = {True: "ok", False: "broken", None: "not checked"}[b.ok]
        if b.note:
            verdict += f" ({escape(b.note)})"
        if b.drivers:
            verdict += " — driven by " + ", ".join(escape(d) for d in b.drivers)
        css = ' class="broken"' if b.ok is False else ""
        rows.append(
            f"<tr{css}><td><code>{escape(b.key)}</code></td>"
            f'<td class="num">{b.line or ""}</td>'
            + "".join(f'<td class="num">{show(b.metric, v)}</td>' for v in values)
            + f"<td>{verdict}</td></tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# -- tables -----------------------------------------------------------------------------
def _cache(cache: CacheFigures) -> str:
    keys = (
        ("calls", "calls"),
        ("prompt_tokens", "prompt tokens"),
        ("read_tokens", "cache reads"),
        ("write_5m_tokens", "writes 5 min"),
        ("write_1h_tokens", "writes 1 h"),
    )
    head = "<th></th>" + "".join(f'<th class="num">{h}</th>' for _, h in keys)
    head += '<th class="num">hit rate</th>'
    rows = []
    for kind, figures in (("recorded", cache.recorded), ("predicted", cache.predicted)):
        if not figures:
            continue
        cells = "".join(f'<td class="num">{fmt.tokens(figures.get(k))}</td>' for k, _ in keys)
        hit_rate = fmt.rate(figures.get("hit_rate"))
        rows.append(f'<tr><td>{kind}</td>{cells}<td class="num">{hit_rate}</td></tr>')
    checks = cache.checks
    note = f"min_cache_hit_rate checks the {escape(checks)} figures." if checks else ""
    why = (  # recorded and predicted differ: never without saying why
        f'<p class="note" data-role="cache-note">{escape(cache.note)}.</p>' if cache.note else ""
    )
    return (
        "<h3>Prompt cache</h3>"
        f'<table class="cache"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
        f'</table>{why}<p class="note">{note}</p>'
    )


def _findings(findings: Iterable[PromptCacheFinding]) -> str:
    items = []
    for f in findings:
        level, code, where = escape(f.level), escape(f.code), escape(f.where)
        cases = ", ".join(escape(c) for c in f.cases)
        items.append(
            f'<li data-code="{code}"><span class="badge level-{level}">{level}</span> '
            f"<code>{code}</code> at <code>{where}</code>: {escape(f.message)}"
            + (f"<br>Fix: {escape(f.fix)}" if f.fix else "")
            + (f'<br><span class="muted">cases: {cases}</span>' if cases else "")
            + "</li>"
        )
    return f'<ul class="findings">{"".join(items)}</ul>'


CASE_COLUMNS = (
    ("case", "text"),
    ("calls", "num"),
    ("input tokens", "num"),
    ("output tokens", "num"),
    ("cost", "num"),
    ("models", "text"),
    ("escalated", "text"),
)


def _cases(ep: EndpointReport) -> str:
    """The cases, costliest first; the page's script sorts them by any column."""
    per_case = ep.per_case
    drivers = {d for b in ep.budgets if b.ok is False for d in b.drivers}
    no_call = set(ep.no_call_cases)
    counted = ep.cases_without_calls == "count"
    no_call_badge = (
        ' <span class="badge status-not-run" data-role="no-call" title="'
        + ("counted as a $0 request" if counted else "left out of escalation and $ per request")
        + '">no API call</span>'
    )
    head = "".join(
        f'<th class="{"num" if kind == "num" else ""}"'
        + (' aria-sort="descending"' if title == "cost" else "")
        + f'><button type="button" data-column="{i}" data-type="{kind}">{title}</button></th>'
        for i, (title, kind) in enumerate(CASE_COLUMNS)
    )

    def costliest(item: tuple[str, CaseFigures]) -> tuple[bool, float]:
        cost = item[1].cost_usd
        return (cost is None, -(cost or 0))

    def cell(value: Any, shown: str, css: str = "num") -> str:
        sort_value = "" if value is None else escape(str(value))
        return f'<td class="{css}" data-value="{sort_value}">{shown}</td>'

    rows = []
    for case_id, c in sorted(per_case.items(), key=costliest):
        models = ", ".join(c.models)
        escalated = "yes" if c.escalated else "no"
        driver = ' <span class="badge status-fail">driver</span>' if case_id in drivers else ""
        if case_id in no_call:
            driver += no_call_badge
        rows.append(
            f'<tr data-case="{escape(case_id)}">'
            + cell(case_id, escape(case_id) + driver, "")
            + cell(c.calls, fmt.tokens(c.calls))
            + cell(c.input_tokens, fmt.tokens(c.input_tokens))
            + cell(c.output_tokens, fmt.tokens(c.output_tokens))
            + cell(c.cost_usd, fmt.usd(c.cost_usd))
            + cell(models, escape(models), "")
            + cell(escalated, "yes" if escalated == "yes" else "", "")
            + "</tr>"
        )
    heading = f"Cases ({len(per_case):,}"
    if no_call:
        heading += f", {len(no_call):,} without an API call"
    return (
        f"<h3>{heading})</h3>"
        '<div class="cases"><table class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
