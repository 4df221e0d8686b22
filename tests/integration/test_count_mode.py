"""--token-budget-count: input tokens from count_tokens on the request as sent now."""

from __future__ import annotations

import json
import math

from project_files import APP, record, report_of

from pytest_tokenbudget.cache.parts import PLACEHOLDER
from pytest_tokenbudget.capture.counting import count_key, counted_request

EDITED_APP = APP.replace(
    "Be brief.", "Be brief. Always cite the pricing page and say which model you are."
)
COUNT = ("--token-budget", "--token-budget-count", "-p", "no:cacheprovider")


def whole_requests(served):
    """The counts of the requests themselves, not of the prefixes that split them into
    parts (each of those ends with cache/parts.PLACEHOLDER)."""
    return [s for s in served if s.request["messages"][-1] != PLACEHOLDER]


def p95(values):
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def test_prompt_edit_is_recounted_exactly_without_generation(project, recording_env, monkeypatch):
    emulator = recording_env
    record(project).assert_outcomes(passed=4)
    recorded = report_of(project)["endpoints"]["chat"]
    recorded_generations = [s for s in emulator.served if s.path == "/v1/messages"]
    project.makepyfile(app=EDITED_APP)
    start = len(emulator.served)

    result = project.runpytest(*COUNT)
    result.assert_outcomes(passed=4)
    new = emulator.served[start:]
    assert {s.path for s in new} == {"/v1/messages/count_tokens"}  # no generation call
    counts = [s.usage["input_tokens"] for s in whole_requests(new)]
    assert len(counts) == 5
    endpoint = report_of(project)["endpoints"]["chat"]
    assert endpoint["metrics"]["input_tokens_p95"] == p95(counts)
    assert endpoint["metrics"]["input_tokens_p95"] > recorded["metrics"]["input_tokens_p95"]
    # output still comes from the recording
    assert endpoint["metrics"]["output_tokens_p95"] == p95(
        [s.usage["output_tokens"] for s in recorded_generations]
    )
    assert endpoint["recounted_calls"] == 5
    assert any("re-counted" in w for w in endpoint["warnings"])
    result.stdout.fnmatch_lines(
        [f"count_tokens: {len(new)} requests sent, 0 answered from the count cache"]
    )
    cache = json.loads((project.path / "cassettes" / "token_counts.json").read_text())
    assert len(cache["counts"]) == len(new)  # each request sent is kept, prefixes too
    for s in whole_requests(new):
        kept = cache["counts"][count_key(counted_request(s.request))]
        assert kept["input_tokens"] == s.usage["input_tokens"]

    # the same suite again: no API call at all
    again_start = len(emulator.served)
    again = project.runpytest(*COUNT)
    again.assert_outcomes(passed=4)
    assert len(emulator.served) == again_start
    again.stdout.fnmatch_lines(["count_tokens: 0 requests sent, 5 answered from the count cache"])
    assert report_of(project)["endpoints"]["chat"] == endpoint

    # CI without a key replays the counted cases offline
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    offline = project.runpytest(*COUNT)
    offline.assert_outcomes(passed=4)
    assert len(emulator.served) == again_start
    assert report_of(project)["endpoints"]["chat"] == endpoint


def test_unchanged_prompt_counts_match_recorded_usage(project, recording_env):
    record(project).assert_outcomes(passed=4)
    recorded = report_of(project)["endpoints"]["chat"]
    project.runpytest(*COUNT).assert_outcomes(passed=4)
    counted = report_of(project)["endpoints"]["chat"]
    # the emulator counts the whole prompt as the real endpoint does
    assert counted["metrics"] == recorded["metrics"]
    assert counted["recounted_calls"] == 0


def test_offline_count_without_a_cached_count_names_the_fix(project, recording_env, monkeypatch):
    record(project).assert_outcomes(passed=4)
    project.makepyfile(app=EDITED_APP)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = project.runpytest(*COUNT, "-k", "short")
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "*no recorded count for this request in *token_counts.json*ANTHROPIC_API_KEY=* pytest --token-budget --token-budget-count*"
        ]
    )


def test_rate_limited_counts_are_retried_honouring_retry_after(project, recording_env):
    emulator = recording_env
    record(project).assert_outcomes(passed=4)
    project.makepyfile(app=EDITED_APP)
    emulator.fail_next(429, retry_after=0, times=2)
    start = len(emulator.served)
    result = project.runpytest(*COUNT)
    result.assert_outcomes(passed=4)
    statuses = [s.status for s in emulator.served[start:]]
    assert statuses[:2] == [429, 429]
    assert [s.status for s in whole_requests(emulator.served[start:])] == [429, 429] + [200] * 5


def test_count_fixture_is_recorded_and_replayed(pytester, recording_env, monkeypatch):
    pytester.makefile(
        ".yml",
        token_budgets="endpoints:\n  probe:\n    max_input_tokens_p95: 100\n    cases: [{id: one}]\n",
    )
    pytester.makepyfile(
        test_probe="""
        import pytest

        REQUEST = dict(model="claude-sonnet-4-6", max_tokens=10,
                       messages=[{"role": "user", "content": "count these five words"}])

        @pytest.mark.token_budget("probe")
        def test_probe(budget_case, token_budget):
            n = token_budget.count(**REQUEST)
            print("COUNTED", n)
            assert token_budget.endpoint == "probe" and token_budget.case["id"] == "one"
            token_budget.record({"input_tokens": n, "output_tokens": 7}, model="claude-sonnet-4-6")
        """
    )
    expected = recording_env.count(
        {
            "model": "claude-sonnet-4-6",
            "messages": [{"role": "user", "content": "count these five words"}],
        }
    )
    first = pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-s", "-p", "no:cacheprovider"
    )
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines([f"*COUNTED {expected}"])
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    served = len(recording_env.served)
    replay = pytester.runpytest("--token-budget", "-s", "-p", "no:cacheprovider")
    replay.assert_outcomes(passed=1)
    replay.stdout.fnmatch_lines([f"*COUNTED {expected}"])
    assert len(recording_env.served) == served
    endpoint = report_of(pytester)["endpoints"]["probe"]
    assert endpoint["calls"] == 1
    assert endpoint["metrics"]["input_tokens_p95"] == expected
    assert endpoint["metrics"]["output_tokens_max"] == 7
