"""Request cases: budgets from yml alone, counted with count_tokens."""

from __future__ import annotations

import math

import yaml
from project_files import report_of


def request(i: int) -> dict:
    words = " ".join(["budget"] * (5 + 3 * i))
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 30,
        "system": "Summarize the ticket.",
        "messages": [{"role": "user", "content": f"Ticket {i}: {words}"}],
    }


def write_config(pytester, n: int) -> list[dict]:
    cases = [{"id": f"r{i}", "request": request(i)} for i in range(n)]
    config = {"endpoints": {"summarize": {"max_input_tokens_p95": 200, "cases": cases}}}
    pytester.makefile(".yml", token_budgets=yaml.safe_dump(config, sort_keys=False))
    return cases


def test_request_cases_need_no_test_code(pytester, recording_env, monkeypatch):
    emulator = recording_env
    cases = write_config(pytester, 8)
    result = pytester.runpytest("--token-budget", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        ["*counted 8/8 request cases*", "*token_budgets.yml::summarize[[]r0[]] PASSED*"]
    )
    assert {s.path for s in emulator.served} == {"/v1/messages/count_tokens"}
    counts = sorted(emulator.count(c["request"]) for c in cases)
    endpoint = report_of(pytester)["endpoints"]["summarize"]
    assert endpoint["metrics"]["input_tokens_p95"] == counts[math.ceil(0.95 * 8) - 1]
    assert endpoint["metrics"]["output_tokens_p95"] is None
    assert any("counted but never generated" in w for w in endpoint["warnings"])

    served = len(emulator.served)
    again = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    again.assert_outcomes(passed=8)
    assert len(emulator.served) == served  # unchanged prompts: no API call at all

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    offline = pytester.runpytest("--token-budget", "-p", "no:cacheprovider", "-k", "r3")
    offline.assert_outcomes(passed=1, deselected=7)
    assert len(emulator.served) == served


def test_recorded_request_cases_measure_output_too(pytester, recording_env, monkeypatch):
    emulator = recording_env
    write_config(pytester, 3)
    pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    ).assert_outcomes(passed=3)
    generated = [s for s in emulator.served if s.path == "/v1/messages"]
    assert len(generated) == 3
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    replay = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    replay.assert_outcomes(passed=3)
    endpoint = report_of(pytester)["endpoints"]["summarize"]
    assert endpoint["metrics"]["output_tokens_max"] == max(
        s.usage["output_tokens"] for s in generated
    )


def test_offline_request_case_without_count_names_the_fix(pytester, ci_env):
    write_config(pytester, 1)
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no recording and no cached count for this request case*"])
    assert "Traceback" not in result.stdout.str()


def test_marked_endpoint_gets_no_generated_items(pytester, ci_env):
    write_config(pytester, 2)
    pytester.makepyfile(
        test_s="""
        import pytest

        @pytest.mark.token_budget("summarize")
        def test_s(budget_case):
            pass
        """
    )
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider", "--collect-only", "-q")
    assert "token_budgets.yml" not in result.stdout.str()
