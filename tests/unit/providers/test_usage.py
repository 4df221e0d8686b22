"""Usage parsing, on real recorded cassettes and on hand-written exchanges."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from paths import CASSETTES

from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.providers.bodies import decode_body
from pytest_tokenbudget.providers.exchanges import (
    exchanges_from_cassette,
    load_cassette_file,
    parse_exchange,
)
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import Usage

MESSAGES = "https://api.anthropic.com/v1/messages"
CHAT = "https://api.openai.com/v1/chat/completions"
RESPONSES = "https://api.openai.com/v1/responses"


def exchange(url, body, *, status=200, headers=None, request=b"") -> Exchange:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    if isinstance(request, dict):
        request = json.dumps(request).encode()
    return Exchange("POST", url, request, status, headers or {}, body)


def sse(*events: tuple[str | None, dict | str], eol: str = "\n") -> str:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data)
        lines = ([f"event: {name}"] if name else []) + [f"data: {payload}"]
        out.append(eol.join(lines) + eol + eol)
    return "".join(out)


def one(ex: Exchange):
    calls = parse_exchange(ex)
    assert len(calls) == 1, calls
    return calls[0]


def tokens(u: Usage) -> tuple[int, int, int, int, int]:
    """in / out / 5m writes / 1h writes / reads."""
    return (
        u.input_tokens,
        u.output_tokens,
        u.cache_write_5m_tokens,
        u.cache_write_1h_tokens,
        u.cache_read_tokens,
    )


# -- real cassettes (numbers from tests/data/cassettes/README.md) ----------------------------
REAL = {
    "anthropic/llm-anthropic_count_tokens.yaml": [
        [("count_tokens", "claude-opus-5", False, (10, 0, 0, 0, 0))],
        [("count_tokens", "claude-opus-5", False, (17, 0, 0, 0, 0))],
    ],
    "anthropic/llm-anthropic_tools_stream_multiturn.yaml": [
        [("messages", "claude-3-5-haiku-latest", True, (310, 82, 0, 0, 0))],
        [("messages", "claude-3-5-haiku-latest", True, (465, 95, 0, 0, 0))],
    ],
    "anthropic/openllmetry_prompt_caching_gzip.yaml": [
        [("messages", "claude-3-5-sonnet-20240620", False, (4, 224, 1163, 0, 0))],
        [("messages", "claude-3-5-sonnet-20240620", False, (4, 230, 0, 0, 1163))],
    ],
    "anthropic/ddtrace_error_400_no_usage.yaml": [[]],
    "anthropic/openinference_parallel_tool_use_plain.yaml": [
        [("messages", "claude-sonnet-4-6", False, (721, 112, 0, 0, 0))],
    ],
    "openai/openllmetry_chat_gzip_4x.yaml": [
        [("chat", "gpt-3.5-turbo-0125", False, (15, out, 0, 0, 0))] for out in (19, 31, 22, 19)
    ],
    "openai/pydantic-ai_stream_include_usage_tools.yaml": [
        [("chat", "gpt-4o-mini-2024-07-18", True, (53, 15, 0, 0, 0))],
        [("chat", "gpt-4o-mini-2024-07-18", True, (78, 9, 0, 0, 0))],
    ],
}


def test_every_real_cassette_is_covered():
    assert {str(p.relative_to(CASSETTES)) for p in CASSETTES.glob("*/*.yaml")} == set(REAL)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_cassette(name):
    exchanges = load_cassette_file(CASSETTES / name)
    found = [
        [(c.kind, c.model, c.streamed, tokens(c.usage)) for c in parse_exchange(ex)]
        for ex in exchanges
    ]
    assert found == REAL[name]
    for ex in exchanges:
        for call in parse_exchange(ex):
            assert call.provider == name.split("/")[0]
            assert not call.batch and call.note == ""


def test_real_prompt_caching_whole_prompt_stays_the_same():
    first, second = load_cassette_file(CASSETTES / "anthropic/openllmetry_prompt_caching_gzip.yaml")
    assert "?beta=prompt_caching" in first.url
    assert first.body.startswith(b"\x1f\x8b")  # stored compressed, decoded while parsing
    assert one(first).usage.prompt_tokens == one(second).usage.prompt_tokens == 1167


def test_real_error_cassette_has_a_400_exchange():
    (ex,) = load_cassette_file(CASSETTES / "anthropic/ddtrace_error_400_no_usage.yaml")
    assert ex.status == 400 and b'"type":"error"' in ex.body


def test_real_pydantic_ai_request_comes_from_parsed_body():
    ex = load_cassette_file(CASSETTES / "openai/pydantic-ai_stream_include_usage_tools.yaml")[0]
    assert json.loads(ex.request_body)["model"] == "gpt-4o-mini"
    assert json.loads(ex.request_body)["stream_options"] == {"include_usage": True}


# -- Anthropic Messages ----------------------------------------------------------------------
def test_messages_json_model_falls_back_to_request():
    body = {"type": "message", "usage": {"input_tokens": 12, "output_tokens": 3}}
    call = one(exchange(MESSAGES, body, request={"model": "claude-haiku-4-5"}))
    assert (call.provider, call.kind, call.model) == ("anthropic", "messages", "claude-haiku-4-5")
    assert tokens(call.usage) == (12, 3, 0, 0, 0)


def test_messages_beta_query_and_null_fields():
    body = {
        "model": "claude-sonnet-4-6",
        "usage": {
            "input_tokens": 5,
            "output_tokens": None,
            "cache_creation_input_tokens": None,
            "cache_creation": None,
        },
    }
    call = one(exchange(MESSAGES + "?beta=true", body))
    assert tokens(call.usage) == (5, 0, 0, 0, 0)


def test_cache_creation_split_5m_and_1h():
    usage = {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 400,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    call = one(exchange(MESSAGES, {"model": "m", "usage": usage}))
    assert tokens(call.usage) == (10, 20, 1000, 2000, 400)
    assert call.usage.prompt_tokens == 3410


def test_cache_creation_without_split_is_all_5m():
    usage = {"input_tokens": 1, "output_tokens": 2, "cache_creation_input_tokens": 700}
    assert tokens(one(exchange(MESSAGES, {"model": "m", "usage": usage})).usage) == (
        1,
        2,
        700,
        0,
        0,
    )


def test_cache_creation_split_disagreeing_with_total_trusts_total():
    usage = {
        "cache_creation_input_tokens": 900,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 300},
    }
    assert tokens(one(exchange(MESSAGES, {"model": "m", "usage": usage})).usage) == (
        0,
        0,
        600,
        300,
        0,
    )


def test_error_status_and_error_body_give_no_call():
    err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert parse_exchange(exchange(MESSAGES, err, status=529)) == []
    assert parse_exchange(exchange(MESSAGES, err)) == []  # error body with a 200
    assert parse_exchange(exchange(MESSAGES, "not json at all", status=500)) == []


def test_unknown_endpoints_give_no_call():
    assert parse_exchange(exchange("https://api.anthropic.com/v1/models", "garbage")) == []
    assert parse_exchange(exchange("https://example.com/upload", b"\x00\x01")) == []
    # OpenAI Assistants messages are not Anthropic Messages
    threads = "https://api.openai.com/v1/threads/thread_1/messages"
    assert parse_exchange(exchange(threads, {"object": "thread.message"})) == []


def test_non_json_body_of_a_known_endpoint_names_the_url():
    with pytest.raises(
        CassetteError, match=r"POST https://api\.anthropic\.com/v1/messages: .*not JSON"
    ):
        parse_exchange(exchange(MESSAGES, "<html>502 Bad Gateway</html>"))
    with pytest.raises(CassetteError, match="chat/completions: response body is empty"):
        parse_exchange(exchange(CHAT, b""))


def test_bad_token_count_is_a_cassette_error():
    body = {"model": "m", "usage": {"input_tokens": "lots"}}
    with pytest.raises(CassetteError, match="'lots' is not a number"):
        parse_exchange(exchange(MESSAGES, body))


# -- Anthropic streams -----------------------------------------------------------------------
def _stream(start_usage: dict, *delta_usages: dict, model: str = "claude-sonnet-4-6", **kw) -> str:
    events: list[tuple[str | None, dict | str]] = [
        (
            "message_start",
            {"type": "message_start", "message": {"model": model, "usage": start_usage}},
        ),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "hi"}}),
    ]
    for usage in delta_usages:
        events.append(("message_delta", {"type": "message_delta", "delta": {}, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return sse(*events, **kw)


def test_stream_message_delta_overwrites_and_is_not_added():
    start = {
        "input_tokens": 50,
        "output_tokens": 1,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 0,
    }
    # newer streams repeat the (cumulative) input counts in message_delta
    delta = {
        "input_tokens": 50,
        "output_tokens": 120,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": None,
    }
    call = one(
        exchange(MESSAGES, _stream(start, delta), headers={"content-type": ["text/event-stream"]})
    )
    assert call.streamed and call.kind == "messages" and call.model == "claude-sonnet-4-6"
    assert tokens(call.usage) == (50, 120, 2000, 0, 0)


def test_stream_several_deltas_last_wins():
    call = one(
        exchange(
            MESSAGES,
            _stream(
                {"input_tokens": 9, "output_tokens": 1},
                {"output_tokens": 30},
                {"output_tokens": 70},
            ),
        )
    )
    assert tokens(call.usage) == (9, 70, 0, 0, 0)


def test_stream_delta_may_correct_an_input_count():
    start = {"input_tokens": 100, "output_tokens": 1}
    call = one(exchange(MESSAGES, _stream(start, {"input_tokens": 140, "output_tokens": 5})))
    assert tokens(call.usage) == (140, 5, 0, 0, 0)


def test_stream_crlf_and_multiline_data():
    start = {
        "type": "message_start",
        "message": {"model": "claude-opus-4-7", "usage": {"input_tokens": 7, "output_tokens": 1}},
    }
    multiline = json.dumps(start, indent=2).replace("\n", "\r\ndata: ")
    body = (
        ": keep-alive comment\r\n\r\n"
        f"event: message_start\r\ndata: {multiline}\r\n\r\n"
        + sse(
            ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 44}}), eol="\r\n"
        )
        + sse(("message_stop", {"type": "message_stop"}), eol="\r\n")
    )
    call = one(exchange(MESSAGES, body))  # detected by its first line, no content-type
    assert call.model == "claude-opus-4-7"
    assert tokens(call.usage) == (7, 44, 0, 0, 0)


def test_stream_cache_split_from_message_start():
    start = {
        "input_tokens": 3,
        "output_tokens": 1,
        "cache_creation_input_tokens": 500,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 500},
    }
    call = one(exchange(MESSAGES, _stream(start, {"output_tokens": 8})))
    assert tokens(call.usage) == (3, 8, 0, 500, 0)


def test_stream_with_error_event_gives_no_call():
    body = _stream({"input_tokens": 3, "output_tokens": 1}) + sse(
        ("error", {"type": "error", "error": {"type": "overloaded_error"}})
    )
    assert parse_exchange(exchange(MESSAGES, body)) == []


def test_stream_cut_before_message_delta_is_an_error():
    body = sse(
        (
            "message_start",
            {
                "type": "message_start",
                "message": {"model": "m", "usage": {"input_tokens": 4, "output_tokens": 1}},
            },
        )
    )
    cut = exchange(MESSAGES, body + 'event: content_block_delta\ndata: {"type":"conte')
    with pytest.raises(CassetteError, match="ends before its message_delta"):
        parse_exchange(cut)  # its output is unknown: never measured as 1 token


def test_stream_without_message_start_is_an_error():
    with pytest.raises(CassetteError, match="no message_start"):
        parse_exchange(exchange(MESSAGES, sse(("ping", {"type": "ping"}))))


# -- count_tokens and batches ----------------------------------------------------------------
def test_count_tokens():
    url = MESSAGES + "/count_tokens?beta=true"
    call = one(exchange(url, {"input_tokens": 2048}, request={"model": "claude-haiku-4-5"}))
    assert (call.kind, call.model, tokens(call.usage)) == (
        "count_tokens",
        "claude-haiku-4-5",
        (2048, 0, 0, 0, 0),
    )


def test_batch_results_one_call_per_succeeded_line():
    def line(custom_id, result):
        return json.dumps({"custom_id": custom_id, "result": result})

    def ok(model, usage):
        return {"type": "succeeded", "message": {"model": model, "usage": usage}}

    body = "\n".join(
        [
            line("a", ok("claude-sonnet-4-6", {"input_tokens": 100, "output_tokens": 20})),
            line("b", {"type": "errored", "error": {"type": "invalid_request_error"}}),
            line(
                "c",
                ok(
                    "claude-haiku-4-5",
                    {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 1000},
                ),
            ),
            line("d", {"type": "expired"}),
            "",
        ]
    )
    url = "https://api.anthropic.com/v1/messages/batches/msgbatch_01abc/results"
    calls = parse_exchange(exchange(url, body, headers={"Content-Type": "application/binary"}))
    assert [(c.kind, c.model, c.batch, tokens(c.usage)) for c in calls] == [
        ("batch", "claude-sonnet-4-6", True, (100, 20, 0, 0, 0)),
        ("batch", "claude-haiku-4-5", True, (5, 6, 0, 0, 1000)),
    ]


def test_batch_results_corrupt_line():
    url = "https://api.anthropic.com/v1/messages/batches/msgbatch_01abc/results"
    with pytest.raises(CassetteError, match="line 2 is not JSON"):
        parse_exchange(exchange(url, '{"result": {"type": "errored"}}\n{"custom_id": "b", "res'))


# -- OpenAI ----------------------------------------------------------------------------------
def test_openai_chat_cached_tokens_are_taken_out_of_the_prompt():
    body = {
        "model": "gpt-4o-2024-08-06",
        "usage": {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1920},
        },
    }
    call = one(exchange(CHAT, body))
    assert (call.provider, call.kind, call.model) == ("openai", "chat", "gpt-4o-2024-08-06")
    assert tokens(call.usage) == (86, 300, 0, 0, 1920)
    assert call.usage.prompt_tokens == 2006  # the whole prompt is unchanged


def test_openai_chat_stream_without_usage():
    chunk = {
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [{"delta": {"content": "x"}}],
    }
    body = sse((None, chunk), (None, chunk), (None, "[DONE]"))
    call = one(exchange(CHAT, body, headers={"Content-Type": "text/event-stream; charset=utf-8"}))
    assert call.streamed and call.usage == Usage() and call.model == "gpt-4o-mini"
    assert call.note == "stream carried no usage (set stream_options.include_usage)"


def test_openai_chat_stream_usage_in_last_chunk():
    chunk = {"model": "gpt-4o-mini", "choices": [{"delta": {"content": "x"}}], "usage": None}
    last = {
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 1024},
        },
    }
    call = one(exchange(CHAT, sse((None, chunk), (None, last), (None, "[DONE]"))))
    assert tokens(call.usage) == (176, 7, 0, 0, 1024)


def test_openai_error_gives_no_call():
    assert parse_exchange(exchange(CHAT, {"error": {"message": "bad key"}}, status=401)) == []
    assert parse_exchange(exchange(CHAT, {"error": {"message": "odd proxy"}})) == []


def test_openai_responses_api():
    body = {
        "object": "response",
        "model": "gpt-4.1-2025-04-14",
        "error": None,  # always present: not an error
        "usage": {
            "input_tokens": 5000,
            "input_tokens_details": {"cached_tokens": 4096},
            "output_tokens": 80,
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }
    call = one(exchange(RESPONSES, body))
    assert (call.kind, call.model, tokens(call.usage)) == (
        "responses",
        "gpt-4.1-2025-04-14",
        (904, 80, 0, 0, 4096),
    )


def test_openai_responses_stream():
    usage = {"input_tokens": 40, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 12}
    body = sse(
        (
            "response.created",
            {"type": "response.created", "response": {"model": "gpt-4.1", "usage": None}},
        ),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "hi"}),
        (
            "response.completed",
            {"type": "response.completed", "response": {"model": "gpt-4.1", "usage": usage}},
        ),
    )
    call = one(exchange(RESPONSES, body, headers={"content-type": "text/event-stream"}))
    assert (call.kind, call.streamed, tokens(call.usage)) == ("responses", True, (40, 12, 0, 0, 0))


# -- bodies ----------------------------------------------------------------------------------
def test_gzip_body_with_any_header_case_and_value_shape():
    body = {"model": "m", "usage": {"input_tokens": 11, "output_tokens": 22}}
    packed = gzip.compress(json.dumps(body).encode())
    for headers in ({"Content-Encoding": ["gzip"]}, {"CONTENT-ENCODING": "gzip"}, {}):
        assert tokens(one(exchange(MESSAGES, packed, headers=headers)).usage) == (11, 22, 0, 0, 0)


def test_decode_body():
    raw = b'{"a": 1}'
    assert decode_body({"content-encoding": ["gzip"]}, gzip.compress(raw)) == raw
    assert decode_body({"Content-Encoding": "deflate"}, zlib.compress(raw)) == raw
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert (
        decode_body(
            {"content-encoding": "deflate"}, raw_deflate.compress(raw) + raw_deflate.flush()
        )
        == raw
    )
    # already decoded by vcrpy, header left behind
    assert decode_body({"content-encoding": ["gzip"]}, raw) == raw
    assert decode_body({"content-encoding": ["deflate"]}, raw) == raw
    assert decode_body({}, raw) == raw
    with pytest.raises(CassetteError, match="gzip body is corrupt or truncated"):
        decode_body({"content-encoding": ["gzip"]}, gzip.compress(raw)[:-6])


def test_undecodable_encoding_is_named():
    with pytest.raises(CassetteError, match="encoded with 'br'"):
        parse_exchange(
            exchange(MESSAGES, b"\x8b\x05\x80hello", headers={"content-encoding": ["br"]})
        )


# -- cassettes -------------------------------------------------------------------------------
def _cassette(request: dict, response_body: dict, **extra) -> dict:
    return {
        "version": 1,
        "interactions": [
            {
                "request": {"method": "POST", "uri": MESSAGES, "headers": {}, **request},
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"Content-Type": ["application/json"]},
                    "body": response_body,
                },
                **extra,
            }
        ],
    }


def test_exchanges_from_cassette_bodies():
    message = {"model": "m", "usage": {"input_tokens": 1, "output_tokens": 2}}
    for request, response_body in [
        ({"body": '{"model": "r"}'}, {"string": json.dumps(message)}),
        ({"body": b'{"model": "r"}'}, {"string": gzip.compress(json.dumps(message).encode())}),
        ({"parsed_body": {"model": "r"}}, {"parsed_body": message}),
        ({"body": None}, {"string": json.dumps(message).encode()}),
    ]:
        (ex,) = exchanges_from_cassette(_cassette(request, response_body))
        assert ex.headers == {"content-type": ["application/json"]}
        assert tokens(one(ex).usage) == (1, 2, 0, 0, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "not a vcrpy cassette"),
        ([{"request": {}}], "pre-1.0 vcrpy format"),
        ({"interactions": []}, "no `version`"),
        ({"version": 2, "interactions": []}, "unsupported cassette version"),
        (
            {"version": 1, "interactions": [{"request": {"uri": MESSAGES}}]},
            "interaction 0 has no 'response'",
        ),
        ({"version": 1, "interactions": ["x"]}, "interaction 0 is malformed"),
    ],
)
def test_exchanges_from_bad_cassette(data, message):
    with pytest.raises(CassetteError, match=message) as info:
        exchanges_from_cassette(data, path="c.yaml")
    assert info.value.path == "c.yaml"


REAL_STREAM = CASSETTES / "anthropic/llm-anthropic_tools_stream_multiturn.yaml"


def test_truncated_cassette_names_the_path_and_line(tmp_path):
    text = REAL_STREAM.read_text()
    cut = tmp_path / "cut.yaml"
    cut.write_text(text[: text.index("data:") + 40])  # inside a quoted scalar
    with pytest.raises(CassetteError) as info:
        load_cassette_file(cut)
    err = info.value
    assert err.path == str(cut) and err.line and "corrupt cassette" in err.message
    assert str(err).startswith(f"{cut}:{err.line}: ")


def test_cassette_cut_at_a_line_boundary(tmp_path):
    lines = REAL_STREAM.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.yaml"
    cut.write_text("".join(lines[: len(lines) - 3]))  # loses the status code and version
    with pytest.raises(CassetteError, match="truncated") as info:
        load_cassette_file(cut)
    assert info.value.path == str(cut)


def test_cassette_with_truncated_gzip_body(tmp_path):
    import yaml

    data = _cassette({"body": "{}"}, {"string": gzip.compress(b'{"usage": {}}' * 50)[:-20]})
    data["interactions"][0]["response"]["headers"] = {"Content-Encoding": ["gzip"]}
    path = tmp_path / "gz.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        CassetteError, match=r"interaction 0: POST .*/v1/messages: gzip body is corrupt"
    ) as info:
        load_cassette_file(path)
    assert info.value.path == str(path)


def test_cassette_with_html_body(tmp_path):
    import yaml

    path = tmp_path / "html.yaml"
    path.write_text(yaml.safe_dump(_cassette({"body": "{}"}, {"string": "<html>oops</html>"})))
    with pytest.raises(CassetteError, match="not JSON") as info:
        load_cassette_file(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read cassette"),
        (b"", "cassette is empty"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"interactions: [\n  {request: \n", "corrupt cassette"),
        (b"- just\n- a list\n", "not a vcrpy cassette"),
        (
            b"version: 1\ninteractions:\n- request: {uri: x}\n  response: !!python/object:os.system {}\n",
            "corrupt",
        ),
    ],
)
def test_unreadable_cassette_files(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CassetteError, match=message) as info:
        load_cassette_file(path)
    assert info.value.path == str(path)
