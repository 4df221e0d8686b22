"""Cases that made no API call: named in every output, and counted as the config says.

A module marked for budgets where some tests make no Claude call the plugin sees (the app
returns early, answers from its own cache, or a test uses a mock) must not silently lower
the escalation rate and the cost per request. `cases_without_calls: exclude` (the default)
leaves such cases out of the per-case metrics; `count` makes them $0 requests. Either way
report.json (`no_call_cases`), the terminal, report.md and report.html name them.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

import jsonschema
import pytest
import yaml
from paths import DOCS
from project_files import use_light_sdk

from pytest_tokenbudget.config.budgets import load_config, schema_path
from pytest_tokenbudget.errors import ConfigError
from pytest_tokenbudget.measure.evaluation import NAMED_CASES
from pytest_tokenbudget.measure.run import BudgetRun, Options
from pytest_tokenbudget.measure.samples import CaseRun, Sample
from pytest_tokenbudget.measure.stats import endpoint_stats
from pytest_tokenbudget.pricing.prices import PriceBook
from pytest_tokenbudget.providers.usage import Usage
from pytest_tokenbudget.report.build import report_of
from pytest_tokenbudget.report.html import render_html
from pytest_tokenbudget.report.json_io import report_json
from pytest_tokenbudget.report.markdown import render_markdown
from pytest_tokenbudget.report.table import render_findings

SONNET = {"in": Fraction(3), "out": Fraction(15), "w5": Fraction("3.75"), "r": Fraction("0.3")}
OPUS = {"in": Fraction(5), "out": Fraction(25), "w5": Fraction("6.25"), "r": Fraction("0.5")}

CONFIG = """\
{defaults}endpoints:
  chat:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 4000
    allowed_escalation_rate: 0.25
    requests_per_day: 1000
    cases: cases.yml
{setting}"""

# Three cases call the API (one escalates to Opus); two make no call: the app answers a
# blank question without one, and a FAQ question from its own cache.
CASES = """\
- id: short
  question: What is a token?
- id: hard
  question: Compare three retry strategies for rate limited APIs.
  escalate: true
- id: medium
  question: Explain prompt caching in two sentences please.
- id: blank
  question: "   "
- id: faq_hit
  question: What are your opening hours?
"""

APP = """\
import anthropic

SYSTEM = "You answer questions about LLM costs. Be brief."
FAQ = {"What are your opening hours?": "9 to 5, Monday to Friday."}


def reply(question, *, escalate=False):
    if not question.strip():
        return "Please ask a question."  # returns early: no API call
    if question in FAQ:
        return FAQ[question]  # the app's own cache: no API call
    client = anthropic.Anthropic(max_retries=0)
    kwargs = dict(
        model="claude-sonnet-4-6",
        max_tokens=40,
        system=SYSTEM,
        messages=[{"role": "user", "content": question}],
    )
    message = client.messages.create(**kwargs)
    if escalate:
        kwargs["model"] = "claude-opus-4-7"
        message = client.messages.create(**kwargs)
    return message.content[0].text
"""

# The whole module is marked: the second test runs the app against a mock, not a cassette.
TEST = """\
from unittest import mock

import pytest
from app import reply

pytestmark = pytest.mark.token_budget("chat")


def test_chat(budget_case):
    assert reply(budget_case["question"], escalate=budget_case.get("escalate", False))


def test_reply_with_a_mock_client():
    with mock.patch("app.anthropic.Anthropic") as client:
        client.return_value.messages.create.return_value.content = [mock.Mock(text="hi")]
        assert reply("Anything at all?") == "hi"
