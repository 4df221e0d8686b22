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
from pathlib import Path

import pytest
import yaml

from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.recorders import NotACassetteError, read_recording
from pytest_tokenbudget.usage import exchanges_from_cassette, load_cassette_file, parse_exchange

CASSETTES = Path(__file__).parent / "data" / "cassettes"
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


def test_a_ruby_cassette_cut_short_is_truncated_not_empty(tmp_path):
    lines = (CASSETTES / "vcr-ruby/anthropic-rb_messages.yml").read_text().splitlines(True)
    path = _write(tmp_path, "cut.yml", "".join(lines[:-1]))  # loses `recorded_with`
    with pytest.raises(CassetteError, match="looks truncated"):
        read_recording(path)
