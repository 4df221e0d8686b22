"""Where the tokens go, end to end: a system prompt that grows by 1,440 tokens per call is
attributed to `system` in report.json and its diff (within 5% estimated, exactly when
counted) and to no other part; the exact figures are recomputed here from what the emulator
served. Count mode counts the prefixes once, and CI replays them offline."""

from __future__ import annotations

import json
import shutil

import pytest
from emulator import ANATOMY_PARTS, tokens
from project_files import APP, CONFIG, record, report_of

SYSTEM = "You answer questions about LLM costs. Be brief."
GROWN = SYSTEM + " " + "Always cite the pricing page." * 240
GROWTH = 1440
BUDGETED = CONFIG.format(input_p95=4000) + "    max_system_tokens: 100\n"
BUDGET_LINE = 9


def with_system(text):
    return APP.replace(f'SYSTEM = "{SYSTEM}"', f'SYSTEM = "{text}"')


def generated(emulator, start=0):
    return [s.request for s in emulator.served[start:] if s.path == "/v1/messages"]


def mean_parts(emulator, requests):
    """Each part's mean tokens per call, from the emulator's own count of every block."""
    parts = [emulator.anatomy(r) for r in requests]
    return {p: sum(a[p] for a in parts) / len(parts) for p in ANATOMY_PARTS}


def keep(project, name):
    shutil.copy(project.path / ".token-budget" / "report.json", project.path / name)
    return str(project.path / name)


def test_the_grown_system_prompt_is_the_systems_when_estimated(project, recording_env):
    emulator = recording_env
    assert tokens(GROWN) - tokens(SYSTEM) == GROWTH
    record(project).assert_outcomes(passed=4)
    before = mean_parts(emulator, generated(emulator))
    base = keep(project, "base.json")
    start = len(emulator.served)
    project.makepyfile(app=with_system(GROWN))

    result = project.runpytest(
        "--token-budget",
        "--token-budget-record=all",
        f"--token-budget-baseline={base}",
        "-p",
        "no:cacheprovider",
    )

    result.assert_outcomes(passed=4)
    after = mean_parts(emulator, generated(emulator, start))
    assert after["system"] - before["system"] == GROWTH  # what the emulator served
    report = report_of(project)
    anatomy = report["endpoints"]["chat"]["anatomy"]
    assert anatomy["counted_calls"] == 0 and anatomy["calls"] == 5
    assert anatomy["input"]["system"]["exact"] is False  # estimated, and says so
    change = report["diff"]["endpoints"]["chat"]["anatomy"]["input"]
    assert abs(change["system"]["delta_mean"] - GROWTH) <= 0.05 * GROWTH
    for part in ("tools", "history", "tool_results", "documents", "latest_turn"):
        assert change[part]["delta_mean"] == 0, part
    # what the estimates leave of the recorded prompt stays apart, and does not move
    assert abs(change["unattributed"]["delta_mean"]) <= 0.05 * GROWTH
    assert change["system"]["delta_monthly_usd"] > 0
    was = json.loads((project.path / "base.json").read_text())["endpoints"]["chat"]["anatomy"]
    for part in ("tools", "history", "tool_results", "documents", "latest_turn"):
        for figure in ("mean", "p95"):  # the figures themselves, not only their change
            assert was["input"][part][figure] == anatomy["input"][part][figure], part


def test_counted_the_growth_is_exact_and_replays_offline(project, recording_env, monkeypatch):
    emulator = recording_env
    project.makefile(".yml", token_budgets=BUDGETED)
    record(project).assert_outcomes(passed=4)
    count = ("--token-budget", "--token-budget-count", "-p", "no:cacheprovider")
    project.runpytest(*count).assert_outcomes(passed=4)
    base_report = report_of(project)
    base = keep(project, "base.json")
    project.makepyfile(app=with_system(GROWN))
    start = len(emulator.served)

    result = project.runpytest(*count, f"--token-budget-baseline={base}")

    result.assert_outcomes(passed=4)
    # the requests as sent now, whose counts the report is made of (not the prefixes)
    sent = [
        s.request
        for s in emulator.served[start:]
        if s.request["messages"][-1] != {"role": "user", "content": "."}
    ]
    assert len(sent) == 5
    report = report_of(project)
    endpoint = report["endpoints"]["chat"]
    anatomy = endpoint["anatomy"]
    assert anatomy["counted_calls"] == anatomy["calls"] == 5
    expected = mean_parts(emulator, sent)
    for part in ANATOMY_PARTS:
        assert anatomy["input"][part]["mean"] == expected[part], part
        assert anatomy["input"][part]["exact"] is True
    assert anatomy["input"]["unattributed"]["mean"] == 0  # the count is the prompt
    change = report["diff"]["endpoints"]["chat"]["anatomy"]["input"]
    assert change["system"]["delta_mean"] == GROWTH and change["system"]["exact"] is True
    for part in ("tools", "history", "tool_results", "documents", "latest_turn", "unattributed"):
        assert change[part]["delta_mean"] == 0, part
    # the part's budget: broken, on its line, exact
    assert base_report["endpoints"]["chat"]["status"] == "pass"
    failure = next(f for f in report["failures"] if f["key"] == "max_system_tokens")
    assert failure["line"] == BUDGET_LINE
    assert failure["message"].startswith("system prompt tokens p95 1,")
    assert "estimated" not in failure["message"]
    result.stdout.fnmatch_lines(
        ["token budget: FAIL: * chat: system prompt tokens p95 1,* breaks max_system_tokens (100)"]
    )

    # CI: no key, no count mode; the committed counts make the same anatomy, offline
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens
    served = len(emulator.served)
    project.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=4)
    assert len(emulator.served) == served
    assert report_of(project)["endpoints"]["chat"]["anatomy"] == anatomy


def test_request_cases_are_split_exactly_by_their_counts(pytester, recording_env, monkeypatch):
    """Budgets from yml alone: each request case is counted with its prefixes, so its
    anatomy is exact, and stays so offline. Nothing was generated: no output parts."""
    emulator = recording_env
    emulator.strict_turns = True  # every prefix must be a request the API accepts
    history = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"q": "Oslo"}}
            ],
        },
    ]
    requests = [
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 30,
            "system": "Answer from the tool's result. " * (i + 1),
            "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
            "messages": [
                *history,
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "Snow " * (3 + i)},
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
        }
        for i in range(3)
    ]
    cases = [{"id": f"r{i}", "request": r} for i, r in enumerate(requests)]
    config = {"endpoints": {"agent": {"max_tools_tokens": 500, "cases": cases}}}
    pytester.makefile(".yml", token_budgets=json.dumps(config))

    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=3)

    assert all(s.status == 200 for s in emulator.served)
    anatomy = report_of(pytester)["endpoints"]["agent"]["anatomy"]
    assert anatomy["counted_calls"] == anatomy["calls"] == 3 and anatomy["output"] == {}
    expected = mean_parts(emulator, requests)
    assert {p: anatomy["input"][p]["mean"] for p in ANATOMY_PARTS} == pytest.approx(expected)
    assert all(anatomy["input"][p]["mean"] > 0 for p in ("tools", "history", "tool_results"))
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    served = len(emulator.served)
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=3)
    assert len(emulator.served) == served
    assert report_of(pytester)["endpoints"]["agent"]["anatomy"] == anatomy