"""

CALLING = ["short", "hard", "medium"]
ALL_CASES = 6  # five budget cases and the mocked test


def _write(pytester, *, setting: str = "", defaults: str = "") -> None:
    pytester.makefile(".yml", token_budgets=CONFIG.format(setting=setting, defaults=defaults))


@pytest.fixture
def marked_module(pytester):
    _write(pytester)
    pytester.makefile(".yml", cases=CASES)
    pytester.makepyfile(app=APP, test_chat=TEST)
    pytester.syspathinsert()
    return pytester


def _report(pytester) -> dict:
    return json.loads((pytester.path / ".token-budget" / "report.json").read_text())


def _expected(served, requests: int) -> dict:
    """The per-case metrics recomputed from what the emulator served, independently."""
    calls = [s for s in served if s.path == "/v1/messages"]
    cost = Fraction(0)
    for s in calls:
        rate = OPUS if "opus" in s.model else SONNET
        u = s.usage
        cost += (
            u["input_tokens"] * rate["in"]
            + u["output_tokens"] * rate["out"]
            + u.get("cache_creation_input_tokens", 0) * rate["w5"]
            + u.get("cache_read_input_tokens", 0) * rate["r"]
        ) / 10**6
    escalated = {s.request["messages"][0]["content"] for s in calls if "opus" in s.model}
    return {
        "calls": len(calls),
        "cost_per_call_usd": float(round(cost / len(calls), 9)),
        "cost_per_request_usd": float(round(cost / requests, 9)),
        "monthly_cost_usd": float(round(cost / requests * 1000 * 30, 9)),
        "escalation_rate": float(round(Fraction(len(escalated), requests), 6)),
    }


def _mocked(no_call: list[str]) -> list[str]:
    """The mocked test's case, however its id is spelled."""
    return [c for c in no_call if "test_reply_with_a_mock_client" in c]


@pytest.mark.slow
def test_cases_without_calls_are_named_and_left_out_or_counted_exactly(
    marked_module, recording_env, monkeypatch
):
    pytester, emulator = marked_module, recording_env
    pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    ).assert_outcomes(passed=ALL_CASES)
    assert len([s for s in emulator.served if s.path == "/v1/messages"]) == 4  # hard: 2
    served = list(emulator.served)
    monkeypatch.delenv("ANTHROPIC_API_KEY")  # CI: replay, no key, no network

    # -- exclude (the default): the per-case metrics are over the 3 cases that called ----
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=ALL_CASES)
    assert len(emulator.served) == len(served)
    endpoint = _report(pytester)["endpoints"]["chat"]
    no_call = endpoint["no_call_cases"]
    assert endpoint["cases_without_calls"] == "exclude"
    assert (endpoint["calls"], endpoint["cases"]) == (4, ALL_CASES)
    assert no_call[:2] == ["blank", "faq_hit"] and len(_mocked(no_call)) == 1
    assert len(no_call) == 3
    assert {c for c, s in endpoint["per_case"].items() if s["calls"] == 0} == set(no_call)
    expected = _expected(served, requests=len(CALLING))
    for key, value in expected.items():
        actual = endpoint["calls"] if key == "calls" else endpoint["metrics"][key]
        assert actual == value, key
    assert endpoint["metrics"]["escalation_rate"] == 0.333333  # 1 of 3
    # 1 of 3 breaks allowed_escalation_rate 0.25: counting the mocks would have hidden it
    assert endpoint["status"] == "fail" and result.ret == 1
    out = result.stdout.str()
    print(out)
    result.stdout.fnmatch_lines(
        [
            "*FAIL chat: escalation_rate = 33.3% breaks allowed_escalation_rate 25.0%*",
            (
                "warn chat: no API call captured in 3 of 6 cases: blank, faq_hit, "
                "*test_reply_with_a_mock_client*; escalation_rate, cost_per_request_usd and "
                "monthly_cost_usd are over the other 3 "
                "(cases_without_calls: exclude; set count to make them $0 requests)"
            ),
        ]
    )
    md = (pytester.path / ".token-budget" / "report.md").read_text()
    print(md)
    assert "no API call captured in 3 of 6 cases: blank, faq\\_hit, " in md
    html = (pytester.path / ".token-budget" / "report.html").read_text()
    assert html.count('data-role="no-call"') == 3
    assert "Cases (6, 3 without an API call)" in html
    assert "over the 3 cases that made an API call" in html
    assert "3 cases without one left out" in html

    # -- count: the same run, each case without a call a $0 request ----------------------
    _write(pytester, setting="    cases_without_calls: count\n")
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=ALL_CASES)
    counted = _report(pytester)["endpoints"]["chat"]
    assert counted["cases_without_calls"] == "count"
    assert counted["no_call_cases"] == no_call
    expected = _expected(served, requests=ALL_CASES)
    for key, value in expected.items():
        actual = counted["calls"] if key == "calls" else counted["metrics"][key]
        assert actual == value, key
    assert counted["metrics"]["escalation_rate"] == 0.166667  # 1 of 6
    assert counted["status"] == "pass" and result.ret == 0
    # the token metrics are over calls: the setting leaves them alone
    for key in ("input_tokens_p95", "output_tokens_p95", "cache_hit_rate", "cost_per_call_usd"):
        assert counted["metrics"][key] == endpoint["metrics"][key], key
    print(result.stdout.str())
    result.stdout.fnmatch_lines(
        [
            (
                "warn chat: no API call captured in 3 of 6 cases: blank, faq_hit, *; they count "
                "as $0 requests in escalation_rate, cost_per_request_usd and monthly_cost_usd "
                "(cases_without_calls: count)"
            )
        ]
    )
    html = (pytester.path / ".token-budget" / "report.html").read_text()
    assert "3 of them without an API call, counted as $0 requests" in html

    # -- under defaults: it applies to every endpoint, and the endpoint's own key wins ---
    _write(pytester, defaults="defaults:\n  cases_without_calls: count\n")
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert _report(pytester)["endpoints"]["chat"]["metrics"] == counted["metrics"]
    _write(
        pytester,
        defaults="defaults:\n  cases_without_calls: count\n",
        setting="    cases_without_calls: exclude\n",
    )
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert _report(pytester)["endpoints"]["chat"]["metrics"] == endpoint["metrics"]


