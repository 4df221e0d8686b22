"""The whole loop as a user runs it: record against the emulator, replay offline, gate."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from conftest import FAKE_KEY
from project_files import APP, CASES, CONFIG, record, report_of

SONNET = {"in": Fraction(3), "out": Fraction(15), "w5": Fraction("3.75"), "r": Fraction("0.3")}
OPUS = {"in": Fraction(5), "out": Fraction(25), "w5": Fraction("6.25"), "r": Fraction("0.5")}


def expected_from(served):
    """Recompute the report's numbers from what the emulator served, independently."""
    calls = [s for s in served if s.path == "/v1/messages"]
    prompt = sorted(
        s.usage["input_tokens"]
        + s.usage.get("cache_creation_input_tokens", 0)
        + s.usage.get("cache_read_input_tokens", 0)
        for s in calls
    )
    output = sorted(s.usage["output_tokens"] for s in calls)
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
    rank = lambda values, p: values[math.ceil(p * len(values) / 100) - 1]  # noqa: E731
    return {
        "calls": len(calls),
        "input_tokens_p95": rank(prompt, 95),
        "input_tokens_p50": rank(prompt, 50),
        "input_tokens_max": prompt[-1],
        "output_tokens_p95": rank(output, 95),
        "cost_per_request_usd": float(round(cost / 4, 9)),
        "monthly_cost_usd": float(round(cost / 4 * 1000 * 30, 9)),
    }


def test_record_then_replay_offline_with_exact_numbers(project, recording_env, monkeypatch):
    result = record(project)
    result.assert_outcomes(passed=4)
    emulator = recording_env
    expected = expected_from(emulator.served)
    assert expected["calls"] == 5

    cassettes = sorted(p.name for p in (project.path / "cassettes" / "chat").iterdir())
    assert cassettes == ["hard.yaml", "medium.yaml", "short.yaml", "streamed.yaml"]
    for path in project.path.rglob("*"):
        if path.is_file() and path.suffix in {".yaml", ".json", ".md"}:
            text = path.read_text()
            assert FAKE_KEY not in text and "Bearer" not in text, path
            assert "org-emulator" not in text, path

    recorded = report_of(project)["endpoints"]["chat"]
    served_before = len(emulator.served)

    # CI: no key, nothing may reach the network (the emulator is still up and counting).
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    (project.path / ".token-budget" / "report.json").unlink()
    replay = project.runpytest("--token-budget", "-p", "no:cacheprovider")
    replay.assert_outcomes(passed=4)
    assert len(emulator.served) == served_before
    endpoint = report_of(project)["endpoints"]["chat"]
    assert endpoint == recorded

    assert endpoint["status"] == "pass"
    assert endpoint["calls"] == expected["calls"]
    assert endpoint["cases"] == 4
    for key in ("input_tokens_p95", "input_tokens_p50", "input_tokens_max", "output_tokens_p95"):
        assert endpoint["metrics"][key] == expected[key], key
    assert endpoint["metrics"]["escalation_rate"] == 0.25
    assert endpoint["metrics"]["cost_per_request_usd"] == expected["cost_per_request_usd"]
    assert endpoint["metrics"]["monthly_cost_usd"] == expected["monthly_cost_usd"]
    assert endpoint["per_case"]["hard"]["escalated"] is True
    assert endpoint["per_case"]["hard"]["calls"] == 2
    replay.stdout.fnmatch_lines(["*token budget*", "*chat*5*4*PASS*"])


def test_broken_budget_fails_the_run_and_names_metric_line_and_cases(
    project, recording_env, monkeypatch
):
    record(project).assert_outcomes(passed=4)
    project.makefile(".yml", token_budgets=CONFIG.format(input_p95=20))
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "FAIL chat: input_tokens_p95 = * breaks max_input_tokens_p95 20 (token_budgets.yml:4)",
            "*driven by cases: *",
        ]
    )
    report = report_of(project)
    assert report["status"] == "fail"
    budget = report["endpoints"]["chat"]["budgets"][0]
    assert (budget["key"], budget["ok"], budget["line"]) == ("max_input_tokens_p95", False, 4)
    assert "Traceback" not in result.stdout.str()


def test_changed_prompt_is_a_stale_recording_that_names_case_and_fix(
    project, recording_env, monkeypatch
):
    record(project).assert_outcomes(passed=4)
    project.makepyfile(app=APP.replace("Be brief.", "Be brief. Today is 2026-11-22."))
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    served_before = len(recording_env.served)
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider", "-k", "short")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "*endpoint 'chat', case 'short': 1 request(s) not in the recording*short.yaml",
            "*system prompt changed at character 47*",
            "*re-count its input*",
            "*pytest --token-budget --token-budget-count 'test_chat.py::test_chat[[]short[]]'",
            "*re-record this case*",
            "*pytest --token-budget --token-budget-record=all 'test_chat.py::test_chat[[]short[]]'",
        ]
    )
    assert len(recording_env.served) == served_before


def test_inert_without_the_flag(project):
    result = project.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["*only pytest-tokenbudget can serve: run it with `pytest --token-budget`*"]
    )
    assert not (project.path / ".token-budget").exists()


def test_missing_cassette_in_replay_fails_without_network(project, ci_env):
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider", "-k", "short")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        ["*--token-budget-record=once 'test_chat.py::test_chat[[]short[]]'"]
    )


def test_deselected_endpoint_is_not_run_and_fails_nothing(project, ci_env):
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider", "-k", "nothing")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert report_of(project)["endpoints"]["chat"]["status"] == "not-run"


def test_endpoint_without_api_calls_fails(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=100), cases=CASES)
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.token_budget("chat")
        def test_no_calls(budget_case):
            pass
        """
    )
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAIL chat: its tests ran but captured no API call*"])


def test_unknown_endpoint_in_marker_is_a_clear_error(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=100), cases=CASES)
    pytester.makepyfile(
        test_x="""
        import pytest

        @pytest.mark.token_budget("chta")
        def test_x(budget_case):
            pass
        """
    )
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        ["*endpoint 'chta' is not in *token_budgets.yml (endpoints: chat)*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_bad_config_is_a_usage_error_with_file_line_and_key(pytester, ci_env):
    pytester.makefile(
        ".yml",
        token_budgets="endpoints:\n  chat:\n    max_input_token_p95: 10\n    cases: []\n",
    )
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*token_budgets.yml:3*max_input_token_p95*did you mean*max_input_tokens_p95*"]
    )
    assert "Traceback" not in result.stderr.str()
