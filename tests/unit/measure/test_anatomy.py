"""Each call by part (cache/parts.py, measure/anatomy.py): counted parts are exact and add
up, estimated parts never move for another part's sake, and per endpoint the figures are
recomputed here independently (means, p95s, dollars by cache tier)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from emulator import ANATOMY_PARTS, Emulator, RequestError, _check_turns

from pytest_tokenbudget.cache.parts import (
    INPUT_PARTS,
    PLACEHOLDER,
    count_chain,
    counted_parts,
    estimate_parts,
    units,
)
from pytest_tokenbudget.capture.counting import (
    CountCache,
    count_key,
    count_parts_sync,
    counted_request,
)
from pytest_tokenbudget.measure.anatomy import (
    INPUT,
    OUTPUT,
    CallAnatomy,
    call_anatomy,
    endpoint_anatomy,
    input_figures,
    output_figures,
    response_blocks,
)
from pytest_tokenbudget.pricing.prices import PriceBook
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import Call, Usage

MODEL = "claude-sonnet-4-6"
TOOLS = [
    {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
CHAT = {
    "model": MODEL,
    "system": "You answer questions about costs. Be brief.",
    "messages": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "What is a token?"},
    ],
}
AGENT = {
    "model": MODEL,
    "tools": TOOLS,
    "system": [{"type": "text", "text": "Use the tools.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "source": {"type": "text", "data": "Policy: refunds in 30 days."},
                },
                {"type": "text", "text": "Weather in Paris and Rome?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "Sunny, 21 C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [{"type": "text", "text": "Rain"}],
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t3", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t3", "content": "Snow, -4 C"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                },
                {"type": "text", "text": "And what is in this picture?"},
            ],
        },
    ],
}
PREFILL = {
    "model": MODEL,
    "messages": [
        {
            "role": "user",
            "content": [{"type": "document", "source": {"type": "text", "data": "x y z"}}],
        },
        {"role": "assistant", "content": "Read it."},
        {"role": "user", "content": "Summarise it as JSON."},
        {"role": "assistant", "content": "{"},
    ],
}
SHAPES = {
    "chat": CHAT,
    "agent": AGENT,
    "prefill": PREFILL,
    "one turn": {**CHAT, "messages": CHAT["messages"][2:]},
}


def with_system(request, text):
    return {**request, "system": text}


# -- counted --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", list(SHAPES))
def test_counted_prefixes_give_each_part_exactly_and_add_up_to_the_count(shape):
    request = SHAPES[shape]
    emu = Emulator()
    chain = count_chain(counted_request(request))
    for prefix in chain:  # each one a request the API accepts
        _check_turns(prefix["messages"])
        assert prefix["messages"][-1] == PLACEHOLDER
    parts = counted_parts([emu.count(p) for p in chain], emu.count(request))
    assert dict(zip(INPUT_PARTS, parts, strict=True)) == emu.anatomy(request)
    assert sum(parts) == emu.count(request)
    assert INPUT_PARTS == ANATOMY_PARTS


def test_the_agent_is_split_where_its_tokens_are():
    parts = Emulator().anatomy(AGENT)
    assert (
        parts["documents"]
        == Emulator().count(
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": [AGENT["messages"][0]["content"][0]]}],
            }
        )
        - 3
        + 1000
    )
    assert parts["tool_results"] == units("Sunny, 21 C") + units("Rain") + units("Snow, -4 C")
    assert parts["latest_turn"] == units("And what is in this picture?")
    assert all(parts[p] > 0 for p in ANATOMY_PARTS)


def test_the_emulator_refuses_what_the_api_refuses_about_turns():
    with pytest.raises(RequestError, match="at least one message"):
        _check_turns([])
    broken = AGENT["messages"][:2] + [{"role": "user", "content": "never mind"}]
    with pytest.raises(RequestError, match="without `tool_result` blocks"):
        _check_turns(broken)
    with pytest.raises(RequestError, match="unexpected `tool_use_id`"):
        _check_turns([AGENT["messages"][2]])


def test_count_mode_counts_each_prefix_once_and_none_already_kept(tmp_path):
    emu = Emulator()
    cache = CountCache(tmp_path / "token_counts.json")
    sent = []

    def send(fields):
        sent.append(fields)
        return 200, {}, json.dumps({"input_tokens": emu.count(fields)}).encode()

    assert count_parts_sync(cache, AGENT, send)
    chain = count_chain(counted_request(AGENT))
    assert len(sent) == len({count_key(p) for p in chain})  # P1..P5 differ here: all six
    assert count_parts_sync(cache, AGENT, send) and len(sent) == 6  # all kept: none sent
    # another case with the same tools and system: P0, P1 and P2 are kept
    other = {
        **AGENT,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Weather in Lima?"},
        ],
    }
    count_parts_sync(cache, other, send)
    assert len(sent) == 6 + 1  # P3 (= P4 = P5); the rest were kept
    assert cache.hits == 0  # prefixes are not requests answered from the cache


def test_a_refused_prefix_leaves_the_call_estimated_not_failed(tmp_path):
    cache = CountCache(tmp_path / "token_counts.json")
    body = json.dumps({"type": "error", "error": {"message": "no"}}).encode()
    assert count_parts_sync(cache, AGENT, lambda fields: (400, {}, body)) is False
    figures, exact, counted = input_figures(AGENT, 1234, cache)
    assert not counted and sum(figures) == 1234


def test_input_is_exact_where_the_cache_holds_every_prefix(tmp_path):
    emu = Emulator()
    cache = CountCache(tmp_path / "token_counts.json")
    for request in [AGENT, *count_chain(counted_request(AGENT))]:
        cache.put(count_key(counted_request(request)), MODEL, emu.count(request))
    recorded = emu.count(AGENT) + 7  # the API billed 7 tokens count_tokens did not count
    figures, exact, counted = input_figures(AGENT, recorded, cache)
    assert counted and exact == (1 << len(INPUT)) - 1
    assert dict(zip(INPUT, figures, strict=True)) == {**emu.anatomy(AGENT), "unattributed": 7}


# -- estimated ------------------------------------------------------------------------------
def test_an_estimate_never_moves_when_another_part_grows():
    """The hard requirement: a part that did not change keeps its figure. A split of the
    whole by each part's share of the characters would move every part here."""
    emu = Emulator()
    grown = with_system(AGENT, "Use the tools. " + "Always cite the weather service. " * 60)
    before, after = estimate_parts(AGENT), estimate_parts(grown)
    for k, part in enumerate(INPUT_PARTS):
        if part != "system":
            assert after[k] == before[k], part
    added = emu.count(grown) - emu.count(AGENT)
    assert after[1] - before[1] == pytest.approx(added, rel=0.05)
    # and what the estimates leave of the recorded prompt is carried apart, never shared out
    small, _, _ = input_figures(AGENT, emu.count(AGENT))
    large, _, _ = input_figures(grown, emu.count(grown))
    assert sum(small) == emu.count(AGENT) and sum(large) == emu.count(grown)
    assert small[:1] + small[2:6] == large[:1] + large[2:6]


