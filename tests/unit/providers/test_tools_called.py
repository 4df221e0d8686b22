"""The tools a recorded Messages response called (Call.tools_called), the cost checklist's
evidence that a tool definition is used: real recordings, JSON and a stream."""

from __future__ import annotations

import json

from paths import CASSETTES

from pytest_tokenbudget.providers.exchanges import load_cassette_file, parse_exchange
from pytest_tokenbudget.providers.recorders import Exchange


def tools_called(name: str) -> list[tuple[str, ...] | None]:
    return [
        call.tools_called
        for exchange in load_cassette_file(CASSETTES / name)
        for call in parse_exchange(exchange)
    ]


def test_a_json_response_with_parallel_tool_use():
    # the recording's content: a text block, then tool_use get_weather and get_time
    assert tools_called("anthropic/openinference_parallel_tool_use_plain.yaml") == [
        ("get_weather", "get_time")
    ]


def test_a_stream_names_its_tools_in_content_block_start():
    # first answer: text, then two content_block_start events of tool_use pelican_name_generator;
    # second answer: text only
    assert tools_called("anthropic/llm-anthropic_tools_stream_multiturn.yaml") == [
        ("pelican_name_generator", "pelican_name_generator"),
        (),
    ]


def test_server_tools_count_and_other_blocks_do_not():
    body = {
        "model": "claude-sonnet-4-6",
        "content": [
            {"type": "text", "text": "Let me search."},
            {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {}},
            {"type": "web_search_tool_result", "tool_use_id": "s1", "content": []},
            {"type": "tool_use", "id": "t1", "input": {}},  # no name: nothing to match
        ],
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }
    exchange = Exchange(
        "POST", "https://api.anthropic.com/v1/messages", b"{}", 200, {}, json.dumps(body).encode()
    )
    [call] = parse_exchange(exchange)
    assert call.tools_called == ("web_search",)
