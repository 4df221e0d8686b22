"""Real open-source test suites: pytest-recording replays their cassettes, the plugin measures them.

Three projects whose pytest suites replay Claude traffic from committed pytest-recording
cassettes (provenance, commits, SDK pins and licences: tests/data/real_suites/README.md):

* ecologits (genai-impact/ecologits), pinned to ``anthropic (>=0.45.2,<0.46.0)``: sync and
  async ``messages.create`` and ``messages.stream``; gzip JSON bodies stored as ``!!binary``.
* openinference (Arize-ai/openinference), tests pinned to ``anthropic==0.84.0``: create,
  ``stream=True``, the async stream helper, parallel tools, a parametrized test (two items, two
  cassettes), a cache write then a cache read, ``beta.messages`` (``?beta=true``); cassettes
  with ``headers: {}``; its ``vcr_config`` says ``record_mode: once``.
* llm-anthropic (simonw/llm-anthropic), ``anthropic>=0.96.0``: everything through the
  ``messages.stream`` helper, sync and async, tools (a two-call tool loop), extended thinking;
  ``decode_compressed_response`` over cassettes some of which hold gzip bodies.

Only the cassettes are theirs. The test modules below are written here: each makes the call
the project's test makes (same model, same kind of call, sync or async), through the SDK
installed, and pytest-recording replays the project's cassette for it (vcrpy's default
matching, method and URI, as none of the three projects sets ``match_on``). The expected
numbers are recomputed from the cassette YAML by this file's own few lines (gzip, SSE), never by
the plugin's parser, and priced with the published rates written out below.

The calls are ones the anthropic SDK has made the same way from 0.x to 2.x (no 2.x-only
helper or parameter), so the same tests run against the old SDKs these projects pin.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import paths
import pytest
import yaml

pytest.importorskip("pytest_recording")

DATA = paths.DATA / "real_suites"

# $ per million tokens: Anthropic's published list prices
# (https://platform.claude.com/docs/en/about-claude/pricing, standard tier): input, output,
# 5-minute cache write (1.25x input), 1-hour cache write (2x input), cache read (0.1x input).
# Written out here, not read from pytest_tokenbudget/prices.json.
SONNET = {"input": "3", "output": "15", "write_5m": "3.75", "write_1h": "6", "read": "0.30"}
HAIKU_4_5 = {"input": "1", "output": "5", "write_5m": "1.25", "write_1h": "2", "read": "0.10"}
OPUS_4_6 = {"input": "5", "output": "25", "write_5m": "6.25", "write_1h": "10", "read": "0.50"}
RATES = {  # by the model the response names
    "claude-3-5-sonnet-20240620": SONNET,  # Claude Sonnet 3.5
    "claude-3-7-sonnet-20250219": SONNET,  # Claude Sonnet 3.7
    "claude-sonnet-4-5-20250929": SONNET,  # Claude Sonnet 4.5
    "claude-sonnet-4-6": SONNET,  # Claude Sonnet 4.6
    "claude-haiku-4-5-20251001": HAIKU_4_5,  # Claude Haiku 4.5
    "claude-opus-4-6": OPUS_4_6,  # Claude Opus 4.6
}
REQUESTS_PER_DAY = 1000

# A line `# <budget>` in a module below becomes the budget decorator (or goes); a line
# `# <module budget>` becomes a module-level `pytestmark` (or goes).
BUDGET = "# <budget>"
MODULE_BUDGET = "# <module budget>"

# -- the three suites, as this file writes them ------------------------------------------
ECOLOGITS_CONFTEST = """\
import os

import pytest


@pytest.fixture(scope="session")
def vcr_config():
    return {"filter_headers": ["authorization", "api-key", "x-api-key"]}


@pytest.fixture(autouse=True)
def anthropic_key(monkeypatch):
    # the project's tests build Anthropic() from the environment, with a fake key when unset
    if not os.environ.get("ANTHROPIC_API_KEY"):
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-api-key")
"""

ECOLOGITS_TESTS = """\
import asyncio

