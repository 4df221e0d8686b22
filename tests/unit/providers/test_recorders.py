"""Every recorder's cassette format, read into exchanges: real files first, then variants.

The real files are in tests/data/cassettes/<format>/ (provenance in the README there). The
expected numbers below were read out of each file by hand; each test also reads the raw
field from the file itself (yaml.safe_load, no code under test) and checks it agrees.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import struct
import zlib
from urllib.parse import unquote

import pytest
import yaml
from paths import CASSETTES

from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.providers.exchanges import (
    exchanges_from_cassette,
    load_cassette_file,
    parse_exchange,
)
from pytest_tokenbudget.providers.recorders import NotACassetteError, read_recording

THINKING_STREAM = "test_anthropic_model_thinking_part_redacted_stream"
FORMAT_DIRS = ("vcr-ruby", "vcr-r", "pydantic-ai-parsed-body", "pydantic-ai-cassetter")


def raw(name: str) -> dict:
    return yaml.safe_load((CASSETTES / name).read_text(encoding="utf-8"))


def raw_sse_usage(text: str) -> dict:
    """message_start's usage with message_delta's fields over it, read with a regex."""
    usage: dict = {}
    for payload in re.findall(r"^data: (\{.*\})\s*$", text, flags=re.MULTILINE):
        event = json.loads(payload)
        if event["type"] == "message_start":
            usage.update(event["message"]["usage"])
        elif event["type"] == "message_delta":
            usage.update(event["usage"])
    return usage


def whole(u: dict) -> tuple[int, int]:
    """(whole prompt, output) of an Anthropic usage object."""
    prompt = u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
    return prompt, u["output_tokens"]


# name -> (format, [(kind, model, whole prompt, output)] per interaction, raw usage reader)
REAL = {
    "vcr-ruby/anthropic-rb_messages.yml": (
        "ruby-vcr",
        [[("messages", "claude-3-haiku-20240307", 13, 5)]],
        lambda d: [
            whole(json.loads(d["http_interactions"][0]["response"]["body"]["string"])["usage"])
        ],
    ),
    "vcr-ruby/anthropic-rb_streaming.yml": (
        "ruby-vcr",
        [[("messages", "claude-3-haiku-20240307", 13, 50)]],
        lambda d: [whole(raw_sse_usage(d["http_interactions"][0]["response"]["body"]["string"]))],
    ),
    "vcr-ruby/anthropic-rb_batch_create_no_usage.yml": ("ruby-vcr", [[]], lambda d: []),
    "vcr-ruby/anthropic-rb_batch_results_404.yml": ("ruby-vcr", [[], []], lambda d: []),
    "vcr-ruby/ruby-openai_stream_without_usage.yml": (
        "ruby-vcr",
        [[("chat", "gpt-3.5-turbo-0613", 0, 0)]],
        lambda d: (
            [(0, 0)]
            if "usage" not in d["http_interactions"][0]["response"]["body"]["string"]
            else []
        ),
    ),
    "vcr-r/ellmer_anthropic-basic_gzip_header.yml": (
        "r-vcr",
        [[("messages", "claude-sonnet-5", 30, 3)]],
        lambda d: [
            whole(json.loads(d["http_interactions"][0]["response"]["body"]["string"])["usage"])
        ],
    ),
    "vcr-r/ellmer_claude-batch_gzip_header.yml": (
        "r-vcr",
        [[("messages", "claude-3-5-sonnet-20241022", 26, 5)]],
        lambda d: [
            whole(json.loads(d["http_interactions"][0]["response"]["body"]["string"])["usage"])
        ],
    ),
    "pydantic-ai-parsed-body/test_anthropic/test_anthropic_model_instructions.yaml": (
        "pydantic-ai",
        [[("messages", "claude-3-opus-20240229", 20, 10)]],
        lambda d: [whole(d["interactions"][0]["response"]["parsed_body"]["usage"])],
    ),
    "pydantic-ai-parsed-body/test_anthropic/test_anthropic_count_tokens_error.yaml": (
        "pydantic-ai",
        [[]],
        lambda d: [],
    ),
    "pydantic-ai-cassetter/test_anthropic/test_anthropic_model_instructions.yaml": (
        "cassetter",
        [[("messages", "claude-3-opus-20240229", 20, 10)]],
        lambda d: [whole(d["interactions"][0]["response"]["body"]["content"]["usage"])],
    ),
    f"pydantic-ai-cassetter/test_anthropic/{THINKING_STREAM}.yaml": (
        "cassetter",
        [[("messages", "claude-sonnet-4-5-20250929", 92, 189)]],
        lambda d: [whole(raw_sse_usage(d["interactions"][0]["response"]["body"]["content"]))],
    ),
    "pydantic-ai-cassetter/test_anthropic/test_anthropic_model_usage_limit_exceeded.yaml": (
        "cassetter",
        [[("count_tokens", "claude-sonnet-4-5", 19, 0)]],
        lambda d: [(d["interactions"][0]["response"]["body"]["content"]["input_tokens"], 0)],
    ),
}


def test_every_vendored_recorder_file_is_covered():
    found = {
        p.relative_to(CASSETTES).as_posix()
        for folder in FORMAT_DIRS
        for p in (CASSETTES / folder).rglob("*")
        if p.is_file()
    }
    assert found == set(REAL)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_file_of_another_recorder(name):
    fmt, expected, read_raw = REAL[name]
    recording = read_recording(CASSETTES / name)
    assert recording.format == fmt
    exchanges = load_cassette_file(CASSETTES / name)  # the usage parser's entry point
    assert exchanges == list(recording.exchanges)
    found = [
        [(c.kind, c.model, c.usage.prompt_tokens, c.usage.output_tokens) for c in parse_exchange(e)]
        for e in exchanges
    ]
    assert found == expected
    calls = [t[2:] for per in expected for t in per]
    assert read_raw(raw(name)) == calls  # the hand-read numbers are the file's


@pytest.mark.parametrize("name", sorted(REAL))
def test_each_interaction_line_is_where_it_starts(name):
    recording = read_recording(CASSETTES / name)
    text = (CASSETTES / name).read_text(encoding="utf-8").splitlines()
    assert len(recording.lines) == len(recording.exchanges) > 0
    for line in recording.lines:
        assert text[line - 1].startswith("- request:")


def test_ruby_vcr_lower_case_methods_and_list_headers():
    doc = raw("vcr-ruby/anthropic-rb_batch_results_404.yml")
    assert doc["recorded_with"] == "VCR 6.1.0"
    assert [i["request"]["method"] for i in doc["http_interactions"]] == ["get", "get"]
    first, second = load_cassette_file(CASSETTES / "vcr-ruby/anthropic-rb_batch_results_404.yml")
    assert (first.method, first.status, second.status) == ("GET", 404, 404)
    assert first.url.endswith("/v1/messages/batches/msgbatch_01AHxNhUeZwskhx38tGz1QVj/results")
    assert first.headers["content-type"] == ["application/json"]  # `Content-Type:` in the file
    (create,) = load_cassette_file(CASSETTES / "vcr-ruby/anthropic-rb_batch_create_no_usage.yml")
    assert create.method == "POST" and json.loads(create.request_body)["requests"][0]["custom_id"]


def test_r_vcr_scalar_headers_and_gzip_header_over_a_decoded_body():
    name = "vcr-r/ellmer_anthropic-basic_gzip_header.yml"
    response = raw(name)["http_interactions"][0]["response"]
    assert response["status"] == 200 and response["headers"]["content-encoding"] == "gzip"
    assert raw(name)["recorded_with"].startswith("VCR-vcr/2.")
    (ex,) = load_cassette_file(CASSETTES / name)
    assert ex.headers["content-encoding"] == ["gzip"]
    assert ex.body.startswith(b"{")  # stored decoded: the header is left over
    assert ex.method == "POST" and ex.request_body.startswith(b'{"model":"claude-sonnet-5"')


def test_pydantic_ai_parsed_body_on_request_and_response():
    name = "pydantic-ai-parsed-body/test_anthropic/test_anthropic_model_instructions.yaml"
    interaction = raw(name)["interactions"][0]
    assert "body" not in interaction["request"] and "body" not in interaction["response"]
    (ex,) = load_cassette_file(CASSETTES / name)
    assert json.loads(ex.request_body) == interaction["request"]["parsed_body"]
    assert json.loads(ex.body) == interaction["response"]["parsed_body"]


def test_cassetter_typed_bodies_and_integer_status():
    name = f"pydantic-ai-cassetter/test_anthropic/{THINKING_STREAM}.yaml"
    interaction = raw(name)["interactions"][0]
    assert interaction["request"]["body"]["type"] == "json"
    assert interaction["response"]["body"]["type"] == "text"
    assert interaction["response"]["status"] == 200
    (ex,) = load_cassette_file(CASSETTES / name)
    assert ex.status == 200 and ex.body.startswith(b"event: message_start")
    assert json.loads(ex.request_body)["stream"] is True


# -- Amazon Bedrock: Converse, ConverseStream, other models' InvokeModel streams --------------
BEDROCK = "bedrock-converse"
SONNET_4 = "us.anthropic.claude-sonnet-4-20250514-v1:0"
SONNET_4_5 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CACHED_DOCUMENTS = "test_bedrock_cache_messages_with_document_as_last_content"
PROFILE_ARN = (
    "arn:aws:bedrock:us-east-1:012345678901:inference-profile/"
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
)


def frames(raw: bytes) -> list[tuple[bytes, bytes]]:
    """(headers, payload) of each AWS event-stream frame, read with struct alone: total
    length and headers length, then the 4-byte prelude CRC, headers, payload, CRC."""
    found, at = [], 0
    while at < len(raw):
        total, length = struct.unpack_from(">II", raw, at)
        found.append((raw[at + 12 : at + 12 + length], raw[at + 12 + length : at + total - 4]))
        at += total
    return found


def converse(u: dict) -> tuple[int, int, int, int]:
    """(whole prompt, output, cache writes, cache reads) of a Converse usage object.

    inputTokens is the uncached input: totalTokens is the sum of all four, as checked here.
    """
    read, write = u.get("cacheReadInputTokens", 0), u.get("cacheWriteInputTokens", 0)
    assert u["totalTokens"] == u["inputTokens"] + u["outputTokens"] + read + write
    return u["inputTokens"] + read + write, u["outputTokens"], write, read


def metadata_usage(raw: bytes) -> dict:
    """The usage of a ConverseStream: its one `metadata` event (an `:event-type` header
    whose value is a string, type 7, 8 bytes long: `metadata`)."""
    (payload,) = [payload for headers, payload in frames(raw) if b"\x07\x00\x08metadata" in headers]
    return json.loads(payload)["usage"]


def invocation_metrics(raw: bytes) -> tuple[int, int, int, int]:
    """An InvokeModel stream's `amazon-bedrock-invocationMetrics` (in its last chunk)."""
    chunks = [json.loads(base64.b64decode(json.loads(p)["bytes"])) for _, p in frames(raw)]
    metrics = [
        c["amazon-bedrock-invocationMetrics"]
        for c in chunks
        if "amazon-bedrock-invocationMetrics" in c
    ]
    return (metrics[0]["inputTokenCount"], metrics[0]["outputTokenCount"], 0, 0) if metrics else ()


