"""The CI command honours committed counts: after `--token-budget-count` and a committed
token_counts.json, plain `pytest --token-budget` replays a changed prompt offline, its
input from the count and its output from the recording."""

from __future__ import annotations

import math

import pytest
from project_files import APP, record, report_of

from pytest_tokenbudget.cache.parts import PLACEHOLDER

EDITED_APP = APP.replace(
    "Be brief.", "Be brief. Always cite the pricing page and say which model you are."
)


def p95(values):
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def test_replay_measures_a_changed_prompt_by_its_committed_count(
    project, recording_env, monkeypatch
):
    emulator = recording_env
    record(project).assert_outcomes(passed=4)
    generations = [s for s in emulator.served if s.path == "/v1/messages"]
    project.makepyfile(app=EDITED_APP)
    start = len(emulator.served)
    project.runpytest("--token-budget", "--token-budget-count").assert_outcomes(passed=4)
    # the requests' own counts; the prefixes that split them into parts end with PLACEHOLDER
    counts = [
        s.usage["input_tokens"]
        for s in emulator.served[start:]
        if s.request["messages"][-1] != PLACEHOLDER
    ]
    assert (project.path / "cassettes" / "token_counts.json").is_file()  # to commit
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens
    served = len(emulator.served)

    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")  # the CI command

    result.assert_outcomes(passed=4)
    assert len(emulator.served) == served  # offline
    endpoint = report_of(project)["endpoints"]["chat"]
    assert endpoint["status"] == "pass", endpoint["problems"]
    assert endpoint["recounted_calls"] == len(counts) == 5
    assert endpoint["metrics"]["input_tokens_p95"] == p95(counts)
    assert endpoint["metrics"]["output_tokens_p95"] == p95(
        [s.usage["output_tokens"] for s in generations]
    )
    assert any("re-counted" in w for w in endpoint["warnings"])


def test_a_changed_prompt_with_no_committed_count_is_still_stale(project, recording_env):
    record(project).assert_outcomes(passed=4)
    project.makepyfile(app=EDITED_APP)

    result = project.runpytest("--token-budget", "-p", "no:cacheprovider", "-k", "short")

    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*not in the recording*"])


def _changed_and_counted(project, recording_env, app):
    record(project).assert_outcomes(passed=4)
    project.makepyfile(app=app)
    return project.runpytest("--token-budget", "--token-budget-count")


CHANGED_BEYOND_THE_PROMPT = {
    # same prompt, another model: count_tokens counts it, but what it generates and what
    # it costs are not the recording's
    "model": APP.replace('model="claude-sonnet-4-6"', 'model="claude-haiku-4-5"'),
    "max_tokens": EDITED_APP.replace("max_tokens=40", "max_tokens=8000"),
}


@pytest.mark.parametrize("changed", list(CHANGED_BEYOND_THE_PROMPT))
def test_a_request_changed_beyond_its_prompt_is_never_measured_by_a_count(
    project, recording_env, monkeypatch, changed
):
    counted = _changed_and_counted(project, recording_env, CHANGED_BEYOND_THE_PROMPT[changed])
    counted.assert_outcomes(failed=4)  # count mode: stale, to re-record
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    result = project.runpytest("--token-budget", "-p", "no:cacheprovider", "-k", "short")

    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*not in the recording*"])


def test_a_committed_count_of_zero_is_refused(project, recording_env, monkeypatch):
    import json

    _changed_and_counted(project, recording_env, EDITED_APP).assert_outcomes(passed=4)
    path = project.path / "cassettes" / "token_counts.json"
    data = json.loads(path.read_text())
    for entry in data["counts"].values():
        entry["input_tokens"] = 0
    path.write_text(json.dumps(data))
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")

    assert result.ret != 0
    endpoint = report_of(project)["endpoints"]["chat"]
    assert endpoint["status"] == "fail"
    assert any("a count of 0 tokens" in p for p in endpoint["problems"])


def test_a_model_version_change_is_stale_not_a_volatile_value(project, recording_env, monkeypatch):
    # claude-opus-4-7 -> claude-opus-4-6 differs by one digit, like a counter would
    record(project).assert_outcomes(passed=4)
    project.makepyfile(app=APP.replace('"claude-opus-4-7"', '"claude-opus-4-6"'))
    monkeypatch.delenv("ANTHROPIC_API_KEY")

    result = project.runpytest("--token-budget", "-p", "no:cacheprovider", "-k", "hard")

    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(["*not in the recording*"])
