"""Cassettes another recorder plays or records are measured, with no cassette of our own.

The expected numbers are read from the cassette files by hand (YAML, gzip, SSE) and priced
with the literal rates of prices.json, never with the plugin's own parser or price book.
"""

from __future__ import annotations

import gzip
import json
import shutil
from fractions import Fraction
from pathlib import Path

import paths
import pytest
import vcr
from emulator import Emulator
from project_files import APP, CASES, CONFIG, record, use_light_sdk

from pytest_tokenbudget.plugin.handle import foreign_recorder

pytest.importorskip("pytest_recording")

DATA = paths.CASSETTES / "anthropic"
# The recorded tests of the project, each with the real public cassette pytest-recording replays.
CASSETTES = {
    "test_prompt_caching": "openllmetry_prompt_caching_gzip.yaml",  # 2 calls, gzip, cache w/r
    "test_parallel_tools": "openinference_parallel_tool_use_plain.yaml",  # 1 call, async here
    "test_tools_stream": "llm-anthropic_tools_stream_multiturn.yaml",  # 2 streamed calls
}
SONNET = {"input": "3", "output": "15", "write_5m": "3.75", "write_1h": "6", "read": "0.3"}
HAIKU_3_5 = {"input": "0.8", "output": "4", "write_5m": "1", "write_1h": "1.6", "read": "0.08"}
# $ per million tokens, copied from pytest_tokenbudget/prices.json (table 2026-11-01)
RATES = {
    "claude-3-5-sonnet-20240620": SONNET,
    "claude-sonnet-4-6": SONNET,
    "claude-3-5-haiku-latest": HAIKU_3_5,
}

ASSISTANT_CONFIG = """\
endpoints:
  assistant:
    target_model: claude-sonnet-4-6
    escalation_models: [claude-opus-4-7]
    max_input_tokens_p95: 2000
    max_output_tokens_p95: 600
    requests_per_day: 1000
"""

ASSISTANT_APP = """\
import anthropic


def summarize(request):
    client = anthropic.Anthropic(max_retries=0)
    return client.messages.create(**request, extra_query={"beta": "prompt_caching"})


async def plan_tools(request):
    async with anthropic.AsyncAnthropic(max_retries=0) as client:
        return await client.messages.create(**request)


def chat_with_tools(request):
    client = anthropic.Anthropic(max_retries=0)
    request = dict(request)
    extra = {"temperature": request.pop("temperature")}  # not a parameter of this SDK
    with client.messages.create(**request, extra_body=extra) as stream:  # stream: true
        return [event.type for event in stream]
"""

# The team's tests: pytest-recording drives them; their requests are the recorded ones.
ASSISTANT_TESTS = """\
import asyncio
import dataclasses
import json
import pathlib

import pytest

import app

HERE = pathlib.Path(__file__).parent
REQUESTS = json.loads((HERE / "requests.json").read_text())
EXPECTED = json.loads((HERE / "expected_usage.json").read_text())


def recorded_requests(name):
    return REQUESTS[name]


def usage_of(token_budget):
    # the token counts (Usage also carries web searches, speed and inference_geo)
    return [{k: v for k, v in dataclasses.asdict(call.usage).items() if k.endswith("_tokens")}
            for call in token_budget.calls]


@pytest.mark.vcr
@pytest.mark.token_budget("assistant")
def test_prompt_caching(token_budget):
    for request in recorded_requests("test_prompt_caching"):
        assert app.summarize(request).content
    assert usage_of(token_budget) == EXPECTED["test_prompt_caching"]


@pytest.mark.vcr
@pytest.mark.token_budget("assistant")
def test_parallel_tools(token_budget):
    (request,) = recorded_requests("test_parallel_tools")
    message = asyncio.run(app.plan_tools(request))
    assert [block.type for block in message.content].count("tool_use") == 2
    assert usage_of(token_budget) == EXPECTED["test_parallel_tools"]


@pytest.mark.vcr
@pytest.mark.token_budget("assistant")
def test_tools_stream(token_budget):
    for request in recorded_requests("test_tools_stream"):
        assert app.chat_with_tools(request)[-1] == "message_stop"
    assert usage_of(token_budget) == EXPECTED["test_tools_stream"]
"""


# -- reading a cassette by hand ----------------------------------------------------------
def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_bytes())


