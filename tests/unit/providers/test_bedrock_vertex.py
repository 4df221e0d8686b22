"""Claude on Amazon Bedrock and Vertex AI, through the SDK's own clients.

`anthropic.AnthropicBedrock` (SigV4-signed, event-stream streams decoded by botocore)
and `anthropic.AnthropicVertex` (Bearer token, SSE streams) talk to the loopback
emulator; the plugin must measure, price and scrub their calls as it does the
first-party API's, and replay them offline.
"""

from __future__ import annotations

import base64
import json
import math
from fractions import Fraction

# pytester's in-process runs drop modules first imported inside them: load these here.
import boto3  # noqa: F401
import botocore.eventstream
import pytest
from emulator import Emulator, event_stream_frame

from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.pricing.prices import PriceBook, source_name
from pytest_tokenbudget.providers import bedrock
from pytest_tokenbudget.providers.exchanges import parse_exchange
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.scrub import scrub_bytes, scrub_text

ACCESS_KEY_ID = "AKIA" + "EMULATORKEY1" + "2345"  # key-id shaped: scrubbing is really tested
SECRET_ACCESS_KEY = "emulatorSecretAccessKey/" + "s3cr3t" * 3
SESSION_TOKEN = "IQoJb3JpZ2luX2VjE" + "SessionTokenMaterial" * 4
VERTEX_TOKEN = "ya29.a0Aemulator" + "GoogleOAuthToken" * 3
ARN = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
)
CREDENTIALS = (
    "AWS4-HMAC-SHA256",
    "Signature=",
    ACCESS_KEY_ID,
    SESSION_TOKEN,
    "SessionTokenMaterial",
    VERTEX_TOKEN,
    "GoogleOAuthToken",
    "Bearer",
)
LONG_SYSTEM = "You are a careful assistant for budgets. " * 160  # above the cache minimum

CONFIG = """\
pricing:
  global.anthropic.claude-opus-4-7: {input: 4.5, output: 22.5}
endpoints:
  bedrock_chat:
    target_model: claude-sonnet-4-5
    escalation_models: [claude-opus-4-7]
    max_input_tokens_p95: 4000
    max_output_tokens_p95: 600
    requests_per_day: 1000
    cases: bedrock_cases.yml
  vertex_chat:
    target_model: claude-sonnet-4-5
    escalation_models: [claude-opus-4-6]
    max_input_tokens_p95: 4000
    max_output_tokens_p95: 600
    requests_per_day: 500
    cases: vertex_cases.yml
"""

BEDROCK_CASES = f"""\
- id: regional
  model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
  question: What does a cross-region profile cost?
- id: streamed
  model: global.anthropic.claude-haiku-4-5-20251001-v1:0
  question: Stream a short answer about global profiles please.
  stream: true
- id: async_streamed
  model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
  question: Stream this one from the async client.
  stream: true
  use_async: true
- id: cached
  model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
  question: Ask twice with a cached system prompt.
  cached: true
- id: escalated
  model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
  question: This one needs the bigger model.
  escalate_to: global.anthropic.claude-opus-4-7
- id: profile_arn
  model: "{ARN}"
  question: Called through the inference profile's ARN.
"""

VERTEX_CASES = """\
- id: regional
  model: claude-sonnet-4-5@20250929
  question: What does Vertex AI answer?
- id: streamed
  model: claude-sonnet-4-5@20250929
  question: Stream from Vertex AI with server-sent events.
  stream: true
- id: counted
  model: claude-haiku-4-5@20251001
  question: Count my tokens before the call.
  count: true
- id: escalated
  model: claude-sonnet-4-5@20250929
  question: Escalate this to Opus on Vertex.
  escalate_to: claude-opus-4-6
"""

