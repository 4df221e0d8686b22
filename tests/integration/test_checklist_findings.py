"""The cost checklist end to end: an app recorded against the loopback emulator, its findings
in report.json, report.md and the terminal, each figure recomputed from what the emulator
served (its usage, its tokenizer, Anthropic's published $3/$15 per million for Sonnet 4.6)."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
from emulator import tokens
from project_files import report_of

CONFIG = """\
endpoints:
  support:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 100000
    requests_per_day: 1000
    cache_lint: "off"        # hides prompt-cache findings, not the checklist's
    cases: support.yml
  chat:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 100000
    cases: chat.yml
"""

SUPPORT_CASES = """\
- id: parcel
  question: Where is my parcel?
- id: parcel_again
  question: Where is my parcel?
- id: shoes
  question: Can I return these shoes?
"""

FULL = ["Hi there", "What about refunds?", "And shipping times?", "Thanks a lot"]
WINDOWED = ["Hello again", "How do returns work?", "Who pays postage?", "Great thanks", "Bye"]
CHAT_CASES = json.dumps(
    [{"id": "full", "turns": FULL}, {"id": "windowed", "turns": WINDOWED, "window": 5}]
)

TOOLS = [
    {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order's id"}},
            "required": ["order_id"],
        },
    }
    for name, description in (
        ("lookup_order", "Look up an order by its id: status, items and delivery date."),
        ("issue_refund", "Refund an order that was returned, to the card it was paid with."),
        ("escalate", "Hand the conversation to a human agent, with a summary of the issue."),
    )
]

APP = f"""\
import anthropic

TOOLS = {TOOLS!r}


def support(question):
    client = anthropic.Anthropic(max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=20,
        system="You help customers of an online shop.",
        tools=TOOLS,
        messages=[{{"role": "user", "content": question}}],
    )
    return message.content[0].text


def chat(turns, window=None):
    client = anthropic.Anthropic(max_retries=0)
    history = []
    for turn in turns:
        history.append({{"role": "user", "content": turn}})
        sent = history if window is None else history[-window:]
        message = client.messages.create(
            model="claude-sonnet-4-6", max_tokens=20, messages=list(sent)
        )
        history.append({{"role": "assistant", "content": message.content[0].text}})
    return history
"""

TEST = """\
import pytest
from app import chat, support


@pytest.mark.token_budget("support")
def test_support(budget_case):
    assert support(budget_case["question"])


@pytest.mark.token_budget("chat")
def test_chat(budget_case):
    assert chat(budget_case["turns"], budget_case.get("window"))
