"""A model with no price is an error, never $0: configured models when pytest starts,
called models (from a recording or the API) at the end of the run."""

from __future__ import annotations

import pytest
from project_files import record, report_of

from pytest_tokenbudget.pricing.prices import source_name

SNIPPET = [
    "*  pricing:",
    "*    claude-opus-9-zz: {input: 3.0, output: 15.0}   # $ per million tokens*",
]

BUDGETS = """\
pricing:
  house-model: {{input: 1.0, output: 2.0}}
endpoints:
  chat:
    target_model: {target}
    escalation_models: [{escalation}]
    max_input_tokens_p95: 4000
    cases: [{{id: a}}, {{id: b}}]
"""

RECORDING_TEST = """\
import pytest
from pytest_tokenbudget.providers.usage import Usage


@pytest.mark.token_budget("chat")
def test_chat(token_budget, budget_case):
    token_budget.record(Usage(input_tokens=100, output_tokens=10), model={model!r})
"""


def budgets(target="claude-sonnet-4-6", escalation="claude-opus-4-7"):
    return BUDGETS.format(target=target, escalation=escalation)


def run(pytester):
    return pytester.runpytest("--token-budget", "-p", "no:cacheprovider")


# -- configured models: rejected when pytest starts ------------------------------------
def test_unknown_target_model_is_a_usage_error_with_line_suggestion_and_snippet(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=budgets(target="claude-opus-9-zz"))
    pytester.makepyfile(test_chat=RECORDING_TEST.format(model="claude-sonnet-4-6"))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            (
                "ERROR: pytest-tokenbudget: *token_budgets.yml:5: target_model: unknown model "
                "'claude-opus-9-zz': no price in genai-prices *, in `pricing:` or from a "
                "pytest_tokenbudget_price hook (did you mean 'claude-opus-5-5', 'claude-opus-4-8' "
                "or 'claude-opus-4-7'?). If it is newer than genai-prices *, upgrade genai-prices "
                "(or add `pricing:`). If the name is right, add its price to token_budgets.yml:"
            ),
            *SNIPPET,
        ]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert not (pytester.path / ".token-budget").exists()  # nothing ran, nothing reported


