"""Invalid usage is an error: a count that is negative, fractional, NaN, a boolean or of the
wrong type, or a `usage` that is no object, in any recording (JSON, SSE, Bedrock, OpenAI,
batch results) or in the count cache, fails the case's endpoint with the field named. Never a
0, never a negative cost and a PASS, never a traceback, and one bad file never stops the run.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from pathlib import Path

import pytest
from project_files import PLAIN_APP

from pytest_tokenbudget.capture.counting import CACHE_SCHEMA, CountCache, count_sync
from pytest_tokenbudget.cli.cassette_scan import analyze
from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.providers.counts import token_count
from pytest_tokenbudget.providers.exchanges import load_cassette_file, parse_exchange
from pytest_tokenbudget.providers.recorders import Exchange

MESSAGES = "https://api.anthropic.com/v1/messages"
CHAT = "https://api.openai.com/v1/chat/completions"
COUNT = "https://api.anthropic.com/v1/messages/count_tokens"
BATCH = "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results"
BEDROCK = "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
INVOKE = BEDROCK + "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
INVOKE_STREAM = (
    BEDROCK + "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
)
CONVERSE = BEDROCK + "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
TITAN_STREAM = BEDROCK + "amazon.titan-text-express-v1/invoke-with-response-stream"
CONVERSE_STREAM = CONVERSE + "-stream"

# What JSON can hold where a token count belongs, and why each is no count. NaN and Infinity
# are what Python's json writes (and reads) for float('nan') and float('inf').
BAD = [
    pytest.param(-5, "is negative", id="negative"),
    pytest.param(1.5, "is not a whole number", id="fraction"),
    pytest.param(float("nan"), "is not a number", id="nan"),
    pytest.param(float("inf"), "is not a whole number", id="infinity"),
    pytest.param(True, "is not a number", id="boolean"),
    pytest.param("12", "is not a number", id="string"),
    pytest.param([3], "is not a number", id="list"),
    pytest.param({"n": 3}, "is not a number", id="object"),
]


def exchange(url, body, *, headers=None, status=200) -> Exchange:
    raw = (
        body
        if isinstance(body, bytes)
        else (body if isinstance(body, str) else json.dumps(body)).encode()
    )
    return Exchange("POST", url, b"", status, headers or {}, raw)


def sse(*events: dict) -> str:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


def message(usage) -> dict:
    return {"type": "message", "model": "claude-sonnet-4-6", "content": [], "usage": usage}


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream frame (what Bedrock streams), written out by hand."""
    raw = b""
    for name, value in headers.items():
        raw += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value))
        raw += value.encode()
    prelude = struct.pack(">II", 16 + len(raw) + len(payload), len(raw))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw + payload
    return head + struct.pack(">I", zlib.crc32(head))


def chunk(event: dict) -> bytes:
    data = base64.b64encode(json.dumps(event).encode()).decode()
    return frame(
        {":event-type": "chunk", ":message-type": "event"}, json.dumps({"bytes": data}).encode()
    )


def metadata(usage) -> bytes:
    return frame(
        {":event-type": "metadata", ":message-type": "event"},
        json.dumps({"usage": usage, "metrics": {"latencyMs": 9}}).encode(),
    )


def bedrock_stream(start_usage, delta_usage) -> bytes:
    return b"".join(
        [
            chunk({"type": "message_start", "message": {"model": "claude", "usage": start_usage}}),
            chunk({"type": "message_delta", "delta": {}, "usage": delta_usage}),
            chunk({"type": "message_stop"}),
        ]
    )


EVENT_STREAM = {"content-type": ["application/vnd.amazon.eventstream"]}
GOOD = {"input_tokens": 10, "output_tokens": 2}


