"""report.md: the report as a pull-request comment.

Every value in it that a user, a response or a report.json wrote (endpoint names, case
ids, models, messages) goes through `escape` or `code`: it reads as the text it is and
never becomes markup, a link, a mention, an HTML comment (our marker or run stamp), a
new table cell or a new line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_tokenbudget import formatting as fmt
from pytest_tokenbudget.cache.finding import CHECKLIST_CODES
from pytest_tokenbudget.measure.anatomy import PART_METRICS
from pytest_tokenbudget.measure.metrics import METRICS, PERCENTILE_LABELS, label, show
from pytest_tokenbudget.measure.metrics import metric as facts
from pytest_tokenbudget.plain_text import controls_shown, one_line
from pytest_tokenbudget.report.diff_model import (
    ADDED,
    BUDGET,
    NOT_RUN,
    OK,
    REGRESSION,
    REMOVED,
    WARN,
    CaseDelta,
    Diff,
    EndpointDiff,
    MetricDiff,
    Value,
)
from pytest_tokenbudget.report.model import PromptCacheFinding, Report
from pytest_tokenbudget.report.table import cases_cell
from pytest_tokenbudget.report.why import where_the_tokens_go, why_lines

MARKER = "<!-- pytest-tokenbudget -->"
# Markdown's punctuation, `&` (an entity such as &#64; would decode to a mention) and `$`
# (GitHub's math): each written with a backslash, which CommonMark shows as the character.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&$])")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# GitHub links @user and #123 in the rendered text, where a backslash no longer is: a
# zero-width space after the sign breaks the link and reads the same.
_MENTION = re.compile(r"(?<![A-Za-z0-9_])@(?=[A-Za-z0-9])|#(?=[0-9])")
_AUTOLINK = re.compile(r"(:)(?=//)|(?<=www)(\.)", re.IGNORECASE)  # https://x, www.x
_NOT_IN_CODE = re.compile(r"[`|<]|##\[")
ZERO_WIDTH_SPACE = "\u200b"

STATUS = {"pass": "✅ pass", "fail": "❌ fail", "not-run": "⏭ not run"}


def escape(text: object) -> str:
    """Case ids and model names come from users and responses: never let them become markup."""
    text = controls_shown(_LINE_BREAK.sub(" ", str(text)))
    text = _MENTION.sub(lambda m: m.group() + ZERO_WIDTH_SPACE, text)
    text = _SPECIAL.sub(r"\\\1", text)
    return _AUTOLINK.sub(lambda m: "\\" + m.group(), text)


def code(text: object) -> str:
    """A value as inline code, when a code span can show it as it is; else as `escape`d text
    (a backtick would end the span, a `|` the table cell, `<!--` in a span is raw HTML
    comment text that could pass for our marker, `##[` a command in a CI log)."""
    text = str(text)
    if not text or _NOT_IN_CODE.search(text) or controls_shown(text) != text:
        return escape(text)
    return f"`{text}`"


def fenced(text: str) -> list[str]:
    """A one-line code block whose fence no backtick run in the text can close, and in
    which no `<!--` can pass for our marker or run stamp."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, one_line(text).replace("<!--", "<!" + ZERO_WIDTH_SPACE + "--"), fence]