def test_the_estimate_memo_gives_what_a_fresh_read_gives():
    memo: dict = {}
    turns = list(AGENT["messages"])
    for n in range(1, len(turns) + 1):
        request = {**AGENT, "messages": turns[:n]}
        assert estimate_parts(request, memo) == estimate_parts(request)


def test_units_count_words_numbers_and_marks_and_each_cjk_character():
    assert units("Hello, world! It's 42.") == 9  # Hello , world ! It ' s 42 .
    assert units("日本語のテキスト") == 8
    assert units("") == 0


# -- output ---------------------------------------------------------------------------------
def test_an_answer_of_one_kind_is_exact_and_thinking_is_what_the_rest_leaves():
    text, thinking, tool = 0, 1, 2
    assert output_figures([(text, 5), (text, 4)], 12) == ([12, 0, 0, 0], 0b1111)
    figures, exact = output_figures([(thinking, 30), (text, 10), (tool, 6)], 200)
    assert figures == [10, 184, 6, 0] and exact == 0
    figures, exact = output_figures([(text, 10), (tool, 6)], 20)
    assert figures == [10, 0, 6, 4] and exact == 0b0010  # thinking: absent, so exactly 0
    assert output_figures(None, 9) == ([0, 0, 0, 9], 0)


def test_response_blocks_are_read_from_json_and_from_a_stream():
    answer = {
        "content": [
            {"type": "thinking", "thinking": "Let me think about it"},
            {"type": "text", "text": "It rains."},
            {"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Oslo"}},
        ]
    }
    headers = {"content-type": ["application/json"]}
    exchange = Exchange(
        "POST",
        "https://api.anthropic.com/v1/messages",
        b"{}",
        200,
        headers,
        json.dumps(answer).encode(),
    )
    json_blocks = response_blocks(exchange)
    tool = units("get_weather") + units('{"city": "Oslo"}')
    assert json_blocks == [(1, units("Let me think about it")), (0, units("It rains.")), (2, tool)]
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 1, "output_tokens": 1}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Let me "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "think about it"},
        },
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "It rains."},
        },
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "t", "name": "get_weather", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'},
        },
        {"type": "message_delta", "usage": {"output_tokens": 40}},
    ]
    stream = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
    streamed = Exchange(
        "POST", exchange.url, b"{}", 200, {"content-type": ["text/event-stream"]}, stream
    )
    assert response_blocks(streamed) == json_blocks


