"""Secrets by construction: credentials are scrubbed by what they are wherever a recording
holds them (URL userinfo, credential-named query parameters and headers, key shapes in
bodies decoded from their content encoding), the last gate checks decoded bodies, and an
interrupted recording keeps the previous cassette."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from pathlib import Path

import pytest
import yaml
from emulator import Emulator, event_stream_frame
from paths import DATA
from project_files import use_light_sdk
from vcr.request import Request
from vcr.serializers import yamlserializer

from pytest_tokenbudget.capture.vcrpy_cassettes import _persister, _scrub_request, _scrub_response
from pytest_tokenbudget.errors import SecretError
from pytest_tokenbudget.providers import bedrock, scrub
from pytest_tokenbudget.providers.scrub import (
    is_credential_name,
    scrub_headers,
    scrub_text,
    scrub_url,
)

KEY = "sk-ant-api03-" + "b0dyKeyMaterial" * 4  # key-shaped: found by shape, not by name
MESSAGES = "http://127.0.0.1:9/v1/messages"
BUDGETS = "endpoints:\n  e:\n    max_input_tokens_p95: 1000\n    cases: [{id: one}]\n"


# -- by name ---------------------------------------------------------------------------
# The credential query parameters the issue found recorded as they were, and more.
CREDENTIAL_PARAMETERS = [
    "auth_token",
    "access-token",
    "x-api-key",
    "sig",
    "client_secret",
    "password",
    "passwd",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "api_key",
    "key",
    "token",
    "access_token",
    "clientSecret",
    "session",
    "sessionid",
    "X-Goog-Signature",
    "apikey",
    # plurals, numbered and short forms an attacker tried (they were recorded as is)
    "x-api-keys",
    "x-api-secrets",
    "apiKeys",
    "x-apikey1",
    "x-api-pass",
    "x-custom-authz",
    "x-tokenid",
    "api_keys",
    "apikey2",
    "secrets",
    "pass",
    "sas",
    "auth0",
]


@pytest.mark.parametrize("name", CREDENTIAL_PARAMETERS)
def test_credential_query_parameters_are_redacted_by_name(name):
    url = f"https://gw.example/v1/messages?beta=true&{name}=s3cretValue&api-version=2"
    assert (
        scrub_url(url) == f"https://gw.example/v1/messages?beta=true&{name}=REDACTED&api-version=2"
    )


def test_url_userinfo_is_removed():
    assert scrub_url("http://user:PASSW0RD@gw.example:8080/v1/messages") == (
        "http://gw.example:8080/v1/messages"
    )
    assert scrub_url("https://only-a-token@gw.example/v1") == "https://gw.example/v1"
    # a URL quoted in text (a header value, a prompt) loses its credential parameters too
    assert scrub_text("see https://gw.example/x?sig=abc&max_tokens=5") == (
        "see https://gw.example/x?sig=REDACTED&max_tokens=5"
    )


GATEWAY_HEADERS = [
    "x-portkey-api-key",
    "x-auth-token",
    "X-Api-Key",
    "x-gateway-secret",
    "x-helicone-auth",
    "cf-aig-authorization",
    "x-session-token",
    "x-apikey",
]
# Headers the plugin, the SDK or the report need, whose names merely hold such words.
KEPT_REQUEST_HEADERS = [
    "anthropic-version",
    "content-type",
    "x-stainless-retry-count",
    "x-stainless-helper-method",
    "anthropic-beta",
    "user-agent",
    "accept-encoding",
    "x-stainless-package-version",
]
KEPT_RESPONSE_HEADERS = [
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-amzn-bedrock-input-token-count",
    "x-amzn-bedrock-cache-read-input-token-count",
    "request-id",
]


def test_credential_headers_are_dropped_by_name_and_the_needed_ones_kept():
    headers = {name: "v4lue" for name in GATEWAY_HEADERS + KEPT_REQUEST_HEADERS}
    assert set(scrub_headers(headers, scrub.REQUEST_HEADERS)) == set(KEPT_REQUEST_HEADERS)
    response = {name: ["1000"] for name in KEPT_RESPONSE_HEADERS}
    assert scrub_headers(response, scrub.RESPONSE_HEADERS) == response
    assert not any(is_credential_name(name) for name in ("max_tokens", "budget_tokens"))


@pytest.mark.parametrize(
    "value",
    [
        "Bearer +/abcdefghijklmnop",
        "Bearer a+b/cdefghijklmnop",
        "Bearer abcdefghijklm/+=",
        "Basic dXNlcjpQQVNTV09SRA==",
    ],
)
def test_bearer_and_basic_credentials_are_found_by_shape(value):
    # in a header whose name says nothing (a gateway route), or in a body
    assert scrub_headers({"x-route": f"via {value}"}, scrub.REQUEST_HEADERS) == {
        "x-route": "via REDACTED"
    }


@pytest.mark.parametrize(
    "text",
    [
        "risk-assessment-summary",
        "task-risk-sk-assessment-summary-report",
        "whisk-aaaaaaaaaaaaaaaaaaaa1",
        "Bearer authentication failed",
        "Bearer Authentication",
        "Basic understanding of tokens",
        "desk-1234567890abcdefgh",
    ],
)
def test_ordinary_words_are_no_keys(text):
    assert scrub_text(text) == text
    assert scrub.find_secret(text) is None


REAL_GOOGLE = DATA / "secret_scan"


def test_base64url_signatures_in_a_real_cassette_are_no_keys():
    """pydantic-ai's committed Google cassette: its thought signatures (base64url) spell
    `_sk-N2AM…` mid-run, which the `sk-` shape once took for a key, refusing the write."""
    text = (REAL_GOOGLE / "pydantic-ai_thought_signature_base64url.yaml").read_text()
    assert "_sk-" in text  # the trap is really there
    assert scrub.find_secret(text) is None
    assert scrub_text(text) == text


KEY = "sk-ant-api03-" + "Q8xZZZZYYYYXXXX9999WWWW"


@pytest.mark.parametrize(
    "text",
    [
        json.dumps("Use this key:\n" + KEY),
        json.dumps("key\tBearer abcDEF1234567890xyz"),
        json.dumps("line\u2028" + KEY, ensure_ascii=True),
        "KEY_" + KEY,
        "x_n" + KEY,
    ],
)
def test_a_key_after_an_escaped_line_break_or_an_underscore_is_found(text):
    """Stored JSON writes a prompt's line break as backslash-n: the letter n stands before the
    key, and a word-start check that only looks at letters let it through."""
    assert scrub.find_secret(text) is not None
    assert scrub.find_secret(scrub_text(text)) is None


def test_a_key_in_a_line_wrapped_base64_document_is_refused():
    wrapped = base64.encodebytes(("hello " * 30 + KEY + " bye").encode()).decode()
    body = json.dumps({"source": {"type": "base64", "data": wrapped}}).encode()
    with pytest.raises(SecretError, match="credential"):
        scrub.refuse_if_body_secret(body, {}, path="c.yaml", where="the request body")


def test_a_key_split_across_streamed_deltas_is_refused():
    def delta(text: str) -> str:
        event = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": text}}
        return f"event: content_block_delta\ndata: {json.dumps(event)}\n\n"

    body = (delta(KEY[:10]) + delta(KEY[10:])).encode()
    assert all(scrub.find_secret(piece) is None for piece in (KEY[:10], KEY[10:]))
    with pytest.raises(SecretError, match="credential"):
        scrub.refuse_if_body_secret(body, {}, path="c.yaml", where="the response body")


def test_a_case_id_holding_a_key_is_refused(tmp_path, monkeypatch, capsys):
    """A case id names a committed cassette file and appears in every report."""
    from pytest_tokenbudget.cli import main

    (tmp_path / "token_budgets.yml").write_text(
        "endpoints:\n  chat:\n    max_input_tokens_p95: 100\n    cases: cases.yml\n"
    )
    (tmp_path / "cases.yml").write_text(f"- id: {KEY}\n  question: hi\n")
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "cases.yml:1" in err and "credential" in err
    assert KEY not in err


# -- bodies ----------------------------------------------------------------------------
def _request(body: bytes, **headers: str) -> Request:
    return Request("POST", MESSAGES, body, {"content-type": "application/json", **headers})


def _response(body: bytes, **headers: str) -> dict:
    return {
        "status": {"code": 200, "message": "OK"},
        "headers": {"content-type": ["application/json"], **{k: [v] for k, v in headers.items()}},
        "body": {"string": body},
    }


def _save(tmp_path: Path, requests: list, responses: list) -> Path:
    path = tmp_path / "c.yaml"
    cassette = {"requests": requests, "responses": responses}
    _persister("once", None).save_cassette(str(path), cassette, yamlserializer)
    return path


def _refused(tmp_path: Path, requests: list, responses: list) -> str:
    with pytest.raises(SecretError) as info:
        _save(tmp_path, requests, responses)
    assert not list(tmp_path.iterdir())  # nothing written, no temp file left
    message = str(info.value)
    assert str(tmp_path / "c.yaml") in message and "refusing to write" in message
    assert "b0dyKeyMaterial" not in message  # the message itself leaks nothing
    return message


PROMPT = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"key {KEY}"}]})


def test_a_key_beside_an_invalid_utf8_byte_is_scrubbed_and_else_refused(tmp_path):
    body = PROMPT.encode() + b"\xff"
    recorded = _scrub_request(_request(body))
    assert KEY.encode() not in recorded.body and b"REDACTED" in recorded.body
    assert recorded.body.endswith(b"\xff")  # the rest byte for byte
    message = _refused(tmp_path, [_request(body)], [_response(b"{}")])
    assert "request body of interaction 1" in message


def test_a_gzip_request_is_stored_decoded_and_scrubbed(tmp_path):
    body = gzip.compress(PROMPT.encode())
    recorded = _scrub_request(_request(body, **{"content-encoding": "gzip"}))
    assert json.loads(recorded.body)["messages"][0]["content"] == "key REDACTED"
    assert "content-encoding" not in {k.lower() for k in recorded.headers}
    _refused(tmp_path, [_request(body, **{"content-encoding": "gzip"})], [_response(b"{}")])


@pytest.mark.parametrize("coding", ["gzip", "deflate", "gzip, deflate"])
def test_compressed_responses_are_stored_decoded_and_scrubbed(tmp_path, coding):
    body = json.dumps({"content": [{"type": "text", "text": f"echo {KEY}"}]}).encode()
    for name in coding.split(", "):  # in the order they were applied
        body = gzip.compress(body) if name == "gzip" else zlib.compress(body)
    _refused(tmp_path, [_request(b"{}")], [_response(body, **{"content-encoding": coding})])
    recorded = _scrub_response(_response(body, **{"content-encoding": coding}))
    assert "content-encoding" not in recorded["headers"]
    assert json.loads(recorded["body"]["string"])["content"][0]["text"] == "echo REDACTED"
    path = _save(tmp_path, [_request(b"{}")], [recorded])
    assert "REDACTED" in path.read_text()


def test_a_br_response_is_decoded_when_brotli_is_installed_else_refused(tmp_path):
    body = json.dumps({"text": f"echo {KEY}"}).encode()
    try:
        import brotli
    except ImportError:  # the body could hold anything: never written unchecked
        message = _refused(
            tmp_path, [_request(b"{}")], [_response(b"\x1b\x00", **{"content-encoding": "br"})]
        )
        assert "br-encoded and brotli is not installed" in message
        return
    compressed = brotli.compress(body)
    message = _refused(
        tmp_path, [_request(b"{}")], [_response(compressed, **{"content-encoding": "br"})]
    )
    assert "shaped like a credential" in message and "response body of interaction 1" in message
    recorded = _scrub_response(_response(compressed, **{"content-encoding": "br"}))
    assert json.loads(recorded["body"]["string"]) == {"text": "echo REDACTED"}


def test_an_unknown_or_corrupt_encoding_is_refused(tmp_path):
    for coding, body in (("compress", b"\x1f\x9d..."), ("gzip", gzip.compress(b"{}")[:-6])):
        message = _refused(
            tmp_path, [_request(b"{}")], [_response(body, **{"content-encoding": coding})]
        )
        assert "cannot be checked for credentials" in message


def test_decompression_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(scrub, "MAX_DECODED_BYTES", 64 * 1024)
    bomb = gzip.compress(b"\0" * (65 * 1024))  # decodes past the (lowered) limit
    recorded = _scrub_response(_response(bomb, **{"content-encoding": "gzip"}))
    assert recorded["body"]["string"] == bomb  # kept as it is: the gate refuses it
    message = _refused(tmp_path, [_request(b"{}")], [recorded])
    assert "its gzip content decodes past 0.0625 MiB" in message


def _chunk(text: str) -> bytes:
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    return event_stream_frame(event)


def test_a_bedrock_stream_cut_mid_frame_is_scrubbed_and_checked(tmp_path):
    whole = _chunk(f"my key {KEY}") + _chunk("more")
    last = _chunk(f"and {KEY} again")
    cut = whole + last[:-20]  # the last frame cut short
    headers = {"content-type": bedrock.CONTENT_TYPE}
    _refused(tmp_path, [_request(b"{}")], [_response(cut, **headers)])
    recorded = _scrub_response(_response(cut, **headers))
    body = recorded["body"]["string"]
    frames, is_cut = bedrock.decode_frames(body)
    assert is_cut and len(frames) == 2  # still cut after the same whole frames
    texts = [e["delta"]["text"] for _, e in bedrock.stream_events(body)]
    assert texts == ["my key REDACTED", "more"]
    assert body.endswith(last[:12])  # of the cut frame, only its prelude is kept
    _save(tmp_path, [_request(b"{}")], [recorded])


def test_a_key_in_base64_is_refused(tmp_path):
    document = base64.b64encode(f"notes: {KEY}".encode()).decode()
    body = json.dumps({"source": {"type": "base64", "data": document}}).encode()
    _refused(tmp_path, [_request(body)], [_response(b"{}")])


# -- end to end ------------------------------------------------------------------------
MARK = "Zq8"  # every fake secret below holds it, and nothing else the run writes does
QUERY_NAMES = [
    "auth_token",
    "access-token",
    "x-api-key",
    "sig",
    "client_secret",
    "password",
    "X-Amz-Security-Token",
]
SECRETS = {
    "TB_PASSWORD": f"pw-{MARK}-userinfo",
    "TB_PORTKEY": f"pk-{MARK}-portkey",
    "TB_AUTH_TOKEN": f"at-{MARK}-authtoken",
    "TB_ROUTE": f"Bearer a+/{MARK}gatewayTok3n",
    "TB_BODY_KEY": f"sk-ant-api03-{MARK}bodyKeyMaterial0123456789",
    **{f"TB_QUERY_{i}": f"q{i}-{MARK}-query" for i in range(len(QUERY_NAMES))},
}
# Secrets come from the environment: the test file the run writes holds none.
GATEWAY_APP = f"""
import gzip, importlib, os
import anthropic
import pytest

