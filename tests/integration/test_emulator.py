"""The emulator against the real `anthropic` SDK over real loopback HTTP: the other tests
trust its numbers, so they are pinned here."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import pytest
from emulator import Emulator, tokens

SDK_MAJOR = int(anthropic.__version__.split(".")[0])
MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-emulator-test"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(clock=clock) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emu.base_url, api_key=KEY, max_retries=2) as sdk:
        yield sdk


def usage_dict(usage: Any) -> dict:
    return usage.model_dump(exclude_none=True)


def words(n: int, stem: str = "w") -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def ask(text: str = "Hello there, how are you?", **extra: Any) -> dict:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


# -- plain messages ------------------------------------------------------------------------
def test_non_streaming_usage_is_what_was_served(emu, client):
    raw = client.messages.with_raw_response.create(**ask())
    message = raw.parse()
    served = emu.served[-1]
    assert (served.path, served.status, served.stream, served.model) == (
        "/v1/messages",
        200,
        False,
        MODEL,
    )
    assert usage_dict(message.usage) == served.usage
    assert (
        served.usage["input_tokens"] == emu.count(ask()) == 3 + tokens("Hello there, how are you?")
    )
    assert served.usage["service_tier"] == "standard"
    assert message.content[0].text == "Echo: Hello there , how are you ?"
    assert message.usage.output_tokens == tokens(message.content[0].text) == 9
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_emu_") and len(message.id) == len("msg_emu_") + 16
    # realistic headers, so scrubbing can be tested; SDK 2.x sends the key as a Bearer token,
    # 0.x and 1.x (still supported: constraints/oldest.txt) as x-api-key
    assert raw.headers["anthropic-organization-id"] == "org-emulator-secret-id"
    assert raw.headers["set-cookie"] and raw.headers["request-id"].startswith("req_emu_")
    if SDK_MAJOR >= 2:
        assert served.headers["authorization"] == f"Bearer {KEY}"
        assert "x-api-key" not in served.headers
    else:
        assert served.headers["x-api-key"] == KEY
        assert "authorization" not in served.headers


def test_reply_is_deterministic_and_cut_at_max_tokens(emu, client):
    first = client.messages.create(**ask(max_tokens=4))
    second = client.messages.create(**ask(max_tokens=4))
    assert first.id == second.id and first.content == second.content
    assert first.content[0].text == "Echo: Hello there"
    assert (first.stop_reason, first.usage.output_tokens) == ("max_tokens", 4)
    assert client.messages.create(
        model="claude-made-up-9", max_tokens=5, messages=ask()["messages"]
    ).model == ("claude-made-up-9")


def test_prompt_count_follows_the_documented_tokenizer(emu, client):
    tool = {"name": "lookup", "description": "Find an order.", "input_schema": {"type": "object"}}
    request = {
        "model": MODEL,
        "tools": [{**tool, "cache_control": {"type": "ephemeral"}}],
        "system": [{"type": "text", "text": "Be brief."}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Where is 42?"},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"id": 42}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "Shipped today."}
                ],
            },
        ],
    }
    expected = (
        tokens(json.dumps(tool, sort_keys=True))
        + tokens("Be brief.")
        + 3
        + tokens("Where is 42?")
        + 1000
        + 3
        + tokens(json.dumps({"id": 42}))
        + 3
        + tokens("Shipped today.")
    )
    assert emu.count(request) == expected
    assert client.messages.count_tokens(**request).input_tokens == expected
    assert emu.served[-1].usage == {"input_tokens": expected}
    assert emu.served[-1].path == "/v1/messages/count_tokens"


def test_concurrent_requests_are_all_recorded(emu, client):
    with ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(lambda i: client.messages.create(**ask(f"question {i}")), range(16))
        )
    assert len(emu.served) == 16 and all(s.status == 200 for s in emu.served)
    assert len({r.id for r in replies}) == 16


# -- streams -------------------------------------------------------------------------------
def big_system(n: int = 1500, ttl: str | None = None) -> list[dict]:
    control: dict = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": words(n), "cache_control": control}]


def test_stream_helper_final_usage_equals_served(emu, client):
    request = ask(system=big_system())
    with client.messages.stream(**request) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    served = emu.served[-1]
    assert served.stream and served.status == 200
    assert usage_dict(final.usage) == served.usage
    assert (
        served.usage["cache_creation_input_tokens"] == 1500
    )  # the streamed usage carries cache fields
    assert text == final.content[0].text == "Echo: Hello there , how are you ?"


def test_raw_stream_events_are_cumulative(emu, client):
    events = list(client.messages.create(**ask(system=big_system()), stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_delta") > 1
    served = emu.served[-1].usage
    start, delta = events[0].message.usage, events[-2].usage
    assert (
        start.output_tokens == 1
        and start.cache_creation_input_tokens == served["cache_creation_input_tokens"]
    )
    fields = (
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    )
    assert {k: getattr(delta, k) for k in fields} == {k: served[k] for k in fields}


def test_raw_sse_wire_format(emu):
    status, headers, body = raw_post(
        emu.base_url + "/v1/messages",
        json.dumps(ask(stream=True)).encode(),
        {"x-api-key": KEY, "content-type": "application/json"},
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    frames = body.decode().strip().split("\n\n")
    assert all(f.startswith("event: ") and "\ndata: {" in f for f in frames)
    assert [f.split("\n")[0] for f in frames].count("event: ping") >= 1
    assert emu.served[-1].headers["x-api-key"] == KEY


def test_async_streams_final_usage_equals_served(emu):
    async def main() -> list[tuple[dict, dict]]:
        pairs = []
        async with anthropic.AsyncAnthropic(
            base_url=emu.base_url, api_key=KEY, max_retries=0
        ) as sdk:
            async with sdk.messages.stream(**ask(system=big_system())) as stream:
                final = await stream.get_final_message()
            pairs.append((usage_dict(final.usage), emu.served[-1].usage))
            usage: dict = {}
            async for event in await sdk.messages.create(**ask(system=big_system()), stream=True):
                if event.type == "message_start":
                    usage = usage_dict(event.message.usage)
                elif event.type == "message_delta":
                    usage.update(event.usage.model_dump(exclude_none=True))
            pairs.append((usage, emu.served[-1].usage))
            message = await sdk.messages.create(**ask())
            pairs.append((usage_dict(message.usage), emu.served[-1].usage))
        return pairs

    pairs = asyncio.run(main())
    assert all(got == served for got, served in pairs)
    assert (
        pairs[0][0]["cache_creation_input_tokens"] == 1500
        and pairs[1][0]["cache_read_input_tokens"] == 1500
    )
    assert emu.served[0].headers["x-stainless-async"].startswith("async")


# -- prompt cache --------------------------------------------------------------------------
def test_cache_is_written_then_read_then_expires(emu, client, clock):
    request = ask(system=big_system(1500))
    total = emu.count(request)
    first = usage_dict(client.messages.create(**request).usage)
    assert first["cache_creation_input_tokens"] == 1500
    assert first["cache_creation"] == {
        "ephemeral_5m_input_tokens": 1500,
        "ephemeral_1h_input_tokens": 0,
    }
    assert first["input_tokens"] == total - 1500 and first["cache_read_input_tokens"] == 0

    clock.now += 299
    second = client.messages.create(**request).usage
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (1500, 0)
    assert second.input_tokens == total - 1500

    clock.now += 299  # a read refreshed the TTL
    assert client.messages.create(**request).usage.cache_read_input_tokens == 1500

    clock.now += 301
    expired = client.messages.create(**request).usage
    assert (expired.cache_read_input_tokens, expired.cache_creation_input_tokens) == (0, 1500)

    # count_tokens never splits, and the cache is per model
    assert (
        client.messages.count_tokens(
            model=MODEL, system=request["system"], messages=request["messages"]
        ).input_tokens
        == total
    )
    other = client.messages.create(**{**request, "model": "claude-opus-4-1"}).usage
    assert other.cache_creation_input_tokens == 1500


def test_one_hour_ttl(emu, client, clock):
    request = ask(system=big_system(1500, ttl="1h"))
    first = client.messages.create(**request).usage
    assert first.cache_creation.ephemeral_1h_input_tokens == 1500
    assert first.cache_creation.ephemeral_5m_input_tokens == 0
    clock.now += 3000
    assert client.messages.create(**request).usage.cache_read_input_tokens == 1500
    clock.now += 3601
    assert client.messages.create(**request).usage.cache_creation.ephemeral_1h_input_tokens == 1500


def test_below_the_model_minimum_nothing_is_cached(emu, client):
    for model, size in [
        ("claude-haiku-4-5", 4000),
        ("claude-3-haiku-emulated", 2000),
        (MODEL, 1000),
    ]:
        request = ask(system=big_system(size), model=model)
        for _ in range(2):
            usage = client.messages.create(**request).usage
            assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0), (
                model
            )
            assert usage.input_tokens == emu.count(request)
    bigger = client.messages.create(**ask(system=big_system(4100), model="claude-haiku-4-5")).usage
    assert bigger.cache_creation_input_tokens == 4100


def test_an_earlier_breakpoint_is_read_and_the_rest_written(emu, client):
    system = big_system(1500)
    turn = {
        "role": "user",
        "content": [
            {"type": "text", "text": words(300, "x"), "cache_control": {"type": "ephemeral"}}
        ],
    }
    client.messages.create(**ask(system=system))
    usage = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=[turn]).usage
    assert usage.cache_read_input_tokens == 1500
    assert usage.cache_creation_input_tokens == 3 + 300
    assert usage.input_tokens == 0
    # a changed system prompt invalidates everything after it
    changed = [{**system[0], "text": system[0]["text"] + " now"}]
    usage = client.messages.create(model=MODEL, max_tokens=8, system=changed, messages=[turn]).usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 1501 + 303)


def test_mixed_ttls_split_the_write_and_must_be_ordered(emu, client):
    one_hour = {
        "type": "text",
        "text": words(1200, "a"),
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
    five_min = {"type": "text", "text": words(200, "b"), "cache_control": {"type": "ephemeral"}}
    usage = client.messages.create(**ask(system=[one_hour, five_min])).usage
    assert usage.cache_creation.model_dump() == {
        "ephemeral_1h_input_tokens": 1200,
        "ephemeral_5m_input_tokens": 200,
    }
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**ask(system=[five_min, one_hour]))


def test_too_many_breakpoints_is_a_bad_request(emu, client):
    blocks = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
        for i in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**ask(system=blocks))
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert emu.served[-1].status == 400


def cached(text: str) -> dict:
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}


def test_a_read_looks_back_to_the_previous_turns_breakpoint(emu, client):
    system = [{"type": "text", "text": words(1500)}]  # no breakpoint of its own
    first = [{"role": "user", "content": [cached("first question")]}]
    usage = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=first).usage
    written = 1500 + 3 + tokens("first question")
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (written, 0)
    second = [
        {"role": "user", "content": [{"type": "text", "text": "first question"}]},
        {"role": "assistant", "content": "Echo: first question"},
        {"role": "user", "content": [cached("and a second one")]},
    ]
    usage = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=second).usage
    # the breakpoint moved; its prefix was never written, the one 3 positions back was
    whole = emu.count(ask(system=system, messages=second))
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        written,
        whole - written,
    )


@pytest.mark.parametrize(("extra", "hit"), [(19, True), (20, False)])
def test_the_lookback_checks_20_positions_counting_the_breakpoint(emu, client, extra, hit):
    system = [{"type": "text", "text": words(1500)}]
    client.messages.create(
        model=MODEL,
        max_tokens=8,
        system=system,
        messages=[{"role": "user", "content": [cached("start")]}],
    )
    later = [{"type": "text", "text": "start"}]
    later += [{"type": "text", "text": f"more {i}"} for i in range(extra - 1)] + [cached("end")]
    messages = [{"role": "user", "content": later}]
    usage = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=messages)
    assert usage.usage.cache_read_input_tokens == (1500 + 3 + 1 if hit else 0)


def test_a_run_of_tool_use_or_tool_result_blocks_is_one_position(emu, client):
    system = [{"type": "text", "text": words(1500)}]
    start = {"role": "user", "content": [cached("look up 25 orders")]}
    client.messages.create(model=MODEL, max_tokens=8, system=system, messages=[start])
    uses = [
        {"type": "tool_use", "id": f"t{i}", "name": "lookup", "input": {"id": i}} for i in range(25)
    ]
    results = [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"} for i in range(25)]
    results[-1] = {**results[-1], "cache_control": {"type": "ephemeral"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "look up 25 orders"}]},
        {"role": "assistant", "content": uses},
        {"role": "user", "content": results},
    ]
    usage = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=messages)
    assert usage.usage.cache_read_input_tokens == 1500 + 3 + tokens("look up 25 orders")
    # the same 50 blocks as text are 50 positions: the entry is out of reach
    as_text = [{"type": "text", "text": f"part {i}"} for i in range(50)]
    messages[1:] = [{"role": "user", "content": [*as_text, cached("end")]}]
    usage = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=messages)
    assert usage.usage.cache_read_input_tokens == 0


def test_top_level_cache_control_is_a_breakpoint_on_the_last_block(emu, client):
    request = ask(system=words(1500), cache_control={"type": "ephemeral", "ttl": "1h"})
    first = client.messages.create(**request).usage
    assert first.cache_creation.ephemeral_1h_input_tokens == emu.count(request)
    assert client.messages.create(**request).usage.cache_read_input_tokens == emu.count(request)
    # the last block's own ttl differs from the top-level one: refused
    one_hour = {**cached("hi"), "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    messages = [{"role": "user", "content": [one_hour]}]
    clash = ask(system=words(1500), cache_control={"type": "ephemeral"}, messages=messages)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**clash)


# -- errors, retries, encoding -------------------------------------------------------------
def test_missing_key_is_401(emu, monkeypatch, tmp_path):
    status, _, body = raw_post(emu.base_url + "/v1/messages", json.dumps(ask()).encode(), {})
    assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
    # the SDK itself refuses to send without credentials unless Authorization is omitted on purpose
    for name in [n for n in os.environ if n.startswith("ANTHROPIC_")]:  # keys, profiles, federation
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no profile on disk either
    sdk = anthropic.Anthropic(base_url=emu.base_url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):  # per request: 0.x ignores it as a default
        sdk.messages.create(**ask(), extra_headers={"Authorization": anthropic.Omit()})
    assert [s.status for s in emu.served] == [401, 401]
    assert "authorization" not in emu.served[-1].headers


def test_bad_requests(emu):
    url, auth = emu.base_url, {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    no_max = {k: v for k, v in ask().items() if k != "max_tokens"}
    cases = [
        ("/v1/messages", json.dumps(no_max).encode(), 400, "invalid_request_error"),
        ("/v1/messages", b"{not json", 400, "invalid_request_error"),
        ("/v1/complete", json.dumps(ask()).encode(), 404, "not_found_error"),
    ]
    for path, body, status, kind in cases:
        got, _, answer = raw_post(url + path, body, auth)
        assert (got, json.loads(answer)["error"]["type"]) == (status, kind), path
    assert [s.status for s in emu.served] == [400, 400, 404]


def test_rate_limit_is_retried_by_the_sdk(emu, client):
    emu.fail_next(429, retry_after=0)
    emu.fail_next(529, retry_after=0.01)
    message = client.messages.create(**ask())
    assert [s.status for s in emu.served] == [429, 529, 200]
    assert [s.headers["x-stainless-retry-count"] for s in emu.served] == ["0", "1", "2"]
    assert usage_dict(message.usage) == emu.served[-1].usage

    emu.fail_next(429, retry_after=0.01, times=3)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(**ask())
    assert caught.value.response.headers["retry-after-ms"] == "10"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_gzip_bodies_when_asked(clock):
    with Emulator(clock=clock, gzip_responses=True) as emu:
        with anthropic.Anthropic(base_url=emu.base_url, api_key=KEY, max_retries=0) as sdk:
            raw = sdk.messages.with_raw_response.create(**ask())
            assert raw.headers["content-encoding"] == "gzip"
            assert usage_dict(raw.parse().usage) == emu.served[-1].usage
        body = json.dumps(ask()).encode()
        _, headers, plain = raw_post(emu.base_url + "/v1/messages", body, {"x-api-key": KEY})
        assert "content-encoding" not in headers and json.loads(plain)["type"] == "message"
        _, headers, packed = raw_post(
            emu.base_url + "/v1/messages", body, {"x-api-key": KEY, "accept-encoding": "gzip"}
        )
        assert headers["content-encoding"] == "gzip" and json.loads(
            gzip.decompress(packed)
        ) == json.loads(plain)