def _response(d: dict, index: int = 0) -> dict:
    return d["interactions"][index]["response"]


# name -> (format, [(provider, kind, model, whole prompt, output, cache write, cache read,
# streamed)] per interaction, raw reader: the same numbers straight from the file)
BEDROCK_FILES = {
    f"pydantic-ai/test_bedrock/{CACHED_DOCUMENTS}.yaml": (
        "pydantic-ai",
        [
            [("bedrock", "messages", SONNET_4_5, 1715, 227, 1712, 0, False)],
            [("bedrock", "messages", SONNET_4_5, 1951, 121, 236, 1712, False)],
        ],
        lambda d: [converse(_response(d, i)["parsed_body"]["usage"]) for i in (0, 1)],
    ),
    "pydantic-ai/test_bedrock/test_bedrock_model_thinking_part_stream.yaml": (
        "vcrpy",  # a binary body, so no parsed_body to tell pydantic-ai's serialiser by
        [[("bedrock", "messages", SONNET_4, 36, 73, 0, 0, True)]],
        lambda d: [converse(metadata_usage(_response(d)["body"]["string"]))],
    ),
    "pydantic-ai/test_bedrock/test_bedrock_model_usage_limit_not_exceeded.yaml": (
        "pydantic-ai",
        [
            [
                (
                    "bedrock",
                    "count_tokens",
                    "anthropic.claude-sonnet-4-20250514-v1:0",
                    19,
                    0,
                    0,
                    0,
                    False,
                )
            ],
            [("bedrock", "messages", SONNET_4, 19, 108, 0, 0, False)],
        ],
        lambda d: [
            (_response(d, 0)["parsed_body"]["inputTokens"], 0, 0, 0),
            converse(_response(d, 1)["parsed_body"]["usage"]),
        ],
    ),
    "pydantic-ai/test_bedrock/test_bedrock_model_usage_limit_exceeded.yaml": (
        "pydantic-ai",
        [
            [
                (
                    "bedrock",
                    "count_tokens",
                    "anthropic.claude-sonnet-4-20250514-v1:0",
                    23,
                    0,
                    0,
                    0,
                    False,
                )
            ]
        ],
        lambda d: [(_response(d)["parsed_body"]["inputTokens"], 0, 0, 0)],
    ),
    "pydantic-ai/test_bedrock/test_bedrock_streaming_error.yaml": (
        "pydantic-ai",
        [[]],
        lambda d: [] if _response(d)["status"]["code"] == 400 else None,
    ),
    "pydantic-ai-cassetter/test_bedrock/test_bedrock_model_thinking_part_stream.yaml": (
        "cassetter",
        [[("bedrock", "messages", SONNET_4, 36, 73, 0, 0, True)]],
        lambda d: [converse(metadata_usage(bytes.fromhex(_response(d)["body"]["content"])))],
    ),
    "openllmetry/test_anthropic/test_anthropic_cross_region.yaml": (
        "vcrpy",
        [[("bedrock", "messages", PROFILE_ARN, 20, 72, 0, 0, False)]],
        lambda d: [converse(json.loads(_response(d)["body"]["string"])["usage"])],
    ),
    "openllmetry/test_titan/test_titan_invoke_stream.yaml": (
        "vcrpy",  # InvokeModel: read by the Messages parser, as every InvokeModel call is
        [[("anthropic", "messages", "amazon.titan-text-express-v1", 28, 188, 0, 0, True)]],
        lambda d: [invocation_metrics(_response(d)["body"]["string"])],
    ),
}