def test_unknown_escalation_and_defaults_models_are_all_listed(pytester, ci_env):
    pytester.makefile(
        ".yml",
        token_budgets="""\
defaults:
  target_model: claude-sonet-4-6
endpoints:
  chat:
    escalation_models:
      - claude-opus-4-7
      - gpt-9o
    max_input_tokens_p95: 4000
  triage:
    max_output_tokens_p95: 64
""",
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.startswith("ERROR: pytest-tokenbudget: 2 problems in ")
    assert (
        "token_budgets.yml:2: target_model: unknown model 'claude-sonet-4-6': no price in "
        f"{source_name()}, in `pricing:` or from a pytest_tokenbudget_price hook (did you mean "
        "'claude-sonnet-4-6'" in err
    )
    assert "token_budgets.yml:7: escalation_models[1]: unknown model 'gpt-9o'" in err
    assert "    gpt-9o: {input: 3.0, output: 15.0}" in err
    assert err.count("claude-sonet-4-6': no price") == 1  # inherited twice, said once
    assert "Traceback" not in err


def test_pricing_entries_aliases_and_dated_ids_are_accepted(pytester, ci_env):
    pytester.makefile(
        ".yml",
        token_budgets=budgets(
            target="claude-3-5-haiku-latest",
            escalation="claude-sonnet-4-5-20250929, claude-sonnet-4-5, house-model, "
            "claude-opus-4-7-20261101",
        ),
    )
    pytester.makepyfile(test_chat=RECORDING_TEST.format(model="house-model"))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.assert_outcomes(passed=2)


def test_a_model_only_a_price_hook_knows_is_accepted_and_priced_by_it(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=budgets(target="acme-proxy-1"))
    pytester.makeconftest(
        """
        def pytest_tokenbudget_price(model):
            if model == "acme-proxy-1":
                return {"input": 4.0, "output": 20.0}
        """
    )
    pytester.makepyfile(test_chat=RECORDING_TEST.format(model="acme-proxy-1"))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    endpoint = report_of(pytester)["endpoints"]["chat"]
    assert endpoint["price_sources"] == {"acme-proxy-1": "pytest_tokenbudget_price hook"}
    assert endpoint["metrics"]["cost_per_request_usd"] == 0.0006  # 100 x $4 + 10 x $20 per M


def test_a_price_hook_that_does_not_know_the_model_still_leaves_it_unknown(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=budgets(target="acme-proxy-2"))
    pytester.makeconftest(
        """
        def pytest_tokenbudget_price(model):
            if model == "acme-proxy-1":
                return {"input": 4.0, "output": 20.0}
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            (
                "*token_budgets.yml:5: target_model: unknown model 'acme-proxy-2': no price in "
                "genai-prices *, in `pricing:` or from a pytest_tokenbudget_price hook. If the name "
                "is right, add its price to token_budgets.yml:"
            ),
            "    acme-proxy-2: {input: 3.0, output: 15.0}*",
            "*",
            (
                "A pytest_tokenbudget_price hook is asked when pytest starts: put it in a plugin or "
                "in a conftest.py loaded then (the rootdir's, or tests/conftest.py)."
            ),
        ]
    )


def test_a_price_hook_with_bad_rates_is_a_usage_error(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=budgets(target="acme-proxy-1"))
    pytester.makeconftest("def pytest_tokenbudget_price(model):\n    return {'input': 4.0}\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            (
                "*token_budgets.yml:5: target_model: the pytest_tokenbudget_price hook returned "
                "{'input': 4.0} for 'acme-proxy-1': expected $ per million tokens, at least "
                "{'input': ..., 'output': ...}"
            )
        ]
    )
    assert "Traceback" not in result.stderr.str()


# -- called models: the run fails at its end, without claiming dollars -----------------
UNPRICED_APP = """\
import anthropic


def reply(case_id):
    model = "claude-sonnet-4-6" if case_id == "a" else "acme-gpt-9"
    client = anthropic.Anthropic(max_retries=0)
    return client.messages.create(
        model=model, max_tokens=20, messages=[{"role": "user", "content": "hello " + case_id}]
    )
"""

UNPRICED_TEST = """\
import pytest
from app import reply


@pytest.mark.token_budget("chat")
def test_chat(budget_case):
    reply(budget_case["id"])
"""

UNPRICED_BUDGETS = """\
endpoints:
  chat:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 4000
    max_cost_per_request_usd: 1.0
    requests_per_day: 100
    cases: [{id: a}, {id: b}, {id: c}]
  other:
    target_model: claude-haiku-4-5
    max_input_tokens_p95: 4000
    requests_per_day: 100
    cases: [{id: x}]
"""

OTHER_TEST = """\
import pytest
from pytest_tokenbudget.providers.usage import Usage


@pytest.mark.token_budget("other")
def test_other(token_budget, budget_case):
    token_budget.record(Usage(input_tokens=1000, output_tokens=100), model="claude-haiku-4-5")
"""


def unpriced_project(pytester):
    pytester.makefile(".yml", token_budgets=UNPRICED_BUDGETS)
    pytester.makepyfile(app=UNPRICED_APP, test_chat=UNPRICED_TEST, test_other=OTHER_TEST)
    pytester.syspathinsert()
    return pytester


def assert_unpriced_failure(result, pytester):
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            (
                "FAIL chat: no price for model 'acme-gpt-9', called in cases b, c: its calls are "
                "not in the dollar metrics. If the name is right, add its price to "
                "token_budgets.yml:"
            ),
            "  pricing:",
            "    acme-gpt-9: {input: 3.0, output: 15.0}   # $ per million tokens*",
        ]
    )
    out = result.stdout.str()
    assert "Traceback" not in out and "Traceback" not in result.stderr.str()
    report = report_of(pytester)
    chat = report["endpoints"]["chat"]
    assert chat["status"] == "fail"
    assert chat["unpriced_models"] == {"acme-gpt-9": ["b", "c"]}
    # tokens are measured; dollars are not claimed: no $0 anywhere for the unpriced calls
    assert chat["calls"] == 3 and chat["cases"] == 3
    assert chat["metrics"]["input_tokens_p95"] > 0
    for metric in ("cost_per_call_usd", "cost_per_request_usd", "monthly_cost_usd"):
        assert chat["metrics"][metric] is None, metric
    assert chat["per_case"]["a"]["cost_usd"] > 0
    assert chat["per_case"]["b"]["cost_usd"] is None
    assert chat["per_case"]["c"]["cost_usd"] is None
    assert "acme-gpt-9" not in chat["price_sources"]
    budgets = {b["key"]: b for b in chat["budgets"]}
    assert budgets["max_input_tokens_p95"]["ok"] is True
    cost = budgets["max_cost_per_request_usd"]
    assert cost["ok"] is None and cost["actual"] is None
    assert cost["note"] == "not checked: no price for acme-gpt-9"
    assert report["endpoints"]["other"]["status"] == "pass"
    assert report["totals"]["cost_usd"] is None
    assert report["totals"]["monthly_cost_usd"] is None
    assert report["status"] == "fail"
    markdown = (pytester.path / ".token-budget" / "report.md").read_text()
    assert "| chat | ❌ fail | 3 | 3 | 5 | 4 | 66.7% | 0.0% | — | — |" in markdown
    assert "no price for model 'acme-gpt-9'" in markdown


def test_a_called_model_with_no_price_fails_the_run_when_recorded_and_replayed(
    pytester, recording_env, monkeypatch
):
    project = unpriced_project(pytester)
    assert_unpriced_failure(record(project), project)
    served = len(recording_env.served)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    (project.path / ".token-budget" / "report.json").unlink()
    assert_unpriced_failure(run(project), project)  # the cassettes hold the unknown model
    assert len(recording_env.served) == served


def test_a_called_model_priced_in_pricing_passes(pytester, recording_env):
    project = unpriced_project(pytester)
    project.makefile(
        ".yml",
        token_budgets="pricing:\n  acme-gpt-9: {input: 1.0, output: 2.0}\n" + UNPRICED_BUDGETS,
    )
    result = record(project)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    chat = report_of(project)["endpoints"]["chat"]
    assert chat["price_sources"]["acme-gpt-9"] == "token_budgets.yml"
    assert "unpriced_models" not in chat
    assert report_of(project)["totals"]["cost_usd"] > 0


def test_a_dated_response_model_is_priced_as_its_model(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=budgets())
    pytester.makepyfile(test_chat=RECORDING_TEST.format(model="claude-sonnet-4-6-20261201"))
    result = run(pytester)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    chat = report_of(pytester)["endpoints"]["chat"]
    assert chat["price_sources"] == {"claude-sonnet-4-6-20261201": source_name()}
    assert chat["metrics"]["escalation_rate"] == 0.0  # the target model, dated