import pytest
from anthropic import Anthropic, AsyncAnthropic

# <module budget>
SONNET_3_5 = "claude-3-5-sonnet-20240620"
HELLO = [{"role": "user", "content": "Hello World!"}]


@pytest.mark.vcr
# <budget>
def test_anthropic_chat():
    reply = Anthropic().messages.create(model=SONNET_3_5, max_tokens=100, messages=HELLO)
    assert reply.content[0].text and reply.model == SONNET_3_5


@pytest.mark.vcr
# <budget>
def test_anthropic_async_chat():
    async def chat():
        async with AsyncAnthropic() as client:
            return await client.messages.create(model=SONNET_3_5, max_tokens=100, messages=HELLO)

    assert asyncio.run(chat()).content[0].text


@pytest.mark.vcr
# <budget>
def test_anthropic_stream_chat():
    with Anthropic().messages.stream(model=SONNET_3_5, max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("Hello")


@pytest.mark.vcr
# <budget>
def test_anthropic_async_stream_chat():
    async def chat():
        async with AsyncAnthropic() as client:
            async with client.messages.stream(
                model=SONNET_3_5, max_tokens=100, messages=HELLO
            ) as stream:
                return [text async for text in stream.text_stream]

    assert "".join(asyncio.run(chat()))
"""

OPENINFERENCE_CONFTEST = """\
import pytest


def no_request_headers(request):
    request.headers.clear()
    return request


def no_response_headers(response):
    return dict(response, headers={})


@pytest.fixture(scope="session")
def vcr_config():
    # the project's settings: no headers kept either way, bodies decoded, record once
    return {
        "before_record_request": no_request_headers,
        "before_record_response": no_response_headers,
        "decode_compressed_response": True,
        "record_mode": "once",
    }
"""

OPENINFERENCE_TESTS = """\
import asyncio
import random
import string

import pytest
from anthropic import Anthropic, AsyncAnthropic
from anthropic.types import TextBlock, ToolUseBlock

# <module budget>
KEY = "sk-ant-fake"
SONNET_4_6 = "claude-sonnet-4-6"
CAPITAL = [{"role": "user", "content": "What's the capital of France?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}
CLOCK = {
    "name": "get_time",
    "description": "Get the current time in a given time zone",
    "input_schema": {
        "type": "object",
        "properties": {"timezone": {"type": "string"}},
        "required": ["timezone"],
    },
}
SAID = (
    "Certainly! I can help you get the current weather information for San Francisco in"
    " Fahrenheit. To do this, I'll use the get_weather function. Let me fetch that information"
    " for you right away."
)
CALL = {"id": "toolu_01KBqpqR73qWGsMaW3vBzEjz", "name": "get_weather",
        "input": {"location": "San Francisco, CA", "unit": "fahrenheit"}}


@pytest.mark.vcr
# <budget>
def test_anthropic_instrumentation_messages():
    reply = Anthropic(api_key=KEY).messages.create(
        model=SONNET_4_6, max_tokens=1024, messages=CAPITAL)
    assert "Paris" in reply.content[0].text


@pytest.mark.vcr
# <budget>
def test_anthropic_instrumentation_async_messages():
    async def ask():
        async with AsyncAnthropic(api_key=KEY) as client:
            return await client.messages.create(model=SONNET_4_6, max_tokens=1024, messages=CAPITAL)

    assert "Paris" in asyncio.run(ask()).content[0].text


@pytest.mark.vcr
# <budget>
def test_anthropic_instrumentation_messages_streaming():
    events = Anthropic(api_key=KEY).messages.create(
        model=SONNET_4_6,
        max_tokens=1024,
        messages=[{"role": "user", "content": "Why is the sky blue? Answer in 5 words or less"}],
        stream=True,
    )
    assert [event.type for event in events][-1] == "message_stop"


@pytest.mark.vcr
# <budget>
def test_anthropic_instrumentation_async_stream_message():
    async def ask():
        async with AsyncAnthropic(api_key=KEY) as client:
            async with client.messages.stream(
                model=SONNET_4_6, max_tokens=1024, messages=CAPITAL
            ) as stream:
                return "".join([text async for text in stream.text_stream])

    assert "Paris" in asyncio.run(ask())


@pytest.mark.vcr
# <budget>
def test_anthropic_instrumentation_multiple_tool_calling():
    reply = Anthropic(api_key=KEY).messages.create(
        model=SONNET_4_6,
        max_tokens=1024,
        tools=[WEATHER, CLOCK],
        messages=[{"role": "user", "content": "What is the weather like right now in New York?"
                   " Also what time is it there? Use necessary tools simultaneously."}],
    )
    assert [block.name for block in reply.content if block.type == "tool_use"] == [
        "get_weather", "get_time"]


@pytest.mark.vcr
@pytest.mark.parametrize(
    "assistant",
    [
        [TextBlock(type="text", text=SAID), ToolUseBlock(type="tool_use", **CALL)],
        [{"type": "text", "text": SAID}, dict(CALL, type="tool_use")],
    ],
    ids=["with_blocks", "with_block_params"],
)
# <budget>
def test_anthropic_instrumentation_tool_use_in_input(assistant):
    result = {"type": "tool_result", "tool_use_id": CALL["id"], "is_error": False,
              "content": '{"weather": "sunny", "temperature": "75"}'}
    reply = Anthropic(api_key=KEY).messages.create(
        model=SONNET_4_6,
        max_tokens=1024,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "What is the weather like in San Francisco in Fahrenheit?"},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": [result]},
        ],
    )
    assert "sunny" in reply.content[0].text


@pytest.mark.vcr
# <budget>
def test_anthropic_instrumentation_messages_token_counts():
    # a long random document behind a cache breakpoint, sent twice: a cache write, then a read
    novel = "Full Text of Novel <Pride and Prejudice>" + "".join(
        random.choices(string.ascii_letters + string.digits, k=2000))
    system = [
        {"type": "text", "text": "You are an AI assistant tasked with analyzing literary works.\\n"},
        {"type": "text", "text": novel, "cache_control": {"type": "ephemeral"}},
    ]
    question = [{"role": "user", "content": "Analyze the major themes in 'Pride and Prejudice'."}]
    client = Anthropic(api_key=KEY)
    usages = [
        client.messages.create(
            model="claude-3-7-sonnet-20250219", max_tokens=2048, system=system, messages=question
        ).usage
        for _ in range(2)
    ]
    assert usages[0].cache_creation_input_tokens == usages[1].cache_read_input_tokens > 0


@pytest.mark.vcr
# <budget>
def test_anthropic_instrumentation_beta_messages_create():
    # The SDK sent beta calls to /v1/messages?beta=true until 2.x, which sends them to
    # /v1/messages; vcrpy matches on the query, so say it, as a team upgrading to 2.x must.
    reply = Anthropic(api_key=KEY).beta.messages.create(
        extra_query={"beta": "true"},
        model=SONNET_4_6,
        max_tokens=1024,
        messages=[{"role": "user", "content": "Extract the key information from: The meeting is"
                   " scheduled for March 15th at 2 PM."}],
    )
    assert "March 15" in reply.content[0].text
"""

LLM_ANTHROPIC_CONFTEST = """\
import pytest


@pytest.fixture(scope="module")
def vcr_config():
    return {"filter_headers": ["X-API-KEY"], "decode_compressed_response": True}
"""

LLM_ANTHROPIC_TESTS = """\
import asyncio

import pytest
from anthropic import Anthropic, AsyncAnthropic

# <module budget>
KEY = "sk-..."
PELICAN = "Two names for a pet pelican, be brief"
TEMPERATURE = {"temperature": 1.0}
NAMER = {"name": "pelican_name_generator", "description": "",
         "input_schema": {"properties": {}, "type": "object"}}


def user(text):
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def streamed(client, **request):
    # every prompt goes through the streaming helper, as the project's model plugin does;
    # temperature as extra_body: anthropic 2.x's messages.stream() has no such parameter
    with client.messages.stream(max_tokens=8192, extra_body=TEMPERATURE, **request) as stream:
        events = [event.type for event in stream]
        return events, stream.get_final_message()


def as_params(content):
    params = []
    for block in content:
        if block.type == "text":
            params.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            params.append({"type": "tool_use", "id": block.id, "name": block.name,
                           "input": block.input})
    return params


@pytest.mark.vcr
# <budget>
def test_prompt():
    _, reply = streamed(Anthropic(api_key=KEY), model="claude-sonnet-4-5", messages=[user(PELICAN)])
    assert reply.content[0].text == "- Captain\\n- Scoop"


@pytest.mark.vcr
# <budget>
def test_async_prompt():
    async def conversation():
        async with AsyncAnthropic(api_key=KEY) as client:
            history, texts = [], []
            for prompt in (PELICAN, "in french"):
                history.append(user(prompt))
                async with client.messages.stream(
                    model="claude-sonnet-4-5", max_tokens=8192, messages=history,
                    extra_body=TEMPERATURE,
                ) as stream:
                    texts.append("".join([text async for text in stream.text_stream]))
                history.append({"role": "assistant", "content": [{"type": "text", "text": texts[-1]}]})
            return texts

    assert asyncio.run(conversation()) == ["- Captain\\n- Scoop", "- Capitaine\\n- Bec (beak)"]


@pytest.mark.vcr
# <budget>
def test_tools():
    client = Anthropic(api_key=KEY)
    history = [user("Two names for a pet pelican")]
    request = dict(model="claude-haiku-4-5-20251001", tools=[NAMER])
    _, first = streamed(client, messages=history, **request)
    calls = [block for block in first.content if block.type == "tool_use"]
    assert first.stop_reason == "tool_use" and len(calls) == 2
    history.append({"role": "assistant", "content": as_params(first.content)})
    history.append({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": name}
        for call, name in zip(calls, ("Charles", "Sammy"))]})
    _, second = streamed(client, messages=history, **request)
    assert second.stop_reason == "end_turn"