# -- per endpoint ---------------------------------------------------------------------------
def anatomy_of(request, usage, case="a", output=None):
    return call_anatomy(
        "ep", case, f"t::{case}", request, Call("anthropic", "messages", MODEL, usage), output
    )


def test_endpoint_figures_are_means_and_nearest_rank_p95s_of_the_calls():
    calls = [
        anatomy_of(
            with_system(CHAT, "word " * n),
            Usage(Emulator().count(with_system(CHAT, "word " * n)), 5),
            f"c{n}",
            [(0, 5)],
        )
        for n in range(1, 21)
    ]
    found = endpoint_anatomy(calls, book=PriceBook({}))
    system = [c.tokens[1] for c in calls]
    assert found.input["system"].mean == Fraction(sum(system), 20)
    assert found.input["system"].p95 == sorted(system)[18]  # ceil(0.95 * 20) = 19th
    assert found.metrics() == {"system_tokens_p95": sorted(system)[18], "tools_tokens_p95": 0}
    assert found.output["text"].mean == 5 and found.output["text"].exact
    assert not found.input["system"].exact and found.input["tools"].exact  # no tools: 0
    assert found.drivers("system_tokens_p95", Fraction(17), 3) == ("c20", "c19", "c18")


def test_each_part_is_priced_at_the_tier_its_place_in_the_prompt_falls_in():
    """Cache reads cover the start of the prompt (tools, then system), then writes, then
    uncached tokens; output parts at the output rate; `unattributed` is what is left."""
    book = PriceBook({})
    price = book.price(MODEL)
    emu = Emulator()
    whole = emu.count(AGENT)
    parts = estimate_parts(AGENT)
    read = parts[0] + parts[1] + 3  # tools, system and 3 of history's tokens were read
    usage = Usage(
        input_tokens=whole - read - 10,
        output_tokens=30,
        cache_write_5m_tokens=10,
        cache_read_tokens=read,
    )
    call = anatomy_of(AGENT, usage, output=[(0, 20), (2, 5)])
    found = endpoint_anatomy([call], book=book)
    i, o, w5, _, r = price.rates()
    million = 1_000_000
    assert found.input["tools"].cost == parts[0] * r / million
    assert found.input["system"].cost == parts[1] * r / million
    history = parts[2]
    assert found.input["history"].cost == (3 * r + 10 * w5 + (history - 13) * i) / million
    assert found.output["text"].cost == 20 * o / million
    assert found.output["tool_use"].cost == 5 * o / million
    assert found.output["unattributed"].cost == 5 * o / million
    total = sum(p.cost for p in found.input.values()) + sum(p.cost for p in found.output.values())
    assert total == price.cost(usage)


def test_a_model_nothing_prices_leaves_every_part_without_dollars():
    call = call_anatomy(
        "ep", "a", "t::a", CHAT, Call("anthropic", "messages", "acme-unknown", Usage(40, 5)), None
    )
    found = endpoint_anatomy([call], book=PriceBook({}))
    assert all(p.cost is None for p in found.input.values())


def test_calls_travel_from_xdist_workers_as_plain_data(tmp_path):
    from pytest_tokenbudget.config.budgets import load_config
    from pytest_tokenbudget.measure.run import BudgetRun, Options

    path = tmp_path / "token_budgets.yml"
    path.write_text("endpoints:\n  ep:\n    max_system_tokens: 100\n")
    options = Options(path, tmp_path, tmp_path)
    worker, controller = (
        BudgetRun(load_config(path), options),
        BudgetRun(load_config(path), options),
    )
    worker.anatomy.append(anatomy_of(AGENT, Usage(2000, 9), output=[(0, 9)]))
    controller.merge_wire(json.loads(json.dumps(worker.to_wire())))
    assert controller.anatomy == worker.anatomy
    assert isinstance(controller.anatomy[0], CallAnatomy) and len(OUTPUT) == 4