@pytest.mark.slow
def test_a_parallel_run_names_the_same_cases(marked_module, recording_env, monkeypatch):
    """Under xdist the cases without calls come from the workers' case runs."""
    pytest.importorskip("xdist")
    pytester = marked_module
    use_light_sdk(pytester.path / "app.py")  # the workers import no SDK: ~5 s of CPU less
    pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    ).assert_outcomes(passed=ALL_CASES)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    serial = _report(pytester)["endpoints"]["chat"]
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider", "-n", "2")  # workers: processes
    parallel = _report(pytester)["endpoints"]["chat"]
    assert parallel["no_call_cases"] == serial["no_call_cases"]
    assert parallel["metrics"] == serial["metrics"]


# -- without a run: the report's pieces ----------------------------------------------------
def _run(tmp_path, setting: str = "", *, no_call: int = 2, calling: int = 2) -> BudgetRun:
    path = tmp_path / "token_budgets.yml"
    path.write_text(
        "endpoints:\n  chat:\n    target_model: claude-sonnet-4-6\n"
        f"    max_input_tokens_p95: 4000\n    requests_per_day: 100\n{setting}"
    )
    run = BudgetRun(load_config(path), Options(path, tmp_path, tmp_path))
    for i in range(calling):
        model = "claude-opus-4-7" if i == 0 else "claude-sonnet-4-6"
        run.samples.append(Sample("chat", f"c{i}", f"t::c{i}", 0, model, Usage(1000, 100)))
        run.case_runs.append(CaseRun("chat", f"c{i}", f"t::c{i}"))
    for i in range(no_call):
        run.case_runs.append(CaseRun("chat", f"z{i:02}", f"t::z{i:02}"))
    return run


@pytest.mark.parametrize("setting, requests", [("", 2), ("    cases_without_calls: count\n", 4)])
def test_the_denominator_of_every_per_case_metric(tmp_path, setting, requests):
    ep = report_json(report_of(_run(tmp_path, setting)))["endpoints"]["chat"]
    total = Fraction(1000 * 5 + 100 * 25 + 1000 * 3 + 100 * 15, 10**6)  # Opus c0, Sonnet c1
    assert ep["no_call_cases"] == ["z00", "z01"]
    assert ep["metrics"]["cost_per_request_usd"] == float(round(total / requests, 9))
    assert ep["metrics"]["monthly_cost_usd"] == float(round(total / requests * 100 * 30, 9))
    assert ep["metrics"]["escalation_rate"] == float(round(Fraction(1, requests), 6))
    assert ep["metrics"]["cost_per_call_usd"] == float(round(total / 2, 9))


def test_without_any_case_without_calls_nothing_is_said(tmp_path):
    report = report_of(_run(tmp_path, no_call=0))
    ep = report_json(report)["endpoints"]["chat"]
    assert ep["no_call_cases"] == [] and ep["cases_without_calls"] == "exclude"
    assert not any("no API call" in w for w in ep["warnings"])
    assert not any("no API call" in line for line in render_findings(report))