def places(bad):
    """(exchange, the field the error must name) for every place a count is read."""
    step = {"type": "compaction", "input_tokens": 5, "output_tokens": bad}
    return [
        (
            exchange(MESSAGES, message({"input_tokens": bad, "output_tokens": 1})),
            "usage.input_tokens",
        ),
        (
            exchange(MESSAGES, message({"input_tokens": 1, "output_tokens": bad})),
            "usage.output_tokens",
        ),
        (
            exchange(MESSAGES, message({**GOOD, "cache_read_input_tokens": bad})),
            "usage.cache_read_input_tokens",
        ),
        (
            exchange(MESSAGES, message({**GOOD, "cache_creation_input_tokens": bad})),
            "usage.cache_creation_input_tokens",
        ),
        (
            exchange(
                MESSAGES,
                message(
                    {
                        **GOOD,
                        "cache_creation_input_tokens": 4,
                        "cache_creation": {
                            "ephemeral_5m_input_tokens": 4,
                            "ephemeral_1h_input_tokens": bad,
                        },
                    }
                ),
            ),
            "usage.cache_creation.ephemeral_1h_input_tokens",
        ),
        (
            exchange(MESSAGES, message({**GOOD, "iterations": [step]})),
            "usage.iterations[0].output_tokens",
        ),
        (
            exchange(
                MESSAGES,
                sse(
                    {
                        "type": "message_start",
                        "message": {
                            "model": "m",
                            "usage": {"input_tokens": bad, "output_tokens": 1},
                        },
                    },
                    {"type": "message_delta", "usage": {"output_tokens": 3}},
                ),
            ),
            "message_start message.usage.input_tokens",
        ),
        (
            exchange(
                MESSAGES,
                sse(
                    {"type": "message_start", "message": {"model": "m", "usage": GOOD}},
                    {"type": "message_delta", "usage": {"output_tokens": bad}},
                ),
            ),
            "message_delta usage.output_tokens",
        ),
        (
            exchange(
                MESSAGES,
                sse(
                    {"type": "message_start", "message": {"model": "m", "usage": GOOD}},
                    {
                        "type": "message_delta",
                        "usage": {
                            "output_tokens": 3,
                            "iterations": [
                                {"type": "message", "input_tokens": 10, "output_tokens": 3},
                                {**step, "output_tokens": 1, "input_tokens": bad},
                            ],
                        },
                    },
                ),
            ),
            "message_delta usage.iterations[1].input_tokens",
        ),
        (
            exchange(
                INVOKE_STREAM,
                bedrock_stream({"input_tokens": bad}, {"output_tokens": 2}),
                headers=EVENT_STREAM,
            ),
            "message_start message.usage.input_tokens",
        ),
        (
            exchange(
                TITAN_STREAM,
                chunk(
                    {
                        "outputText": "hi",
                        "amazon-bedrock-invocationMetrics": {
                            "inputTokenCount": bad,
                            "outputTokenCount": 2,
                        },
                    }
                ),
                headers=EVENT_STREAM,
            ),
            "amazon-bedrock-invocationMetrics.inputTokenCount",
        ),
        (
            exchange(CONVERSE, {"output": {}, "usage": {"inputTokens": bad, "outputTokens": 1}}),
            "usage.inputTokens",
        ),
        (
            exchange(
                CONVERSE,
                {
                    "output": {},
                    "usage": {
                        "inputTokens": 1,
                        "outputTokens": 1,
                        "cacheWriteInputTokens": 5,
                        "cacheDetails": [{"ttl": "1h", "inputTokens": bad}],
                    },
                },
            ),
            "usage.cacheDetails[0].inputTokens",
        ),
        (
            exchange(
                CONVERSE_STREAM,
                metadata({"inputTokens": 3, "outputTokens": bad}),
                headers=EVENT_STREAM,
            ),
            "metadata event usage.outputTokens",
        ),
        (exchange(COUNT, {"input_tokens": bad}), "input_tokens"),
        (
            exchange(
                CHAT, {"model": "gpt-4o", "usage": {"prompt_tokens": bad, "completion_tokens": 1}}
            ),
            "usage.prompt_tokens",
        ),
        (
            exchange(
                CHAT,
                {
                    "model": "gpt-4o",
                    "usage": {
                        "prompt_tokens": 9,
                        "completion_tokens": 1,
                        "prompt_tokens_details": {"cached_tokens": bad},
                    },
                },
            ),
            "usage.prompt_tokens_details.cached_tokens",
        ),
        (
            exchange(
                BATCH,
                json.dumps(
                    {
                        "custom_id": "a",
                        "result": {
                            "type": "succeeded",
                            "message": message({"input_tokens": 1, "output_tokens": bad}),
                        },
                    }
                ),
            ),
            "line 1: result.message.usage.output_tokens",
        ),
    ]


