"""report.html's charts: each endpoint's token distributions, costs by tier and input tokens
by part (base beside head), as inline SVG.

Drawn from the typed report (the per-call token lists and per-tier costs travel in it as
`Charts`; report.json leaves them out), with the baseline's p95 and the budgets marked.
Every text in a chart is html.escape'd: the page's Content-Security-Policy allows no
script or style but its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from html import escape
from typing import Any, NamedTuple

from pytest_tokenbudget import formatting as fmt
from pytest_tokenbudget.measure.metrics import number
from pytest_tokenbudget.report.model import BudgetCheck, EndpointReport, PartFigures
from pytest_tokenbudget.report.why import INPUT_NAMES, part_name

# The pricing tiers (pricing.RATE_FIELDS), prompt first, in the order the bars stack them.
TIER_LABELS = {
    "input": "uncached input",
    "cache_write_5m": "cache writes (5 min)",
    "cache_write_1h": "cache writes (1 h)",
    "cache_read": "cache reads",
    "output": "output",
    "web_search": "web searches",  # server tools, billed per use (pricing.COST_TIERS)
}
SIDES = {"input": "Input tokens per call", "output": "Output tokens per call"}
HISTOGRAM_BINS = 40
RUG_LIMIT = 1000  # distinct values drawn one tick each; more would be ink, not information
CHART_WIDTH = 560  # viewBox widths: drawn 1:1 on a laptop, text at 11 px
COST_CHART_WIDTH = 760
ALL_MODELS = "all models"


def nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten: the step a person would put on an axis."""
    if raw <= 0:
        return 1.0
    power: float = 10 ** math.floor(math.log10(raw))  # int ** int: an int from 1 up
    for mult in (1, 2, 5, 10):
        if raw <= mult * power * (1 + 1e-9):
            return mult * power
    return 10 * power


def _axis(top: float, *, ticks: int = 5, integer: bool = True) -> tuple[float, float]:
    """(axis end, tick step) for values from 0 to top, with a little room past top."""
    top = max(top, 1 if integer else 1e-6)
    step = nice_step(top / ticks)
    if integer:
        step = max(step, 1.0)
    return step * math.ceil(top * 1.04 / step), step


def _ticks(end: float, step: float) -> list[float]:
    count = round(end / step)
    return [i * step for i in range(count + 1)]


def _num(value: float) -> str:
    """A coordinate: short, and never in exponent notation."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def distribution_figure(
    ep: EndpointReport, side: str, values: Sequence[int], baseline_p95: Any
) -> str:
    metrics = ep.metrics
    budgets = [b for b in ep.budgets if b.metric.startswith(f"{side}_tokens_")]
    p95 = metrics.get(f"{side}_tokens_p95")
    p95 = int(p95) if p95 is not None else None
    svg = distribution_svg(
        values, endpoint=ep.name, side=side, budgets=budgets, p95=p95, baseline_p95=baseline_p95
    )
    parts = [
        f"{len(values):,} calls",
        f"p50 {fmt.tokens(metrics.get(f'{side}_tokens_p50'))}",
        f"p95 {fmt.tokens(p95)}",
        f"max {fmt.tokens(metrics.get(f'{side}_tokens_max'))}",
    ]
    if budgets:
        parts.append(
            "budget " + ", ".join(f"{_budget_label(b)} {fmt.tokens(b.limit)}" for b in budgets)
        )
    else:
        parts.append("no budget on this side")
    if baseline_p95 is not None:
        parts.append(f"baseline p95 {fmt.tokens(baseline_p95)}")
    return (
        f"<figure><h3>{SIDES[side]}</h3>{svg}<figcaption>{' · '.join(parts)}</figcaption></figure>"
    )


def _budget_label(budget: BudgetCheck) -> str:
    """max_input_tokens_p95 -> p95"""
    return budget.metric.rsplit("_", 1)[-1]


class _Mark(NamedTuple):
    """A vertical line on a distribution: a budget, the p95, the baseline's p95."""

    role: str  # data-role, what tests and readers of the DOM look for
    css: str
    value: float
    label: str
    key: str | None = None  # the budget's key in token_budgets.yml