@pytest.mark.vcr
# <budget>
def test_thinking_prompt():
    _, reply = streamed(Anthropic(api_key=KEY), model="claude-sonnet-4-5", messages=[user(PELICAN)],
                        thinking={"type": "enabled", "budget_tokens": 1024})
    assert [block.type for block in reply.content] == ["thinking", "text"]


@pytest.mark.vcr
# <budget>
def test_opus_46_prompt():
    _, reply = streamed(Anthropic(api_key=KEY), model="claude-opus-4-6", messages=[user(PELICAN)])
    assert reply.model == "claude-opus-4-6" and reply.content[0].text


@pytest.mark.vcr
# <budget>
def test_stream_events_tool_calls():
    events, reply = streamed(Anthropic(api_key=KEY), model="claude-haiku-4-5-20251001",
                             messages=[user("Generate one name for a pet pelican")], tools=[NAMER])
    assert events[0] == "message_start" and "input_json" in events
    assert [block.type for block in reply.content][-1] == "tool_use"
"""


@dataclass(frozen=True)
class Suite:
    name: str  # folder under tests/data/real_suites/
    module: str  # the test module, and pytest-recording's cassette folder
    conftest: str
    tests: str
    target_model: str

    @property
    def endpoint(self) -> str:
        return self.name.replace("-", "_")

    @property
    def cassettes(self) -> Path:
        return DATA / self.name / self.module


SUITES = [
    Suite(
        "ecologits",
        "test_anthropic",
        ECOLOGITS_CONFTEST,
        ECOLOGITS_TESTS,
        "claude-3-5-sonnet-20240620",
    ),
    Suite(
        "openinference",
        "test_instrumentor",
        OPENINFERENCE_CONFTEST,
        OPENINFERENCE_TESTS,
        "claude-sonnet-4-6",
    ),
    Suite(
        "llm-anthropic",
        "test_anthropic",
        LLM_ANTHROPIC_CONFTEST,
        LLM_ANTHROPIC_TESTS,
        "claude-sonnet-4-5",
    ),
]
BY_NAME = {suite.name: suite for suite in SUITES}

CONFIG = """\
endpoints:
  {endpoint}:
    target_model: {target_model}
    max_input_tokens_p95: 100000
    max_output_tokens_p95: 20000
    requests_per_day: {requests_per_day}