QUERY_NAMES = {QUERY_NAMES!r}


def gzip_request(request):
    httpx = importlib.import_module(type(request).__module__.split(".")[0])
    body = gzip.compress(request.read(), mtime=0)
    request.stream = httpx.ByteStream(body)
    request.headers["content-encoding"] = "gzip"
    request.headers["content-length"] = str(len(body))


@pytest.mark.token_budget("e")
def test_gateway(budget_case):
    env = os.environ
    client = anthropic.Anthropic(
        max_retries=0,
        default_headers={{"x-api-key": env["ANTHROPIC_API_KEY"],
                         "x-portkey-api-key": env["TB_PORTKEY"],
                         "x-auth-token": env["TB_AUTH_TOKEN"]}},
        http_client=anthropic.DefaultHttpxClient(event_hooks={{"request": [gzip_request]}}),
    )
    query = {{name: env[f"TB_QUERY_{{i}}"] for i, name in enumerate(QUERY_NAMES)}}
    message = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=6,  # the echo stops before the key's material
        messages=[{{"role": "user", "content": env["TB_BODY_KEY"] + " is my key"}}],
        extra_query=query, extra_headers={{"x-gateway-route": env["TB_ROUTE"]}},
    )
    assert message.content[0].text.startswith("Echo")
"""


def _decoded_texts(path: Path) -> list[str]:
    """A written file as text, and for a cassette every body decompressed as its headers
    (or its gzip magic) say: independent of the plugin's own decoding."""
    raw = path.read_bytes()
    texts = [raw.decode("latin-1")]
    if path.suffix != ".yaml":
        return texts
    for interaction in yaml.safe_load(raw)["interactions"]:
        for part in (interaction["request"], interaction["response"]):
            body = part["body"]["string"] if isinstance(part["body"], dict) else part["body"]
            body = body.encode() if isinstance(body, str) else body or b""
            headers = {k.lower(): v for k, v in (part.get("headers") or {}).items()}
            if "gzip" in str(headers.get("content-encoding")) or body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            texts.append(body.decode("latin-1"))
    return texts