def recorded_usage(path: Path) -> list[tuple[str, dict[str, int]]]:
    """(model, usage split as priced) of every interaction in a vcrpy cassette."""
    calls = []
    for interaction in _yaml(path)["interactions"]:
        response = interaction["response"]
        body = response["body"]["string"]
        body = body.encode("utf-8") if isinstance(body, str) else body
        headers = {k.lower(): v for k, v in response["headers"].items()}
        if "gzip" in headers.get("content-encoding", []):
            body = gzip.decompress(body)
        text = body.decode("utf-8")
        if text.lstrip().startswith("{"):
            message = json.loads(text)
            usage = dict(message["usage"])
        else:  # server-sent events: usage in message_start, output in the last message_delta
            events = [json.loads(line[5:]) for line in text.splitlines() if line[:5] == "data:"]
            message = next(e["message"] for e in events if e["type"] == "message_start")
            usage = dict(message["usage"])
            for event in events:
                if event["type"] == "message_delta":
                    usage.update({k: v for k, v in event["usage"].items() if v is not None})
        written = usage.get("cache_creation_input_tokens") or 0
        split = usage.get("cache_creation") or {"ephemeral_5m_input_tokens": written}
        calls.append(
            (
                message["model"],
                {
                    "input_tokens": usage["input_tokens"],
                    "output_tokens": usage["output_tokens"],
                    "cache_write_5m_tokens": split.get("ephemeral_5m_input_tokens", 0),
                    "cache_write_1h_tokens": split.get("ephemeral_1h_input_tokens", 0),
                    "cache_read_tokens": usage.get("cache_read_input_tokens") or 0,
                },
            )
        )
    return calls


def cost(model: str, usage: dict[str, int]) -> Fraction:
    rate = {k: Fraction(v) for k, v in RATES[model].items()}
    dollars = (
        usage["input_tokens"] * rate["input"]
        + usage["cache_write_5m_tokens"] * rate["write_5m"]
        + usage["cache_write_1h_tokens"] * rate["write_1h"]
        + usage["cache_read_tokens"] * rate["read"]
        + usage["output_tokens"] * rate["output"]
    )
    return dollars / 1_000_000


def prompt(usage: dict[str, int]) -> int:
    return (
        usage["input_tokens"]
        + usage["cache_write_5m_tokens"]
        + usage["cache_write_1h_tokens"]
        + usage["cache_read_tokens"]
    )


