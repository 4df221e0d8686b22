"""No secret is ever written; no input breaks the plugin into a traceback; no data is lost."""

from __future__ import annotations

import pytest
import yaml
from conftest import FAKE_KEY
from hypothesis import given
from hypothesis import strategies as st
from project_files import record, report_of, use_light_sdk

HEADER_STYLES = {
    # SDK 2.x: ANTHROPIC_API_KEY sent as Authorization: Bearer
    "bearer": "anthropic.Anthropic()",
    # ANTHROPIC_AUTH_TOKEN / auth_token: also Bearer
    "auth_token": "anthropic.Anthropic(api_key=None, auth_token=os.environ['ANTHROPIC_API_KEY'])",
    # SDK 0.x/1.x style: x-api-key
    "x_api_key": "anthropic.Anthropic(default_headers={'x-api-key': os.environ['ANTHROPIC_API_KEY']})",
    # ANTHROPIC_CUSTOM_HEADERS: a gateway key in a custom header
    "custom_headers": "anthropic.Anthropic()",
}


@pytest.mark.parametrize("style", sorted(HEADER_STYLES))
def test_recording_leaves_the_key_in_no_file(pytester, recording_env, monkeypatch, style):
    if style == "custom_headers":
        monkeypatch.setenv(
            "ANTHROPIC_CUSTOM_HEADERS", f"x-gateway-key: {FAKE_KEY}\nx-team: budget-team"
        )
    pytester.makefile(
        ".yml",
        token_budgets="endpoints:\n  e:\n    max_input_tokens_p95: 1000\n    cases: [{id: one}]\n",
    )
    pytester.makepyfile(
        test_key=f"""
        import os
        import anthropic
        import pytest

        @pytest.mark.token_budget("e")
        def test_key(budget_case):
            client = {HEADER_STYLES[style]}
            client.messages.create(
                model="claude-sonnet-4-6", max_tokens=10,
                messages=[{{"role": "user", "content": "my key is {FAKE_KEY}, keep it safe"}}],
            )
        """
    )
    result = pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    seen = recording_env.served[-1].headers
    assert FAKE_KEY in seen.get("authorization", "") + seen.get("x-api-key", "") + seen.get(
        "x-gateway-key", ""
    )
    written = [
        p for p in pytester.path.rglob("*") if p.is_file() and p.suffix in {".yaml", ".json", ".md"}
    ]
    assert any(p.suffix == ".yaml" for p in written)
    for path in written:
        text = path.read_text()
        assert "k3yMaterial" not in text, path
        assert "org-emulator-secret-id" not in text and "emulator-cookie" not in text, path
    cassette = (pytester.path / "cassettes" / "e" / "one.yaml").read_text()
    if style == "custom_headers":
        assert "budget-team" in cassette  # harmless custom headers are kept
    # the scrubbed recording still replays the request that quotes the key
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_surviving_secret_refuses_the_write(tmp_path):
    from vcr.request import Request
    from vcr.serializers import yamlserializer

    from pytest_tokenbudget.capture.vcrpy_cassettes import _persister
    from pytest_tokenbudget.errors import SecretError

    path = tmp_path / "c.yaml"
    leaky = {
        "requests": [Request("POST", "http://x/v1/messages", b"{}", {})],
        "responses": [
            {
                "status": {"code": 200, "message": "OK"},
                "headers": {},
                "body": {"string": b"token sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAA"},
            }
        ],
    }
    with pytest.raises(SecretError) as info:
        _persister("once", None).save_cassette(str(path), leaky, yamlserializer)
    assert "refusing to write" in str(info.value) and "sk-ant-api" in str(info.value)
    assert "AAAAAAAAAAAAAAAAAAAA" not in str(info.value)  # the message itself leaks nothing
    assert not path.exists() and not list(tmp_path.iterdir())


def test_corrupt_cassette_is_named_without_traceback(project, recording_env, monkeypatch):
    record(project).assert_outcomes(passed=4)
    cassette = project.path / "cassettes" / "chat" / "short.yaml"
    cassette.write_text(cassette.read_text()[:200] + "\n  - [unclosed")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*short.yaml:*corrupt cassette*re-record*"])
    assert "Traceback" not in result.stdout.str()


