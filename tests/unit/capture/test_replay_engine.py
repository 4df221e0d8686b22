"""The replay engine (replay.py) against vcrpy: the same cassettes give the same report.

`--token-budget-record=once` with every cassette present is vcrpy playing them (it
records only what is missing, and nothing is); `--token-budget` is the engine. Both
reports must be equal byte for byte, on the bundled example and on a project that
records sync, async and streamed calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paths import DATA, REPO
from project_files import CONFIG, copy_example, record

from pytest_tokenbudget.capture.replay import RecordedRequest, Recording
from pytest_tokenbudget.errors import CassetteError

ROOT = REPO
EXAMPLE = ROOT / "examples" / "support_bot"

ASYNC_TEST = """\
import asyncio

import anthropic
import pytest


@pytest.mark.token_budget("chat_async")
def test_async_and_twice(budget_case):
    async def ask():
        client = anthropic.AsyncAnthropic(max_retries=0)
        kwargs = dict(model="claude-sonnet-4-6", max_tokens=20,
                      messages=[{"role": "user", "content": budget_case["question"]}])
        first = await client.messages.create(**kwargs)
        again = await client.messages.create(**kwargs)  # the same request twice: played in order
        return first, again

    first, again = asyncio.run(ask())
    assert first.content and again.content
"""


def _both_reports(project, monkeypatch) -> tuple[bytes, bytes]:
    report = project.path / ".token-budget" / "report.json"
    engine = project.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert engine.ret == 0, engine.stdout.str()
    by_engine = report.read_bytes()
    # recording modes take no placeholder key; the API is unreachable (no base URL)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-never-sent")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    vcrpy = project.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    assert vcrpy.ret == 0, vcrpy.stdout.str()
    return by_engine, report.read_bytes()


@pytest.mark.slow
def test_the_example_replays_to_the_same_report(pytester, ci_env, monkeypatch):
    copy_example(pytester.path)
    pytester.syspathinsert()
    by_engine, by_vcrpy = _both_reports(pytester, monkeypatch)
    assert by_engine == by_vcrpy


GC_PROBE = """
import gc, json

SEEN = {}

def pytest_tokenbudget_report(report, config):
    SEEN["report"] = gc.isenabled()

def pytest_unconfigure(config):
    SEEN["after"] = gc.isenabled()
    with open("gc_seen.json", "w") as f:
        json.dump(SEEN, f)
"""


def test_the_report_is_built_with_the_collector_paused(pytester, ci_env):
    """The end of a run builds many objects and no cycles: the garbage collector is paused
    while the report is built (no full collection over the whole session there), and on
    again afterwards."""
    copy_example(pytester.path)
    pytester.makeconftest(GC_PROBE)
    pytester.syspathinsert()
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    seen = json.loads((pytester.path / "gc_seen.json").read_text())
    assert seen == {"report": False, "after": True}


def test_sync_async_and_streams_replay_to_the_same_report(project, recording_env, monkeypatch):
    config = CONFIG.format(input_p95=4000)
    second = config.replace("  chat:", "  chat_async:").split("endpoints:\n")[1]
    project.makefile(".yml", token_budgets=config + second)
    project.makepyfile(test_async=ASYNC_TEST)
    record(project).assert_outcomes(passed=8)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    served = len(recording_env.served)
    by_engine, by_vcrpy = _both_reports(project, monkeypatch)
    assert by_engine == by_vcrpy
    assert len(recording_env.served) == served  # neither reached the API


def test_a_recording_plays_once_in_order(tmp_path):
    cassette = tmp_path / "case.yaml"
    cassette.write_text(
        "interactions:\n"
        + "".join(
            f"- request: {{method: POST, uri: 'https://api.anthropic.com/v1/messages',"
            f" body: '{{\"q\": 1}}', headers: {{}}}}\n"
            f"  response: {{status: {{code: 200, message: OK}}, headers: {{}},"
            f" body: {{string: 'answer {n}'}}}}\n"
            for n in (1, 2)
        )
        + "version: 1\n"
    )
    recording = Recording.load(cassette)
    sent = RecordedRequest("POST", "https://api.anthropic.com/v1/messages", b'{"q":1}')
    assert [recording.play(sent), recording.play(sent), recording.play(sent)] == [0, 1, None]
    assert recording.data[1][1]["body"]["string"] == b"answer 2"


def test_byte_for_byte_first_then_canonical_json_each_recording_once(tmp_path):
    cassette = tmp_path / "case.yaml"
    bodies = ['{"q": 1}', '{"q":1}']  # the same request, serialized two ways
    cassette.write_text(
        "interactions:\n"
        + "".join(
            f"- request: {{method: POST, uri: 'https://api.anthropic.com/v1/messages',"
            f" body: '{body}', headers: {{}}}}\n"
            f"  response: {{status: {{code: 200, message: OK}}, headers: {{}},"
            f" body: {{string: 'answer {n}'}}}}\n"
            for n, body in enumerate(bodies)
        )
        + "version: 1\n"
    )
    recording = Recording.load(cassette)
    sent = RecordedRequest("POST", "http://127.0.0.1:8080/v1/messages", b'{"q":1}')
    # the exact recording first, then the other one (found by canonical JSON), then none
    assert [recording.play(sent), recording.play(sent), recording.play(sent)] == [1, 0, None]
    assert recording.play(RecordedRequest("POST", "/v1/messages", b'{"q": 1}')) is None


ANCHORED = """\
interactions:
- request: &ask
    body: !!python/unicode '{"q":1}'
    headers: {x-api-key: [never-read]}
    method: POST
    uri: https://api.anthropic.com/v1/messages
  response: &answer
    status: {code: 200, message: OK}
    headers: {content-type: [application/json], request-id: req_1}
    body: {string: !!binary eyJvayI6IDF9}