def test_every_vendored_bedrock_file_is_covered():
    found = {
        p.relative_to(CASSETTES / BEDROCK).as_posix() for p in (CASSETTES / BEDROCK).rglob("*.yaml")
    }
    guardrail = "openllmetry/test_guardrails/test_guardrail_invoke_stream.yaml"  # unreadable
    assert found == set(BEDROCK_FILES) | {guardrail}


@pytest.mark.parametrize("name", sorted(BEDROCK_FILES))
def test_real_bedrock_file(name):
    fmt, expected, read_raw = BEDROCK_FILES[name]
    path = CASSETTES / BEDROCK / name
    assert read_recording(path).format == fmt
    exchanges = load_cassette_file(path)  # every response readable: no CassetteError
    found = [
        [
            (
                c.provider,
                c.kind,
                c.model,
                c.usage.prompt_tokens,
                c.usage.output_tokens,
                c.usage.cache_write_tokens,
                c.usage.cache_read_tokens,
                c.streamed,
            )
            for c in parse_exchange(e)
        ]
        for e in exchanges
    ]
    assert found == expected
    assert read_raw(raw(f"{BEDROCK}/{name}")) == [t[3:7] for per in expected for t in per]
    for exchange, calls in zip(exchanges, expected, strict=True):
        for call in calls:  # the model is the id in the URL, unquoted
            assert call[2] == unquote(exchange.url.split("/model/")[1].rsplit("/", 1)[0])


