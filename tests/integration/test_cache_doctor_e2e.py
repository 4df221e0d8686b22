"""The prompt-cache doctor through pytest: the timestamp-in-the-system-prompt app, and friends."""

from __future__ import annotations

import json

import pytest

CONFIG = """\
endpoints:
  chat:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 100000
    min_cache_hit_rate: 0.5
    requests_per_day: 1000
    cases: cases.yml
"""

CASES = "".join(f"- id: q{i}\n  question: Question number {i} about refunds?\n" for i in range(4))

POLICY = "Refunds are issued within 14 days of the return arriving at our warehouse. " * 90

# The field guides' most common 5-10x bill: the current time at the top of a cached prompt.
APP = """\
import datetime
import anthropic

POLICY = {policy!r}


def reply(question):
    now = datetime.datetime.now().isoformat()
    system_text = {system}
    user_text = {user}
    client = anthropic.Anthropic(max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=20,
        system=[{{"type": "text", "text": system_text, "cache_control": {{"type": "ephemeral"}}}}],
        messages=[{{"role": "user", "content": user_text}}],
    )
    return message.content[0].text
"""
IN_SYSTEM = {"system": 'f"Current time: {now}\\n" + POLICY', "user": "question"}
IN_USER = {"system": "POLICY", "user": 'f"(asked at {now}) {question}"'}

TEST = """\
import pytest
from app import reply


@pytest.mark.token_budget("chat")
def test_chat(budget_case):
    assert reply(budget_case["question"])
"""


@pytest.fixture
def timestamp_project(pytester):
    def make(where):
        pytester.makefile(".yml", token_budgets=CONFIG, cases=CASES)
        pytester.makepyfile(app=APP.format(policy=POLICY, **where), test_chat=TEST)
        pytester.syspathinsert()
        return pytester

    return make


def _record_then_replay(project, monkeypatch):
    project.runpytest("--token-budget", "--token-budget-record=once").assert_outcomes(passed=4)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    return project.runpytest("--token-budget")


def _report(project):
    return json.loads((project.path / ".token-budget" / "report.json").read_text())


def test_timestamp_in_the_cached_system_prompt_is_named(
    timestamp_project, recording_env, monkeypatch
):
    project = timestamp_project(IN_SYSTEM)
    result = _record_then_replay(project, monkeypatch)
    # every case replays and is measured: the timestamp is volatile, not a prompt edit
    result.assert_outcomes(passed=4)
    assert result.ret == 1  # the cache budget breaks: nothing is ever read
    report = _report(project)
    chat = report["endpoints"]["chat"]
    assert chat["calls"] == 4 and chat["metrics"]["cache_hit_rate"] == 0.0
    served = [s.usage for s in recording_env.served if s.path == "/v1/messages"]
    assert sum(u["cache_read_input_tokens"] for u in served) == 0
    assert chat["cache"]["predicted"]["read_tokens"] == 0  # the prompts as sent now agree

    [finding] = [f for f in report["findings"] if f["code"] == "volatile-prefix"]
    assert finding["endpoint"] == "chat" and finding["where"] == "system[0].text"
    assert finding["level"] == "error" and sorted(finding["cases"]) == ["q0", "q1", "q2", "q3"]
    assert "at character 14" in finding["message"]
    assert "move the value after the last breakpoint" in finding["fix"]
    out = result.stdout.str()
    assert "volatile-prefix chat system[0].text" in out
    assert "Prompt cache" in (project.path / ".token-budget" / "report.md").read_text()


def test_timestamp_after_the_breakpoint_passes_with_a_note(
    timestamp_project, recording_env, monkeypatch
):
    project = timestamp_project(IN_USER)
    result = _record_then_replay(project, monkeypatch)
    result.assert_outcomes(passed=4)
    assert result.ret == 0, result.stdout.str()
    report = _report(project)
    served = [s.usage for s in recording_env.served if s.path == "/v1/messages"]
    reads = sum(u["cache_read_input_tokens"] for u in served)
    whole = sum(
        u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        for u in served
    )
    assert report["endpoints"]["chat"]["metrics"]["cache_hit_rate"] == round(reads / whole, 6)
    cache = report["endpoints"]["chat"]["cache"]
    assert cache["predicted"] == cache["recorded"]
    assert cache["recorded"]["read_tokens"] == reads
    assert cache["recorded"]["write_5m_tokens"] == sum(
        u["cache_creation_input_tokens"] for u in served
    )
    codes = {f["code"] for f in report["findings"]}
    assert codes <= {"volatile-after-breakpoint"}