"""


def module_source(suite: Suite, markers: str | None) -> str:
    """The suite's test module: no budget marker, a decorator per test, or a module pytestmark."""
    mark = f'pytest.mark.token_budget("{suite.endpoint}")'
    lines = []
    for line in suite.tests.splitlines():
        if line == BUDGET:
            if markers == "decorator":
                lines.append("@" + mark)
            continue
        if line == MODULE_BUDGET:
            if markers == "pytestmark":
                lines.append(f"pytestmark = [{mark}]")
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def make_project(pytester: pytest.Pytester, suite: Suite, markers: str | None) -> None:
    """The project as its team has it: tests/, its conftest, pytest-recording's cassettes."""
    tests = pytester.mkdir("tests")
    (tests / "conftest.py").write_text(suite.conftest)
    (tests / f"{suite.module}.py").write_text(module_source(suite, markers))
    shutil.copytree(suite.cassettes, tests / "cassettes" / suite.module)
    if markers:
        config = CONFIG.format(
            endpoint=suite.endpoint,
            target_model=suite.target_model,
            requests_per_day=REQUESTS_PER_DAY,
        )
        pytester.makefile(".yml", token_budgets=config)


@pytest.fixture
def no_key(ci_env, monkeypatch):
    """CI on a pull request: no API key, and the SDK pointed at api.anthropic.com."""
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