@pytest.mark.parametrize("name", sorted(BEDROCK_FILES))
def test_each_bedrock_interaction_line_is_where_it_starts(name):
    recording = read_recording(CASSETTES / BEDROCK / name)
    text = (CASSETTES / BEDROCK / name).read_text(encoding="utf-8").splitlines()
    assert len(recording.lines) == len(recording.exchanges) > 0
    for line in recording.lines:  # openllmetry indents its sequences: `  - request:`
        assert text[line - 1].lstrip().startswith("- request:")


def test_converse_cache_writes_keep_their_ttl():
    name = f"{BEDROCK}/pydantic-ai/test_bedrock/{CACHED_DOCUMENTS}.yaml"
    details = [_response(raw(name), i)["parsed_body"]["usage"]["cacheDetails"] for i in (0, 1)]
    assert details == [[{"inputTokens": 1712, "ttl": "5m"}], [{"inputTokens": 236, "ttl": "5m"}]]
    first, second = [parse_exchange(e)[0].usage for e in load_cassette_file(CASSETTES / name)]
    assert (first.cache_write_5m_tokens, first.cache_write_1h_tokens) == (1712, 0)
    assert (second.input_tokens, second.cache_read_tokens, second.cache_write_5m_tokens) == (
        3,
        1712,
        236,
    )


