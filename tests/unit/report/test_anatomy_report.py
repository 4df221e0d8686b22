"""The anatomy in the report: report.json's `endpoints.<name>.anatomy` (written, read back,
checked as hostile input), the diff's change per part, and budgets on parts of the prompt
(max_system_tokens, max_tools_tokens): their verdicts, messages, drivers and ratchet."""

from __future__ import annotations

import copy
import json

import pytest
from emulator import Emulator
from reports import BASE, compared

from pytest_tokenbudget.config.budgets import load_config
from pytest_tokenbudget.errors import ConfigError, ReportError
from pytest_tokenbudget.measure.anatomy import call_anatomy
from pytest_tokenbudget.measure.run import BudgetRun, Options
from pytest_tokenbudget.measure.samples import CaseRun
from pytest_tokenbudget.providers.usage import Call, Usage
from pytest_tokenbudget.report.build import report_of
from pytest_tokenbudget.report.json_io import report_from_json, report_json
from pytest_tokenbudget.report.ratchet import plan_update
from pytest_tokenbudget.report.reader import check_report

MODEL = "claude-sonnet-4-6"
CONFIG = """\
endpoints:
  chat:
    max_input_tokens_p95: 100000
    max_system_tokens: {system}
    max_tools_tokens: 1000
    requests_per_day: 1000
    min_samples: 1
"""
SYSTEM = "You answer questions about costs. Be brief and cite the price page."


def request(case, system=SYSTEM):
    return {
        "model": MODEL,
        "system": system,
        "messages": [{"role": "user", "content": f"Question {case} about tokens?"}],
    }


def run_of(tmp_path, *, system=SYSTEM, limit=1000, cases=("a", "b", "c")):
    """A run whose every call was seen whole: its samples and its anatomy agree."""
    path = tmp_path / "token_budgets.yml"
    path.write_text(CONFIG.format(system=limit))
    run = BudgetRun(load_config(path), Options(path, tmp_path, tmp_path))
    emu = Emulator()
    for n, case in enumerate(cases):
        body = request(case, system + " More." * n)
        call = Call("anthropic", "messages", MODEL, Usage(emu.count(body), 12))
        run.add_calls([call], endpoint="chat", case_id=case, test_id=f"t::{case}")
        run.add_case_run(CaseRun("chat", case, f"t::{case}"))
        run.anatomy.append(call_anatomy("chat", case, f"t::{case}", body, call, [(0, 12)]))
    return run


def test_report_json_carries_each_part_and_reads_back_the_same(tmp_path):
    report = report_of(run_of(tmp_path))
    data = report_json(report)
    anatomy = data["endpoints"]["chat"]["anatomy"]
    assert list(anatomy["input"]) == [
        "tools",
        "system",
        "history",
        "tool_results",
        "documents",
        "latest_turn",
        "unattributed",
    ]
    assert list(anatomy["output"]) == ["text", "thinking", "tool_use", "unattributed"]
    assert (anatomy["calls"], anatomy["counted_calls"]) == (3, 0)
    system = anatomy["input"]["system"]
    assert system["exact"] is False and anatomy["output"]["text"]["exact"] is True
    assert system["p95"] == data["endpoints"]["chat"]["metrics"]["system_tokens_p95"]
    # shares of the endpoint's cost: what the parts and `unattributed` cost is all of it
    shares = [p["cost_share"] for side in ("input", "output") for p in anatomy[side].values()]
    assert sum(shares) == pytest.approx(1, abs=1e-5)
    again = report_json(report_from_json(check_report(json.loads(json.dumps(data)))))
    assert again["endpoints"]["chat"]["anatomy"] == anatomy


