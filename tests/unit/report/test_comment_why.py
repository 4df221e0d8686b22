"""The PR comment says why first: one line per changed endpoint naming the parts of its
prompt (or answer) that moved, in tokens per call and dollars a month; then the budgets
table with the p95s and the budgeted metrics, the rest folded; report.md without a baseline
says where the tokens go. From hand-written report.json documents: every expected figure
below is worked out by hand from their numbers, not by calling the code."""

from __future__ import annotations

import copy
import re
from dataclasses import replace

import pytest
from reports import BASE, budget, compared, report, to_html

from pytest_tokenbudget.measure.metrics import METRICS
from pytest_tokenbudget.report.json_io import report_from_json
from pytest_tokenbudget.report.markdown import render_diff_markdown, render_markdown
from pytest_tokenbudget.report.table import render_findings
from pytest_tokenbudget.report.why import endpoint_why, why_lines

INPUT = ("tools", "system", "history", "tool_results", "documents", "latest_turn", "unattributed")
OUTPUT = ("text", "thinking", "tool_use", "unattributed")


def anatomy(exact=True, output=None, **means):
    """Mean tokens per call by input part (the p95 the same), every other part 0."""
    part = lambda mean: {"mean": mean, "p95": mean, "cost_share": None, "exact": exact}  # noqa: E731
    return {
        "calls": 10,
        "counted_calls": 10 if exact else 0,
        "input": {p: part(means.get(p, 0)) for p in INPUT},
        "output": {p: part((output or {}).get(p, 0)) for p in OUTPUT},
    }


def endpoint(monthly, parts, *, p95=None, metrics=None, budgets=()):
    whole = sum(p["mean"] for p in parts["input"].values()) if parts else 1000
    return {
        "status": "pass",
        "line": 3,
        "calls": 10,
        "cases": 10,
        "metrics": {
            "input_tokens_p50": whole,
            "input_tokens_p95": p95 if p95 is not None else whole,
            "output_tokens_p95": 40,
            "cost_per_request_usd": monthly / 30_000,
            "monthly_cost_usd": monthly,
            **(metrics or {}),
        },
        "budgets": list(budgets),
        "per_case": {},
        **({"anatomy": parts} if parts else {}),
    }


def comment(base_eps, head_eps, **gates):
    gates.setdefault("max_regression_pct", None)
    base = report(base_eps, sum(e["metrics"]["monthly_cost_usd"] for e in base_eps.values()))
    head = report(head_eps, sum(e["metrics"]["monthly_cost_usd"] for e in head_eps.values()))
    return render_diff_markdown(compared(base, head, **gates))


def why_of(base_ep, head_ep):
    diff = compared(
        report({"chat": base_ep}, 1.0), report({"chat": head_ep}, 1.0), max_regression_pct=None
    )
    return endpoint_why(diff.endpoints[0])


# -- the line ---------------------------------------------------------------------------
def test_one_part_that_grew_is_named_with_tokens_percent_and_dollars():
    base = endpoint(100.0, anatomy(system=2000, latest_turn=1236, unattributed=0))
    head = endpoint(258.0, anatomy(system=3440, latest_turn=1236, unattributed=0))
    # +1,440 over a 3,236-token prompt: 44.499...%; +$158 a month
    assert why_of(base, head) == (
        "+1,440 input tokens per call (+44.5%), all in the system prompt; +$158/month"
    )


def test_estimated_parts_say_so():
    base = endpoint(100.0, anatomy(exact=False, system=2000, latest_turn=1236))
    head = endpoint(258.0, anatomy(exact=False, system=3440, latest_turn=1236))
    assert why_of(base, head) == (
        "+1,440 input tokens per call (+44.5%), all in the system prompt (estimated); +$158/month"
    )
    # the estimates' error in `unattributed` (+40, under 5% of +1,400) is not named, and the
    # system prompt's figure is marked as an estimate
    head = endpoint(258.0, anatomy(exact=False, system=3400, latest_turn=1236, unattributed=40))
    assert why_of(base, head) == (
        "+1,440 input tokens per call (+44.5%), mostly the system prompt (~+1,400); +$158/month"
    )


def test_several_parts_biggest_first():
    base = endpoint(100.0, anatomy(system=2000, tool_results=1000, latest_turn=236))
    head = endpoint(258.0, anatomy(system=3200, tool_results=1240, latest_turn=236))
    assert why_of(base, head) == (
        "+1,440 input tokens per call (+44.5%), mostly the system prompt (+1,200), "
        "tool results +240; +$158/month"
    )
    # no part is most of it: each with its figure, the largest first
    base = endpoint(100.0, anatomy(history=1000, tool_results=1000, documents=1000))
    head = endpoint(130.0, anatomy(history=1600, tool_results=1500, documents=1400))
    assert why_of(base, head) == (
        "+1,500 input tokens per call (+50.0%), conversation history +600, tool results +500, "
        "documents and images +400; +$30.00/month"
    )