"""

INPUT, OUTPUT = Fraction(3, 1_000_000), Fraction(15, 1_000_000)  # $ per token, Sonnet 4.6


def number_after(text: str, before: str) -> Fraction:
    found = re.search(re.escape(before) + r"\$?([\d,]+(?:\.\d+)?)", text)
    assert found, (before, text)
    return Fraction(found.group(1).replace(",", ""))


def finding(report: dict, code: str) -> dict:
    [found] = [f for f in report["findings"] if f["code"] == code]
    return found


def test_the_checklist_of_a_recorded_app(pytester, recording_env, monkeypatch):
    """One recording run (each in-process run costs seconds), then a replay that must find
    exactly the same from the cassettes."""
    pytester.makefile(".yml", token_budgets=CONFIG, support=SUPPORT_CASES, chat=CHAT_CASES)
    pytester.makepyfile(app=APP, test_app=TEST)
    pytester.syspathinsert()
    result = pytester.runpytest("--token-budget", "--token-budget-record=once")
    result.assert_outcomes(passed=5)
    report = report_of(pytester)
    served = [s for s in recording_env.served if s.path == "/v1/messages"]
    assert [(f["endpoint"], f["code"]) for f in report["findings"]] == [
        ("chat", "history-unbounded"),  # by endpoint, then in the codes' order
        ("support", "unused-tools"),
        ("support", "duplicate-requests"),
    ]
    unused_tools(finding(report, "unused-tools"), served, recording_env)
    unbounded_history(finding(report, "history-unbounded"), served)
    duplicates(finding(report, "duplicate-requests"), served)
    output = result.stdout.str()
    assert "warning unused-tools support tools: 3 tool definitions" in output
    markdown = (pytester.path / ".token-budget" / "report.md").read_text()
    assert "### Cost checklist" in markdown
    for code in ("unused-tools", "history-unbounded", "duplicate-requests"):
        assert f"({code})" in markdown
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    pytester.runpytest("--token-budget").assert_outcomes(passed=5)  # from the cassettes
    assert report_of(pytester)["findings"] == report["findings"]


def unused_tools(found: dict, served: list, emulator) -> None:
    assert found["endpoint"] == "support" and found["where"] == "tools"
    assert found["cases"] == ["parcel", "parcel_again", "shoes"]
    assert found["level"] == "warning" and "estimated from their size" in found["message"]
    support = [s for s in served if s.request.get("tools")]
    assert len(support) == 3
    for call in support:  # the emulator answers in text: no response calls a tool
        assert {b["type"] for b in emulator.message_for(call.request)["content"]} == {"text"}
    exact = {t["name"]: tokens(json.dumps(t, sort_keys=True)) for t in TOOLS}  # its tokenizer
    for name, count in exact.items():  # estimated from the tools' share of the characters
        said = number_after(found["message"], f"{name} (~")
        assert abs(said - count) <= Fraction(15, 100) * count, (name, said, count)
    per_call = sum(exact.values())
    said = number_after(found["message"], "about ")
    assert abs(said - per_call) <= Fraction(15, 100) * per_call
    # $ per month: those tokens at $3 per million, one call per request, 1000 a day, 30 days
    monthly = per_call * INPUT * 1000 * 30
    assert abs(number_after(found["message"], "size, ") - monthly) <= Fraction(15, 100) * monthly


def unbounded_history(found: dict, served: list) -> None:
    assert found["endpoint"] == "chat" and found["cases"] == ["full"]
    chat = [s for s in served if "tools" not in s.request]
    full = [s for s in chat if s.request["messages"][0]["content"] == FULL[0]]
    # the windowed case sends five turns, the first three whole: its window drops turn 1 at 4
    windowed = [s for s in chat if s not in full]
    assert len(full) == 4 and len(windowed) == 5
    assert windowed[3].request["messages"][0]["content"] == WINDOWED[1]
    sent = [s.usage["input_tokens"] for s in full]  # no cache_control: all of it uncached
    growth = Fraction(sent[-1] - sent[0], len(sent) - 1)
    assert growth > 0
    message = found["message"]
    assert f"grows by {round(growth):,} tokens per turn" in message
    assert f"({sent[0]:,} at turn 1, {sent[-1]:,} at turn 4)" in message
    twenty = 20 * sent[0] + growth * sum(range(20))  # turn t sends sent[0] + growth (t - 1)
    assert number_after(message, "20-turn conversation at that rate sends ") == round(twenty)
    assert number_after(message, "input tokens, ") == pytest.approx(float(twenty * INPUT), rel=1e-3)
    assert "window" in found["fix"] and "summary" in found["fix"]


def duplicates(found: dict, served: list) -> None:
    assert found["endpoint"] == "support" and found["cases"] == ["parcel", "parcel_again"]
    assert "(parcel = parcel_again)" in found["message"]
    parcel = [s for s in served if s.request.get("tools") and "parcel" in json.dumps(s.request)]
    assert len(parcel) == 2 and parcel[0].request == parcel[1].request
    second = parcel[1].usage
    saved = second["input_tokens"] * INPUT + second["output_tokens"] * OUTPUT
    monthly = saved / 3 * 1000 * 30  # one call of three requests, 1000 requests a day
    assert number_after(found["message"], "saving ") == pytest.approx(float(monthly), abs=0.005)