def distribution_svg(
    values: Sequence[int],
    *,
    endpoint: str,
    side: str,
    budgets: Sequence[BudgetCheck],
    p95: int | None,
    baseline_p95: int | None = None,
) -> str:
    """Histogram of tokens per call on an axis from 0, with a tick per call below it and
    vertical lines for each budget (solid), the p95 (dashed) and the baseline's p95 (dotted).

    The axis starts at 0 so the gap to the budget reads as the headroom it is.
    """
    marks = [
        _Mark(
            "budget", "budget", b.limit, f"budget {_budget_label(b)} {fmt.tokens(b.limit)}", b.key
        )
        for b in budgets
    ]
    if p95 is not None:
        marks.append(_Mark("p95", "p95", p95, f"p95 {fmt.tokens(p95)}"))
    if baseline_p95 is not None:
        text = f"baseline p95 {fmt.tokens(baseline_p95)}"
        marks.append(_Mark("baseline-p95", "baseline", baseline_p95, text))
    width = CHART_WIDTH
    left, right, bottom = 44, 16, 40
    top = 8 + 15 * len(marks)
    plot_h = 120
    height = top + plot_h + bottom
    plot_w = width - left - right
    end, step = _axis(max([*values, *(m.value for m in marks), 1]))
    bin_w = max(nice_step(end / HISTOGRAM_BINS), 1.0)
    counts: dict[int, int] = {}
    for v in values:
        counts[int(v // bin_w)] = counts.get(int(v // bin_w), 0) + 1
    peak = max(counts.values(), default=1)
    lowest_limit = min((b.limit for b in budgets), default=None)

    def x(value: float) -> float:
        return left + plot_w * value / end

    def over(value: float) -> str:
        return " over" if lowest_limit is not None and value > lowest_limit else ""

    base_y = top + plot_h
    label = f"{endpoint}: {SIDES[side].lower()}, {len(values)} calls" + "".join(
        f", {m.label}" for m in marks
    )
    out = [
        (
            f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" '
            f'data-chart="{side}-tokens" data-endpoint="{escape(endpoint)}" '
            f'aria-label="{escape(label)}">'
        ),
        f"<title>{escape(label)}</title>",
    ]
    for frac in (0.5, 1.0):
        y = _num(base_y - plot_h * frac)
        out.append(f'<line class="gridline" x1="{left}" x2="{width - right}" y1="{y}" y2="{y}"/>')
    out.append(f'<text class="axis" x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>')
    out.append(f'<text class="axis" x="{left - 6}" y="{base_y}" text-anchor="end">0</text>')
    out.append(
        f'<text class="axis" x="12" y="{_num(top + plot_h / 2)}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_num(top + plot_h / 2)})">calls</text>'
    )
    for i, n in sorted(counts.items()):
        lo = i * bin_w
        h = plot_h * n / peak
        bw = max(plot_w * bin_w / end - 1, 1.5)
        span = f"{fmt.tokens(lo)}–{fmt.tokens(lo + bin_w - 1)}" if bin_w > 1 else fmt.tokens(lo)
        out.append(
            f'<rect class="bar{over(lo + bin_w - 1)}" data-role="bar" data-count="{n}" '
            f'x="{_num(x(lo))}" y="{_num(base_y - h)}" width="{_num(bw)}" height="{_num(h)}">'
            f"<title>{span} tokens: {n} call{'s' if n != 1 else ''}</title></rect>"
        )
    if not values:
        out.append(
            f'<text class="empty" x="{_num(left + plot_w / 2)}" y="{_num(top + plot_h / 2)}" '
            'text-anchor="middle">no calls measured</text>'
        )
    distinct = sorted(set(values))
    if len(distinct) <= RUG_LIMIT:
        for v in distinct:
            out.append(
                f'<line class="call{over(v)}" data-role="call" x1="{_num(x(v))}" '
                f'x2="{_num(x(v))}" y1="{base_y + 2}" y2="{base_y + 8}"/>'
            )
    out.append(
        f'<line class="axisline" x1="{left}" x2="{width - right}" y1="{base_y}" y2="{base_y}"/>'
    )
    for t in _ticks(end, step):
        out.append(
            f'<text class="axis" x="{_num(x(t))}" y="{base_y + 22}" text-anchor="middle">'
            f"{fmt.tokens(t)}</text>"
        )
    out.append(
        f'<text class="axis" x="{_num(left + plot_w / 2)}" y="{height - 2}" '
        f'text-anchor="middle">tokens per call</text>'
    )
    for row, mark in enumerate(marks):  # one label row each, so labels never overlap
        mx = x(mark.value)
        label_y = 11 + 15 * row
        anchor, dx = ("end", -4) if mx > left + plot_w * 0.6 else ("start", 4)
        key = f' data-key="{escape(mark.key)}"' if mark.key else ""
        out.append(
            f'<line class="{mark.css}" data-role="{mark.role}"{key} '
            f'data-value="{escape(str(mark.value))}" '
            f'x1="{_num(mx)}" x2="{_num(mx)}" y1="{label_y - 9}" y2="{base_y}"/>'
        )
        out.append(
            f'<text class="mark {mark.css}" x="{_num(mx + dx)}" y="{label_y}" '
            f'text-anchor="{anchor}">{escape(mark.label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def costs_figure(ep: EndpointReport) -> str:
    assert ep.charts is not None
    endpoint, tier_costs, cases = ep.name, ep.charts.tier_costs, ep.charts.requests
    unpriced, no_call_cases = ep.charts.unpriced, ep.no_call_cases
    """Over the requests the dollars are over, as cost_per_request_usd's (stats.requests)."""
    out = ["<h3>Cost per request, by tier and model</h3>"]
    if not tier_costs or not cases:
        out.append('<p class="note">No priced call: nothing to split.</p>')
        return "".join(out)
    per_request = {
        model: {tier: cost / cases for tier, cost in tiers.items()}
        for model, tiers in sorted(tier_costs.items(), key=lambda kv: -sum(kv[1].values()))
    }
    rows = list(per_request.items())
    if len(rows) > 1:
        total = {
            tier: sum((t[tier] for t in per_request.values()), Fraction(0)) for tier in TIER_LABELS
        }
        rows.append((ALL_MODELS, total))
    limit = next((b.limit for b in ep.budgets if b.metric == "cost_per_request_usd"), None)
    out.append(cost_svg(endpoint, rows, limit, dict(ep.models)))
    legend = "".join(
        f'<span><span class="swatch tier-{tier}"></span>{text}</span>'
        for tier, text in TIER_LABELS.items()
    )
    out.append(f'<div class="legend">{legend}</div>')
    head = "<th>tier</th>" + "".join(f'<th class="num">{escape(m)}</th>' for m, _ in rows)
    head += '<th class="num">share</th>'
    grand = sum(rows[-1][1].values(), Fraction(0))  # the last row holds every model
    body = []
    for tier, text in TIER_LABELS.items():
        share = fmt.rate(rows[-1][1][tier] / grand) if grand else "—"
        cells = "".join(
            f'<td class="num" data-model="{escape(m)}" data-tier="{tier}" '
            f'data-value="{number("cost_usd", t[tier])}">{fmt.usd(t[tier])}</td>'
            for m, t in rows
        )
        body.append(
            f'<tr><td><span class="swatch tier-{tier}"></span>{text}</td>{cells}'
            f'<td class="num">{share}</td></tr>'
        )
    totals = "".join(
        f'<td class="num"><strong>{fmt.usd(sum(t.values(), Fraction(0)))}</strong></td>'
        for _, t in rows
    )
    body.append(f"<tr><td><strong>per request</strong></td>{totals}<td></td></tr>")
    out.append(
        f'<table class="tiers"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )
    note = f"Dollars over the {cases:,} cases (a request may make several calls)"
    if no_call_cases:
        n = len(no_call_cases)
        if ep.cases_without_calls == "count":
            note += f", {n:,} of them without an API call, counted as $0 requests"
        else:  # exclude
            note = (
                f"Dollars over the {cases:,} cases that made an API call (a request may make "
                f"several calls); {n:,} case{'s' if n != 1 else ''} without one left out"
            )
    if len(rows) > 1:
        note += "; the model rows add up to all models"
    if unpriced:
        note += (
            "; calls to "
            + ", ".join(escape(m) for m in unpriced)
            + " have no price and are left out"
        )
    out.append(f'<p class="note">{note}.</p>')
    return "".join(out)


def cost_svg(
    endpoint: str,
    rows: Sequence[tuple[str, dict[str, Fraction]]],
    limit: float | None,
    calls: dict[str, int],
) -> str:
    """One stacked bar per model (and all models): dollars per request, split by tier,
    with the max_cost_per_request_usd budget as a vertical line across them."""
    width, left, right = COST_CHART_WIDTH, 8, 16
    top = 22 if limit is not None else 6
    row_h, bar_h = 38, 16
    height = top + row_h * len(rows) + 28
    plot_w = width - left - right
    totals = [sum(t.values(), Fraction(0)) for _, t in rows]
    end, step = _axis(float(max([*totals, Fraction(str(limit or 0))])), ticks=6, integer=False)
    decimals = max(0, -math.floor(math.log10(step)))

    def x(value: float | Fraction) -> float:
        return left + plot_w * float(value) / end

    label = f"{endpoint}: cost per request by tier and model" + (
        f", budget {fmt.usd(limit)}" if limit is not None else ""
    )
    out = [
        (
            f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" data-chart="cost" '
            f'data-endpoint="{escape(endpoint)}" aria-label="{escape(label)}">'
        ),
        f"<title>{escape(label)}</title>",
    ]
    base_y = top + row_h * len(rows)
    for t in _ticks(end, step):
        tx = _num(x(t))
        dollars = f"${t:.{decimals}f}" if t else "$0"
        out.append(f'<line class="gridline" x1="{tx}" x2="{tx}" y1="{top}" y2="{base_y}"/>')
        out.append(
            f'<text class="axis" x="{tx}" y="{base_y + 16}" text-anchor="middle">{dollars}</text>'
        )
    for r, ((model, tiers), total) in enumerate(zip(rows, totals, strict=True)):
        y = top + r * row_h
        n = calls.get(model, sum(calls.values()) if model == ALL_MODELS else 0)
        name = f"{model} · {n:,} call{'s' if n != 1 else ''} · {fmt.usd(total)} per request"
        out.append(f'<text x="{left}" y="{y + 13}">{escape(name)}</text>')
        at = Fraction(0)
        for tier, tier_label in TIER_LABELS.items():
            value = tiers[tier]
            if value <= 0:
                continue
            out.append(
                f'<rect class="tier-{tier}" data-role="tier" data-model="{escape(model)}" '
                f'data-tier="{tier}" data-value="{number("cost_usd", value)}" '
                f'x="{_num(x(at))}" y="{y + 17}" '
                f'width="{_num(max(x(at + value) - x(at), 0.5))}" height="{bar_h}">'
                f"<title>{escape(model)}, {tier_label}: {fmt.usd(value)} per request</title></rect>"
            )
            at += value
    if limit is not None:
        lx = x(Fraction(str(limit)))
        anchor, dx = ("end", -4) if lx > left + plot_w * 0.6 else ("start", 4)
        out.append(
            f'<line class="budget" data-role="budget" data-key="max_cost_per_request_usd" '
            f'data-value="{escape(str(limit))}" x1="{_num(lx)}" x2="{_num(lx)}" y1="4" '
            f'y2="{base_y}"/>'
        )
        out.append(
            f'<text class="mark budget" x="{_num(lx + dx)}" y="13" text-anchor="{anchor}">'
            f"budget {fmt.usd(limit)} per request</text>"
        )
    out.append("</svg>")
    return "".join(out)


# -- where the tokens go: the prompt by part ------------------------------------------------
ANATOMY_CHART_WIDTH = 760
BASELINE, HEAD = "baseline", "this run"


def anatomy_figure(ep: EndpointReport, base: EndpointReport | None) -> str:
    """Input tokens per call by part, one stacked bar for this run and one for the baseline
    above it (when it has an anatomy), on one axis; a legend, and a table with the figures."""
    if ep.anatomy is None or not ep.anatomy.calls:
        return ""
    rows = [(HEAD, ep.anatomy.input)]
    if base is not None and base.anatomy is not None and base.anatomy.calls:
        rows.insert(0, (BASELINE, base.anatomy.input))
    order = list(INPUT_NAMES)
    order += [p for _, figures in rows for p in figures if p not in order]  # a newer report's
    drawn = [p for p in order if any(_mean(f, p) > 0 for _, f in rows)]
    legend = "".join(
        f'<span><span class="swatch part-{escape(p)}"></span>{escape(part_name("input", p))}</span>'
        for p in drawn
    )
    estimated = any(not f.exact for _, figures in rows for f in figures.values())
    note = "Mean input tokens per call by part, in the order the prompt cache reads them" + (
        "; ~ estimated from the part's own text (count mode counts it exactly)" if estimated else ""
    )
    if ep.anatomy.calls < ep.calls:
        note += f"; over the {ep.anatomy.calls:,} of {ep.calls:,} calls split"
    return (
        "<h3>Where the input tokens go</h3>"
        + anatomy_svg(ep.name, rows, drawn)
        + f'<div class="legend">{legend}</div>'
        + _anatomy_table(rows, order)
        + f'<p class="note">{escape(note)}.</p>'
    )


def _mean(figures: Mapping[str, PartFigures], part: str) -> float:
    found = figures.get(part)
    return float(found.mean or 0) if found is not None else 0.0


def anatomy_svg(
    endpoint: str, rows: Sequence[tuple[str, Mapping[str, PartFigures]]], parts: Sequence[str]
) -> str:
    """One horizontal bar per row, its parts stacked from 0 in cache order; a part below 0
    (`unattributed`, when the estimates overshoot) is in the table, not drawn."""
    width, left, right = ANATOMY_CHART_WIDTH, 8, 16
    row_h, bar_h, top = 38, 16, 6
    height = top + row_h * len(rows) + 28
    plot_w = width - left - right
    totals = [sum(max(_mean(f, p), 0) for p in parts) for _, f in rows]
    end, step = _axis(max([*totals, 1]))

    def x(value: float) -> float:
        return left + plot_w * value / end

    label = f"{endpoint}: input tokens per call by part" + "".join(
        f", {name} {fmt.tokens(round(total))}"
        for (name, _), total in zip(rows, totals, strict=True)
    )
    out = [
        (
            f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" data-chart="anatomy" '
            f'data-endpoint="{escape(endpoint)}" aria-label="{escape(label)}">'
        ),
        f"<title>{escape(label)}</title>",
    ]
    base_y = top + row_h * len(rows)
    for t in _ticks(end, step):
        tx = _num(x(t))
        out.append(f'<line class="gridline" x1="{tx}" x2="{tx}" y1="{top}" y2="{base_y}"/>')
        out.append(
            f'<text class="axis" x="{tx}" y="{base_y + 16}" text-anchor="middle">'
            f"{fmt.tokens(t)}</text>"
        )
    for r, ((name, figures), total) in enumerate(zip(rows, totals, strict=True)):
        y = top + r * row_h
        out.append(
            f'<text x="{left}" y="{y + 13}">{name} · {fmt.tokens(round(total))} tokens per call'
            "</text>"
        )
        at = 0.0
        for part in parts:
            value = _mean(figures, part)
            if value <= 0:
                continue
            f = figures[part]
            share = f", {value / total:.1%} of the prompt" if total else ""
            how = "" if f.exact else " (estimated)"
            title = f"{name}, {part_name('input', part)}: {fmt.tokens(round(value))} tokens per call{how}{share}"
            out.append(
                f'<rect class="part-{escape(part)}" data-role="part" data-row="{name}" '
                f'data-part="{escape(part)}" data-value="{escape(str(f.mean))}" '
                f'x="{_num(x(at))}" y="{y + 17}" '
                f'width="{_num(max(x(at + value) - x(at), 0.5))}" height="{bar_h}">'
                f"<title>{escape(title)}</title></rect>"
            )
            at += value
    out.append(
        f'<text class="axis" x="{_num(left + plot_w / 2)}" y="{height - 2}" '
        'text-anchor="middle">tokens per call</text>'
    )
    out.append("</svg>")
    return "".join(out)


def _anatomy_table(
    rows: Sequence[tuple[str, Mapping[str, PartFigures]]], order: Sequence[str]
) -> str:
    """The chart's figures, for screen readers and copying: each part with any tokens."""
    names = [name for name, _ in rows]
    head = "<th>part</th>" + "".join(f'<th class="num">{n}</th>' for n in names)
    if len(rows) > 1:
        head += '<th class="num">change</th>'
    body = []
    for part in order:
        cells = [figures.get(part) for _, figures in rows]
        if not any(c is not None and round(float(c.mean or 0)) != 0 for c in cells):
            continue
        shown = "".join(
            f'<td class="num" data-row="{name}" data-part="{escape(part)}">{_part_cell(c)}</td>'
            for name, c in zip(names, cells, strict=True)
        )
        if len(rows) > 1:
            shown += f'<td class="num">{_part_change(cells[0], cells[1])}</td>'
        body.append(
            f'<tr><td><span class="swatch part-{escape(part)}"></span>'
            f"{escape(part_name('input', part))}</td>{shown}</tr>"
        )
    return f'<table class="anatomy"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _part_cell(figures: PartFigures | None) -> str:
    if figures is None or figures.mean is None:
        return "—"
    return ("" if figures.exact else "~") + fmt.tokens(round(float(figures.mean)))


def _part_change(base: PartFigures | None, head: PartFigures | None) -> str:
    if base is None or head is None or base.mean is None or head.mean is None:
        return "—"
    delta = round(float(head.mean) - float(base.mean))
    return f"{delta:+,}" if delta else "0"