APP = f"""\
import asyncio
import os

import anthropic

LONG_SYSTEM = {LONG_SYSTEM!r}


def _kwargs(case):
    kwargs = dict(
        model=case["model"],
        max_tokens=40,
        messages=[{{"role": "user", "content": case["question"]}}],
    )
    if case.get("cached"):
        kwargs["system"] = [
            {{"type": "text", "text": LONG_SYSTEM, "cache_control": {{"type": "ephemeral"}}}}
        ]
    return kwargs


def _call(client, case):
    kwargs = _kwargs(case)
    if case.get("stream"):
        with client.messages.stream(**kwargs) as stream:
            return "".join(stream.text_stream)
    text = client.messages.create(**kwargs).content[0].text
    if case.get("cached"):
        text = client.messages.create(**kwargs).content[0].text
    if case.get("escalate_to"):
        kwargs["model"] = case["escalate_to"]
        text = client.messages.create(**kwargs).content[0].text
    return text


async def _call_async(case):
    client = anthropic.AsyncAnthropicBedrock(aws_region="us-east-1", max_retries=0)
    async with client.messages.stream(**_kwargs(case)) as stream:
        return await stream.get_final_text()


def bedrock_reply(case):
    if case.get("use_async"):
        return asyncio.run(_call_async(case))
    # AWS credentials from the environment, signed with SigV4; base URL from
    # ANTHROPIC_BEDROCK_BASE_URL (the emulator in these tests)
    return _call(anthropic.AnthropicBedrock(aws_region="us-east-1", max_retries=0), case)


def vertex_reply(case):
    client = anthropic.AnthropicVertex(
        region="us-east5",
        project_id="acme-budgets",
        access_token=os.environ["VERTEX_ACCESS_TOKEN"],
        max_retries=0,
    )
    if case.get("count"):
        counted = client.messages.count_tokens(
            model=case["model"], messages=_kwargs(case)["messages"]
        )
        assert counted.input_tokens > 0
    return _call(client, case)
"""

TEST = """\
import pytest
from app import bedrock_reply, vertex_reply


@pytest.mark.token_budget("bedrock_chat")
def test_bedrock(budget_case):
    assert bedrock_reply(budget_case)


@pytest.mark.token_budget("vertex_chat")
def test_vertex(budget_case):
    assert vertex_reply(budget_case)
"""


def _rates(i: str, o: str, w5: str | None = None, r: str | None = None) -> dict[str, Fraction]:
    given = Fraction(i)
    return {
        "in": given,
        "out": Fraction(o),
        "w5": Fraction(w5) if w5 else given * Fraction(5, 4),
        "r": Fraction(r) if r else given / 10,
    }


# $ per million tokens of each id as called, written out by hand from the price list:
# Bedrock's regional and geographic profiles of Sonnet 4.5 cost 10% more than global.
RATES = {
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0": _rates("3.3", "16.5", "4.125", "0.33"),
    ARN: _rates("3.3", "16.5", "4.125", "0.33"),
    "global.anthropic.claude-haiku-4-5-20251001-v1:0": _rates("1", "5", "1.25", "0.1"),
    "global.anthropic.claude-opus-4-7": _rates("4.5", "22.5"),  # the pricing: override
    "claude-sonnet-4-5@20250929": _rates("3", "15", "3.75", "0.3"),
    "claude-haiku-4-5@20251001": _rates("1", "5", "1.25", "0.1"),
    "claude-opus-4-6": _rates("5", "25", "6.25", "0.5"),
}


def _platform(path: str) -> str:
    return "bedrock_chat" if path.startswith("/model/") else "vertex_chat"


def expected_from(served, endpoint: str, cases: int, requests_per_day: int) -> dict:
    """The report's numbers recomputed from what the emulator served."""
    calls = [
        s
        for s in served
        if s.status == 200 and _platform(s.path) == endpoint and "output_tokens" in s.usage
    ]
    prompt = sorted(
        s.usage["input_tokens"]
        + s.usage["cache_creation_input_tokens"]
        + s.usage["cache_read_input_tokens"]
        for s in calls
    )
    output = sorted(s.usage["output_tokens"] for s in calls)
    cost = Fraction(0)
    for s in calls:
        rate, u = RATES[s.model], s.usage
        cost += (
            u["input_tokens"] * rate["in"]
            + u["output_tokens"] * rate["out"]
            + u["cache_creation_input_tokens"] * rate["w5"]
            + u["cache_read_input_tokens"] * rate["r"]
        ) / 10**6

    def rank(values, p):
        return values[math.ceil(p * len(values) / 100) - 1]

    reads = sum(s.usage["cache_read_input_tokens"] for s in calls)
    return {
        "calls": len(calls),
        "models": sorted({s.model for s in calls}),
        "input_tokens_p50": rank(prompt, 50),
        "input_tokens_p95": rank(prompt, 95),
        "input_tokens_max": prompt[-1],
        "output_tokens_p95": rank(output, 95),
        "cache_hit_rate": round(reads / sum(prompt), 6),
        "cost_per_request_usd": float(round(cost / cases, 9)),
        "monthly_cost_usd": float(round(cost / cases * requests_per_day * 30, 9)),
    }