@pytest.mark.parametrize(("bad", "why"), BAD)
def test_a_bad_count_anywhere_is_an_error_naming_its_field(bad, why):
    for ex, field in places(bad):
        with pytest.raises(CassetteError) as caught:
            parse_exchange(ex)
        message_ = caught.value.message
        assert f"token count {bad!r} {why} ({field})" in message_, (field, message_)
        assert message_.startswith(f"POST {ex.url}: "), message_


def test_bedrock_header_counts_are_whole_numbers():
    body = {"completion": "hi"}  # a Text Completions body carries no usage: the headers do
    for value in ("-5", "1.5", "NaN", "twelve", ""):
        headers = {
            "x-amzn-bedrock-input-token-count": ["12"],
            "x-amzn-bedrock-output-token-count": [value],
        }
        if value == "":
            (call,) = parse_exchange(exchange(INVOKE, body, headers=headers))
            assert call.usage.input_tokens == 12  # an empty header is no count, not an error
            continue
        with pytest.raises(
            CassetteError,
            match=re.escape(
                f"token count {value!r} is not a whole number of at least 0 "
                "(header x-amzn-bedrock-output-token-count)"
            ),
        ):
            parse_exchange(exchange(INVOKE, body, headers=headers))


@pytest.mark.parametrize("usage", [[1, 2], [], "12 tokens", "", 7, True])
def test_a_usage_that_is_no_object_is_an_error(usage):
    shown = "a list" if isinstance(usage, list) else None
    cases = [
        (exchange(MESSAGES, message(usage)), "usage"),
        (
            exchange(
                MESSAGES,
                sse(
                    {"type": "message_start", "message": {"model": "m", "usage": usage}},
                    {"type": "message_delta", "usage": {"output_tokens": 1}},
                ),
            ),
            "message_start message.usage",
        ),
        (
            exchange(
                MESSAGES,
                sse(
                    {"type": "message_start", "message": {"model": "m", "usage": GOOD}},
                    {"type": "message_delta", "usage": usage},
                ),
            ),
            "message_delta usage",
        ),
        (exchange(MESSAGES, message({**GOOD, "iterations": usage})), "usage.iterations"),
        (exchange(MESSAGES, message({**GOOD, "cache_creation": usage})), "usage.cache_creation"),
        (exchange(CONVERSE, {"output": {}, "usage": usage}), "usage"),
        (exchange(CONVERSE_STREAM, metadata(usage), headers=EVENT_STREAM), "metadata event usage"),
        (exchange(CHAT, {"model": "gpt-4o", "usage": usage}), "usage"),
        (
            exchange(
                INVOKE_STREAM, bedrock_stream(usage, {"output_tokens": 1}), headers=EVENT_STREAM
            ),
            "message_start message.usage",
        ),
    ]
    for ex, where in cases:
        if where == "usage.iterations" and isinstance(usage, list):
            continue  # a list is what iterations are
        with pytest.raises(CassetteError) as caught:
            parse_exchange(ex)
        text = caught.value.message
        assert f"{where} is " in text and ("not an object" in text or "not a list" in text), text
        if shown:
            assert shown in text


