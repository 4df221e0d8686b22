"""The cache simulator: each rule on its own, then agreement with served and recorded usage.

The emulator (tests/support/emulator.py, which recorded the example's cassettes) serves a
scenario through the real SDK. Fed the requests as sent and the emulator's per-block
token counts, the simulator predicts every call's reads, writes and uncached tokens
exactly. Fed only what a cassette holds (each call's whole prompt and cache split), it
still agrees on every call but one, whose boundary size no recording reveals. The
example's cassettes, replayed in the order its tests run, give back their recorded
numbers exactly.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from itertools import pairwise
from typing import Any

import anthropic
import emulator
import pytest
import yaml
from emulator import Emulator
from paths import REPO

from pytest_tokenbudget.cache.prompt import PromptBlock, breakpoints, prompt_blocks
from pytest_tokenbudget.cache.simulation import (
    CacheSimulator,
    Predicted,
    PrefixIds,
    PrefixSizes,
    RejectedRequest,
    SimCall,
    block_kinds,
    cache_rules,
    estimate_cumulative,
    minimum_cacheable,
)
from pytest_tokenbudget.providers.exchanges import load_cassette_file, parse_exchange
from pytest_tokenbudget.providers.usage import Usage

ROOT = REPO
SONNET = "claude-sonnet-4-6"  # minimum 1024


def plain(n: int, bps: dict[int, str] | None = None, tag: str = "b") -> list[PromptBlock]:
    """n blocks keyed `tag0..`, breakpoints at the given indices with their TTLs."""
    return [PromptBlock(f"x[{i}]", f"{tag}{i}", 10, (bps or {}).get(i)) for i in range(n)]


def at(
    blocks: list[PromptBlock],
    when: float,
    *,
    model: str = SONNET,
    size: int = 100,
    kinds: tuple[str, ...] = (),
) -> SimCall:
    """A call whose every block is `size` tokens."""
    return SimCall(model, blocks, [size * (i + 1) for i in range(len(blocks))], when, kinds)


def sim() -> CacheSimulator:
    return CacheSimulator(minimum_cacheable)


# -- the table ------------------------------------------------------------------------------
def test_minimums_are_dated_sourced_and_cover_every_anthropic_model_priced():
    rules = cache_rules()
    assert rules["date"] and rules["source"].startswith("https://platform.claude.com/docs/")
    # every Claude model the price source knows: tests/unit/pricing/test_price_source.py
    assert rules["minimums"] and rules["default"] == max(rules["minimums"].values())
    assert rules["lookback_positions"] == 20 and rules["ttl_seconds"] == {"5m": 300, "1h": 3600}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-5", 512),
        ("claude-opus-4-8", 1024),
        ("claude-opus-4-7", 2048),
        ("claude-opus-4-6", 4096),
        ("claude-opus-4-5-20251101", 4096),  # dated ids take their model's value
        ("claude-sonnet-4-5-20250929", 1024),
        ("claude-sonnet-4-6-20261201", 1024),  # a snapshot the price table has no alias for
        ("claude-3-5-haiku-latest", 2048),
        ("claude-3-haiku-20240307", 2048),
        ("claude-haiku-4-5", 4096),
        ("my-proxy-model", 4096),  # unknown: the largest published minimum
    ],
)
def test_minimum_cacheable_resolves_names_like_prices(model, expected):
    assert minimum_cacheable(model) == expected


def test_overrides_from_token_budgets_win():
    overrides = {"claude-sonnet-4-6": 2048, "claude-opus-4-5-20251101": 1000, "default": 64}
    assert minimum_cacheable("claude-sonnet-4-6-20261201", overrides) == 2048
    assert minimum_cacheable("claude-opus-4-5", overrides) == 1000  # a dated key folds too
    assert minimum_cacheable("my-proxy-model", overrides) == 64
    assert minimum_cacheable("claude-haiku-4-5", overrides) == 4096


# -- estimate_cumulative --------------------------------------------------------------------
def sized(*chars: int) -> list[PromptBlock]:
    return [PromptBlock(f"x[{i}]", f"k{i}", c, None) for i, c in enumerate(chars)]


def test_estimate_shares_the_total_by_chars():
    assert estimate_cumulative(sized(100, 300, 600), 1000) == [100, 400, 1000]
    assert estimate_cumulative(sized(1, 1, 1), 10) == [3, 7, 10]  # nearest, ends exact
    assert estimate_cumulative([], 0) == []
    assert estimate_cumulative(sized(0, 0), 9) == [5, 9]  # nothing to go by: evenly


def test_estimate_hits_pins_exactly_and_interpolates_between_them():
    blocks = sized(100, 100, 100, 100, 100, 100)
    out = estimate_cumulative(blocks, 1000, {1: 500, 3: 520})
    assert out == [250, 500, 510, 520, 760, 1000]
    assert estimate_cumulative(blocks, 1000, {5: 1000}) == [167, 333, 500, 667, 833, 1000]


def test_estimate_is_monotone_for_any_pins():
    blocks = sized(7, 0, 13, 1, 0, 250, 3, 90, 1, 1)
    for pins in ({}, {0: 0}, {2: 40, 3: 40}, {4: 41, 8: 990}, {0: 5, 9: 1000}):
        out = estimate_cumulative(blocks, 1000, pins)
        assert out[-1] == 1000 and all(a <= b for a, b in pairwise(out))
        assert all(out[i] == v for i, v in pins.items()) and all(isinstance(v, int) for v in out)


@pytest.mark.parametrize("pins", [{1: 900, 2: 800}, {5: 999}, {0: 2000}, {-1: 3}, {9: 10}], ids=str)
def test_estimate_refuses_impossible_pins(pins):
    with pytest.raises(ValueError):
        estimate_cumulative(sized(1, 1, 1, 1, 1, 1), 1000, pins)


# -- the rules, one at a time ----------------------------------------------------------------
def test_a_prefix_below_the_minimum_caches_nothing():
    s = sim()
    small = plain(3, {2: "5m"})
    for when in (0, 1):
        assert s.call(at(small, when, size=300)) == Predicted(0, 0, 0, 900)  # 900 < 1024
    # an early breakpoint below the minimum is skipped: the next one writes from 0
    two = plain(4, {0: "5m", 3: "5m"}, tag="c")
    assert s.call(at(two, 2, size=300)) == Predicted(0, 1200, 0, 0)
    assert s.call(at(two, 3, model="claude-haiku-4-5", size=300)) == Predicted(0, 0, 0, 1200)


def test_five_minute_entries_expire_and_a_read_restarts_them():
    s, blocks = sim(), plain(14, {11: "5m"})
    assert s.call(at(blocks, 0)) == Predicted(0, 1200, 0, 200)
    assert s.call(at(blocks, 299)) == Predicted(1200, 0, 0, 200)
    assert s.call(at(blocks, 598)) == Predicted(1200, 0, 0, 200)  # refreshed at 299
    assert s.call(at(blocks, 898)) == Predicted(0, 1200, 0, 200)  # 300 s after: gone


def test_one_hour_entries():
    s, blocks = sim(), plain(14, {11: "1h"})
    assert s.call(at(blocks, 0)) == Predicted(0, 0, 1200, 200)
    assert s.call(at(blocks, 3000)) == Predicted(1200, 0, 0, 200)
    assert s.call(at(blocks, 6601)) == Predicted(0, 0, 1200, 200)


def test_writes_are_split_by_the_ttl_of_the_breakpoint_that_ends_them():
    s = sim()
    blocks = plain(20, {11: "1h", 15: "5m", 19: "5m"})
    assert s.call(at(blocks, 0)) == Predicted(0, 800, 1200, 0)
    changed = [*blocks[:16], *plain(4, {3: "5m"}, tag="new")]  # the tail after 15 changed
    assert s.call(at(changed, 10)) == Predicted(1600, 400, 0, 0)


def test_more_than_four_breakpoints_is_refused():
    sim().call(at(plain(20, dict.fromkeys(range(4), "5m")), 0))
    with pytest.raises(RejectedRequest, match=r"A maximum of 4 blocks with cache_control .*5"):
        sim().call(at(plain(20, dict.fromkeys(range(5), "5m")), 0))
    assert issubclass(RejectedRequest, ValueError)


@pytest.mark.parametrize("bps", [{10: "5m", 15: "1h"}, {10: "10m"}], ids=["1h-after-5m", "10m"])
def test_ttls_the_api_refuses(bps):
    with pytest.raises(RejectedRequest):
        sim().call(at(plain(20, bps), 0))


def test_entries_are_per_model():
    s, blocks = sim(), plain(12, {11: "5m"})
    assert s.call(at(blocks, 0)).write_5m == 1200
    assert s.call(at(blocks, 1, model="claude-opus-4-8")).write_5m == 1200
    assert s.call(at(blocks, 2, model="claude-opus-4-8")).read == 1200


def test_a_read_looks_back_to_an_entry_at_a_block_that_is_no_breakpoint_now():
    s = sim()
    assert s.call(at(plain(12, {11: "5m"}), 0)).write_5m == 1200
    grown = plain(15, {14: "5m"})  # same first 12 blocks, breakpoint moved 3 on
    assert s.call(at(grown, 1)) == Predicted(1200, 300, 0, 0)


@pytest.mark.parametrize(("added", "read"), [(19, 1200), (20, 0)])
def test_the_lookback_checks_20_positions_counting_the_breakpoint(added, read):
    s = sim()
    s.call(at(plain(12, {11: "5m"}), 0))
    grown = plain(12 + added, {11 + added: "5m"})
    assert s.call(at(grown, 1)).read == read


def test_the_window_restarts_at_each_earlier_breakpoint():
    s = sim()
    s.call(at(plain(12, {11: "5m"}), 0))
    far = plain(60, {15: "5m", 59: "5m"})  # 59 cannot see 11; 15 can
    assert s.call(at(far, 1)) == Predicted(1200, 4800, 0, 0)


def test_a_run_of_tool_use_or_tool_result_blocks_is_one_position():
    s = sim()
    s.call(at(plain(12, {11: "5m"}), 0))
    kinds = ("text",) * 12 + ("tool_use",) * 25 + ("tool_result",) * 25
    grown = plain(62, {61: "5m"})
    assert s.call(at(grown, 1, kinds=kinds)).read == 1200
    as_text = sim()
    as_text.call(at(plain(12, {11: "5m"}), 0))
    assert as_text.call(at(grown, 1, kinds=("text",) * 62)).read == 0


def test_a_read_restarts_the_entry_at_the_ttl_it_was_written_with():
    s = sim()
    assert s.call(at(plain(12, {11: "1h"}), 0)).write_1h == 1200
    assert s.call(at(plain(15, {14: "5m"}), 100)) == Predicted(1200, 300, 0, 0)
    assert s.call(at(plain(12, {11: "5m"}), 1000)).read == 1200  # still 1h from 100


def test_the_call_must_give_one_count_per_block():
    with pytest.raises(ValueError):
        sim().call(SimCall(SONNET, plain(3), [1, 2], 0))


def test_block_kinds_follow_the_request():
    request = {
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "1", "name": "t", "input": {}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "1"}]},
        ],
    }
    blocks = prompt_blocks(request)
    assert block_kinds(blocks) == ("tool", "system", "text", "tool_use", "tool_result")


def test_a_case_memo_gives_the_blocks_of_a_fresh_split():
    """The memo reuses the blocks of a part equal to the previous request's at that place,
    and a whole history the previous request had; a part that changed (an edited turn, a
    different system prompt, another case's shorter history) is split anew."""
    history: list[dict[str, Any]] = [{"role": "user", "content": "step 0"}]
    requests = []
    for step in range(1, 5):
        history = [*history, {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}]
        history = [*history, {"role": "user", "content": f"step {step}"}]
        requests.append({"system": "Be brief.", "messages": history})
    requests.append({"system": "Be briefer.", "messages": history})  # system changed
    edited = [*history[:-1], {"role": "user", "content": "edited"}]
    requests.append(
        {"system": "Be briefer.", "messages": edited, "cache_control": {"type": "ephemeral"}}
    )
    requests.append({"system": "Be brief.", "messages": history[:3]})  # a new, shorter case
    requests.append({"system": "Be brief.", "messages": history})
    memo: dict = {}
    for request in requests:
        assert prompt_blocks(request, memo) == prompt_blocks(request)
    # tools, system, the last history and one entry per message place
    assert len(memo) == 3 + len(history)


def test_prefix_ids_hash_only_what_an_agent_added(monkeypatch):
    """An agent's next call repeats the prompt before it: only its new blocks are hashed,
    and every id is what hashing the whole prompt afresh gives."""
    import hashlib

    from pytest_tokenbudget.cache import simulation as cache_sim

    updates = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def update(self, data):
            updates.append(data)
            self.inner.update(data)

        def copy(self):
            return Counting(self.inner.copy())

        def hexdigest(self):
            return self.inner.hexdigest()

    history = plain(40)
    prompts = [history[:n] for n in (10, 20, 20, 40)]  # grown, the same, grown again
    prompts += [plain(5, tag="c"), history[:30]]  # another case; an earlier history
    fresh = [PrefixIds()("m", blocks) for blocks in prompts]
    monkeypatch.setattr(
        cache_sim,
        "hashlib",
        types.SimpleNamespace(sha256=lambda data: Counting(hashlib.sha256(data))),
    )
    ids = PrefixIds()
    assert [ids("m", blocks) for blocks in prompts] == fresh
    assert len(updates) == 10 + 10 + 0 + 20 + 5 + 30
    assert ids("other-model", history[:10]) != fresh[0]  # the model is part of the key


# -- agreement with the emulator -------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def emulator_call(request: dict[str, Any], when: float) -> SimCall:
    """The request as the simulator sees it, with the emulator's own per-block counts.

    The emulator splits a prompt as pytest_tokenbudget.cache.prompt does, plus one role marker
    before each message's content (its 3 tokens, no block boundary): checked here.
    """
    blocks = prompt_blocks(request)
    emu_blocks = emulator.prompt_blocks(request)
    emulator._automatic(request, emu_blocks)
    running, cumulative, ttls, kinds = 0, [], [], []
    for block in emu_blocks:
        running += block.tokens
        if block.position:
            cumulative.append(running)
            ttls.append(block.ttl)
            kinds.append(block.kind)
    cumulative[-1] = running  # a trailing empty message's role marker
    assert ttls == [b.ttl for b in blocks]
    assert tuple(kinds) == block_kinds(blocks)
    return SimCall(request["model"], blocks, cumulative, when, tuple(kinds))


def split_of(usage: dict[str, Any]) -> Predicted:
    split = usage["cache_creation"]
    return Predicted(
        usage["cache_read_input_tokens"],
        split["ephemeral_5m_input_tokens"],
        split["ephemeral_1h_input_tokens"],
        usage["input_tokens"],
    )


def words(n: int, stem: str) -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


TOOLS = [
    {
        "name": "lookup_order",
        "description": "Find an order.",
        "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
    },
    {
        "name": "refund",
        "description": "Refund an order.",
        "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    },
]
SYSTEM = [
    {"type": "text", "text": "You are Acme's support assistant."},
    {
        "type": "text",
        "text": words(1400, "policy"),
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    },
]


class Conversation:
    """A multi-turn chat that moves its one message breakpoint to the newest turn."""

    def __init__(self, user: str, model: str = SONNET) -> None:
        self.user, self.model, self.turns = user, model, []

    def ask(self, text: str, *, tools_turn: int = 0) -> dict[str, Any]:
        if tools_turn:  # the assistant called tools_turn tools at once; here are the results
            uses = [
                {
                    "type": "tool_use",
                    "id": f"{self.user}{i}",
                    "name": "lookup_order",
                    "input": {"id": i},
                }
                for i in range(tools_turn)
            ]
            results = [
                {
                    "type": "tool_result",
                    "tool_use_id": f"{self.user}{i}",
                    "content": f"order {i} shipped",
                }
                for i in range(tools_turn)
            ]
            self.turns += [
                {"role": "assistant", "content": uses},
                {"role": "user", "content": results},
            ]
        else:
            self.turns.append({"role": "user", "content": [{"type": "text", "text": text}]})
        messages = json.loads(json.dumps(self.turns))
        messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        return {
            "model": self.model,
            "max_tokens": 32,
            "tools": TOOLS,
            "system": SYSTEM,
            "messages": messages,
        }

    def answered(self, reply: str) -> None:
        self.turns.append({"role": "assistant", "content": reply})


@dataclass(frozen=True)
class Sent:
    request: dict[str, Any]
    at: float
    usage: Predicted  # as the emulator served it


@pytest.fixture(scope="module")
def scenario() -> list[Sent]:
    """Several users sharing a cached system prompt, multi-turn chats with a moving
    message breakpoint, parallel tool calls, other models, automatic caching, and time
    passing: served through the real SDK, as the API would answer it."""
    clock = Clock()
    ann, bob = Conversation("ann"), Conversation("bob")
    opus = Conversation("cid", model="claude-opus-4-8")
    automatic = {
        "model": SONNET,
        "max_tokens": 16,
        "cache_control": {"type": "ephemeral"},
        "system": words(1200, "doc"),
        "messages": [{"role": "user", "content": "hi"}],
    }
    triage = {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "route this ticket"}],
    }
    one_off = {
        "model": SONNET,
        "max_tokens": 16,
        "tools": TOOLS,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "A question, no breakpoint."}],
    }
    turn = [{"role": "assistant", "content": "Echo: hi"}, {"role": "user", "content": "more"}]
    automatic_next = {**automatic, "messages": [*automatic["messages"], *turn]}
    steps: list[tuple[float, Conversation | None, Any]] = [
        (0, ann, "Where is my order?"),  # writes: system (1h), turn (5m); tools below minimum
        (10, bob, "Can I return shoes?"),  # reads the system prompt
        (15, None, one_off),  # reads it too; its question stays uncached
        (20, ann, "It was order 42."),  # lookback to ann's previous turn
        (25, ann, "And order 43?"),
        (30, opus, "Same question on another model."),  # its own entries
        (400, ann, "Still there?"),  # ann's turns expired (5m), the system did not (1h)
        (410, ann, 12),  # 12 parallel tool calls: each run is one lookback position
        (420, None, triage),  # Haiku 4.5: 4096 minimum, nothing cached
        (430, None, automatic),  # top-level cache_control
        (435, None, automatic_next),  # the breakpoint moved on: lookback
        (1000, None, one_off),  # ann's 5m lookback read at 400 kept the system entry's 1h
        (4700, bob, "Back after an hour."),  # everything expired
        (4710, bob, "One more."),
    ]
    out = []
    with (
        Emulator(clock=clock) as emu,
        anthropic.Anthropic(
            base_url=emu.base_url, api_key="sk-ant-emulator", max_retries=0
        ) as client,
    ):
        for when, chat, step in steps:
            clock.now = 1000.0 + when
            if chat is None:
                request = step
            elif isinstance(step, int):
                request = chat.ask("", tools_turn=step)
            else:
                request = chat.ask(step)
            if when == 10:  # one streamed call: the stream's usage is what counts
                with client.messages.stream(**request) as stream:
                    reply = stream.get_final_message()
            else:
                reply = client.messages.create(**request)
            if chat is not None:
                chat.answered(reply.content[0].text)
            wire = emu.served[-1]  # the request as sent, as a cassette holds it
            out.append(Sent(wire.request, clock.now, split_of(wire.usage)))
    got = [s.usage for s in out]
    # the scenario exercises every rule: 1h and 5m writes, reads, expiry, below minimum
    system = got[0].write_1h
    assert system and got[0].write_5m and got[1].read == system
    assert got[2].read == system and got[2].uncached > 0
    assert got[3].read > system  # read at ann's last turn, which is no breakpoint now
    assert got[6].read == system and got[7].read > got[6].read  # the tool-run rule
    assert got[8] == Predicted(0, 0, 0, got[8].uncached)
    assert got[9].write_5m and got[10].read == got[9].write_5m
    assert got[11].read == system
    assert got[12].read == 0 and got[13].read == got[12].write_1h + got[12].write_5m
    return out