def test_a_long_list_is_cut_in_the_text_and_whole_in_report_json(tmp_path):
    report = report_of(_run(tmp_path, no_call=NAMED_CASES + 5))
    ep = report_json(report)["endpoints"]["chat"]
    assert len(ep["no_call_cases"]) == NAMED_CASES + 5
    (warning,) = [w for w in ep["warnings"] if "no API call" in w]
    assert f"in {NAMED_CASES + 5} of {NAMED_CASES + 7} cases" in warning
    assert "z09 and 5 more (report.json: no_call_cases)" in warning
    assert "z10" not in warning
    # report.html names every one of them in its cases table
    assert render_html(report).count('data-role="no-call"') == NAMED_CASES + 5


def test_an_endpoint_with_no_call_at_all_still_fails(tmp_path):
    """The existing rule stands: tests ran, nothing was captured: the capture is broken."""
    ep = report_json(report_of(_run(tmp_path, calling=0)))["endpoints"]["chat"]
    assert ep["status"] == "fail"
    assert any("captured no API call" in p for p in ep["problems"])
    assert ep["no_call_cases"] == ["z00", "z01"]
    assert ep["metrics"]["cost_per_request_usd"] is None  # over no request at all
    # the problem says it all: no second line about the same cases
    assert not any("no API call captured in" in w for w in ep["warnings"])


def test_case_ids_in_the_markdown_note_are_escaped(tmp_path):
    run = _run(tmp_path, no_call=0)
    run.case_runs.append(CaseRun("chat", "a*b_[x]", "t::evil"))
    md = render_markdown(report_of(run))
    assert "a\\*b\\_\\[x\\]" in md and "a*b_[x]" not in md


# -- the key in token_budgets.yml ----------------------------------------------------------
def test_the_key_loads_per_endpoint_and_from_defaults(tmp_path):
    path = tmp_path / "token_budgets.yml"
    path.write_text(
        "defaults:\n  cases_without_calls: count\nendpoints:\n"
        "  a:\n    max_input_tokens_p95: 1\n"
        "  b:\n    max_input_tokens_p95: 1\n    cases_without_calls: exclude\n"
    )
    config = load_config(path)
    assert config.endpoints["a"].cases_without_calls == "count"
    assert config.endpoints["b"].cases_without_calls == "exclude"
    path.write_text("endpoints:\n  a:\n    max_input_tokens_p95: 1\n")
    assert load_config(path).endpoints["a"].cases_without_calls == "exclude"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "endpoints:\n  a:\n    max_input_tokens_p95: 1\n    cases_without_calls: excluded\n",
            (
                "token_budgets.yml:4: cases_without_calls: 'excluded' is not allowed: use one "
                "of exclude, count (did you mean 'exclude'?)"
            ),
        ),
        (
            "defaults:\n  cases_without_calls: true\nendpoints:\n  a:\n    max_input_tokens_p95: 1\n",
            "token_budgets.yml:2: cases_without_calls: true is not allowed: use one of exclude, count",
        ),
        (
            "endpoints:\n  a:\n    max_input_tokens_p95: 1\n    case_without_calls: count\n",
            (
                "token_budgets.yml:4: case_without_calls: unknown key 'case_without_calls' "
                "(did you mean 'cases_without_calls'?)"
            ),
        ),
    ],
)
def test_a_wrong_value_or_key_names_file_line_and_key(tmp_path, text, expected):
    path = tmp_path / "token_budgets.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value).replace(str(tmp_path) + "/", "")


def test_the_stats_refuse_an_unknown_setting():
    with pytest.raises(ValueError, match="cases_without_calls"):
        endpoint_stats("ep", [], ["a"], book=PriceBook(), cases_without_calls="skip")


def test_the_documented_yaml_blocks_with_the_key_are_valid():
    docs = DOCS / "configuration.md"
    blocks = re.findall(r"```yaml\n(.*?)```", docs.read_text(encoding="utf-8"), re.DOTALL)
    blocks = [b for b in blocks if "cases_without_calls" in b]
    assert len(blocks) == 2  # the full form and the section on cases without calls
    validator = jsonschema.Draft202012Validator(json.loads(schema_path().read_text()))
    for block in blocks:
        assert list(validator.iter_errors(yaml.safe_load(block))) == []