def test_an_iteration_that_is_no_object_or_has_no_type_is_an_error():
    for steps, expected in [
        ([5], r"usage\.iterations\[0\] is a number \(5\), not an object"),
        ([{"input_tokens": 1}], r"usage\.iterations\[0\]\.type is NoneType None"),
        ([{"type": 7}], r"usage\.iterations\[0\]\.type is a number \(7\)"),
        (
            [{"type": "advisor_message", "model": ["x"]}],
            r"usage\.iterations\[0\]\.model is a list, not a model name",
        ),
    ]:
        with pytest.raises(CassetteError, match=expected):
            parse_exchange(exchange(MESSAGES, message({**GOOD, "iterations": steps})))


def test_good_counts_still_read():
    assert token_count(None) == 0
    assert token_count(0) == 0
    assert token_count(12) == 12
    assert token_count(12.0) == 12  # a JSON number with a zero fraction is that integer
    assert token_count(10**12) == 10**12


def test_a_count_beyond_any_request_is_an_error():  # 10**400 used to crash the report
    for value in (10**12 + 1, 10**400):
        with pytest.raises(CassetteError, match="beyond any request"):
            token_count(value)


def test_the_cassette_file_and_its_line_are_named(tmp_path):
    body = json.dumps(message({"input_tokens": 3, "output_tokens": -2}))
    path = tmp_path / "refund.yaml"
    path.write_text(
        "interactions:\n"
        "- request: {method: POST, uri: 'https://api.anthropic.com/v1/messages', body: '{}',"
        " headers: {}}\n"
        "  response:\n"
        "    status: {code: 200, message: OK}\n"
        "    headers: {content-type: [application/json]}\n"
        f"    body: {{string: {json.dumps(body)}}}\n"
        "version: 1\n"
    )
    with pytest.raises(CassetteError) as caught:
        load_cassette_file(path)
    assert str(caught.value) == (
        f"{path}:2: interaction 0: POST https://api.anthropic.com/v1/messages: token count -2 "
        "is negative (usage.output_tokens)"
    )
    found = analyze(tmp_path)  # analyze names it and goes on
    (skipped,) = found.skipped
    assert "token count -2 is negative (usage.output_tokens)" in str(skipped)


# -- the count cache ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"model": "m", "input_tokens": -3}, "token count -3 is negative"),
        ({"model": "m", "input_tokens": 2.5}, "token count 2.5 is not a whole number"),
        ({"model": "m", "input_tokens": "7"}, "token count '7' is not a number"),
        ({"model": "m", "input_tokens": True}, "token count True is not a number"),
        ({"model": "m", "input_tokens": float("nan")}, "token count nan is not a number"),
        ({"model": "m"}, "counts.k1.input_tokens is missing"),
        ([7], "counts.k1.input_tokens is missing"),
    ],
)
def test_a_bad_count_in_token_counts_json_is_an_error_naming_file_and_field(tmp_path, entry, why):
    path = tmp_path / "token_counts.json"
    path.write_text(json.dumps({"schema": CACHE_SCHEMA, "version": 1, "counts": {"k1": entry}}))
    cache = CountCache(path)
    with pytest.raises(CassetteError) as caught:
        cache.get("k1")
    assert caught.value.path == str(path)
    assert why in caught.value.message
    assert "counts.k1.input_tokens" in caught.value.message
    assert cache.get("another") is None  # the rest of the file still reads


def test_counts_that_are_no_object_are_an_error(tmp_path):
    path = tmp_path / "token_counts.json"
    path.write_text(json.dumps({"schema": CACHE_SCHEMA, "version": 1, "counts": [1, 2]}))
    with pytest.raises(CassetteError, match="`counts` is not an object") as caught:
        CountCache(path).get("k")
    assert caught.value.path == str(path)