# -- reading a cassette by hand ----------------------------------------------------------
@dataclass(frozen=True)
class Call:
    model: str
    input_tokens: int  # uncached
    output_tokens: int
    written: int  # cache_creation_input_tokens
    read: int  # cache_read_input_tokens
    write_5m: int  # the writes split by cache lifetime, for the price
    write_1h: int

    @property
    def prompt(self) -> int:
        """The whole prompt: uncached input, cache writes and cache reads."""
        return self.input_tokens + self.written + self.read

    @property
    def cost(self) -> Fraction:
        rate = {key: Fraction(value) for key, value in RATES[self.model].items()}
        dollars = (
            self.input_tokens * rate["input"]
            + self.output_tokens * rate["output"]
            + self.write_5m * rate["write_5m"]
            + self.write_1h * rate["write_1h"]
            + self.read * rate["read"]
        )
        return dollars / 1_000_000


def _body_text(response: dict) -> str:
    body = response["body"]["string"]
    if isinstance(body, str):
        body = body.encode("utf-8")
    encodings = [
        value
        for key, values in (response.get("headers") or {}).items()
        if key.lower() == "content-encoding"
        for value in values
    ]
    if "gzip" in encodings or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    return body.decode("utf-8")


def _usage(text: str) -> tuple[str, dict]:
    """The model and final usage of one Messages response, JSON or server-sent events."""
    if text.lstrip().startswith("{"):
        message = json.loads(text)
        return message["model"], dict(message["usage"])
    events = [json.loads(line[len("data:") :]) for line in text.splitlines() if line[:5] == "data:"]
    message = next(event["message"] for event in events if event["type"] == "message_start")
    usage = dict(message["usage"])
    for event in events:
        if event["type"] == "message_delta":  # cumulative: it overwrites what it carries
            usage.update({k: v for k, v in event["usage"].items() if v is not None})
    return message["model"], usage