@pytest.fixture
def cloud_env(monkeypatch, tmp_path, emulator):
    """The team's machine while recording: AWS temporary credentials, a Google token,
    both SDK clients pointed at the emulator, no AWS config files or EC2 metadata read."""
    import anthropic.lib.aws._auth as aws_auth

    aws_auth._get_session.cache_clear()  # boto3 sessions are cached across in-process runs
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", VERTEX_TOKEN)
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", emulator.base_url)
    monkeypatch.setenv("ANTHROPIC_VERTEX_BASE_URL", emulator.base_url + "/v1")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    yield emulator
    aws_auth._get_session.cache_clear()


@pytest.fixture
def cloud_project(pytester):
    pytester.makefile(
        ".yml",
        token_budgets=CONFIG,
        bedrock_cases=BEDROCK_CASES,
        vertex_cases=VERTEX_CASES,
    )
    pytester.makepyfile(app=APP, test_cloud=TEST)
    pytester.syspathinsert()
    return pytester


def _report(project) -> dict:
    return json.loads((project.path / ".token-budget" / "report.json").read_text())


@pytest.mark.slow
def test_bedrock_and_vertex_calls_are_measured_priced_scrubbed_and_replayed(
    cloud_project, cloud_env, monkeypatch
):
    emulator = cloud_env
    result = cloud_project.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=10)
    served = list(emulator.served)
    assert all(s.status == 200 for s in served)
    signed = [s for s in served if s.path.startswith("/model/")]
    assert signed and all(s.headers["authorization"].startswith("AWS4-HMAC-SHA256") for s in signed)
    assert all(s.headers["x-amz-security-token"] == SESSION_TOKEN for s in signed)
    assert {s.stream for s in signed} == {True, False}
    assert any(s.usage["cache_read_input_tokens"] for s in signed)  # the cached case read

    # Cassettes: one per case, no credential of either platform in any written file.
    bedrock_cassettes = sorted(
        p.stem for p in (cloud_project.path / "cassettes" / "bedrock_chat").iterdir()
    )
    assert bedrock_cassettes == sorted(
        ["regional", "streamed", "async_streamed", "cached", "escalated", "profile_arn"]
    )
    for path in cloud_project.path.rglob("*"):
        if path.is_file() and path.suffix in {".yaml", ".json", ".md"}:
            text = path.read_text()
            for secret in CREDENTIALS:
                assert secret not in text, (path, secret)
    streamed = (cloud_project.path / "cassettes" / "bedrock_chat" / "streamed.yaml").read_text()
    assert "application/vnd.amazon.eventstream" in streamed

    recorded = _report(cloud_project)
    expected = {
        "bedrock_chat": expected_from(served, "bedrock_chat", cases=6, requests_per_day=1000),
        "vertex_chat": expected_from(served, "vertex_chat", cases=4, requests_per_day=500),
    }
    assert expected["bedrock_chat"]["calls"] == 8 and expected["vertex_chat"]["calls"] == 5
    for name, want in expected.items():
        endpoint = recorded["endpoints"][name]
        assert endpoint["status"] == "pass", name
        assert endpoint["calls"] == want["calls"], name
        assert sorted(endpoint["models"]) == want["models"], name  # the ids as called
        metrics = endpoint["metrics"]
        for key in (
            "input_tokens_p50",
            "input_tokens_p95",
            "input_tokens_max",
            "output_tokens_p95",
            "cost_per_request_usd",
            "monthly_cost_usd",
        ):
            assert metrics[key] == want[key], (name, key)
        assert metrics["cache_hit_rate"] == pytest.approx(want["cache_hit_rate"], abs=1e-6)
    bedrock_report = recorded["endpoints"]["bedrock_chat"]
    assert bedrock_report["metrics"]["escalation_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert bedrock_report["per_case"]["escalated"]["escalated"] is True
    assert bedrock_report["per_case"]["cached"]["calls"] == 2
    sources = bedrock_report["price_sources"]
    assert sources["us.anthropic.claude-sonnet-4-5-20250929-v1:0"] == (
        f"{source_name()} (aws regional.anthropic.claude-sonnet-4-5-20250929-v1:0)"
    )
    assert sources["global.anthropic.claude-haiku-4-5-20251001-v1:0"] == (
        f"{source_name()} (aws global.anthropic.claude-haiku-4-5-20251001-v1:0)"
    )
    assert sources["global.anthropic.claude-opus-4-7"] == "token_budgets.yml"
    vertex_report = recorded["endpoints"]["vertex_chat"]
    assert vertex_report["metrics"]["escalation_rate"] == 0.25
    assert vertex_report["per_case"]["counted"]["calls"] == 1  # count_tokens is no sample

    # CI: no AWS credentials at all (the plugin supplies placeholders; a signature is
    # never matched) in a fresh process, and nothing reaches the network.
    before = len(emulator.served)
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", "replay")
    (cloud_project.path / ".token-budget" / "report.json").unlink()
    replay = cloud_project.runpytest_subprocess("--token-budget", "-p", "no:cacheprovider")
    replay.assert_outcomes(passed=10)
    assert len(emulator.served) == before
    assert _report(cloud_project)["endpoints"] == recorded["endpoints"]


# -- event-stream framing ---------------------------------------------------------------
def _events(*texts: str) -> list[dict]:
    return [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        for t in texts
    ]


def test_frames_from_the_emulator_decode_to_its_events():
    events = _events("Echo", ":", " hi")
    body = b"".join(event_stream_frame(e, padding=i) for i, e in enumerate(events))
    assert bedrock.is_event_stream(body)
    assert [e for _, e in bedrock.stream_events(body)] == events
    frames, cut = bedrock.decode_frames(body[:-3])
    assert len(frames) == 2 and cut  # a stream cut mid-frame keeps the whole frames


def test_a_corrupt_frame_is_a_cassette_error():
    body = bytearray(event_stream_frame(_events("x")[0]))
    body[-8] ^= 0xFF  # inside the payload: the message CRC no longer matches
    with pytest.raises(CassetteError, match="message CRC"):
        list(bedrock.stream_events(bytes(body)))


def test_scrubbing_inside_a_stream_keeps_frames_the_sdk_decoder_reads():
    key = "sk-ant-api03-" + "leakedKeyMaterial" * 3
    body = b"".join(event_stream_frame(e) for e in _events("my key is ", key, " ok"))
    cleaned = scrub_bytes(body)
    assert cleaned != body
    buffer = botocore.eventstream.EventStreamBuffer()  # the decoder AnthropicBedrock uses
    buffer.add_data(cleaned)
    texts = [
        json.loads(base64.b64decode(json.loads(m.payload)["bytes"]))["delta"]["text"]
        for m in buffer
    ]
    assert texts == ["my key is ", "REDACTED", " ok"]
    assert scrub_bytes(event_stream_frame(_events("nothing secret")[0])) == event_stream_frame(
        _events("nothing secret")[0]
    )


# -- parsing ----------------------------------------------------------------------------
def _exchange(
    url: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: dict | None = None,
    request: dict | None = None,
) -> Exchange:
    return Exchange(
        method="POST",
        url=url,
        request_body=json.dumps(request or {"anthropic_version": "x"}).encode(),
        status=200,
        headers={"content-type": [content_type], **(headers or {})},
        body=body,
    )


def _stream_body(model: str, usage: dict) -> bytes:
    start = {"type": "message_start", "message": {"model": model, "usage": usage}}
    delta = {"type": "message_delta", "usage": {"output_tokens": 9}, "delta": {}}
    return b"".join(event_stream_frame(e) for e in (start, delta, {"type": "message_stop"}))


def test_a_bedrock_call_is_named_by_the_id_in_its_url():
    body = json.dumps(
        {"model": "claude-sonnet-4-5-20250929", "usage": {"input_tokens": 7, "output_tokens": 3}}
    )
    url = (
        "https://bedrock-runtime.us-east-1.amazonaws.com"
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"
    )
    [call] = parse_exchange(_exchange(url, body.encode()))
    assert (call.provider, call.kind, call.model) == (
        "anthropic",
        "messages",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    )
    assert (call.usage.input_tokens, call.usage.output_tokens) == (7, 3)


def test_a_quoted_arn_in_the_url_is_the_model():
    url = "http://x/model/" + ARN.replace("/", "%2F") + "/invoke-with-response-stream"
    body = _stream_body("claude-sonnet-4-5-20250929", {"input_tokens": 11, "output_tokens": 1})
    [call] = parse_exchange(_exchange(url, body, content_type=bedrock.CONTENT_TYPE))
    assert call.model == ARN and call.streamed
    assert (call.usage.input_tokens, call.usage.output_tokens) == (11, 9)


def test_an_event_stream_is_recognised_without_its_content_type():
    url = "http://x/model/anthropic.claude-3-haiku-20240307-v1:0/invoke-with-response-stream"
    body = _stream_body("claude-3-haiku-20240307", {"input_tokens": 4, "output_tokens": 1})
    [call] = parse_exchange(_exchange(url, body, content_type="application/octet-stream"))
    assert call.usage.output_tokens == 9 and call.note == ""


def test_an_exception_frame_is_no_call():
    import struct
    import zlib

    name, value = b":message-type", b"exception"
    headers = bytes([len(name)]) + name + b"\x07" + struct.pack(">H", len(value)) + value
    payload = b'{"message":"Too many requests"}'
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + payload
    frame += struct.pack(">I", zlib.crc32(frame))
    url = "http://x/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke-with-response-stream"
    assert parse_exchange(_exchange(url, frame, content_type=bedrock.CONTENT_TYPE)) == []


def test_bedrock_usage_headers_stand_in_for_a_body_without_usage():
    url = "http://x/model/anthropic.claude-v2:1/invoke"
    headers = {
        "x-amzn-bedrock-input-token-count": ["12"],
        "x-amzn-bedrock-output-token-count": ["5"],
    }
    [call] = parse_exchange(_exchange(url, b'{"completion": "hi"}', headers=headers))
    assert (call.usage.input_tokens, call.usage.output_tokens, call.note) == (12, 5, "")


VERTEX_MODELS = "/v1/projects/p/locations/{}/publishers/anthropic/models/"


@pytest.mark.parametrize(
    ("path", "kind", "model"),
    [
        (
            VERTEX_MODELS.format("us-east5") + "claude-sonnet-4-5@20250929:rawPredict",
            "messages",
            "claude-sonnet-4-5@20250929",
        ),
        (
            VERTEX_MODELS.format("global") + "claude-opus-4-6:streamRawPredict",
            "messages",
            "claude-opus-4-6",
        ),
        (
            VERTEX_MODELS.format("eu") + "count-tokens:rawPredict",
            "count_tokens",
            "claude-haiku-4-5@20251001",
        ),
    ],
)
def test_vertex_routes(path, kind, model):
    if kind == "count_tokens":
        body, request = b'{"input_tokens": 21}', {"model": model, "messages": []}
    else:
        body = json.dumps({"model": "claude-x", "usage": {"input_tokens": 2, "output_tokens": 1}})
        body, request = body.encode(), None
    [call] = parse_exchange(
        _exchange("https://aiplatform.googleapis.com" + path, body, request=request)
    )
    assert (call.kind, call.model) == (kind, model)


# -- model ids and prices ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_id", "model", "geography"),
    [
        ("anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929", None),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929", "us"),
        ("eu.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001", "eu"),
        ("apac.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022", "apac"),
        ("global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6", "global"),
        ("us-gov.anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307", "us-gov"),
        ("anthropic.claude-3-haiku-20240307-v1:0:48k", "claude-3-haiku-20240307", None),
        ("anthropic.claude-sonnet-4-6", "claude-sonnet-4-6", None),
        (ARN, "claude-sonnet-4-5-20250929", "eu"),
        (
            "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-opus-20240229-v1:0",
            "claude-3-opus-20240229",
            None,
        ),
    ],
)
def test_bedrock_ids_name_the_model_they_run(model_id, model, geography):
    assert bedrock.bedrock_model(model_id) == bedrock.BedrockModel(model, geography)


