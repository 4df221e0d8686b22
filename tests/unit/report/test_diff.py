"""Baseline comparison, its PR comment and `tokenbudget diff`, from hand-written reports.

Every expected number below was worked out by hand from the two reports, not
by calling the code.
"""

from __future__ import annotations

import copy
import json
import os

import pytest
from paths import SNAPSHOTS
from reports import BASE, HEAD, case, compared, report, to_html

from pytest_tokenbudget.cli import main
from pytest_tokenbudget.errors import ReportError
from pytest_tokenbudget.report.diff import diff_json
from pytest_tokenbudget.report.json_io import report_from_json
from pytest_tokenbudget.report.markdown import (
    MARKER,
    MAX_COMMENT_CHARS,
    cap_markdown,
    render_diff_markdown,
    render_markdown,
)
from pytest_tokenbudget.report.reader import load_report


def metric(diff, endpoint, name):
    ep = next(e for e in diff.endpoints if e.name == endpoint)
    return next(m for m in ep.metrics if m.metric == name)


# -- compare ---------------------------------------------------------------------------
def test_deltas_absolute_and_percent():
    diff = compared(BASE, HEAD, max_regression_pct=10)
    m = metric(diff, "chat", "input_tokens_p95")
    assert (m.base, m.head, m.delta, m.pct) == (1000, 1120, 120, 12.0)
    m = metric(diff, "chat", "output_tokens_p95")
    assert (m.base, m.head, m.delta, m.pct) == (200, 212, 12, 6.0)
    m = metric(diff, "chat", "cache_hit_rate")
    assert (m.delta, m.pct) == (-0.1, -12.5)
    m = metric(diff, "chat", "cost_per_request_usd")
    assert (m.delta, m.pct) == (0.0001, 5.0)
    m = metric(diff, "chat", "escalation_rate")
    assert (m.delta, m.pct, m.trend) == (0.0, 0.0, "same")
    assert (diff.monthly_base, diff.monthly_head, diff.monthly_delta, diff.monthly_pct) == (
        124.0,
        156.0,
        32.0,
        25.81,  # 32 / 124 = 25.806%
    )


def test_regression_gate_and_warn_band():
    diff = compared(BASE, HEAD, max_regression_pct=10)
    status = {m.metric: m.status for m in diff.endpoints[0].metrics}
    assert status == {
        "input_tokens_p95": "regression",  # +12% > 10%
        "output_tokens_p95": "warn",  # +6% > 5% (half the gate)
        "escalation_rate": "ok",
        "cache_hit_rate": "regression",  # 12.5% worse
        "cost_per_request_usd": "ok",  # +5% is not more than 5%
        "monthly_cost_usd": "ok",
    }
    assert diff.failed
    assert diff_json(diff)["status"] == "fail"


def test_explicit_warn_pct_and_no_gate():
    diff = compared(BASE, HEAD, max_regression_pct=50, warn_pct=3)
    status = {m.metric: m.status for m in diff.endpoints[0].metrics}
    assert status["input_tokens_p95"] == "warn"
    assert status["cost_per_request_usd"] == "warn"  # 5% > 3%
    assert status["escalation_rate"] == "ok"
    assert not diff.failed

    ungated = compared(BASE, HEAD, max_regression_pct=None)
    assert {m.status for _, m in ungated.rows()} == {"ok"}
    assert not ungated.failed


def test_endpoint_override_of_the_gate():
    head = copy.deepcopy(HEAD)
    head["endpoints"]["chat"]["max_regression_pct"] = 20
    diff = compared(BASE, head, max_regression_pct=10)
    chat = diff.endpoints[0]
    assert (chat.max_regression_pct, chat.warn_pct) == (20, 10)
    assert metric(diff, "chat", "input_tokens_p95").status == "warn"  # 12% > 10% = half of 20%
    assert metric(diff, "chat", "output_tokens_p95").status == "ok"  # 6% < 10%


