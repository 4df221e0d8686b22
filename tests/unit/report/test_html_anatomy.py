"""report.html's "Where the input tokens go": per endpoint a stacked bar of input tokens per
call by part, the baseline's above this run's on one axis, a legend, a table with the
figures, and the why line against the baseline. Expected figures come from the hand-written
report.json documents, not from the renderer."""

from __future__ import annotations

import re
from dataclasses import replace
from fractions import Fraction
from html import unescape

import pytest
from reports import compared, report

from pytest_tokenbudget.report.html import render_html
from pytest_tokenbudget.report.json_io import report_from_json
from pytest_tokenbudget.report.model import Charts

INPUT = ("tools", "system", "history", "tool_results", "documents", "latest_turn", "unattributed")


def anatomy(exact, **means):
    part = lambda mean: {"mean": mean, "p95": mean, "cost_share": 0.1, "exact": exact}  # noqa: E731
    return {
        "calls": 4,
        "counted_calls": 4 if exact else 0,
        "input": {p: part(means.get(p, 0)) for p in INPUT},
        "output": {"text": part(20)},
    }


def endpoint(monthly, parts):
    ep = {
        "status": "pass",
        "line": 3,
        "calls": 4,
        "cases": 4,
        "metrics": {"input_tokens_p95": 2000, "monthly_cost_usd": monthly},
        "budgets": [],
        "per_case": {},
    }
    return {**ep, "anatomy": parts} if parts else ep


def typed(data):
    """The run's report: report.json's figures, with the per-call lists a run draws from."""
    rep = report_from_json(data)
    charts = Charts((1000, 1100), (20, 20), {}, 4, ())
    return replace(rep, endpoints=tuple(replace(ep, charts=charts) for ep in rep.endpoints))


def page(head, base=None):
    if base is None:
        return render_html(typed(head))
    diff = compared(base, head, max_regression_pct=None)
    return render_html(replace(typed(head), diff=diff), baseline=report_from_json(base))


def chart(html, endpoint):
    found = re.findall(
        rf'<svg[^>]*data-chart="anatomy" data-endpoint="{re.escape(endpoint)}".*?</svg>',
        html,
        re.DOTALL,
    )
    assert len(found) == 1
    return found[0]


def bars(svg):
    """(row, part, value, width) of every drawn part."""
    return [
        (row, part, float(value), float(width))
        for row, part, value, width in re.findall(
            r'data-role="part" data-row="([^"]+)" data-part="([^"]+)" data-value="([^"]+)" '
            r'x="[^"]+" y="[^"]+" width="([^"]+)"',
            svg,
        )
    ]


BASE = report({"chat": endpoint(100.0, anatomy(False, system=1000, latest_turn=100))}, 100.0)
HEAD = report(
    {"chat": endpoint(244.0, anatomy(False, system=2440, latest_turn=100, unattributed=-5))},
    244.0,
)


def test_this_run_alone_without_a_baseline():
    svg = chart(page(HEAD), "chat")
    drawn = bars(svg)
    # the parts with tokens, in cache order; unattributed is -5: in the table, not drawn
    assert [(row, part, value) for row, part, value, _ in drawn] == [
        ("this run", "system", 2440.0),
        ("this run", "latest_turn", 100.0),
    ]
    assert drawn[0][3] / drawn[1][3] == pytest.approx(24.4, rel=1e-3)  # 2,440 to 100
    assert "this run · 2,540 tokens per call" in svg
    assert "baseline" not in svg


def test_baseline_above_this_run_on_one_axis_with_legend_table_and_why():
    html = page(HEAD, BASE)
    svg = chart(html, "chat")
    drawn = bars(svg)
    assert [(row, part, value) for row, part, value, _ in drawn] == [
        ("baseline", "system", 1000.0),
        ("baseline", "latest_turn", 100.0),
        ("this run", "system", 2440.0),
        ("this run", "latest_turn", 100.0),
    ]
    widths = {(row, part): width for row, part, _, width in drawn}
    assert widths["this run", "system"] / widths["baseline", "system"] == pytest.approx(
        2.44, rel=1e-3
    )
    assert "baseline · 1,100 tokens per call" in svg
    assert "this run, system prompt: 2,440 tokens per call (estimated), 96.1% of the prompt" in (
        unescape(svg)  # 2,440 of 2,540
    )
    section = html.split("<h3>Where the input tokens go</h3>")[1].split("</section>")[0]
    legend = re.search(r'<div class="legend">(.*?)</div>', section)[1]
    assert re.findall(r"</span>([^<]+)</span>", legend) == ["system prompt", "latest user turn"]
    rows = re.findall(r"<tr><td>.*?</tr>", section)
    cells = [re.sub("<[^>]+>", "|", r).replace("||", "|").strip("|").split("|") for r in rows]
    assert cells == [
        ["system prompt", "~1,000", "~2,440", "+1,440"],
        ["latest user turn", "~100", "~100", "0"],
        ["unattributed", "~0", "~-5", "-5"],
    ]
    assert "~ estimated from the part&#x27;s own text" in section
    why = re.search(r'<p class="why" data-role="why">(.*?)</p>', html)[1]
    # +1,435 over 1,100: +130.45%; +$144 a month
    assert unescape(why) == (
        "Against the baseline: +1,435 input tokens per call (+130.5%), "
        "mostly the system prompt (~+1,440); +$144/month"
    )


def test_counted_figures_carry_no_tilde_and_no_anatomy_draws_nothing():
    counted = report({"chat": endpoint(50.0, anatomy(True, tools=300, system=200))}, 50.0)
    html = page(counted)
    section = html.split("<h3>Where the input tokens go</h3>")[1].split("</section>")[0]
    assert "~" not in section
    assert [(part, value) for _, part, value, _ in bars(chart(html, "chat"))] == [
        ("tools", 300.0),
        ("system", 200.0),
    ]
    bare = page(report({"chat": endpoint(50.0, None)}, 50.0))
    assert 'data-chart="anatomy"' not in bare and "Where the input tokens go" not in bare


def test_an_endpoint_name_is_escaped_everywhere_in_the_chart():
    name = '"><script>alert(1)</script>'
    head = report({name: endpoint(10.0, anatomy(True, system=10))}, 10.0)
    html = page(head)
    assert "<script>alert" not in html
    svg = re.search(r'<svg[^>]*data-chart="anatomy".*?</svg>', html, re.DOTALL)[0]
    assert 'data-endpoint="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in svg


def test_calls_outside_the_anatomy_are_said():
    data = report({"chat": endpoint(10.0, anatomy(True, system=10))}, 10.0)
    data["endpoints"]["chat"]["calls"] = 6  # 4 split (Messages), 2 of another provider
    assert "over the 4 of 6 calls split" in page(data)


def test_shares_sum_to_the_bar():
    svg = chart(page(HEAD, BASE), "chat")
    titles = re.findall(r"of the prompt</title>", svg)
    assert len(titles) == 4
    shares = [Fraction(s) for s in re.findall(r"(\d+\.\d)% of the prompt", svg)[2:]]
    assert abs(sum(shares) - 100) <= Fraction(1, 10)  # 96.1 + 3.9