def test_parts_that_cancel_out_and_a_shrinking_prompt():
    base = endpoint(100.0, anatomy(history=3000, documents=0, latest_turn=100))
    head = endpoint(100.0, anatomy(history=2000, documents=1000, latest_turn=100))
    assert why_of(base, head) == (
        "input tokens per call unchanged overall, conversation history -1,000, "
        "documents and images +1,000"
    )  # and no dollar figure: the month did not move
    head = endpoint(80.0, anatomy(history=2380, latest_turn=100))
    assert why_of(base, head) == (
        "-620 input tokens per call (-20.0%), all in the conversation history; -$20.00/month"
    )


def test_the_answer_side_too():
    base = endpoint(100.0, anatomy(system=1000, output={"text": 100, "thinking": 200}))
    head = endpoint(150.0, anatomy(system=1000, output={"text": 100, "thinking": 500}))
    assert why_of(base, head) == (
        "+300 output tokens per call (+100.0%), all in thinking; +$50.00/month"
    )
    head = endpoint(150.0, anatomy(tools=500, system=1000, output={"text": 100, "thinking": 500}))
    assert why_of(base, head) == (
        "+500 input tokens per call (+50.0%), all in the tool definitions; "
        "+300 output tokens per call (+100.0%), all in thinking; +$50.00/month"
    )


def test_without_an_anatomy_on_both_sides_the_metrics_that_moved():
    base = endpoint(100.0, None, p95=1000)
    head = endpoint(112.0, anatomy(system=1100), p95=1120)
    assert why_of(base, head) == "input tokens p95 +120 (+12.0%); +$12.00/month"
    # no projection: the dollars per request, one dollar figure on the line
    base["metrics"].pop("monthly_cost_usd")
    head["metrics"].pop("monthly_cost_usd")
    assert why_of(base, head) == "input tokens p95 +120 (+12.0%); +$0.00040/request"


def test_unchanged_added_and_removed_endpoints_get_no_line():
    same = endpoint(100.0, anatomy(system=1000))
    diff = compared(
        report({"same": same, "gone": same}, 200.0),
        report({"same": copy.deepcopy(same), "new": same}, 200.0),
        max_regression_pct=None,
    )
    assert why_lines(diff) == ([], 0)


def test_the_largest_move_in_dollars_first_and_a_cap():
    base = {f"ep{i}": endpoint(100.0, anatomy(system=1000)) for i in range(4)}
    head = {f"ep{i}": endpoint(100.0 + i, anatomy(system=1000 + i)) for i in range(4)}
    diff = compared(report(base, 400.0), report(head, 406.0), max_regression_pct=None)
    lines, more = why_lines(diff, limit=2)
    assert [w.endpoint for w in lines] == ["ep3", "ep2"] and more == 1  # ep0 did not move


# -- in the comment ---------------------------------------------------------------------
def test_the_why_lines_come_right_after_the_headline():
    base = {"chat_reply": endpoint(100.0, anatomy(system=2000, latest_turn=1236))}
    head = {"chat_reply": endpoint(258.0, anatomy(system=3440, latest_turn=1236))}
    lines = comment(base, head).splitlines()
    assert lines[2] == "Projected monthly cost **+$158 (+158%)**: $100 → $258"
    assert lines[4] == (
        "- **chat\\_reply**: +1,440 input tokens per call (+44.5%), all in the system prompt; "
        "+$158/month"
    )
    # report.md of a run with a baseline opens the same way, and so does the terminal's
    diff = compared(report(base, 100.0), report(head, 258.0), max_regression_pct=None)
    run = replace(report_from_json(report(head, 258.0)), diff=diff)
    assert render_markdown(run).splitlines()[2:5] == lines[2:5]
    assert render_findings(run)[0] == (
        "change chat_reply: +1,440 input tokens per call (+44.5%), all in the system prompt; "
        "+$158/month"
    )
    assert render_findings(replace(run, diff=None)) == []


def test_user_text_in_the_line_is_escaped_and_a_tilde_strikes_nothing():
    name = "<b>*x*</b>|@team"
    base = {name: endpoint(100.0, anatomy(exact=False, system=2000, history=500))}
    head = {name: endpoint(130.0, anatomy(exact=False, system=3000, history=800))}
    text = comment(base, head)
    line = text.splitlines()[4]
    assert line.startswith("- **\\<b\\>\\*x\\*\\</b\\>\\|@\u200bteam**: ")
    assert "mostly the system prompt (\\~+1,000), conversation history \\~+300" in line
    html = to_html(text)
    assert "<del>" not in html and "<s>" not in html and "<b>" not in html


def test_a_part_name_from_a_report_never_becomes_markup():
    """report.json is hostile input: a part key that is no identifier reads as another part."""
    evil = "[x](https://evil.example)@team~~<img>"
    base, head = anatomy(system=1000), anatomy(system=1000)
    base["input"][evil] = dict(base["input"]["system"], mean=0)
    head["input"][evil] = dict(head["input"]["system"], mean=500)
    head["input"]["newer_part"] = dict(head["input"]["system"], mean=100)
    base["input"]["newer_part"] = dict(base["input"]["system"], mean=0)
    text = comment({"chat": endpoint(100.0, base)}, {"chat": endpoint(160.0, head)})
    assert text.splitlines()[4] == (
        "- **chat**: +600 input tokens per call (+60.0%), mostly another part (+500), "
        "newer part +100; +$60.00/month"
    )