def test_cache_hit_rate_lower_is_worse():
    head = copy.deepcopy(HEAD)
    head["endpoints"]["chat"]["metrics"]["cache_hit_rate"] = 0.9  # better
    head["endpoints"]["chat"]["metrics"]["input_tokens_p95"] = 900  # better (-10%)
    diff = compared(BASE, head, max_regression_pct=1)
    cache = metric(diff, "chat", "cache_hit_rate")
    assert (cache.trend, cache.status, cache.pct) == ("better", "ok", 12.5)
    tokens = metric(diff, "chat", "input_tokens_p95")
    assert (tokens.trend, tokens.status, tokens.pct) == ("better", "ok", -10.0)


def test_broken_budget_wins_and_drivers_are_the_top_three_cases_by_growth():
    head = copy.deepcopy(HEAD)
    head["endpoints"]["chat"]["budgets"][0].update(limit=1100, ok=False)
    diff = compared(BASE, head, max_regression_pct=10)
    m = metric(diff, "chat", "input_tokens_p95")
    assert m.status == "budget"
    assert m.budget.key == "max_input_tokens_p95" and m.budget.line == 5
    assert [(d.case_id, d.base, d.head, d.delta, d.new) for d in m.drivers] == [
        ("e", None, 300, 300, True),
        ("b", 900, 1100, 200, False),
        ("d", 700, 760, 60, False),
    ]
    # cache misses show up as cost: b +0.0001, e +0.0004 (new); a, c, d did not grow
    cache = metric(diff, "chat", "cache_hit_rate")
    assert [(d.case_id, d.field, d.delta) for d in cache.drivers] == [
        ("e", "cost_usd", 0.0004),
        ("b", "cost_usd", 0.0001),
    ]


def test_a_prompt_part_is_driven_by_the_cases_whose_input_grew():
    base, head = copy.deepcopy(BASE), copy.deepcopy(HEAD)
    base["endpoints"]["chat"]["metrics"]["system_tokens_p95"] = 500
    head["endpoints"]["chat"]["metrics"]["system_tokens_p95"] = 620
    m = metric(compared(base, head, max_regression_pct=10), "chat", "system_tokens_p95")
    # input per case: e new (300), b 900 -> 1,100, d 700 -> 760 (not their cost)
    assert [(d.case_id, d.field, d.delta) for d in m.drivers] == [
        ("e", "input_tokens", 300),
        ("b", "input_tokens", 200),
        ("d", "input_tokens", 60),
    ]


def test_escalation_from_zero_is_a_regression_driven_by_the_newly_escalated_case():
    base = copy.deepcopy(BASE)
    head = copy.deepcopy(HEAD)
    base["endpoints"]["chat"]["metrics"]["escalation_rate"] = 0.0
    head["endpoints"]["chat"]["metrics"]["escalation_rate"] = 0.2
    head["endpoints"]["chat"]["per_case"]["c"] = case(850, 100, 0.0045, escalated=True)
    m = metric(compared(base, head, max_regression_pct=10), "chat", "escalation_rate")
    assert (m.delta, m.pct, m.status) == (0.2, None, "regression")
    assert [(d.case_id, d.delta) for d in m.drivers] == [("c", 0.003)]


def test_added_removed_and_not_run_endpoints():
    diff = compared(BASE, HEAD, max_regression_pct=10)
    change = {e.name: e.change for e in diff.endpoints}
    assert change == {"chat": "changed", "summarize": "added", "legacy": "removed"}
    legacy = metric(diff, "legacy", "monthly_cost_usd")
    assert (legacy.base, legacy.head, legacy.delta, legacy.status) == (4.0, None, None, "ok")
    added = metric(diff, "summarize", "input_tokens_p95")
    assert (added.base, added.head, added.budget.limit) == (None, 400, 500)

    head = copy.deepcopy(HEAD)
    head["endpoints"]["chat"] = {"status": "not-run", "line": 3, "metrics": {}, "budgets": []}
    diff = compared(BASE, head, max_regression_pct=10)
    assert diff.endpoints[0].change == "not-run"
    assert not diff.failed