- request: {<<: *ask, body: '{"q":2}'}
  response: {<<: *answer, status: {code: 201, message: Created}}
- <<: {request: *ask, response: *answer}
version: 1
"""


def test_anchors_merge_keys_and_old_vcrpy_tags_read_as_yaml_defines_them(tmp_path):
    cassette = tmp_path / "case.yaml"
    cassette.write_text(ANCHORED)
    data = Recording.load(cassette).data
    uri = "https://api.anthropic.com/v1/messages"
    headers = {"content-type": ["application/json"], "request-id": ["req_1"]}
    assert [(r.method, r.uri, r.body) for r, _ in data] == [
        ("POST", uri, b'{"q":1}'),
        ("POST", uri, b'{"q":2}'),
        ("POST", uri, b'{"q":1}'),
    ]
    assert [response for _, response in data] == [
        {
            "status": {"code": 200, "message": "OK"},
            "headers": headers,
            "body": {"string": b'{"ok": 1}'},
        },
        {
            "status": {"code": 201, "message": "Created"},
            "headers": headers,
            "body": {"string": b'{"ok": 1}'},
        },
        {
            "status": {"code": 200, "message": "OK"},
            "headers": headers,
            "body": {"string": b'{"ok": 1}'},
        },
    ]


SCALARS = """\
interactions:
- request: {body: null, method: POST, uri: 'https://x/v1/messages', headers: {a: [b]}}
  response:
    status:
      code: 0x1F4
      message: ~
      odd: {1: an int key (the constructor builds this mapping)}
      n: ['010', 010, 0, 12, 1_000, 1.5, true, 2026-01-01, !!str 7]
    headers: {a: [b]}
    body: {string: !!binary eyJvayI6IDF9}
"""


def _as_yaml_load_reads(path: Path) -> list:
    import yaml

    from pytest_tokenbudget.capture import replay

    document = yaml.load(path.read_text(encoding="utf-8"), Loader=replay._loader())
    return [replay._interaction(item) for item in document["interactions"]]


def test_every_scalar_reads_as_yaml_load_reads_it(tmp_path):
    cassette = tmp_path / "case.yaml"
    cassette.write_text(SCALARS)
    data = Recording.load(cassette).data
    assert data == _as_yaml_load_reads(cassette)
    status = data[0][1]["status"]
    assert (status["code"], status["message"]) == (500, None)
    assert status["odd"] == {1: "an int key (the constructor builds this mapping)"}
    assert status["n"][:4] == ["010", 8, 0, 12]  # YAML 1.1: 010 is octal


CASSETTES = sorted(
    path
    for folder in (DATA, ROOT / "examples")
    for path in folder.rglob("*.y*ml")
    if path.read_text(encoding="utf-8").startswith("interactions:")
)


def test_every_cassette_in_the_repository_reads_as_yaml_load_reads_it():
    assert len(CASSETTES) >= 30
    for path in CASSETTES:
        assert Recording.load(path).data == _as_yaml_load_reads(path), path


def test_request_headers_are_cut_before_parsing_and_nothing_else_changes():
    """Replay never reads request headers (it matches on method, URL and body): in vcrpy's
    layout their lines are cut before libyaml builds its nodes, and the rest reads alike."""
    from pytest_tokenbudget.capture import replay

    example = [p for p in CASSETTES if "examples" in p.parts]
    assert example
    for path in example:
        text = path.read_text(encoding="utf-8")
        lean = replay._without_request_headers(text)
        assert "user-agent" in text and "user-agent" not in lean, path
        assert replay._parse(lean) == _as_yaml_load_reads(path), path


HEADER_ANCHOR = """\
interactions:
- request:
    body: '{}'
    headers:
      x-shared:
      - &shared one value
    method: POST
    uri: https://api.anthropic.com/v1/messages
  response:
    body: {string: '{}'}
    headers:
      x-shared:
      - *shared
    status: {code: 200, message: OK}
"""


def test_an_anchor_in_the_request_headers_is_still_read(tmp_path):
    """Cut headers that define an anchor a response uses: the whole text is parsed."""
    cassette = tmp_path / "case.yaml"
    cassette.write_text(HEADER_ANCHOR)
    [(_, response)] = Recording.load(cassette).data
    assert response["headers"] == {"x-shared": ["one value"]}
    assert Recording.load(cassette).data == _as_yaml_load_reads(cassette)


def test_a_corrupt_cassette_is_named_at_its_own_line_after_cut_headers(tmp_path):
    cassette = tmp_path / "case.yaml"
    cassette.write_text(HEADER_ANCHOR.replace("status: {code: 200", "status: {code: [200"))
    with pytest.raises(CassetteError) as caught:
        Recording.load(cassette)
    assert "case.yaml:14: corrupt cassette (YAML" in str(caught.value)  # 11 in the cut text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("interactions: [unclosed", "case.yaml:2: corrupt cassette (YAML"),
        ("interactions: 3\n", "not a vcrpy cassette"),
    ],
)
def test_bad_cassettes_are_one_clear_error(tmp_path, text, expected):
    cassette = tmp_path / "case.yaml"
    cassette.write_text(text)
    with pytest.raises(CassetteError) as caught:
        Recording.load(cassette)
    assert expected in str(caught.value)


def test_a_missing_cassette_has_no_recording(tmp_path):
    assert Recording.load(tmp_path / "absent.yaml").data == []