def recorded_calls(path: Path) -> list[Call]:
    """Every Messages call a cassette answered, with its usage as billed."""
    calls = []
    for interaction in yaml.safe_load(path.read_bytes())["interactions"]:
        response = interaction["response"]
        path_of = urlsplit(interaction["request"]["uri"]).path
        if response["status"]["code"] != 200 or path_of != "/v1/messages":
            continue
        model, usage = _usage(_body_text(response))
        written = usage.get("cache_creation_input_tokens") or 0
        split = usage.get("cache_creation") or {"ephemeral_5m_input_tokens": written}
        calls.append(
            Call(
                model=model,
                input_tokens=usage["input_tokens"],
                output_tokens=usage["output_tokens"],
                written=written,
                read=usage.get("cache_read_input_tokens") or 0,
                write_5m=split.get("ephemeral_5m_input_tokens") or 0,
                write_1h=split.get("ephemeral_1h_input_tokens") or 0,
            )
        )
    return calls


def recorded_tests(suite: Suite) -> dict[str, list[Call]]:
    """Test item name (pytest-recording's cassette name) -> the calls its cassette answers."""
    return {path.stem: recorded_calls(path) for path in sorted(suite.cassettes.glob("*.yaml"))}


def nearest_rank(values: list[int], pct: int) -> int:
    ordered = sorted(values)
    return ordered[-(-pct * len(ordered) // 100) - 1]


def dollars(value: Fraction) -> float:
    return float(round(value, 9))


def report_of(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / ".token-budget" / "report.json").read_text())


def _test_name(case_id: str) -> str:
    """A case id's test item: `test_x[p]`, also when written as a path (`tests/mod/test_x[p]`)."""
    return case_id.rsplit("/", 1)[-1].rsplit(".", 1)[-1]


def _items(result: pytest.RunResult) -> list[str]:
    names = (report.nodeid.rsplit("::", 1)[-1] for report in result.reprec.getreports())
    return sorted({name for name in names if name.startswith("test_")})


# -- the tests -----------------------------------------------------------------------------
SUITE_IDS = [suite.name for suite in SUITES]


@pytest.mark.parametrize("name", SUITE_IDS)
def test_the_suite_passes_as_its_team_runs_it(pytester, no_key, name):
    """No marker, no token_budgets.yml, no key: every test replays from its cassette."""
    suite = BY_NAME[name]
    make_project(pytester, suite, markers=None)

    result = run(pytester)

    result.assert_outcomes(passed=len(recorded_tests(suite)))
    assert _items(result) == sorted(recorded_tests(suite))  # one item per cassette
    assert not (pytester.path / ".token-budget").exists()


@pytest.mark.parametrize("markers", ["decorator", "pytestmark"])
@pytest.mark.parametrize("name", SUITE_IDS)
def test_budget_markers_change_nothing_without_the_flag(pytester, no_key, name, markers):
    """docs/getting-started.md: a test pytest-recording drives needs only the budget marker.

    Without --token-budget such a test runs exactly as before (pytest-recording serves its
    traffic), whether the marker is on each test or on the module: the same outcome as the
    unmarked suite above, every test passed, none skipped.
    """
    suite = BY_NAME[name]
    make_project(pytester, suite, markers=markers)

    result = run(pytester)

    result.assert_outcomes(passed=len(recorded_tests(suite)))  # and none skipped
    assert _items(result) == sorted(recorded_tests(suite))
    assert "token-budget" not in result.stdout.str()  # no skip reason, no summary
    assert not (pytester.path / ".token-budget").exists()
    assert not (pytester.path / "cassettes").exists()


@pytest.mark.parametrize("markers", ["decorator", "pytestmark"])
@pytest.mark.parametrize("name", SUITE_IDS)
def test_the_report_is_what_the_cassettes_say(pytester, no_key, name, markers):
    """`pytest --token-budget --record-mode=none`: the numbers, recomputed from the YAML."""
    suite = BY_NAME[name]
    make_project(pytester, suite, markers=markers)
    tests = recorded_tests(suite)
    cassettes = {p: p.read_bytes() for p in (pytester.path / "tests").rglob("*.yaml")}

    result = run(pytester, "--token-budget", "--record-mode=none")

    result.assert_outcomes(passed=len(tests))
    calls = [call for test in tests.values() for call in test]
    total = sum((call.cost for call in calls), Fraction(0))
    prompts = [call.prompt for call in calls]
    outputs = [call.output_tokens for call in calls]
    endpoint = report_of(pytester)["endpoints"][suite.endpoint]
    assert endpoint["status"] == "pass", endpoint["problems"]
    assert endpoint["recorders"] == ["pytest-recording"]
    assert (endpoint["calls"], endpoint["cases"]) == (len(calls), len(tests))
    metrics = endpoint["metrics"]
    for pct in (50, 95):
        assert metrics[f"input_tokens_p{pct}"] == nearest_rank(prompts, pct)
        assert metrics[f"output_tokens_p{pct}"] == nearest_rank(outputs, pct)
    assert metrics["input_tokens_max"] == max(prompts)
    assert metrics["output_tokens_max"] == max(outputs)
    assert metrics["cost_per_call_usd"] == dollars(total / len(calls))
    assert metrics["cost_per_request_usd"] == dollars(total / len(tests))
    assert metrics["monthly_cost_usd"] == dollars(total / len(tests) * REQUESTS_PER_DAY * 30)
    reads = sum(call.read for call in calls)
    assert metrics["cache_hit_rate"] == float(round(Fraction(reads, sum(prompts)), 6))
    # each test item is its own case, parametrized items included
    per_case = {_test_name(case): numbers for case, numbers in endpoint["per_case"].items()}
    assert len(per_case) == len(endpoint["per_case"]) == len(tests)
    for test, test_calls in tests.items():
        assert per_case[test]["calls"] == len(test_calls), test
        assert per_case[test]["input_tokens"] == sum(c.prompt for c in test_calls), test
        assert per_case[test]["output_tokens"] == sum(c.output_tokens for c in test_calls), test
        cost = sum((c.cost for c in test_calls), Fraction(0))
        assert per_case[test]["cost_usd"] == dollars(cost), test
    assert report_of(pytester)["totals"]["cost_usd"] == dollars(total)
    # pytest-recording's cassettes only replayed; none of the plugin's own asked for
    assert {p: p.read_bytes() for p in cassettes} == cassettes
    assert not (pytester.path / "cassettes").exists()
    assert "no recording" not in result.stdout.str()


# Read by hand from the cassettes (grep the usage lines): a check of the reading code above.
BY_HAND = {
    # calls, p95 whole-prompt input, p95 output, cache reads
    "ecologits": (4, 10, 43, 0),
    "openinference": (10, 1754, 568, 1733),  # 21 + 1733 written, then 21 + 1733 read
    "llm-anthropic": (8, 678, 84, 0),
}


@pytest.mark.parametrize("name", SUITE_IDS)
def test_the_cassettes_are_read_as_a_person_reads_them(name):
    calls = [call for test in recorded_tests(BY_NAME[name]).values() for call in test]
    prompts = [call.prompt for call in calls]
    outputs = [call.output_tokens for call in calls]
    found = (len(calls), nearest_rank(prompts, 95), nearest_rank(outputs, 95))
    assert found + (sum(call.read for call in calls),) == BY_HAND[name]
    assert {call.model for call in calls} <= set(RATES)


def test_every_vendored_file_has_its_provenance():
    readme = (DATA / "README.md").read_text(encoding="utf-8").splitlines()
    files = sorted(
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if p.is_file() and p.name != "README.md"
    )
    used = sorted(
        f"{suite.name}/{suite.module}/{stem}.yaml"
        for suite in SUITES
        for stem in recorded_tests(suite)
    )
    assert files == used  # nothing vendored that no test replays
    commit = re.compile(r"\b[0-9a-f]{40}\b")
    for file in files:
        rows = [line for line in readme if line.startswith(f"| {file} |")]
        assert len(rows) == 1 and commit.search(rows[0]), f"{file}: no row with a full commit"