@pytest.mark.parametrize(
    "answer",
    [{"input_tokens": -1}, {"input_tokens": 1.5}, {"input_tokens": "4"}, [1], {"nothing": 1}],
)
def test_a_bad_count_from_the_api_is_an_error(tmp_path, answer):
    cache = CountCache(tmp_path / "token_counts.json")
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(CassetteError, match="count_tokens"):
        count_sync(cache, body, lambda counted: (200, {}, json.dumps(answer).encode()))
    assert len(cache) == 0  # nothing kept


# -- recordings nested past Python's stack ---------------------------------------------------
DEPTH = 100_000


def test_a_response_nested_100k_deep_is_an_error_not_a_crash():
    deep = "[" * DEPTH + "]" * DEPTH
    for ex in [
        exchange(MESSAGES, '{"type": "message", "usage": ' + deep + "}"),
        exchange(MESSAGES, "event: message_start\ndata: " + deep + "\n\n"),
        exchange(CONVERSE, '{"usage": ' + deep + "}"),
        exchange(COUNT, deep),
        exchange(CHAT, deep),
        Exchange("POST", MESSAGES, deep.encode(), 200, {}, json.dumps(message(GOOD)).encode()),
    ]:
        with pytest.raises(CassetteError, match="nested too deeply"):
            parse_exchange(ex)


def test_a_count_cache_nested_100k_deep_is_an_error(tmp_path):
    path = tmp_path / "token_counts.json"
    path.write_text("[" * DEPTH + "]" * DEPTH)
    with pytest.raises(CassetteError, match="nested too deeply") as caught:
        CountCache(path).get("k")
    assert caught.value.path == str(path)


# -- through pytest: one bad recording fails its endpoint, never the run ---------------------
CONFIG = """\
endpoints:
  chat:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 4000
    requests_per_day: 1000
    cases: cases.yml
  other:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 4000
    cases: other.yml
"""
CASES = """\
- id: short
  question: What is a token?
- id: streamed
  question: Stream me a short answer about budgets.
  stream: true
- id: third
  question: Compare three retry strategies.
"""
OTHER = "- id: fine\n  question: Is this endpoint still measured?\n"
TEST = """\
import pytest
from app import reply


@pytest.mark.token_budget("chat")
def test_chat(budget_case):
    reply(budget_case["question"], stream=budget_case.get("stream", False))


@pytest.mark.token_budget("other")
def test_other(budget_case):
    reply(budget_case["question"])
"""


@pytest.fixture
def recorded(pytester, recording_env, monkeypatch):
    """The project recorded against the emulator, then offline as in CI."""
    pytester.makefile(".yml", token_budgets=CONFIG, cases=CASES, other=OTHER)
    pytester.makepyfile(app=PLAIN_APP, test_budget=TEST)
    pytester.syspathinsert()
    result = pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=4)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    return pytester