def test_the_simulator_predicts_what_the_emulator_serves(scenario):
    simulator = sim()
    predicted = [simulator.call(emulator_call(s.request, s.at)) for s in scenario]
    assert predicted == [s.usage for s in scenario]


def test_whole_prompt_counts_and_learned_prefix_sizes_predict_the_recording(scenario):
    """What a doctor has from a cassette: each call's whole prompt and cache split, no
    per-block counts. Sizes the recording gives away (read + write = the prefix at the
    last breakpoint) pin every call sharing that prefix; the rest is shared out by chars."""
    sizes = PrefixSizes()
    for s in scenario:
        blocks = prompt_blocks(s.request)
        sizes.learn(s.request["model"], blocks, s.usage.read, s.usage.write_5m + s.usage.write_1h)
    simulator, wrong = sim(), []
    for index, s in enumerate(scenario):
        model, blocks = s.request["model"], prompt_blocks(s.request)
        cumulative = estimate_cumulative(blocks, s.usage.total, sizes.pins(model, blocks))
        kinds = block_kinds(blocks)
        got = simulator.call(SimCall(model, blocks, cumulative, s.at, kinds))
        if got != s.usage:
            wrong.append(index)
            # where the split is estimated, what is read and written still agrees
            assert (got.read > 0, got.uncached) == (s.usage.read > 0, s.usage.uncached)
            assert got.total - got.uncached == s.usage.total - s.usage.uncached
    # the one call whose 1h/5m boundary (the system prompt on Opus 4.8) ends no recorded
    # call's last breakpoint: that size is estimated, and the split off by a token or so
    assert wrong == [5]