def nearest_rank(values: list[int], pct: int) -> int:
    ordered = sorted(values)
    return ordered[-(-pct * len(ordered) // 100) - 1]


def dollars(value: Fraction) -> float:
    return float(round(value, 9))


def report_of(project: pytest.Pytester) -> dict:
    return json.loads((project.path / ".token-budget" / "report.json").read_text())


# -- pytest-recording replays real public cassettes ---------------------------------------
@pytest.fixture
def assistant(pytester, ci_env, monkeypatch):
    """A project whose only cassettes are pytest-recording's, copied from real projects."""
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)  # the SDK goes to api.anthropic.com
    pytester.makefile(".yml", token_budgets=ASSISTANT_CONFIG)
    pytester.makepyfile(app=ASSISTANT_APP)
    tests = pytester.mkdir("tests")
    (tests / "test_assistant.py").write_text(ASSISTANT_TESTS)
    cassettes = tests / "cassettes" / "test_assistant"
    cassettes.mkdir(parents=True)
    expected, requests = {}, {}
    for test, source in CASSETTES.items():
        shutil.copyfile(DATA / source, cassettes / f"{test}.yaml")
        expected[test] = recorded_usage(DATA / source)
        requests[test] = [
            json.loads(i["request"]["body"]) for i in _yaml(DATA / source)["interactions"]
        ]
    (tests / "requests.json").write_text(json.dumps(requests))
    (tests / "expected_usage.json").write_text(
        json.dumps({test: [usage for _, usage in calls] for test, calls in expected.items()})
    )
    pytester.syspathinsert()
    return pytester, expected


def test_pytest_recording_cassettes_are_measured_without_re_recording(assistant):
    project, expected = assistant
    before = {p: p.read_bytes() for p in (project.path / "tests" / "cassettes").rglob("*.yaml")}

    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=3)  # each test also checked its own calls' exact usage
    calls = [call for test in CASSETTES for call in expected[test]]
    assert len(calls) == 5
    inputs = [prompt(usage) for _, usage in calls]
    outputs = [usage["output_tokens"] for _, usage in calls]
    total = sum((cost(model, usage) for model, usage in calls), Fraction(0))
    endpoint = report_of(project)["endpoints"]["assistant"]
    assert endpoint["status"] == "pass", endpoint["problems"]
    assert (endpoint["calls"], endpoint["cases"]) == (5, 3)
    metrics = endpoint["metrics"]
    for pct in (50, 95):
        assert metrics[f"input_tokens_p{pct}"] == nearest_rank(inputs, pct)
        assert metrics[f"output_tokens_p{pct}"] == nearest_rank(outputs, pct)
    assert (metrics["input_tokens_p95"], metrics["output_tokens_p95"]) == (1167, 230)
    assert metrics["input_tokens_max"] == max(inputs)
    assert metrics["cost_per_call_usd"] == dollars(total / 5)
    assert metrics["cost_per_request_usd"] == dollars(total / 3)
    assert metrics["monthly_cost_usd"] == dollars(total / 3 * 1000 * 30)
    reads = sum(usage["cache_read_tokens"] for _, usage in calls)
    assert metrics["cache_hit_rate"] == float(round(Fraction(reads, sum(inputs)), 6))
    for test in CASSETTES:
        case = endpoint["per_case"][f"tests/test_assistant/{test}"]  # one case per test item
        assert case["calls"] == len(expected[test])
        assert case["input_tokens"] == sum(prompt(u) for _, u in expected[test])
        assert case["output_tokens"] == sum(u["output_tokens"] for _, u in expected[test])
        assert case["cost_usd"] == dollars(
            sum((cost(m, u) for m, u in expected[test]), Fraction(0))
        )
    assert report_of(project)["totals"]["cost_usd"] == dollars(total)
    assert endpoint["recorders"] == ["pytest-recording"]
    # no cassette of ours asked for or written, and pytest-recording's left as they were
    assert "no recording" not in result.stdout.str()
    assert not (project.path / "cassettes").exists()
    assert {p: p.read_bytes() for p in before} == before


def test_the_same_report_under_xdist(assistant):
    project, _ = assistant
    project.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=3)
    serial = report_of(project)["endpoints"]
    parallel = project.runpytest_subprocess("--token-budget", "-p", "no:cacheprovider", "-n", "2")
    parallel.assert_outcomes(passed=3)
    assert report_of(project)["endpoints"] == serial
    assert serial["assistant"]["recorders"] == ["pytest-recording"]


def test_a_missing_pytest_recording_cassette_is_its_failure_not_ours(assistant):
    project, _ = assistant
    (project.path / "tests" / "cassettes" / "test_assistant" / "test_tools_stream.yaml").unlink()

    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str()
    assert "CannotOverwriteExistingCassetteException" in text or "Connection error" in text
    assert "--token-budget-record" not in text  # we do not ask for a cassette of our own
    assert not (project.path / "cassettes").exists()


# -- pytest-recording records, against the emulator ---------------------------------------
RECORDED_TESTS = """\
import pytest
from app import reply


@pytest.fixture(scope="module")
def vcr_config():
    # the team's choice: match without host and port, so the emulator's recordings replay
    # for code that targets the real API
    return {"filter_headers": ["authorization", "x-api-key"], "match_on": ["method", "path", "query"]}


@pytest.mark.vcr
@pytest.mark.token_budget("chat")
def test_chat(budget_case):
    assert reply(
        budget_case["question"],
        escalate=budget_case.get("escalate", False),
        stream=budget_case.get("stream", False),
    )
"""


@pytest.fixture
def chat(pytester):
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=4000), cases=CASES)
    pytester.makepyfile(app=APP)
    tests = pytester.mkdir("tests")
    (tests / "test_chat.py").write_text(RECORDED_TESTS)
    pytester.syspathinsert()
    return pytester