def test_price_table_change_is_a_note_not_an_error():
    head = copy.deepcopy(HEAD)
    head["prices"]["table_date"] = "2026-12-01"
    diff = compared(BASE, head, max_regression_pct=None)
    assert diff.notes == (
        (
            "baseline priced with the table of 2026-11-01, head with the table of 2026-12-01: "
            "dollar deltas include price changes"
        ),
    )


def test_a_baseline_priced_with_another_price_source_version_gets_a_note():
    head = copy.deepcopy(HEAD)
    head["prices"] = {"source": "genai-prices 0.2.5", "as_of": "2026-12-07"}
    assert compared(BASE, head, max_regression_pct=None).notes == (
        (
            "baseline priced with the table of 2026-11-01, head with genai-prices 0.2.5: "
            "dollar deltas include price changes"
        ),
    )
    base = copy.deepcopy(head)
    base["prices"]["source"] = "genai-prices 0.2.3"
    assert compared(base, head, max_regression_pct=None).notes == (
        (
            "baseline priced with genai-prices 0.2.3, head with genai-prices 0.2.5: "
            "dollar deltas include price changes"
        ),
    )
    # another day, with the version installed here (which can tell whether rates moved)
    from pytest_tokenbudget.pricing.prices import source_name

    head["prices"] = {"source": source_name(), "as_of": "2026-12-07"}
    base["prices"] = {"source": source_name(), "as_of": "2026-11-20"}
    assert compared(base, head, max_regression_pct=None).notes == ()


def test_a_baseline_priced_on_another_day_gets_a_note_when_the_rates_changed():
    from pytest_tokenbudget.pricing.prices import source_name

    # genai-prices dates Sonnet 4.6's prices: its long-context tier ends on 2026-03-13
    head = copy.deepcopy(HEAD)
    head["prices"] = {"source": source_name(), "as_of": "2026-03-20"}
    head["endpoints"]["chat"]["price_sources"] = {"claude-sonnet-4-6": source_name()}
    base = copy.deepcopy(head)
    base["prices"]["as_of"] = "2026-03-01"
    (note,) = compared(base, head, max_regression_pct=None).notes
    assert note.startswith(
        f"baseline priced on 2026-03-01, head on 2026-03-20 (both with {source_name()}): "
    )
    assert "claude-sonnet-4-6" in note and "price change" in note
    # the same rates on both days: no note
    base["prices"]["as_of"] = "2026-04-01"
    head["prices"]["as_of"] = "2026-05-01"
    assert compared(base, head, max_regression_pct=None).notes == ()


def test_head_endpoint_failure_fails_the_diff():
    head = copy.deepcopy(HEAD)
    head["endpoints"]["summarize"]["status"] = "fail"
    head["endpoints"]["summarize"]["problems"] = ["its tests ran but captured no API call"]
    assert compared(BASE, head, max_regression_pct=None).failed


# -- loading baselines -----------------------------------------------------------------
def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_report_round_trips(tmp_path):
    path = write(tmp_path, "report.json", json.dumps(BASE))
    loaded = load_report(path)
    assert loaded["endpoints"] == BASE["endpoints"]
    assert loaded["_load_notes"] == []


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"schema": "pytest-tokenbudget/report",\n  "version": 1,\n  oops}', "not JSON: "),
        (
            '{"schema": "something-else", "version": 1, "endpoints": {}}',
            "not a pytest-tokenbudget report: its \"schema\" is 'something-else'",
        ),
        ("[1, 2]", "not a pytest-tokenbudget report: it is a JSON list"),
        ('{"endpoints": {}}', 'not a pytest-tokenbudget report: it has no "schema" key'),
        (
            '{"schema": "pytest-tokenbudget/report", "version": 7, "endpoints": {}}',
            "report version 7 is newer than this pytest-tokenbudget",
        ),
        (
            '{"schema": "pytest-tokenbudget/report", "version": 1, "endpoints": []}',
            "endpoints: must be an object, not a list",
        ),
        (
            '{"schema": "pytest-tokenbudget/report", "version": 1, "endpoints": {"chat": {"metrics": {"input_tokens_p95": "12"}}}}',
            "endpoints.chat.metrics.input_tokens_p95: must be a number, not a string ('12')",
        ),
        (
            '{"schema": "pytest-tokenbudget/report", "version": 1, "endpoints": {"chat": {"per_case": {"a": {"cost_usd": true}}}}}',
            "endpoints.chat.per_case.a.cost_usd: must be a number, not a boolean (True)",
        ),
    ],
)
def test_bad_baselines_are_one_clear_message(tmp_path, text, message):
    path = write(tmp_path, "base.json", text)
    with pytest.raises(ReportError) as err:
        load_report(path)
    assert message in str(err.value)
    assert str(err.value).startswith(str(path))
    assert "\n" not in str(err.value)