def test_one_recording_in_two_serialisers_reads_alike():
    """pydantic-ai's vcrpy file (`!!binary`, version last) and the same recording in
    cassetter's (`version: 1` first, hex body) are the same bytes and the same call."""
    stream = "test_bedrock/test_bedrock_model_thinking_part_stream.yaml"
    vcrpy_file = CASSETTES / BEDROCK / "pydantic-ai" / stream
    cassetter_file = CASSETTES / BEDROCK / "pydantic-ai-cassetter" / stream
    assert cassetter_file.read_text().startswith("version: 1\ninteractions:\n")
    assert vcrpy_file.read_text().endswith("\nversion: 1\n")
    (a,), (b,) = load_cassette_file(vcrpy_file), load_cassette_file(cassetter_file)
    assert a.body == b.body and parse_exchange(a) == parse_exchange(b)


CONVERSE_TEST = """\
import boto3
import pytest

ARN = {arn!r}


@pytest.mark.vcr
@pytest.mark.token_budget("reply")
def test_reply():
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    message = {{"role": "user", "content": [{{"text": "a joke"}}]}}
    out = client.converse(modelId=ARN, messages=[message])
    assert out["usage"]["outputTokens"] > 0
"""


@pytest.mark.slow
def test_a_converse_call_replayed_by_pytest_recording_is_measured(pytester):
    """The plugin path: boto3's converse, answered by pytest-recording from openllmetry's
    cassette, is measured and priced as the model its inference profile runs."""
    pytest.importorskip("pytest_recording")
    pytest.importorskip("boto3")
    name = "openllmetry/test_anthropic/test_anthropic_cross_region.yaml"
    cassettes = pytester.mkdir("tests") / "cassettes" / "test_converse"
    cassettes.mkdir(parents=True)
    (cassettes / "test_reply.yaml").write_bytes((CASSETTES / BEDROCK / name).read_bytes())
    (pytester.path / "tests" / "test_converse.py").write_text(CONVERSE_TEST.format(arn=PROFILE_ARN))
    pytester.makefile(".yml", token_budgets="endpoints:\n  reply:\n    max_input_tokens_p95: 100\n")
    result = pytester.runpytest_subprocess("--token-budget", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / ".token-budget" / "report.json").read_text())
    metrics = report["endpoints"]["reply"]["metrics"]
    usage = json.loads(_response(raw(f"{BEDROCK}/{name}"))["body"]["string"])["usage"]
    assert (metrics["input_tokens_max"], metrics["output_tokens_max"]) == (
        usage["inputTokens"],
        usage["outputTokens"],
    )
    # Claude 3.7 Sonnet on Bedrock ($3 / $15 per MTok): no regional premium (older model)
    rates = {"input": 3, "output": 15}
    cost = (rates["input"] * usage["inputTokens"] + rates["output"] * usage["outputTokens"]) / 1e6
    assert metrics["cost_per_request_usd"] == pytest.approx(cost, abs=1e-9)


def _converse_stream(*events: tuple[str, str, bytes]) -> bytes:
    """Frames with string headers (:message-type, :event-type or :exception-type)."""
    out = b""
    for message_type, name, payload in events:
        key = ":exception-type" if message_type == "exception" else ":event-type"
        raw = b""
        for header, value in ((":message-type", message_type), (key, name)):
            raw += bytes([len(header)]) + header.encode() + b"\x07"
            raw += struct.pack(">H", len(value)) + value.encode()
        prelude = struct.pack(">II", 16 + len(raw) + len(payload), len(raw))
        frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw + payload
        out += frame + struct.pack(">I", zlib.crc32(frame))
    return out


CONVERSE_STREAM = (
    f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{SONNET_4_5}/converse-stream"
)


def _exchange_of(url: str, body: bytes, content_type: str = "application/vnd.amazon.eventstream"):
    from pytest_tokenbudget.providers.recorders import Exchange

    return Exchange("POST", url, b"{}", 200, {"content-type": [content_type]}, body)