def render_markdown(report: Report) -> str:
    """report.md: the verdict and what broke it first, then the figures (with a baseline,
    the comparison with it); everything from the run's one Report."""
    out = [MARKER, "## Token budget"]
    if report.diff is not None:
        out += [_headline(report.diff), "", *_why_section(report.diff)]
    out += [_report_verdict(report), ""]
    out += _failures(report)
    if report.diff is not None:
        out += _reprice_section(report)
        out += _diff_body(report.diff, report.findings, _report_notes(report))
        return cap_markdown("\n".join(out))
    out += [
        "| Endpoint | Status | Calls | Cases | p95 in | p95 out | Escalation | Cache hit | $/request | $/month |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for ep in report.endpoints:
        out.append(
            f"| {escape(ep.name)} | {STATUS[ep.status]} | {ep.calls} | {cases_cell(ep)} "
            f"| {' | '.join(fmt.summary_cells(dict(ep.metrics)))} |"
        )
    broken = [(ep.name, b) for ep in report.endpoints for b in ep.budgets if b.ok is False]
    if broken:
        out += ["", "### Broken budgets", ""]
        for name, b in broken:
            drivers = ", ".join(code(d) for d in b.drivers)
            out.append(
                f"- **{escape(name)}** {code(b.key)}: {show(b.metric, b.actual)} "
                f"{'below the minimum' if b.kind == 'min' else 'over the budget'} "
                f"of {show(b.metric, b.limit)} "
                f"(line {b.line})" + (f" — driven by {drivers}" if drivers else "")
            )
    out += _anatomy_section(report)
    out += _reprice_section(report)
    out += cache_section(report.findings)
    notes = _report_notes(report)
    if notes:
        out += ["", "### Notes", ""] + notes
    out += [
        "",
        (
            f"<sub>Percentiles: {escape(report.percentile_method)}. "
            f"Prices: {escape(report.table_date)}"
            f"{escape(report.overrides_note)}. "
            "Generated by pytest-tokenbudget.</sub>"
        ),
        "",
    ]
    return "\n".join(out)


def _anatomy_section(report: Report) -> list[str]:
    """Where each endpoint's tokens go: its parts by mean tokens per call, largest first."""
    lines = [
        f"- **{escape(ep.name)}**: {_plain(where_the_tokens_go(ep.anatomy))}"
        + (
            f" (over {ep.anatomy.calls:,} of {ep.calls:,} calls)"
            if ep.anatomy.calls < ep.calls
            else ""
        )
        for ep in report.endpoints
        if ep.anatomy is not None and ep.anatomy.calls
    ]
    if not lines:
        return []
    estimated = any(
        not f.exact for ep in report.endpoints if ep.anatomy for f in ep.anatomy.input.values()
    )
    note = "Mean tokens per call by part, largest first" + (
        "; \\~ estimated from the part's own text (count mode counts it)" if estimated else ""
    )
    return ["", "### Where the tokens go", "", *lines, "", f"<sub>{note}.</sub>"]


def _plain(text: str) -> str:
    """Text report/why.py wrote (figures, part and metric names): only a tilde (GitHub
    strikes through between two) or a `<` (`<1%`) could become markup."""
    return text.replace("~", "\\~").replace("<", "\\<")


def _why_section(diff: Diff) -> list[str]:
    """Why, first: one line per changed endpoint naming the parts that moved."""
    lines, more = why_lines(diff)
    out = [f"- **{escape(why.endpoint)}**: {_plain(why.text)}" for why in lines]
    if more:
        out.append(f"- … and {_plural(more, 'more endpoint')} changed: see the table")
    return [*out, ""] if out else []


def _reprice_section(report: Report) -> list[str]:
    """--token-budget-reprice: what each endpoint would cost on the other model."""
    from pytest_tokenbudget.report.table import reprice_lines

    lines = reprice_lines(report)
    if not lines:
        return []
    return ["", "### On another model", ""] + [f"- {escape(line)}" for line in lines] + [""]


def _report_verdict(report: Report) -> str:
    """The verdict line: the report's own, then (with a baseline) what the comparison found."""
    if report.status == "fail":
        line = f"❌ **{escape(report.headline)}**"
    else:
        line = f"✅ **{escape(report.headline)}**"
    if report.diff is not None:
        line = " · ".join([line, *_diff_counts(report.diff)])
    else:
        monthly = report.totals.monthly_cost_usd
        if monthly is not None:
            line += f" · projected monthly cost **{fmt.usd(monthly)}**"
        elif any(not ep.complete for ep in report.endpoints):
            line += " · monthly cost not projected: not every case was measured"
    return line


def _failures(report: Report) -> list[str]:
    """One line per failed endpoint (its headline), the run's own failures, and each fix once."""
    out = []
    for ep in report.failed_endpoints:
        more = len(ep.failures) - 1
        rest = f" (and {more} more below)" if more > 0 else ""
        out.append(f"- ❌ **{escape(ep.name)}**: {escape(ep.headline or 'failed')}{rest}")
    out += [f"- ❌ {escape(f.message)}" for f in report.failures if f.endpoint is None]
    if out:
        out.append("")
    for fix in report.fixes:
        out += [f"**Fix:** {escape(fix.what)}:", "", *fenced(fix.command), ""]
    return out


def _report_notes(report: Report) -> list[str]:
    notes = [
        f"- {escape(ep.name)}: {escape(text)}"
        for ep in report.endpoints
        for text in (*ep.all_problems, *ep.warnings)
    ]
    return notes + [f"- {escape(note)}" for note in report.notes]


# -- the diff against a baseline: the pull-request comment -----------------------------
MAX_COMMENT_CHARS = 60_000  # GitHub rejects comments over 65,536 characters
CUT_NOTE = (
    "*This comment was cut at {limit:,} characters (GitHub's limit is 65,536): the full "
    "comparison is the `diff` section of report.json.*"
)
DIFF_STATUS = {
    OK: "✅ ok",
    WARN: "⚠️ warn",
    REGRESSION: "🔺 regression",
    BUDGET: "❌ over budget",
}
CHANGE_STATUS = {ADDED: "🆕 new endpoint", REMOVED: "➖ removed", NOT_RUN: "⏭ not run"}
_FIELDS = {"input_tokens": "input tokens", "output_tokens": "output tokens", "cost_usd": "cost"}


def metric_label(metric: str) -> str:
    """`input_tokens_p95` reads as "input tokens p95" (measure/metrics.py); a metric this version
    does not know reads as its key from report.json, escaped."""
    return label(metric) if metric in METRICS else escape(label(metric))


def _signed(metric: str, delta: Value) -> str:
    return facts(metric).show_delta(delta)


def _signed_pct(pct: float, *, short: bool = False) -> str:
    if short and abs(pct) >= 10:
        return f"{pct:+.0f}%"
    return f"{pct:+.1f}%"


def _change(metric: str, m: MetricDiff) -> str:
    if m.delta is None:
        return "—"
    if m.delta == 0:
        return "0"
    text = _signed(metric, m.delta)
    if m.pct is not None:
        return f"{text} ({_signed_pct(m.pct)})"
    return f"{text} (from 0)"


def _budget_cell(metric: str, m: MetricDiff) -> str:
    if m.budget is None:
        return "—"
    return ("≥ " if m.budget.kind == "min" else "≤ ") + fmt.metric(metric, m.budget.limit)


def _status_cell(endpoint: EndpointDiff, m: MetricDiff) -> str:
    if m.status != "ok" or endpoint.change not in CHANGE_STATUS:
        if m.status == "ok" and m.trend == "better":
            return "✅ better"
        return DIFF_STATUS[m.status]
    return CHANGE_STATUS[endpoint.change]


def _shown(endpoint: EndpointDiff, m: MetricDiff) -> bool:
    """Rows in the open table: what needs attention, and the p95s and budgeted metrics that
    moved. The other percentiles (their p95 speaks for them when it is shown), unbudgeted
    figures (the dollars are in the headline and the why lines) and what did not move are
    folded away."""
    if m.status != OK:
        return m.budget is not None or not _beside_its_p95(endpoint, m)
    if endpoint.change in (ADDED, REMOVED):
        return m.budget is not None or m.metric == "monthly_cost_usd"
    if endpoint.change == NOT_RUN:
        return m.metric == "monthly_cost_usd"
    return m.changed and (m.budget is not None or m.metric.endswith("_p95"))


def _beside_its_p95(endpoint: EndpointDiff, m: MetricDiff) -> bool:
    """An unbudgeted p50, p90, p99 or max whose side's p95 is in the open table."""
    if not _percentile(m.metric) or m.metric.endswith("_p95"):
        return False
    p95 = m.metric.rsplit("_", 1)[0] + "_p95"
    return any(x.metric == p95 and _shown(endpoint, x) for x in endpoint.metrics)


def _table(rows: list[tuple[EndpointDiff, MetricDiff]]) -> list[str]:
    out = [
        "| Endpoint | Metric | Budget | Base | Head | Change | Status |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    previous = None
    for endpoint, m in rows:
        name = "" if endpoint.name == previous else f"**{escape(endpoint.name)}**"
        previous = endpoint.name
        out.append(
            f"| {name} | {metric_label(m.metric)} | {_budget_cell(m.metric, m)} "
            f"| {fmt.metric(m.metric, m.base)} | {fmt.metric(m.metric, m.head)} "
            f"| {_change(m.metric, m)} | {_status_cell(endpoint, m)} |"
        )
    return out


def _headline(diff: Diff) -> str:
    base, head = diff.monthly_base, diff.monthly_head
    if base is None and head is None:
        return "Projected monthly cost: not projected (set `requests_per_day` on an endpoint)"
    if base is None:
        return f"Projected monthly cost **{fmt.usd(head)}** (the baseline has no projection)"
    if head is None:
        return f"Projected monthly cost: not projected in this change (baseline {fmt.usd(base)})"
    delta = diff.monthly_delta
    if delta == 0:
        return f"Projected monthly cost: **no change** ({fmt.usd(head)})"
    pct = diff.monthly_pct
    change = _signed("monthly_cost_usd", delta) + (
        f" ({_signed_pct(pct, short=True)})" if pct is not None else " (from $0)"
    )
    return f"Projected monthly cost **{change}**: {fmt.usd(base)} → {fmt.usd(head)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _diff_counts(diff: Diff) -> list[str]:
    """What the comparison found: broken budgets, regressions past the gate, warnings."""
    broken = len(diff.with_status(BUDGET))
    regressions = len(diff.with_status(REGRESSION))
    warnings = len(diff.with_status(WARN))
    parts = []
    if broken:
        parts.append(f"❌ **{_plural(broken, 'broken budget')}**")
    if regressions:
        parts.append(f"🔺 **{_plural(regressions, 'regression')}** over the gate")
    if warnings:
        parts.append(f"⚠️ {_plural(warnings, 'warning')}")
    return parts


def _verdict(diff: Diff) -> str:
    parts = _diff_counts(diff)
    failing = [e for e in diff.endpoints if e.failed]
    if failing and not diff.with_status(BUDGET):
        parts.append(f"❌ **{_plural(len(failing), 'endpoint')} failed**")
    if parts:
        return " · ".join(parts)
    measured = [e for e in diff.endpoints if e.change not in (REMOVED, NOT_RUN)]
    return f"✅ **All {_plural(len(measured), 'endpoint')} within budget**, no regression"


def _driver(metric: str, d: CaseDelta) -> str:
    what = _FIELDS[d.field]
    change = _signed(d.field, d.delta) + f" {what}"
    if metric == "escalation_rate":
        change = f"now escalates, cost {_signed(d.field, d.delta)}"
    if d.new:
        return f"{escape(d.case_id)} (new case): {change}"
    before, after = fmt.metric(d.field, d.base), fmt.metric(d.field, d.head)
    return f"{escape(d.case_id)}: {change} ({before} → {after})"


def _drivers_section(diff: Diff) -> list[str]:
    """One line per endpoint and set of cases, for the rows of the open table: p95 and the
    budgeted metrics usually share their drivers."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for endpoint, m in diff.rows():
        if m.status == OK or not _shown(endpoint, m):  # a folded p99: its p95 says it
            continue
        if m.metric in PART_METRICS:  # a case's figures have no parts: the why line says it
            continue
        if m.drivers:
            cases = tuple(_driver(m.metric, d) for d in m.drivers)
        elif m.budget is not None and m.budget.drivers:
            cases = (", ".join(escape(c) for c in m.budget.drivers[:3]) + " (worst cases)",)
        else:
            continue
        groups.setdefault((endpoint.name, cases), []).append(metric_label(m.metric))
    out = []
    for (name, cases), labels in groups.items():
        out.append(f"- **{escape(name)}** · {', '.join(labels)}")
        out += [f"    - {case}" for case in cases]
    return (["", "#### What drives it", ""] + out) if out else []


def _gate_note(diff: Diff) -> str:
    gates = {e.max_regression_pct for e in diff.endpoints if e.max_regression_pct is not None}
    warns = {e.warn_pct for e in diff.endpoints if e.warn_pct is not None}
    if not gates and not warns:
        return "No regression gate (`--token-budget-max-regression`). "
    text = ""
    if gates:
        shown = ", ".join(f"{g:g}%" for g in sorted(gates))
        text += f"Regression gate: {shown} over the baseline"
    if warns:
        shown = ", ".join(f"{w:g}%" for w in sorted(warns))
        text += ("; warn" if text else "Warn") + f" above {shown}"
    return text + ". "


def _folded_summary(folded: list[tuple[EndpointDiff, MetricDiff]]) -> str:
    if all(m.trend == "same" for _, m in folded):
        return _plural(len(folded), "unchanged metric")
    kinds = {
        "other percentiles": any(m.changed and _percentile(m.metric) for _, m in folded),
        "unbudgeted changes": any(m.changed and not _percentile(m.metric) for _, m in folded),
        "unchanged": any(m.trend == "same" for _, m in folded),
        "not measured on both sides": any(not m.changed and m.trend != "same" for _, m in folded),
    }
    listed = [kind for kind, present in kinds.items() if present]
    return _plural(len(folded), "more metric") + f" ({', '.join(listed)})"


def _percentile(metric: str) -> bool:
    return metric.rsplit("_", 1)[-1] in PERCENTILE_LABELS


CACHE_LEVEL = {"error": "❌", "warning": "⚠️", "note": "ℹ️"}
MAX_CACHE_FINDINGS = 20


def cache_section(findings: Sequence[PromptCacheFinding], heading: str = "###") -> list[str]:
    """The findings, each with where and the fix in one sentence: what breaks prompt
    caching, then the cost checklist (cache/checklist.py)."""
    checklist = [f for f in findings if f.code in CHECKLIST_CODES]
    cache = [f for f in findings if f.code not in CHECKLIST_CODES]
    return _findings_section("Prompt cache", cache, heading) + _findings_section(
        "Cost checklist", checklist, heading
    )


def _findings_section(
    title: str, findings: Sequence[PromptCacheFinding], heading: str
) -> list[str]:
    if not findings:
        return []
    out = ["", f"{heading} {title}", ""]
    for f in findings[:MAX_CACHE_FINDINGS]:
        cases = ", ".join(code(c) for c in f.cases[:5])
        more = f" and {len(f.cases) - 5} more" if len(f.cases) > 5 else ""
        fix = f" **Fix:** {escape(f.fix)}." if f.fix else ""
        out.append(
            f"- {CACHE_LEVEL.get(f.level, '')} **{escape(f.endpoint)}** {code(f.where)} "
            f"({escape(f.code)}): {escape(f.message)}.{fix} Cases: {cases}{more}"
        )
    if len(findings) > MAX_CACHE_FINDINGS:
        out.append(f"- … {len(findings) - MAX_CACHE_FINDINGS} more in report.json (`findings`)")
    return out


def render_diff_markdown(diff: Diff, findings: Sequence[PromptCacheFinding] = ()) -> str:
    """The PR comment of `tokenbudget diff`: headline, changed rows, what drives them;
    unchanged rows folded away."""
    notes = [
        f"- {escape(e.name)}: {escape(text)}"
        for e in diff.endpoints
        for text in (*e.problems, *e.warnings)
    ]
    out = [MARKER, "## Token budget", _headline(diff), "", *_why_section(diff), _verdict(diff), ""]
    return cap_markdown("\n".join(out + _diff_body(diff, findings, notes)))


def _diff_body(diff: Diff, findings: Sequence[PromptCacheFinding], notes: list[str]) -> list[str]:
    rows = list(diff.rows())
    shown = [(e, m) for e, m in rows if _shown(e, m)]
    folded = [(e, m) for e, m in rows if not _shown(e, m)]
    out = []
    if shown:
        out += _table(shown)
    elif any(m.changed for _, m in folded):
        out.append("No budgeted metric or p95 changed against the baseline (the rest below).")
    else:
        out.append("No metric changed against the baseline.")
    out += _drivers_section(diff)
    if folded:
        out += [
            "",
            f"<details><summary>{_folded_summary(folded)}</summary>",
            "",
        ]
        out += _table(folded)
        out += ["", "</details>"]
    out += cache_section(findings, heading="####")
    notes = [f"- {escape(n)}" for n in diff.notes] + notes
    if notes:
        out += ["", "#### Notes", ""] + notes
    footer = _gate_note(diff)
    if diff.percentile_method:
        footer += f"Percentiles: {escape(diff.percentile_method)}. "
    if diff.price_table:
        footer += f"Prices: {escape(diff.price_table)}. "
    out += ["", f"<sub>{footer}Generated by pytest-tokenbudget.</sub>", ""]
    return out


def cap_markdown(text: str, limit: int = MAX_COMMENT_CHARS) -> str:
    """Cut at a line boundary below limit, close what is open, and say so."""
    if len(text) <= limit:
        return text
    note = CUT_NOTE.format(limit=limit)
    reserve = len(note) + len("\n\n</details>\n\n\n")
    kept: list[str] = []
    size = 0
    open_details = 0
    for line in text.split("\n"):
        if size + len(line) + 1 > limit - reserve:
            break
        kept.append(line)
        size += len(line) + 1
        open_details += line.count("<details>") - line.count("</details>")
    tail = [""] + ["</details>", ""] * max(open_details, 0) + [note, ""]
    return "\n".join(kept + tail)