def test_a_gateway_recording_leaves_no_secret_in_any_written_file(pytester, monkeypatch):
    with Emulator(gzip_responses=True) as emulator:
        host = emulator.base_url.removeprefix("http://")
        monkeypatch.setenv(
            "ANTHROPIC_BASE_URL", f"http://budget-user:{SECRETS['TB_PASSWORD']}@{host}"
        )
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-" + "gatewayKey" * 5)
        for name, value in SECRETS.items():
            monkeypatch.setenv(name, value)
        pytester.makefile(".yml", token_budgets=BUDGETS)
        pytester.makepyfile(test_gateway=GATEWAY_APP)
        args = ("--token-budget", "-p", "no:cacheprovider")
        pytester.runpytest(*args, "--token-budget-record=once").assert_outcomes(passed=1)
        sent = emulator.served[-1]
        # the secrets really were sent, each where the issue found one recorded as it was
        assert sent.headers["x-portkey-api-key"] == SECRETS["TB_PORTKEY"]
        assert sent.headers["x-gateway-route"] == SECRETS["TB_ROUTE"]
        assert sent.headers["content-encoding"] == "gzip"
        assert sent.request["messages"][0]["content"].startswith(SECRETS["TB_BODY_KEY"])
        cassette = pytester.path / "cassettes" / "e" / "one.yaml"
        recorded = yaml.safe_load(cassette.read_text())["interactions"][0]
        assert recorded["request"]["uri"].startswith(f"http://{host}/v1/messages?")
        assert "auth_token=REDACTED" in recorded["request"]["uri"]
        assert "Echo" in recorded["response"]["body"]["string"]  # stored decoded, readable
        # counted too, so that token_counts.json is written
        pytester.runpytest(*args, "--token-budget-count").assert_outcomes(passed=1)
        assert (pytester.path / "cassettes" / "token_counts.json").is_file()
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert {".yaml", ".json", ".md", ".html"} <= {p.suffix for p in written}
    basic = base64.b64encode(f"budget-user:{SECRETS['TB_PASSWORD']}".encode()).decode()
    for path in written:
        for text in _decoded_texts(path):
            assert MARK not in text and basic not in text, path
    # what was scrubbed still replays: the gzip request and its query match the recording
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    pytester.runpytest(*args).assert_outcomes(passed=1)