def test_converse_stream_variants():
    written = [{"inputTokens": 2000, "ttl": "1h"}]
    usage = {
        "inputTokens": 7,
        "outputTokens": 3,
        "totalTokens": 2010,
        "cacheWriteInputTokens": 2000,
        "cacheDetails": written,
    }
    whole = _converse_stream(
        ("event", "messageStart", b'{"role":"assistant"}'),
        ("event", "metadata", json.dumps({"usage": usage}).encode()),
    )
    (call,) = parse_exchange(_exchange_of(CONVERSE_STREAM, whole, "application/octet-stream"))
    assert (call.usage.cache_write_1h_tokens, call.usage.prompt_tokens) == (2000, 2007)
    cut = _converse_stream(("event", "messageStart", b"{}"))
    (call,) = parse_exchange(_exchange_of(CONVERSE_STREAM, cut))
    assert (
        call.usage.prompt_tokens == 0
        and call.note == "stream carried no usage (it has no metadata event)"
    )
    throttled = cut + _converse_stream(("exception", "throttlingException", b'{"message":"slow"}'))
    assert parse_exchange(_exchange_of(CONVERSE_STREAM, throttled)) == []
    bad = _converse_stream(("event", "metadata", b'{"usage": {"inputTokens": "many"}}'))
    with pytest.raises(CassetteError, match="converse-stream: token count 'many' is not a number"):
        parse_exchange(_exchange_of(CONVERSE_STREAM, bad))
    html = _exchange_of(CONVERSE_STREAM.replace("-stream", ""), b"<html>", "text/html")
    with pytest.raises(CassetteError, match="converse: response is not JSON"):
        parse_exchange(html)


# -- variants no real file here shows -------------------------------------------------------
ANTHROPIC = "https://api.anthropic.com/v1/messages"
MESSAGE = {"model": "claude-haiku-4-5", "usage": {"input_tokens": 7, "output_tokens": 2}}
MESSAGE_BYTES = json.dumps(MESSAGE).encode()


def vcr_cassette(response: dict, *, recorded_with: str = "VCR 6.2.0", **request) -> dict:
    """A Ruby/R VCR cassette of one Messages call."""
    request = {"method": "post", "uri": ANTHROPIC, **request}
    return {
        "http_interactions": [{"request": request, "response": response}],
        "recorded_with": recorded_with,
    }


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _only_call(path):
    calls = [c for e in load_cassette_file(path) for c in parse_exchange(e)]
    assert len(calls) == 1, calls
    return calls[0]


def test_r_vcr_1_status_code_and_empty_encoding(tmp_path):
    # R vcr 1.x wrote `status: {status_code: '200', ...}` and `body: {encoding: '', ...}`.
    status = {"status_code": "200", "message": "OK", "explanation": "Request fulfilled"}
    body = {"encoding": "UTF-8", "file": False, "string": MESSAGE_BYTES.decode()}
    response = {"status": status, "headers": {"content-type": "application/json"}, "body": body}
    document = vcr_cassette(
        response,
        recorded_with="vcr/1.2.2, webmockr/0.9.0",
        body={"encoding": "", "string": '{"model": "claude-haiku-4-5"}'},
    )
    path = _write(tmp_path, "r1.yml", yaml.safe_dump(document))
    assert read_recording(path).format == "r-vcr"
    call = _only_call(path)
    assert (call.model, call.usage.input_tokens, call.usage.output_tokens) == (
        "claude-haiku-4-5",
        7,
        2,
    )


def test_binary_bodies_base64_raw_gzip_and_hex(tmp_path):
    packed = base64.b64encode(gzip.compress(MESSAGE_BYTES)).decode()
    bodies = {
        "Ruby VCR base64_string": {"encoding": "ASCII-8BIT", "base64_string": packed},
        "R vcr 2.x raw_gzip": {"raw_gzip": packed},
    }
    for label, body in bodies.items():
        headers = {"Content-Encoding": ["gzip"]}
        response = {"status": {"code": 200}, "headers": headers, "body": body}
        path = _write(tmp_path, "b.yml", yaml.safe_dump(vcr_cassette(response)))
        assert _only_call(path).usage.input_tokens == 7, label
    interaction = {
        "request": {"method": "POST", "uri": ANTHROPIC, "body": {"type": "none"}},
        "response": {"status": 200, "body": {"type": "binary", "content": MESSAGE_BYTES.hex()}},
    }
    hexed = _write(
        tmp_path, "c.yaml", yaml.safe_dump({"version": 1, "interactions": [interaction]})
    )
    recording = read_recording(hexed)
    assert recording.format == "cassetter" and recording.exchanges[0].request_body == b""
    assert _only_call(hexed).usage.output_tokens == 2


