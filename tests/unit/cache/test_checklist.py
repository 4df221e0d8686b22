"""The cost checklist (cache/checklist.py) on hand-built calls: unused tools, a history resent
whole every turn, identical requests across cases; and the same findings however xdist
workers split and merge the calls."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
from paths import DOCS

from pytest_tokenbudget.cache.checklist import (
    Costing,
    RequestMemo,
    call_seen,
    calls_from_wire,
    calls_to_wire,
    checklist_findings,
)
from pytest_tokenbudget.cache.doctor import Doctor
from pytest_tokenbudget.cache.finding import CHECKLIST_CODES
from pytest_tokenbudget.pricing.prices import Price
from pytest_tokenbudget.providers.usage import Usage

MODEL = "claude-sonnet-4-6"
# $ per million tokens, by hand: the price table is not what is under test
PRICE = Price(MODEL, Fraction(3), Fraction(15), Fraction(15, 4), Fraction(6), Fraction(3, 10), "t")
COSTING = Costing(lambda model: PRICE if model == MODEL else None, {"ep": 1000})
SYSTEM = "You answer questions about orders. Be brief."


def tool(name: str, words: int) -> dict:
    return {
        "name": name,
        "description": "Does a thing with the order. " * words,
        "input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }


TOOLS = [tool("lookup_order", 3), tool("issue_refund", 5), tool("escalate", 8)]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def request(messages: list[dict], **extra) -> dict:
    return {"model": MODEL, "max_tokens": 50, "system": SYSTEM, "messages": messages, **extra}


class Calls:
    """Calls as a run hands them to the checklist: one memo per endpoint, test order."""

    def __init__(self) -> None:
        self.seen: list = []
        self.memos: dict[str, RequestMemo] = {}

    def add(self, case, body, tokens, *, output=10, called=(), endpoint="ep", index=None):
        index = sum(1 for c in self.seen if c.case_id == case) if index is None else index
        self.seen.append(
            call_seen(
                endpoint,
                case,
                body,
                input_tokens=tokens,
                usage=Usage(tokens, output),
                called=called,
                test_id=f"test_ep[{case}]",
                index=index,
                memo=self.memos.setdefault(endpoint, RequestMemo()),
            )
        )

    def findings(self, code: str, costing: Costing = COSTING) -> list:
        return [f for f in checklist_findings(self.seen, costing) if f.code == code]


def number_after(text: str, before: str) -> float:
    """The number the message gives right after `before` ("$" and "," left out)."""
    found = re.search(re.escape(before) + r"\$?([\d,]+(?:\.\d+)?)", text)
    assert found, (before, text)
    return float(found.group(1).replace(",", ""))


def size(obj) -> int:
    """The documented measure of a part's size: its JSON's characters (sorted keys, no
    spaces), cache_control left out."""
    return len(json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")))


# -- unused-tools ---------------------------------------------------------------------------
def test_tools_no_response_calls_are_named_with_their_share_of_the_prompt():
    calls = Calls()
    questions = {"a": "Where is my parcel?", "b": "Refund my order 42 please", "c": "Hello"}
    for case, question in questions.items():
        called = ("lookup_order",) if case == "a" else ()
        calls.add(case, request([user(question)], tools=TOOLS), 400, called=called)
    [finding] = calls.findings("unused-tools")
    assert finding.where == "tools" and finding.level == "warning"
    assert finding.cases == ("a", "b", "c")
    assert "lookup_order" not in finding.message  # case a's response called it
    assert (
        "2 tool definitions" in finding.message and "estimated from their size" in finding.message
    )
    # each tool's tokens: its share of the prompt's characters, of the recorded 400 tokens
    tools = sum(size(t) for t in TOOLS)
    prompts = {case: tools + size(SYSTEM) + size(user(q)) for case, q in questions.items()}
    for name in ("issue_refund", "escalate"):
        [definition] = [t for t in TOOLS if t["name"] == name]
        shares = [Fraction(size(definition), p) * 400 for p in prompts.values()]
        assert f"{name} (~{round(sum(shares) / 3):,} tokens)" in finding.message
    unused = size(TOOLS[1]) + size(TOOLS[2])
    per_call = sum(Fraction(unused, p) * 400 for p in prompts.values()) / 3
    assert f"about {round(per_call):,} tokens per call" in finding.message
    # dollars: those tokens at $3 per million, per request (one call each), 1000 a day, 30 days
    monthly = per_call * 3 / 1_000_000 * 1000 * 30
    assert number_after(finding.message, ", ") == pytest.approx(float(monthly), abs=0.005)
    assert "/month at requests_per_day 1,000" in finding.message


def test_a_tool_each_case_calls_a_different_one_of_is_used():
    calls = Calls()
    calls.add("a", request([user("Where?")], tools=TOOLS[:2]), 300, called=("lookup_order",))
    calls.add("b", request([user("Refund")], tools=TOOLS[:2]), 300, called=("issue_refund",))
    assert calls.findings("unused-tools") == []


def test_a_tool_called_in_the_history_sent_is_used():
    """An agent's next request carries the tool_use its last response made: a tool called
    in a turn that was not recorded (or in a few-shot example) counts as called."""
    history = [
        user("Where is order 42?"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "escalate", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    calls = Calls()
    calls.add("a", request(history, tools=[TOOLS[2]]), 300)
    assert calls.findings("unused-tools") == []


def test_without_a_recorded_response_nothing_says_a_tool_is_unused():
    calls = Calls()
    calls.add("a", request([user("Where?")], tools=TOOLS), 300, called=None)  # counted only
    assert calls.findings("unused-tools") == []


def test_without_requests_per_day_or_a_price_the_figure_says_so():
    calls = Calls()
    calls.add("a", request([user("Where?")], tools=TOOLS), 300)
    [per_request] = calls.findings("unused-tools", Costing(COSTING.price))
    assert "per request (set requests_per_day for a monthly figure)" in per_request.message
    [unpriced] = calls.findings("unused-tools", Costing())
    assert "$" not in unpriced.message and unpriced.message.endswith("estimated from their size")


# -- history-unbounded ----------------------------------------------------------------------
TURNS = ["Hi there", "What about refunds?", "And shipping times?", "Thanks a lot"]


def conversation(calls, case, tokens, *, window=None, cached=False):
    """One case's turns as its app sends them: the whole history, or the last `window`
    messages; `cached`: cache_control on the newest turn (it moves every turn)."""
    history: list[dict] = []
    for turn, (text, sent_tokens) in enumerate(zip(TURNS, tokens, strict=True)):
        history.append(user(text))
        sent = history if window is None else history[-window:]
        if cached:
            last = {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}
            sent = [*sent[:-1], {"role": "user", "content": [last]}]
            history[-1] = {"role": "user", "content": [{"type": "text", "text": text}]}
        calls.add(case, request(list(sent)), sent_tokens, index=turn)
        history.append(assistant(f"Echo: {text}"))


def test_a_conversation_resent_whole_every_turn_is_named_with_its_growth():
    calls = Calls()
    conversation(calls, "full", [120, 170, 220, 270])
    [finding] = calls.findings("history-unbounded")
    assert finding.cases == ("full",) and finding.where == "messages"
    assert "grows by 50 tokens per turn (120 at turn 1, 270 at turn 4)" in finding.message
    # turn t sends 120 + 50 (t - 1): 20 turns send 20 * 120 + 50 * (0 + 1 + ... + 19)
    total = 20 * 120 + 50 * sum(range(20))
    assert f"a 20-turn conversation at that rate sends {total:,} input tokens" in finding.message
    assert number_after(finding.message, "input tokens, ") == pytest.approx(total * 3 / 1e6)
    assert "window" in finding.fix and "summary" in finding.fix


def test_the_moving_cache_breakpoint_of_each_turn_does_not_hide_the_growth():
    calls = Calls()
    conversation(calls, "cached", [120, 170, 220, 270], cached=True)
    assert [f.cases for f in calls.findings("history-unbounded")] == [("cached",)]


def test_a_windowed_conversation_is_not_named():
    calls = Calls()
    conversation(calls, "window", [120, 170, 220, 220], window=5)  # from the 4th turn on
    assert calls.findings("history-unbounded") == []


def test_a_summarised_conversation_is_not_named():
    """Three turns whole, then earlier turns replaced by a summary: the conversation did
    not go on concatenated."""
    calls = Calls()
    history = [user("Hi"), assistant("Hello"), user("Refunds?"), assistant("14 days"), user("Ok")]
    for n, tokens in ((1, 100), (3, 150), (5, 200)):
        calls.add("summary", request(history[:n]), tokens)
    summary = [user("Summary: refunds take 14 days."), assistant("Noted"), user("Shipping?")]
    calls.add("summary", request(summary), 90)
    calls.add("summary", request([*summary, assistant("3 days"), user("Thanks")]), 130)
    assert calls.findings("history-unbounded") == []


def test_two_turns_and_interleaved_calls():
    """Two turns show no growth with the number of turns; a classifier call between the
    turns of a conversation does not hide it, nor does a retry of the same turn."""
    calls = Calls()
    conversation_calls = [[user("Hi")], [user("Hi"), assistant("Echo: Hi"), user("Refunds?")]]
    for messages in conversation_calls:
        calls.add("short", request(messages), 100)
    assert calls.findings("history-unbounded") == []
    history: list[dict] = []
    for turn, text in enumerate(TURNS[:3]):
        calls.add("mixed", request([user(f"Classify: {text}")]), 30)
        history.append(user(text))
        calls.add("mixed", request(list(history)), 100 + 40 * turn)
        if turn == 1:  # retried
            calls.add("mixed", request(list(history)), 100 + 40 * turn)
        history.append(assistant(f"Echo: {text}"))
    [finding] = calls.findings("history-unbounded")
    assert finding.cases == ("mixed",)
    assert "grows by 40 tokens per turn (100 at turn 1, 180 at turn 3)" in finding.message


def test_several_cases_give_one_finding_with_their_mean_growth():
    calls = Calls()
    conversation(calls, "a", [100, 150, 200, 250])
    conversation(calls, "b", [200, 230, 260, 290])
    [finding] = calls.findings("history-unbounded")
    assert finding.cases == ("a", "b")
    assert "2 multi-turn cases" in finding.message
    assert "grows by 40 tokens per turn on average (turn 1: about 150)" in finding.message
    total = ((20 * 100 + 50 * 190) + (20 * 200 + 30 * 190)) / 2
    assert f"sends {round(total):,} input tokens" in finding.message


# -- duplicate-requests ---------------------------------------------------------------------
def test_identical_requests_across_cases_are_named_with_the_savings():
    calls = Calls()
    calls.add("a", request([user("Where is my parcel?")]), 100, output=20)
    # streamed, and with automatic caching: the same question, the same answer
    again = request([user("Where is my parcel?")], stream=True, cache_control={"type": "ephemeral"})
    calls.add("b", again, 100, output=20)
    calls.add("c", request([user("Can I return shoes?")]), 110, output=30)
    calls.add("c", request([user("Can I return shoes?")]), 110, output=30)  # a retry: one case
    [finding] = calls.findings("duplicate-requests")
    assert finding.cases == ("a", "b") and finding.where == "request"
    assert "1 of 4 calls repeats word for word" in finding.message and "(a = b)" in finding.message
    # b's call is saved: (100 in at $3 + 20 out at $15) per million, over 3 requests, 30 days
    saved = (100 * 3 + 20 * 15) / 1e6 / 3 * 1000 * 30
    assert number_after(finding.message, "saving ") == pytest.approx(saved, abs=0.005)


def test_requests_that_differ_are_not_duplicates():
    calls = Calls()
    calls.add("a", request([user("Where is my parcel?")]), 100)
    calls.add("b", request([user("Where is my parcel?")], temperature=0.5), 100)
    calls.add("c", request([user("Where is my parcel?")], tools=TOOLS[:1]), 100)
    assert calls.findings("duplicate-requests") == []


# -- through the doctor, and under xdist ----------------------------------------------------
def doctor_calls() -> list[tuple[str, str, int, dict, int]]:
    """(case, test id, index, request, tokens) in test order, giving all three codes."""
    out = []
    for i in range(4):
        question = "Where is my parcel?" if i < 2 else f"Question {i}?"
        body = request([user(question)], tools=TOOLS)
        out.append((f"q{i}", f"test_faq.py::test_faq[q{i}]", 0, body, 300 + i))
    history: list[dict] = []
    for turn, text in enumerate(TURNS):
        history.append(user(text))
        body = request(list(history))
        out.append(("z", "test_faq.py::test_faq[z]", turn, body, 100 + 30 * turn))
        history.append(assistant(f"Echo: {text}"))
    return out


def doctor_fed(calls) -> Doctor:
    doctor = Doctor()
    for case, test_id, index, body, tokens in calls:
        doctor.add_call(
            "faq",
            case,
            body,
            tokens,
            1024,
            test_id=test_id,
            index=index,
            usage=Usage(tokens, 10),
            called=(),
            may_cache=False,
        )
    return doctor


def test_findings_do_not_depend_on_how_workers_split_the_calls():
    """A serial run, one seeing the calls in another order, and workers (each with whole
    cases) merged in either order find the same, figures included."""
    costing = Costing(COSTING.price, {"faq": 500})
    calls = doctor_calls()
    serial = doctor_fed(calls).findings(costing)
    assert [f.code for f in serial] == ["unused-tools", "history-unbounded", "duplicate-requests"]
    assert [f.cases for f in serial] == [("q0", "q1", "q2", "q3"), ("z",), ("q0", "q1")]
    assert doctor_fed(calls[::-1]).findings(costing) == serial
    cases = list(dict.fromkeys(c[0] for c in calls))
    workers = [doctor_fed([c for c in calls if c[0] in cases[k::2]]) for k in (0, 1)]
    for merge_order in (workers, workers[::-1]):
        controller = Doctor()
        for worker in merge_order:
            controller.merge_wire(json.loads(json.dumps(worker.to_wire())))
        assert controller.findings(costing) == serial


def test_every_code_is_documented_with_its_level():
    table = (DOCS / "measurement.md").read_text()
    for code, level in CHECKLIST_CODES.items():
        assert f"| `{code}` | {level} |" in table


def test_calls_cross_from_a_worker_whole_with_each_history_sent_once():
    calls = Calls()
    conversation(calls, "full", [120, 170, 220, 270])
    conversation(calls, "window", [120, 170, 220, 220], window=5)
    calls.add("a", request([user("Where?")], tools=TOOLS), 300, called=None)
    wire = json.loads(json.dumps(calls_to_wire(calls.seen)))
    assert calls_from_wire(wire) == calls.seen
    # turn 4 of the whole conversation sends its 7 messages; on the wire, the 2 new ones
    assert [len(item[-2][1]) for item in wire[:4]] == [1, 2, 2, 2]