def test_a_baseline_from_before_the_anatomy_still_loads_and_compares(tmp_path):
    head = report_json(report_of(run_of(tmp_path)))
    old = copy.deepcopy(head)
    del old["endpoints"]["chat"]["anatomy"]
    check_report(old)
    diff = compared(old, head, max_regression_pct=None)
    system = next(p for p in diff.endpoints[0].anatomy if p.part == "system")
    assert system.base_mean is None and system.delta_mean is None and system.head_mean
    assert not compared(BASE, BASE, max_regression_pct=None).endpoints[0].anatomy


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("input", "system", "p95"), "12", "must be a number"),
        (("input", "system", "exact"), 1, "must be true or false"),
        (("output",), [], "must be an object"),
    ],
)
def test_a_hostile_anatomy_is_one_error_naming_its_key(tmp_path, where, value, message):
    data = report_json(report_of(run_of(tmp_path)))
    node = data["endpoints"]["chat"]["anatomy"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(ReportError, match=message) as err:
        check_report(data)
    assert err.value.key == "endpoints.chat.anatomy." + ".".join(where)


def test_the_diff_carries_each_parts_change_in_tokens_and_dollars(tmp_path):
    base = report_json(report_of(run_of(tmp_path)))
    grown = SYSTEM + " Always say which model you are." * 40
    head = report_json(report_of(run_of(tmp_path, system=grown)))
    added = Emulator().count(request("a", grown)) - Emulator().count(request("a"))
    diff = compared(base, head, max_regression_pct=None)
    parts = {(p.side, p.part): p for p in diff.endpoints[0].anatomy}
    assert parts[("input", "system")].delta_mean == added  # the emulator's own count
    for part in ("tools", "history", "tool_results", "documents", "latest_turn", "unattributed"):
        assert parts[("input", part)].delta_mean == 0, part
    monthly = [r["endpoints"]["chat"]["metrics"]["monthly_cost_usd"] for r in (base, head)]
    shares = [
        r["endpoints"]["chat"]["anatomy"]["input"]["system"]["cost_share"] for r in (base, head)
    ]
    expected = shares[1] * monthly[1] - shares[0] * monthly[0]
    assert parts[("input", "system")].delta_monthly_usd == pytest.approx(expected, abs=1e-8)
    assert parts[("input", "system")].exact is False
    written = report_json(report_of(run_of(tmp_path, system=grown)))
    assert "anatomy" in written["endpoints"]["chat"]
    from pytest_tokenbudget.report.diff import diff_json

    system = diff_json(diff)["endpoints"]["chat"]["anatomy"]["input"]["system"]
    assert system["delta_mean"] == added and system["exact"] is False


def test_a_part_budget_is_judged_on_its_p95_and_says_it_is_estimated(tmp_path):
    report = report_of(run_of(tmp_path, limit=15))
    (ep,) = report.endpoints
    check = next(b for b in ep.budgets if b.key == "max_system_tokens")
    system = [c.tokens[1] for c in run_of(tmp_path, limit=15).anatomy]
    assert check.actual == max(system) and check.ok is False and check.estimated
    assert check.drivers == ("c", "b", "a")[: len([n for n in system if n > 15])]
    assert check.line == 4
    failure = next(f for f in ep.failures if f.key == "max_system_tokens")
    assert failure.message == (
        f"system prompt tokens p95 {max(system):,} (estimated) breaks max_system_tokens (15)"
    )
    budget = next(
        b
        for b in report_json(report)["endpoints"]["chat"]["budgets"]
        if b["key"] == "max_system_tokens"
    )
    assert budget["estimated"] is True
    tools = next(b for b in ep.budgets if b.key == "max_tools_tokens")
    assert (tools.actual, tools.ok, tools.estimated) == (0, True, False)  # no tools: exactly 0


def test_a_part_budget_with_no_prompt_seen_says_why(tmp_path):
    run = run_of(tmp_path)
    run.anatomy.clear()  # usage recorded by hand: no request to split
    check = next(b for b in report_of(run).endpoints[0].budgets if b.key == "max_system_tokens")
    assert check.ok is None and "no Anthropic Messages request" in check.note


def test_the_ratchet_tightens_a_part_budget_to_what_was_measured(tmp_path):
    run = run_of(tmp_path, limit=1000)
    plan = plan_update(report_of(run), run.config, run.case_runs, margin_pct=10, loosen=False)
    change = next(c for c in plan.changes if c.key == "max_system_tokens")
    measured = max(c.tokens[1] for c in run.anatomy)
    assert change.measured == measured and measured < change.new <= measured * 1.1 + 1


def test_a_misspelt_part_budget_is_an_error_with_a_suggestion(tmp_path):
    path = tmp_path / "token_budgets.yml"
    path.write_text("endpoints:\n  chat:\n    max_system_token: 900\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "did you mean 'max_system_tokens'?" in str(err.value)
    assert f"{path}:3" in str(err.value)