def test_interrupted_recording_keeps_earlier_cassettes_whole(project, recording_env):
    use_light_sdk(project.path / "app.py")  # a pytest process without the SDK's import
    project.makepyfile(
        conftest="""
        def pytest_runtest_call(item):
            if "hard" in item.nodeid:
                raise KeyboardInterrupt
        """
    )
    # in a subprocess: an in-process KeyboardInterrupt would stop this test session too
    result = project.runpytest_subprocess(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    directory = project.path / "cassettes" / "chat"
    assert sorted(p.name for p in directory.iterdir()) == ["medium.yaml", "short.yaml"]
    for path in directory.iterdir():
        assert yaml.safe_load(path.read_text())["interactions"]  # whole, loadable files
    assert not (project.path / ".token-budget" / "report.json").exists()


def test_rerecording_one_case_replaces_only_its_cassette(project, recording_env):
    record(project).assert_outcomes(passed=4)
    directory = project.path / "cassettes" / "chat"
    before = {p.name: p.read_text() for p in directory.iterdir()}
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    project.makepyfile(
        app=project.path.joinpath("app.py").read_text().replace("Be brief.", "Be short.")
    )
    result = project.runpytest(
        "--token-budget", "--token-budget-record=all", "-k", "short", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, deselected=3)
    after = {p.name: p.read_text() for p in directory.iterdir()}
    assert after["short.yaml"] != before["short.yaml"]
    assert after["short.yaml"].count("- request:") == 1  # replaced, not appended
    for name in ("medium.yaml", "hard.yaml", "streamed.yaml"):
        assert after[name] == before[name]
        assert directory.joinpath(name).stat().st_mtime_ns == stamps[name]


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--token-budget-record=sometimes", "*invalid choice: 'sometimes'*"),
        ("--token-budget-count-concurrency=many", "*invalid int value: 'many'*"),
    ],
)
def test_bad_flag_values_are_usage_errors(pytester, flag, message):
    result = pytester.runpytest("--token-budget", flag)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_unknown_model_fails_the_endpoint_with_how_to_price_it(project, recording_env, monkeypatch):
    project.makepyfile(
        app=project.path.joinpath("app.py")
        .read_text()
        .replace("claude-opus-4-7", "claude-secret-9")
    )
    record(project)
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            (
                "FAIL chat: no price for model 'claude-secret-9', called in case hard: *"
                "add its price to token_budgets.yml:"
            ),
            "  pricing:",
            "    claude-secret-9: {input: 3.0, output: 15.0}*",
        ]
    )
    assert report_of(project)["endpoints"]["chat"]["status"] == "fail"


CLOUD_CLIENTS = {
    # SigV4 with temporary credentials: `authorization` signature, `x-amz-security-token`
    "bedrock_sigv4": (
        (
            "anthropic.AnthropicBedrock(aws_region='us-east-1', aws_access_key=os.environ['AK'],"
            " aws_secret_key=os.environ['SK'], aws_session_token=os.environ['ST'])"
        ),
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ),
    # a Bedrock API key, sent as Authorization: Bearer
    "bedrock_api_key": (
        "anthropic.AnthropicBedrock(aws_region='us-east-1', api_key=os.environ['BK'])",
        "global.anthropic.claude-haiku-4-5-20251001-v1:0",
    ),
    # a Google OAuth access token, sent as Authorization: Bearer
    "vertex_token": (
        (
            "anthropic.AnthropicVertex(region='global', project_id='acme',"
            " access_token=os.environ['GT'])"
        ),
        "claude-sonnet-4-5@20250929",
    ),
}
CLOUD_SECRETS = {
    "AK": "AKIA" + "SCRUBTESTKEY" + "9876",
    "SK": "scrub/test/secret/" + "k3yMaterial" * 2,
    "ST": "IQoJb3JpZ2luX2VjE" + "k3yMaterial" * 6,
    "BK": "ABSK" + "QmVkcm9ja0FQSUtleS1" + "k3yMaterial" * 4,
    "GT": "ya29.a0" + "k3yMaterial" * 6,
}