def test_json_cassettes_vcrpy_and_betamax(tmp_path):
    response = {
        "status": {"code": 200, "message": "OK"},
        "body": {"string": MESSAGE_BYTES.decode()},
    }
    interaction = {
        "request": {"method": "POST", "uri": ANTHROPIC, "body": "{}"},
        "response": response,
    }
    vcrpy = _write(tmp_path, "v.json", json.dumps({"interactions": [interaction], "version": 1}))
    betamax_doc = {"http_interactions": [interaction], "recorded_with": "betamax/0.8.1"}
    betamax = _write(tmp_path, "b.json", json.dumps(betamax_doc))
    assert (read_recording(vcrpy).format, read_recording(betamax).format) == ("vcrpy", "betamax")
    assert _only_call(vcrpy).usage == _only_call(betamax).usage
    broken = _write(tmp_path, "x.json", '{"interactions": [\n  {"request": }\n]}')
    with pytest.raises(CassetteError, match="corrupt cassette \\(JSON") as info:
        read_recording(broken)
    assert (info.value.path, info.value.line) == (str(broken), 2)


def anthropic_line(custom_id: str, result: dict) -> dict:
    return {"custom_id": custom_id, "result": result}


def openai_line(custom_id: str, status: int, body: dict) -> dict:
    return {
        "custom_id": custom_id,
        "response": {"status_code": status, "body": body},
        "error": None,
    }


def test_batch_results_jsonl_one_exchange_per_request(tmp_path):
    usage = {"input_tokens": 100, "cache_read_input_tokens": 50, "output_tokens": 9}
    message = {"model": "claude-haiku-4-5", "usage": usage}
    chat = {"object": "chat.completion", "model": "gpt-4o-mini"}
    lines = [
        anthropic_line("q1", {"type": "succeeded", "message": message}),
        anthropic_line("q2", {"type": "errored", "error": {"type": "invalid_request_error"}}),
        openai_line("o1", 200, {**chat, "usage": {"prompt_tokens": 11, "completion_tokens": 4}}),
        openai_line("o2", 429, {"error": {"message": "slow down"}}),
    ]
    path = _write(tmp_path, "msgbatch_01.jsonl", "\n".join(map(json.dumps, lines)) + "\n\n")
    recording = read_recording(path)
    assert recording.format == "batch-results"
    assert recording.request_ids == ("q1", "q2", "o1", "o2") and recording.lines == (1, 2, 3, 4)
    (q1,), (), (o1,), () = [parse_exchange(e) for e in load_cassette_file(path)]
    assert (q1.kind, q1.batch, q1.usage.prompt_tokens, q1.usage.cache_read_tokens) == (
        "batch",
        True,
        150,
        50,
    )
    assert (o1.kind, o1.model, o1.usage.prompt_tokens, o1.usage.output_tokens) == (
        "chat",
        "gpt-4o-mini",
        11,
        4,
    )


def test_batch_results_errors_name_the_line(tmp_path):
    good = json.dumps(anthropic_line("a", {"type": "canceled"}))
    path = _write(tmp_path, "r.jsonl", good + "\n{not json\n")
    with pytest.raises(CassetteError, match="not JSON") as info:
        read_recording(path)
    assert (info.value.path, info.value.line) == (str(path), 2)
    cases = _write(tmp_path, "cases.jsonl", '{"id": "q1", "input": "hi"}\n')
    with pytest.raises(NotACassetteError, match="not a batch result") as info:
        read_recording(cases)  # this plugin's own JSONL cases file
    assert info.value.line == 1