@pytest.mark.parametrize(
    "model_id",
    [
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
        "meta.llama3-70b-instruct-v1:0",
        "claude-sonnet-4-5",
    ],
)
def test_other_ids_are_not_bedrock_models(model_id):
    assert bedrock.bedrock_model(model_id) is None


@pytest.mark.parametrize(
    ("model", "input_rate", "output_rate"),
    [
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "3", "15"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "3.3", "16.5"),  # geographic
        ("anthropic.claude-haiku-4-5-20251001-v1:0", "1.1", "5.5"),  # in-region
        ("eu.anthropic.claude-opus-4-6-v1", "5.5", "27.5"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "3", "15"),  # older: one price
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "3", "15"),
        ("claude-sonnet-4-5@20250929", "3", "15"),  # Vertex AI
        ("claude-3-5-sonnet-v2@20241022", "3", "15"),
        ("claude-opus-4-6", "5", "25"),
    ],
)
def test_platform_ids_take_the_shipped_price(model, input_rate, output_rate):
    price = PriceBook().price(model)
    assert (price.input, price.output) == (Fraction(input_rate), Fraction(output_rate))
    assert price.cache_read == price.input / 10 and price.cache_write_5m == price.input * 5 / 4


def test_pricing_overrides_name_the_id_as_called_or_the_model():
    book = PriceBook(
        {
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0": {"input": 2.5, "output": 12.5},
            "claude-haiku-4-5": {"input": 0.9, "output": 4.5},
        }
    )
    as_called = book.price("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert (as_called.input, as_called.source) == (Fraction("2.5"), "token_budgets.yml")
    assert book.price("eu.anthropic.claude-sonnet-4-5-20250929-v1:0").input == Fraction("3.3")
    # an entry for the model prices every id that runs it, as written (no premium added)
    assert book.price("us.anthropic.claude-haiku-4-5-20251001-v1:0").input == Fraction("0.9")
    assert book.price("claude-haiku-4-5@20251001").input == Fraction("0.9")


def test_platform_ids_are_the_same_model_as_the_configured_one():
    book = PriceBook({"us.anthropic.claude-sonnet-4-6": {"input": 1, "output": 2}})
    assert book.canonical("us.anthropic.claude-sonnet-4-6") == "claude-sonnet-4-6"
    assert book.same_model("us.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6")
    assert book.same_model(ARN, "claude-sonnet-4-5")
    assert book.same_model("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929")
    assert not book.same_model("global.anthropic.claude-opus-4-7", "claude-sonnet-4-6")


def test_an_opaque_arn_is_an_unknown_model_until_priced():
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3"
    assert PriceBook().find(arn) is None
    assert PriceBook({arn: {"input": 3, "output": 15}}).price(arn).input == 3


def test_scrub_text_knows_cloud_credentials():
    text = (
        f"Credential={ACCESS_KEY_ID}/20260101/us-east-1/bedrock/aws4_request "
        f"token {VERTEX_TOKEN} key AIzaSy{'A' * 33} "
        "bedrock ABSKQmVkcm9ja0FQSUtleS1hYmNkZWZnaGlqa2xtbm9w"
    )
    assert scrub_text(text) == (
        "Credential=REDACTED/20260101/us-east-1/bedrock/aws4_request "
        "token REDACTED key REDACTED bedrock REDACTED"
    )
    image = base64.b64encode(bytes(range(256)) * 64).decode() + "xxABSKQmVkcm9ja0FQSUtleS1hYmNk"
    assert scrub_text(image) == image  # inside base64, a prefix is no key


def test_emulator_refuses_what_the_platforms_refuse():
    import urllib.error
    import urllib.request

    with Emulator() as emu:
        url = emu.base_url + "/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"
        body = {"anthropic_version": "x", "model": "m", "max_tokens": 5, "messages": []}
        request = urllib.request.Request(
            url, json.dumps(body).encode(), {"authorization": "Bearer k"}, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 400 and b"model" in info.value.read()
        unsigned = urllib.request.Request(url, b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(unsigned, timeout=5)
        assert info.value.code == 401