def test_what_pytest_recording_records_is_measured_and_then_replayed(chat, monkeypatch):
    with Emulator(gzip_responses=True) as emulator:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-" + "x" * 40)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
        # our --token-budget-record stays at none: pytest-recording owns this recording
        first = chat.runpytest("--token-budget", "--record-mode=once", "-p", "no:cacheprovider")
        first.assert_outcomes(passed=4)
        assert len(emulator.served) == 5
        served = len(emulator.served)

        recorded = chat.path / "tests" / "cassettes" / "test_chat"
        assert sorted(p.name for p in recorded.iterdir()) == [
            f"test_chat[{case}].yaml" for case in ("hard", "medium", "short", "streamed")
        ]
        endpoint = report_of(chat)["endpoints"]["chat"]
        assert endpoint["status"] == "pass", endpoint["problems"]
        assert endpoint["calls"] == 5 and endpoint["recorders"] == ["pytest-recording"]
        for case in ("hard", "medium", "short", "streamed"):
            calls = recorded_usage(recorded / f"test_chat[{case}].yaml")
            per_case = endpoint["per_case"][case]
            assert per_case["calls"] == len(calls)
            assert per_case["input_tokens"] == sum(prompt(u) for _, u in calls)
            assert per_case["output_tokens"] == sum(u["output_tokens"] for _, u in calls)
        assert not (chat.path / "cassettes").exists()

        monkeypatch.delenv("ANTHROPIC_API_KEY")
        monkeypatch.delenv("ANTHROPIC_BASE_URL")
        replay = chat.runpytest(
            "--token-budget", "--record-mode=none", "--block-network", "-p", "no:cacheprovider"
        )
        replay.assert_outcomes(passed=4)
        assert len(emulator.served) == served
        assert report_of(chat)["endpoints"]["chat"] == endpoint


# -- the team's own vcr.use_cassette -----------------------------------------------------
PLAIN_VCR_TESTS = """\
import dataclasses
import json
import pathlib

import anthropic
import pytest
import vcr
import yaml

CASSETTE = pathlib.Path(__file__).parent / "recorded" / "tools.yaml"
REQUEST = json.loads(yaml.safe_load(CASSETTE.read_text())["interactions"][0]["request"]["body"])


{fixture}


@pytest.mark.token_budget("assistant")
def test_tools(token_budget):
    {opened}
        message = anthropic.Anthropic(max_retries=0).messages.create(**REQUEST)
    assert message.stop_reason == "tool_use"
    tokens = [{{k: v for k, v in dataclasses.asdict(c.usage).items() if k.endswith("_tokens")}}
              for c in token_budget.calls]
    assert tokens == {expected}
"""

IN_THE_TEST = ("", 'with vcr.use_cassette(str(CASSETTE), record_mode="none"):')
BEFORE_THE_TEST = (
    """\
@pytest.fixture(scope="module", autouse=True)
def cassette():
    with vcr.use_cassette(str(CASSETTE), record_mode="none") as opened:
        yield opened
""",
    "if True:",
)


@pytest.mark.parametrize(
    "fixture, opened",
    [IN_THE_TEST, BEFORE_THE_TEST],
    ids=["use_cassette-in-the-test", "cassette-opened-before-the-capture"],
)
@pytest.mark.parametrize("plugins", [(), ("-p", "no:recording")], ids=["", "no-pytest-recording"])
def test_a_plain_vcrpy_cassette_is_measured(
    pytester, ci_env, monkeypatch, fixture, opened, plugins
):
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    source = DATA / "openinference_parallel_tool_use_plain.yaml"
    [(_, usage)] = recorded_usage(source)
    pytester.makefile(".yml", token_budgets=ASSISTANT_CONFIG)
    (pytester.mkdir("recorded") / "tools.yaml").write_bytes(source.read_bytes())
    pytester.makepyfile(
        test_plain=PLAIN_VCR_TESTS.format(fixture=fixture, opened=opened, expected=[usage])
    )

    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider", *plugins)

    result.assert_outcomes(passed=1)
    endpoint = report_of(pytester)["endpoints"]["assistant"]
    assert endpoint["status"] == "pass", endpoint["problems"]
    assert endpoint["per_case"]["test_plain/test_tools"]["input_tokens"] == prompt(usage) == 721
    assert endpoint["per_case"]["test_plain/test_tools"]["cost_usd"] == dollars(
        cost("claude-sonnet-4-6", usage)
    )
    assert endpoint["recorders"] == ["vcrpy"]
    assert not (pytester.path / "cassettes").exists()


# -- replay imports vcrpy only when something else did ------------------------------------
# These run in a fresh interpreter with pytest-recording off: in this one, vcrpy is imported.
MODULES_PROBE = """\
import json, sys


def pytest_sessionfinish(session):
    with open("modules.json", "w") as f:
        json.dump(sorted(sys.modules), f)
"""