def test_a_refused_cassette_fails_its_test_with_one_message(pytester, recording_env):
    pytester.makefile(".yml", token_budgets=BUDGETS)
    pytester.makeconftest(
        f"""
        def pytest_tokenbudget_scrub(interaction):
            # a hook that puts a key back, in a body stored as binary
            interaction["response"]["body"]["string"] = b"\\xff {KEY}"
        """
    )
    pytester.makepyfile(
        test_key="""
        import anthropic, pytest

        @pytest.mark.token_budget("e")
        def test_key(budget_case):
            anthropic.Anthropic().messages.create(
                model="claude-sonnet-4-6", max_tokens=5,
                messages=[{"role": "user", "content": "hi"}])
        """
    )
    result = pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output
    result.stdout.fnmatch_lines(["*one.yaml:*refusing to write: a value shaped like a credential*"])
    assert not (pytester.path / "cassettes" / "e" / "one.yaml").exists()


def test_an_endpoint_named_risk_assessment_is_reported_and_commented(
    pytester, recording_env, monkeypatch
):
    """ "risk-assessment-summary" holds "sk-" and 18 key characters: before key shapes were
    anchored at a word start, no report was written and the comment body was refused."""
    from github_stub import TOKEN, GitHubStub, without_proxies

    from pytest_tokenbudget.cli import main

    name = "risk-assessment-summary"
    pytester.makefile(".yml", token_budgets=BUDGETS.replace("  e:", f"  {name}:"))
    pytester.makepyfile(
        test_risk=f"""
        import anthropic, pytest

        @pytest.mark.token_budget({name!r})
        def test_risk(budget_case):
            anthropic.Anthropic().messages.create(
                model="claude-sonnet-4-6", max_tokens=5,
                messages=[{{"role": "user", "content": "assess the risk"}}])
        """
    )
    args = ("--token-budget", "-p", "no:cacheprovider")
    pytester.runpytest(*args, "--token-budget-record=once").assert_outcomes(passed=1)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    assert "refusing" not in result.stdout.str()
    reports = pytester.path / ".token-budget"
    assert name in json.loads((reports / "report.json").read_text())["endpoints"]
    assert name in (reports / "report.md").read_text()
    event = pytester.path / "event.json"
    event.write_text(json.dumps({"number": 7, "pull_request": {"number": 7}}))
    with GitHubStub() as github:
        github.open_pull("acme/shop", 7)
        without_proxies(monkeypatch)
        env = {
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_REPOSITORY": "acme/shop",
            "GITHUB_API_URL": github.url,
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_RUN_ID": "9",
            "GITHUB_RUN_ATTEMPT": "1",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(pytester.path)
        assert main(["comment"]) == 0
        assert any(name in c["body"] for c in github.comments_of("acme/shop", 7))


# -- an interrupted recording ------------------------------------------------------------
INTERRUPTED_APP = """
import os
import anthropic
import pytest


@pytest.mark.token_budget("e")
def test_two_calls(budget_case):
    client = anthropic.Anthropic(max_retries=0)
    for question in ("first question", "second question"):
        client.messages.create(model="claude-sonnet-4-6", max_tokens=20,
                               messages=[{"role": "user", "content": question}])
        if os.environ.get("TB_INTERRUPT"):
            raise KeyboardInterrupt  # Ctrl-C after the first call
"""


@pytest.mark.slow
def test_ctrl_c_during_record_all_keeps_the_previous_cassette(pytester, recording_env, monkeypatch):
    pytester.makefile(
        ".yml",
        token_budgets="endpoints:\n  e:\n    max_input_tokens_p95: 1000\n"
        "    cases: [{id: one}, {id: two}]\n",
    )
    pytester.makepyfile(test_app=INTERRUPTED_APP)
    use_light_sdk(pytester.path / "test_app.py")  # two pytest processes without the SDK's import
    args = ("--token-budget", "-p", "no:cacheprovider")
    pytester.runpytest(*args, "--token-budget-record=once", "-k", "one").assert_outcomes(
        passed=1, deselected=1
    )
    cassettes = pytester.path / "cassettes" / "e"
    before = (cassettes / "one.yaml").read_bytes()
    assert before.count(b"- request:") == 2
    monkeypatch.setenv("TB_INTERRUPT", "1")
    served = len(recording_env.served)
    # in a subprocess: an in-process KeyboardInterrupt would stop this test session too
    result = pytester.runpytest_subprocess(*args, "--token-budget-record=all", "-k", "one")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert len(recording_env.served) == served + 1  # one call was recorded, then Ctrl-C
    assert (cassettes / "one.yaml").read_bytes() == before
    # a case with no cassette yet, interrupted: nothing is written for it
    result = pytester.runpytest_subprocess(*args, "--token-budget-record=all", "-k", "two")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert sorted(p.name for p in cassettes.iterdir()) == ["one.yaml"]