def test_more_changed_endpoints_than_lines():
    base = {f"ep{i:02}": endpoint(100.0, anatomy(system=1000)) for i in range(12)}
    head = {f"ep{i:02}": endpoint(101.0, anatomy(system=1001)) for i in range(12)}
    text = comment(base, head)
    assert text.count("input tokens per call (+0.1%)") == 10
    assert "- … and 2 more endpoints changed: see the table" in text


# -- the table --------------------------------------------------------------------------
def table_rows(text):
    open_part = text.split("<details>")[0]
    return [line for line in open_part.splitlines() if line.startswith("| ")][1:]


def test_the_open_table_has_the_p95s_and_budgets_the_rest_is_folded():
    budgets = [budget("max_cost_per_request_usd", "cost_per_request_usd", 0.01, 0.005, 6)]
    base = {"chat": endpoint(100.0, anatomy(system=1000), budgets=budgets)}
    head = {"chat": endpoint(130.0, anatomy(system=1300), budgets=budgets)}
    text = comment(base, head)
    shown = [row.split(" | ")[1] for row in table_rows(text)]
    assert shown == ["input tokens p95", "$ per request"]  # p50 and $ per month folded
    assert "<details><summary>3 more metrics (other percentiles, unbudgeted changes, " in text
    folded = text.split("<details>")[1]
    assert "input tokens p50" in folded and "$ per month" in folded


def test_a_gated_p99_folds_beside_its_p95_and_shows_without_it():
    base = endpoint(100.0, None, metrics={"input_tokens_p99": 1000})
    head = endpoint(100.0, None, metrics={"input_tokens_p99": 1500}, p95=1200)
    text = comment({"chat": base}, {"chat": head}, max_regression_pct=10)
    assert [r.split(" | ")[1] for r in table_rows(text)] == ["input tokens p95"]
    head["metrics"]["input_tokens_p95"] = 1000  # its p95 did not move: the p99 shows itself
    text = comment({"chat": base}, {"chat": head}, max_regression_pct=10)
    assert [r.split(" | ")[1] for r in table_rows(text)] == ["input tokens p99"]


def test_no_budgeted_or_p95_change_says_so_above_the_fold():
    base = {"chat": endpoint(100.0, None, metrics={"input_tokens_p50": 900})}
    head = {"chat": endpoint(100.0, None, metrics={"input_tokens_p50": 950})}
    text = comment(base, head)
    assert "No budgeted metric or p95 changed against the baseline (the rest below)." in text


def test_every_metric_reads_by_its_human_name():
    """Every metric this version computes can appear; none under its report.json key."""
    metrics = {name: 1000 if METRICS[name].unit == "tokens" else 0.5 for name in METRICS}
    grown = {name: value * 2 for name, value in metrics.items()}
    for name in METRICS:
        assert METRICS[name].label != name and "_" not in METRICS[name].label
    base = {"chat": endpoint(100.0, None, metrics=metrics)}
    head = {"chat": endpoint(200.0, None, metrics=grown)}
    text = comment(base, head, max_regression_pct=10)
    for name in METRICS:
        assert name not in text and name.replace("_", "\\_") not in text, name


# -- report.md without a baseline: where the tokens go -----------------------------------
def test_where_the_tokens_go_largest_part_first():
    parts = anatomy(
        exact=False, system=1090, latest_turn=20.27, unattributed=3, output={"text": 19.36}
    )
    parts["output"]["text"]["exact"] = True
    data = report({"chat_reply": endpoint(100.0, parts), "plain": endpoint(5.0, None)}, 105.0)
    text = render_markdown(report_from_json(data))
    section = text.split("### Where the tokens go")[1].split("\n\n<sub>")[0]
    # 1,113.27 per call: 1,090 is 97.9%, 20.27 is 1.8%, 3 is 0.3%; the output all text
    assert section.strip().splitlines() == [
        "- **chat\\_reply**: 1,113 input tokens per call: system prompt \\~1,090 (98%), "
        "latest user turn \\~20 (2%), unattributed \\~3 (\\<1%); 19 output: text 19"
    ]
    assert "\\~ estimated from the part's own text" in text
    assert "plain" not in section  # no anatomy, no line


def test_no_anatomy_no_section():
    text = render_markdown(report_from_json(BASE))
    assert "Where the tokens go" not in text


@pytest.mark.parametrize("calls", [10, 12])
def test_calls_outside_the_anatomy_are_said(calls):
    ep = endpoint(100.0, anatomy(system=1000))
    ep["calls"] = calls
    text = render_markdown(report_from_json(report({"chat": ep}, 100.0)))
    line = next(x for x in text.splitlines() if x.startswith("- **chat**: 1,000 input"))
    assert ("(over 10 of 12 calls)" in line) == (calls == 12)
    assert re.search(r"system prompt 1,000(?! \(\d+%\))", line)  # exact: no ~; one part: no share