def _plain_vcr_project(pytester, *, import_in_the_test: bool) -> None:
    source = DATA / "openinference_parallel_tool_use_plain.yaml"
    [(_, usage)] = recorded_usage(source)
    pytester.makefile(".yml", token_budgets=ASSISTANT_CONFIG)
    (pytester.mkdir("recorded") / "tools.yaml").write_bytes(source.read_bytes())
    opened = IN_THE_TEST[1]
    tests = PLAIN_VCR_TESTS
    if import_in_the_test:
        tests = tests.replace("import vcr\n", "")
        opened = "import vcr\n\n    " + opened
    pytester.makepyfile(test_plain=tests.format(fixture="", opened=opened, expected=[usage]))
    pytester.makepyfile(modules_probe=MODULES_PROBE)


SUBPROCESS = (
    "--token-budget",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:recording",
    "-p",
    "modules_probe",
)


def test_replay_with_no_vcrpy_in_use_does_not_import_it(project, recording_env, monkeypatch):
    use_light_sdk(project.path / "app.py")  # a pytest process without the SDK's import
    project.makepyfile(modules_probe=MODULES_PROBE)
    record(project).assert_outcomes(passed=4)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    served = len(recording_env.served)
    project.runpytest_subprocess(*SUBPROCESS).assert_outcomes(passed=4)
    assert len(recording_env.served) == served
    modules = set(json.loads((project.path / "modules.json").read_text()))
    assert "pytest_tokenbudget.capture.replay" in modules
    assert "vcr" not in modules
    assert report_of(project)["endpoints"]["chat"]["recorders"] == ["pytest-tokenbudget"]


def test_vcrpy_imported_at_module_level_is_observed_without_pytest_recording(
    pytester, ci_env, monkeypatch
):
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    _plain_vcr_project(pytester, import_in_the_test=False)
    pytester.runpytest_subprocess(*SUBPROCESS).assert_outcomes(passed=1)
    endpoint = report_of(pytester)["endpoints"]["assistant"]
    assert endpoint["recorders"] == ["vcrpy"]
    assert endpoint["per_case"]["test_plain/test_tools"]["input_tokens"] == 721


def test_vcrpy_first_imported_inside_a_test_is_one_clear_failure(pytester, ci_env, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    _plain_vcr_project(pytester, import_in_the_test=True)
    result = pytester.runpytest_subprocess(*SUBPROCESS)
    result.assert_outcomes(failed=1)
    expected = (
        "*vcrpy was first imported inside this test, so its cassette could not be measured:"
        " import vcr at the top of the test module (or in conftest.py)*"
    )
    result.stdout.fnmatch_lines([expected])
    assert "Traceback" not in result.stdout.str()


# -- which recorder drives a test ---------------------------------------------------------
def _cassette() -> object:
    with vcr.use_cassette(str(DATA / "openinference_parallel_tool_use_plain.yaml")) as cassette:
        return cassette


@pytest.mark.parametrize(
    "plugins, marked, fixturenames, expected",
    [
        ({"recording"}, True, ["vcr"], "pytest-recording"),
        ({"vcr"}, True, [], "pytest-vcr"),
        ({"vcr"}, False, ["vcr_cassette"], "pytest-vcr"),  # asked for without the marker
        ({"vcr"}, False, ["vcr"], None),  # pytest-vcr's `vcr` is a VCR, not a cassette
        (set(), True, ["vcr"], None),  # a `vcr` marker or fixture of the project's own
    ],
)
def test_foreign_recorder(plugins, marked, fixturenames, expected):
    cassette = _cassette()
    fixtures = {"vcr": cassette, "vcr_cassette": cassette}
    found = foreign_recorder(marked, fixturenames, plugins.__contains__, fixtures.__getitem__)
    assert (found and found.name) == expected
    if found:
        assert found.cassette is cassette


@pytest.mark.parametrize("value", [None, "not a cassette"])
def test_no_cassette_drives_nothing(value):
    # pytest-recording's `vcr` fixture holds None for an unmarked test or --disable-recording
    has_plugin = {"recording"}.__contains__
    assert foreign_recorder(True, ["vcr"], has_plugin, lambda name: value) is None
    assert foreign_recorder(False, ["vcr"], has_plugin, lambda name: value) is None