def edit(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text()
    changed, n = re.subn(pattern, replacement, text, count=1)
    assert n == 1, (pattern, text[:2000])
    path.write_text(changed)


def names(endpoint: dict, case: str, text: str) -> bool:
    """The endpoint's report names the case with this text: a problem, or the case's entry
    among the cases it could not measure."""
    lines = list(endpoint["problems"]) + [
        f"{u['case']}: {u['message']}" for u in endpoint.get("unmeasured_cases", [])
    ]
    return any(case in line and text in line for line in lines)


def replay(project):
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")
    report = json.loads((project.path / ".token-budget" / "report.json").read_text())
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text, text
    return result, report


@pytest.mark.parametrize(
    ("case", "pattern", "replacement", "field"),
    [
        (
            "short",
            r'"output_tokens":\s+\d+',
            '"output_tokens": -5',
            "token count -5 is negative (usage.output_tokens)",
        ),
        (
            "short",
            r'"usage":\s+\{',
            '"usage": [1, 2], "was": {',
            "usage is a list, not an object of token counts",
        ),
        (
            "streamed",
            r'("type":\s+"message_delta",\s+"usage":\s+\{[^}]*"output_tokens":)\s+\d+',
            r"\1 NaN",
            "token count nan is not a number (message_delta usage.output_tokens)",
        ),
        (
            "streamed",
            r'"input_tokens":\s+\d+',
            '"input_tokens": true',
            "token count True is not a number (message_start message.usage.input_tokens)",
        ),
    ],
    ids=["json-negative", "json-usage-list", "sse-nan", "sse-boolean"],
)
def test_a_bad_count_fails_the_endpoint_and_names_case_and_field(
    recorded, case, pattern, replacement, field
):
    cassette = recorded.path / "cassettes" / "chat" / f"{case}.yaml"
    edit(cassette, pattern, replacement)
    result, report = replay(recorded)
    chat, other = report["endpoints"]["chat"], report["endpoints"]["other"]
    assert chat["status"] == "fail"
    assert names(chat, case, field), chat
    assert other["status"] == "pass" and other["calls"] == 1  # the run went on
    for per_case in chat["per_case"].values():  # never a negative cost
        assert per_case["cost_usd"] is None or per_case["cost_usd"] >= 0
    assert report["status"] == "fail" and result.ret == 1


def test_a_response_nested_100k_deep_fails_its_case_only(recorded):
    cassette = recorded.path / "cassettes" / "chat" / "third.yaml"
    text = cassette.read_text()
    deep = "[" * DEPTH + "]" * DEPTH
    start = text.index("string: '{") + len("string: '")
    end = text.index("}'\n", start) + 1
    cassette.write_text(text[:start] + deep + text[end:])
    _, report = replay(recorded)
    chat = report["endpoints"]["chat"]
    assert chat["status"] == "fail"
    assert names(chat, "third", "nested too deeply"), chat
    assert report["endpoints"]["other"]["status"] == "pass"


@pytest.mark.parametrize("code", ["null", "'200'", "OK", "true", "[200]"])
def test_a_status_code_that_is_no_number_fails_its_case_only(recorded, code):
    cassette = recorded.path / "cassettes" / "chat" / "short.yaml"
    edit(cassette, r"code: 200", f"code: {code}")
    result, report = replay(recorded)
    # refused as the cassette loads, naming it: the case errors, the run goes on and fails
    result.assert_outcomes(passed=3, errors=1)
    assert result.ret == 1
    malformed = f"*{cassette}:*: interaction 0: the recorded response is malformed: status code"
    result.stdout.fnmatch_lines([f"{malformed} * is not an HTTP status code*"])
    assert report["endpoints"]["other"]["status"] == "pass"


def test_a_bad_committed_count_fails_its_case_only(recorded):
    """Replay measures a changed prompt by the counts committed in token_counts.json: a count
    there that is no count fails that case, naming the file and the field, never a 0."""
    from pytest_tokenbudget.capture.counting import count_key

    question = "What is a token, in one line?"
    cases = recorded.path / "cases.yml"
    cases.write_text(cases.read_text().replace("What is a token?", question))
    sent = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": question}]}
    key = count_key(sent)
    counts = recorded.path / "cassettes" / "token_counts.json"
    counts.write_text(
        json.dumps(
            {
                "schema": CACHE_SCHEMA,
                "version": 1,
                "counts": {key: {"model": "claude-sonnet-4-6", "input_tokens": -40}},
            }
        )
    )
    _, report = replay(recorded)
    chat = report["endpoints"]["chat"]
    assert chat["status"] == "fail"
    field = f"counts.{key}.input_tokens"
    assert names(chat, "short", f"{counts}: corrupt count cache: token count -40 is negative"), chat
    assert names(chat, "short", field), chat
    assert report["endpoints"]["other"]["status"] == "pass"


def test_a_messages_answer_without_usage_is_an_error():
    # a 0-token, $0 sample would pull every percentile down and pass any budget
    for body in (message(None), message({}), {"type": "message", "model": "m", "content": []}):
        with pytest.raises(CassetteError, match="carries no usage"):
            parse_exchange(exchange(MESSAGES, body))