def test_both_refuse_five_breakpoints():
    request = {
        "model": SONNET,
        "max_tokens": 8,
        "system": [
            {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
            for i in range(5)
        ],
        "messages": [{"role": "user", "content": "hi"}],
    }
    with (
        Emulator() as emu,
        anthropic.Anthropic(base_url=emu.base_url, api_key="k") as client,
        pytest.raises(anthropic.BadRequestError) as caught,
    ):
        client.messages.create(**request)
    with pytest.raises(RejectedRequest) as refused:
        sim().call(emulator_call(request, 0))
    assert str(refused.value) == caught.value.body["error"]["message"]


# -- agreement with the example's cassettes --------------------------------------------------
def example_calls() -> list[tuple[str, dict[str, Any], Usage, float]]:
    """(case, request, recorded usage, time) of every call in the example's cassettes, in
    the order its tests run them: endpoints as token_budgets.yml lists them, each
    endpoint's cases in their cases file's order (not the files' alphabetical order)."""
    config = yaml.safe_load((ROOT / "token_budgets.yml").read_text(encoding="utf-8"))
    cassettes = ROOT / "examples" / "support_bot" / "cassettes"
    calls = []
    for endpoint, spec in config["endpoints"].items():
        text = (ROOT / spec["cases"]).read_text(encoding="utf-8")
        if spec["cases"].endswith(".jsonl"):
            cases = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            cases = yaml.safe_load(text)
        for case in cases:
            for exchange in load_cassette_file(cassettes / endpoint / f"{case['id']}.yaml"):
                when = parsedate_to_datetime(exchange.headers["date"][0]).timestamp()
                for call in parse_exchange(exchange):
                    calls.append((case["id"], json.loads(exchange.request_body), call.usage, when))
    return calls


def recorded(usage: Usage) -> Predicted:
    return Predicted(
        usage.cache_read_tokens,
        usage.cache_write_5m_tokens,
        usage.cache_write_1h_tokens,
        usage.input_tokens,
    )


def test_the_example_cassettes_replay_to_their_recorded_cache_numbers():
    calls = example_calls()
    assert len(calls) == 28 and calls[0][0] == "return_window"  # the first case writes
    simulator, predicted = sim(), []
    for _case, request, usage, when in calls:
        blocks = prompt_blocks(request)
        points = breakpoints(blocks)
        cached = usage.cache_read_tokens + usage.cache_write_tokens
        pins = {points[-1]: cached} if points and cached else {}
        cumulative = estimate_cumulative(blocks, usage.prompt_tokens, pins)
        kinds = block_kinds(blocks)
        predicted.append(simulator.call(SimCall(request["model"], blocks, cumulative, when, kinds)))
    assert predicted == [recorded(usage) for _c, _r, usage, _w in calls]
    assert sum(p.read for p in predicted) == 19 * 1090 and predicted[0].write_5m == 1090