@pytest.mark.parametrize("style", sorted(CLOUD_CLIENTS))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_cloud_credentials_reach_no_file(pytester, emulator, monkeypatch, tmp_path, style, stream):
    import anthropic.lib.aws._auth as aws_auth

    aws_auth._get_session.cache_clear()
    for name, value in CLOUD_SECRETS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("ANTHROPIC_BEDROCK_BASE_URL", emulator.base_url)
    monkeypatch.setenv("ANTHROPIC_VERTEX_BASE_URL", emulator.base_url + "/v1")
    client, model = CLOUD_CLIENTS[style]
    # The prompt quotes the Bedrock credentials; the emulator echoes them back (in a
    # stream, inside base64 event-stream chunks). A Google token would echo split in
    # words, so the Vertex prompt quotes nothing.
    quoted = [] if style == "vertex_token" else [CLOUD_SECRETS["AK"], CLOUD_SECRETS["BK"]]
    prompt = " ".join(["keys:", *quoted, CLOUD_SECRETS["ST"]])
    pytester.makefile(
        ".yml",
        token_budgets="endpoints:\n  e:\n    max_input_tokens_p95: 1000\n    cases: [{id: one}]\n",
    )
    pytester.makepyfile(
        test_cloud=f"""
        import os
        import anthropic
        import pytest

        @pytest.mark.token_budget("e")
        def test_cloud(budget_case):
            client = {client}
            kwargs = dict(model={model!r}, max_tokens=40,
                          messages=[{{"role": "user", "content": {prompt!r}}}])
            if {stream}:
                with client.messages.stream(**kwargs) as s:
                    assert "".join(s.text_stream)
            else:
                assert client.messages.create(**kwargs).content
        """
    )
    result = pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    seen = emulator.served[-1].headers
    if style == "bedrock_sigv4":
        assert seen["authorization"].startswith(
            "AWS4-HMAC-SHA256 Credential=" + CLOUD_SECRETS["AK"]
        )
        assert seen["x-amz-security-token"] == CLOUD_SECRETS["ST"]
    else:
        assert seen["authorization"] == f"Bearer {CLOUD_SECRETS['BK' if 'api' in style else 'GT']}"
    written = [
        p for p in pytester.path.rglob("*") if p.is_file() and p.suffix in {".yaml", ".json"}
    ]
    assert any(p.suffix == ".yaml" for p in written)
    for path in written:
        text = path.read_text()
        assert "k3yMaterial" not in text and "SCRUBTESTKEY" not in text, path
        assert "Signature=" not in text and "x-amz-security-token" not in text, path
    # bodies as the app would read them back: a Bedrock stream is binary in the YAML
    interactions = yaml.safe_load((pytester.path / "cassettes" / "e" / "one.yaml").read_text())
    bodies = [_readable(i["response"]) for i in interactions["interactions"]]
    assert any("Echo" in body for body in bodies)  # the echo was read, and scrubbed
    assert not any("k3yMaterial" in body or "SCRUBTESTKEY" in body for body in bodies)
    aws_auth._get_session.cache_clear()
    # the scrubbed recording replays, for any credentials
    for name in CLOUD_SECRETS:
        monkeypatch.setenv(name, "AKIAREPLAYREPLAYREPL" if name == "AK" else "replay")
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def _readable(response: dict) -> str:
    """A recorded response body as text; an AWS event stream's chunks decoded by botocore."""
    import base64
    import json

    import botocore.eventstream

    body = response["body"]["string"]
    raw = body.encode() if isinstance(body, str) else body
    if "application/vnd.amazon.eventstream" not in str(response["headers"].get("content-type")):
        return raw.decode("utf-8", "replace")
    buffer = botocore.eventstream.EventStreamBuffer()
    buffer.add_data(raw)
    return "".join(base64.b64decode(json.loads(m.payload)["bytes"]).decode() for m in buffer)


# One key of each shape scrub.py knows (built by parts, like CLOUD_SECRETS)
KEYS = {
    "anthropic": "sk-ant-" + "api03-" + "A" * 20,
    "openai": "sk-" + "proj-" + "k3yMaterial" * 3,
    "bearer": "Bearer " + "abcDEF123456789xyz",
    "google oauth": "ya29." + "a0" * 12,
    "google api key": "AIza" + "B" * 35,
    "aws key id": "AKIA" + "EXAMPLEKEY123456",
    "aws temporary key id": "ASIA" + "EXAMPLEKEY654321",
    "bedrock api key": "ABSK" + "QmVkcm9ja0FQSUtleS1hYmNk",
    "aws session token": "IQoJb3JpZ2luX2VjE" + "k3yMaterial" * 2,
    "aws session token, older": "FwoGZXIvYXdzE" + "k3yMaterial" * 2,
    "bedrock short-term key": "bedrock-api-key-" + "Yk1hdGVyaWFsMTIzNDU2Nzg5",
    "basic credentials": "Basic " + "dXNlcjpQQVNTV09SRA==",
    "github token": "ghp_" + "k3yMaterial" * 4,
    "github oauth token": "gho_" + "k3yMaterial" * 4,
    "github user token": "ghu_" + "k3yMaterial" * 4,
    "github actions token": "ghs_" + "k3yMaterial" * 4,
    "github refresh token": "ghr_" + "k3yMaterial" * 4,
    "github fine-grained token": "github_pat_" + "k3yMaterial" * 4,
    "jwt": "eyJhbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".k3yMaterialk3yMaterial",
}
# Text around a key: anything, or the characters keys are made of (so a key can form by chance).
_KEYISH = st.text(alphabet=st.sampled_from("skant-_BearIQoJAKSbdrockpiy29.z+/= \n0123456789"))


@given(
    before=_KEYISH,
    key=st.sampled_from(sorted(KEYS.values())),
    after=_KEYISH,
    noise=st.text(max_size=200),
)
def test_the_openings_prefilter_never_hides_a_key(before, key, after, noise):
    """find_secret skips its search when no key opening is in the text: that must never
    skip a text the search would flag (every key shape opens with a literal)."""
    from pytest_tokenbudget.providers.scrub import _SECRET, find_secret, scrub_text

    for text in (before + key + after, noise, before + noise + after):
        if _SECRET.search(text):
            assert find_secret(text) is not None, text
            assert scrub_text(text) != text
        else:
            assert find_secret(text) is None
    assert find_secret(f"{before} {key} {after}") is not None  # each shape is a key


def test_every_key_shape_has_an_example():
    from pytest_tokenbudget.providers.scrub import _KEY_SHAPES

    assert {opening for _, opening, _ in _KEY_SHAPES} == {
        next(o for _, o, _ in _KEY_SHAPES if key.startswith(o)) for key in KEYS.values()
    }