def test_not_json_names_the_line(tmp_path):
    path = write(
        tmp_path, "base.json", '{"schema": "pytest-tokenbudget/report",\n  "version": 1,\n  oops}'
    )
    with pytest.raises(ReportError) as err:
        load_report(path)
    assert err.value.line == 3
    assert str(err.value).startswith(f"{path}:3: not JSON")


def test_newer_version_says_which(tmp_path):
    path = write(tmp_path, "base.json", json.dumps({**BASE, "version": 2}))
    with pytest.raises(ReportError, match=r"report version 2 is newer .* reads \(version 1\)"):
        load_report(path)


def test_missing_baseline_and_directory(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        load_report(tmp_path / "nope.json")
    with pytest.raises(ReportError, match="is a directory"):
        load_report(tmp_path)


def test_older_version_is_read_with_a_note(tmp_path):
    path = write(tmp_path, "base.json", json.dumps({**BASE, "version": 0}))
    diff = compared(load_report(path), HEAD, max_regression_pct=None)
    assert diff.notes == (
        (
            "base.json is report version 0, read as version 1: values added since then are "
            "missing from the comparison"
        ),
    )


# -- the comment -----------------------------------------------------------------------
def test_comment_headline_rows_and_folded_rest():
    text = render_diff_markdown(compared(BASE, HEAD, max_regression_pct=10))
    assert text.startswith(MARKER + "\n")
    assert "Projected monthly cost **+$32.00 (+26%)**: $124 → $156" in text
    assert (
        "| **chat** | input tokens p95 | ≤ 1,300 | 1,000 | 1,120 | +120 (+12.0%) | 🔺 regression |"
        in text
    )
    assert (
        "|  | cache-hit rate | ≥ 60.0% | 80.0% | 70.0% | -10.0 pp (-12.5%) | 🔺 regression |"
        in text
    )
    summary = "4 more metrics (unbudgeted changes, unchanged, not measured on both sides)"
    assert f"<details><summary>{summary}</summary>" in text
    folded = text.split("<details>")[1]
    assert "escalation rate" in folded and "chat** | input tokens p95" not in folded
    assert "$ per request" in folded  # changed, but no budget: the why line has the dollars
    assert "e (new case): +300 input tokens" in text
    assert "b: +200 input tokens (900 → 1,100)" in text


def test_no_change_headline():
    text = render_diff_markdown(compared(BASE, BASE, max_regression_pct=10))
    assert "Projected monthly cost: **no change** ($124)" in text
    assert "No metric changed against the baseline." in text
    assert "✅ **All 2 endpoints within budget**, no regression" in text


def test_user_text_is_escaped_and_renders_as_a_table():
    head = copy.deepcopy(HEAD)
    head["endpoints"]["chat"]["per_case"]["<img src=x>|*x*"] = case(5000, 1, 0.01)
    head["endpoints"]["my_*bold*"] = head["endpoints"].pop("summarize")
    text = render_diff_markdown(compared(BASE, head, max_regression_pct=10))
    assert "\\<img src=x\\>\\|\\*x\\*" in text
    assert "my\\_\\*bold\\*" in text
    html = to_html(text)
    assert "<img" not in html and "<em>" not in html
    assert html.count("<table>") == 2  # changed rows, and the folded ones


def test_comment_is_capped_below_githubs_limit():
    endpoints = {}
    for i in range(600):
        ep = copy.deepcopy(HEAD["endpoints"]["chat"])
        ep["per_case"] = {f"case_{i}_{j}_" + "x" * 40: case(2000 + j, 1, 0.01) for j in range(3)}
        endpoints[f"endpoint_{i}"] = ep
    base_eps = {name: copy.deepcopy(BASE["endpoints"]["chat"]) for name in endpoints}
    text = render_diff_markdown(
        compared(report(base_eps, 1.0), report(endpoints, 2.0), max_regression_pct=10)
    )
    assert len(text) <= MAX_COMMENT_CHARS
    assert "cut at 60,000 characters" in text
    assert text.count("<details>") == text.count("</details>")
    assert text.startswith(MARKER)


def test_cap_closes_an_open_details_block():
    text = "\n".join(
        [MARKER, "<details><summary>x</summary>", ""] + ["| a | b |"] * 1000 + ["</details>"]
    )
    capped = cap_markdown(text, 2000)
    assert len(capped) <= 2000
    assert capped.count("<details>") == capped.count("</details>") == 1
    assert capped.rstrip().endswith("report.json.*")


def test_snapshot_of_the_comment():
    """The rendered comment for a fixed diff; refresh with TOKENBUDGET_UPDATE_SNAPSHOTS=1."""
    head = copy.deepcopy(HEAD)
    head["prices"]["table_date"] = "2026-12-01"
    head["endpoints"]["chat"]["budgets"][0].update(limit=1100, ok=False, drivers=["b", "e"])
    head["endpoints"]["chat"]["status"] = "fail"
    text = render_diff_markdown(compared(BASE, head, max_regression_pct=10))
    path = SNAPSHOTS / "diff_comment.md"
    if os.environ.get("TOKENBUDGET_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_without_a_baseline_the_report_stays_the_comment():
    text = render_markdown(report_from_json(HEAD))
    assert text.startswith(MARKER) and "| chat |" in text


# -- tokenbudget diff ------------------------------------------------------------------
def run(*argv):
    return main(["diff", *argv])


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    return (
        write(tmp_path, "base.json", json.dumps(BASE)),
        write(tmp_path, "head.json", json.dumps(HEAD)),
    )


def test_cli_exit_codes(files, capsys):
    base, head = files
    assert run(str(base), str(head)) == 0  # no gate, no broken budget
    assert run(str(base), str(head), "--max-regression", "10") == 1
    assert run(str(base), str(head), "--max-regression", "15%") == 0
    assert run(str(base), str(base)) == 0
    out = capsys.readouterr().out
    assert out.count(MARKER) == 4


def test_cli_json_and_github_formats(files, capsys, tmp_path, monkeypatch):
    base, head = files
    assert run(str(base), str(head), "--format", "json", "--max-regression", "10") == 1
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "pytest-tokenbudget/diff"
    assert data["endpoints"]["chat"]["metrics"]["input_tokens_p95"]["delta"] == 120
    assert data["endpoints"]["legacy"]["change"] == "removed"

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert run(str(base), str(head), "--format", "github", "--max-regression", "10") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "::error file=token_budgets.yml,line=5,title=Token budget%3A chat max_input_tokens_p95::"
    )
    assert any(line.startswith("::warning file=token_budgets.yml,line=3,") for line in lines)
    assert summary.read_text().startswith(MARKER)


def test_cli_bad_input_is_exit_2_with_one_line(files, capsys, tmp_path):
    base, _ = files
    broken = write(tmp_path, "broken.json", "{nope")
    assert run(str(base), str(broken)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"tokenbudget diff: {broken}:1: not JSON")
    assert run(str(base), str(tmp_path / "missing.json")) == 2
    assert "no such file" in capsys.readouterr().err