BAD_STATUS = {"request": {"uri": "u", "method": "get"}, "response": {"status": {"code": "OK"}}}
BAD_BODY = {"request": {"uri": "u"}, "response": {"status": 200, "body": {"raw_gzip": "%%%"}}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"http_interactions": []}, "no `recorded_with`: the file looks truncated"),
        ({"budgets": 1}, "not a vcrpy cassette"),
        (
            {"http_interactions": [{"request": {"uri": "u"}}], "recorded_with": "VCR 6.0.0"},
            "interaction 0 has no 'response'",
        ),
        (
            {"http_interactions": [BAD_STATUS], "recorded_with": "VCR 6.0.0"},
            "interaction 0 is malformed: status code 'OK' is not a number",
        ),
        (
            {"version": 1, "interactions": [BAD_BODY]},
            "interaction 0 is malformed: body is not valid base64",
        ),
    ],
)
def test_malformed_documents(document, message):
    with pytest.raises(CassetteError, match=re.escape(message)) as info:
        exchanges_from_cassette(document, path="c.yml")
    assert info.value.path == "c.yml"


def test_a_malformed_interaction_names_its_line(tmp_path):
    text = (CASSETTES / "vcr-ruby/anthropic-rb_batch_results_404.yml").read_text(encoding="utf-8")
    second = text.index("- request:", text.index("- request:") + 1)
    line = text[:second].count("\n") + 1
    broken = text[:second] + text[second:].replace("code: 404", "code: gone", 1)
    path = _write(tmp_path, "broken.yml", broken)
    with pytest.raises(CassetteError, match="interaction 1 is malformed") as info:
        load_cassette_file(path)
    assert (info.value.path, info.value.line) == (str(path), line)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_an_unreadable_response_names_its_interaction_line(tmp_path):
    text = (CASSETTES / "vcr-ruby/anthropic-rb_messages.yml").read_text(encoding="utf-8")
    html = text.replace('string: \'{"id":"msg_', 'string: \'<html>{"id":"msg_')
    path = _write(tmp_path, "html.yml", html)
    with pytest.raises(CassetteError, match="interaction 0: POST .*: response is not JSON") as info:
        load_cassette_file(path)
    assert info.value.line == text.splitlines().index("- request:") + 1 == 3  # after `---`


def test_version_may_come_anywhere_and_only_a_missing_last_one_is_a_cut(tmp_path):
    """vcrpy writes `version` last, so a file cut short loses it; cassetter writes it first.
    A file with no `version` but more after its interactions was not cut: vcrpy, which
    never reads `version`, replays it, and so it is read here."""
    source = CASSETTES / "anthropic/openinference_parallel_tool_use_plain.yaml"
    text = source.read_text(encoding="utf-8")
    assert text.endswith("version: 1\n")
    body = text.removesuffix("version: 1\n")
    first = _write(tmp_path, "first.yaml", "version: 1\n" + body)
    later = _write(tmp_path, "later.yaml", body + "recorded_with: a recorder of its own\n")
    cut = _write(tmp_path, "cut.yaml", body)
    expected = [parse_exchange(e) for e in load_cassette_file(source)]
    for path in (first, later):
        assert [parse_exchange(e) for e in load_cassette_file(path)] == expected, path.name
    with pytest.raises(CassetteError, match="no `version` after its interactions.*truncated"):
        read_recording(cut)
    two = _write(tmp_path, "two.yaml", "version: 2\n" + body)
    with pytest.raises(CassetteError, match="unsupported cassette version 2"):
        read_recording(two)


def test_old_vcrpy_python_string_tags_are_strings(tmp_path):
    """Cassettes recorded under Python 2 tag strings `!!python/unicode`: vcrpy and replay
    read them as strings, and so does this reader (not `corrupt cassette`)."""
    text = (CASSETTES / "anthropic/openinference_parallel_tool_use_plain.yaml").read_text()
    tagged = text.replace("    method: POST", "    method: !!python/unicode 'POST'", 1)
    assert tagged != text
    path = _write(tmp_path, "py2.yaml", tagged)
    (exchange,) = load_cassette_file(path)
    assert exchange.method == "POST" and parse_exchange(exchange)[0].usage.output_tokens == 112


def test_a_ruby_cassette_cut_short_is_truncated_not_empty(tmp_path):
    lines = (CASSETTES / "vcr-ruby/anthropic-rb_messages.yml").read_text().splitlines(True)
    path = _write(tmp_path, "cut.yml", "".join(lines[:-1]))  # loses `recorded_with`
    with pytest.raises(CassetteError, match="looks truncated"):
        read_recording(path)
