"""Usage as billed: `usage.iterations` (compaction, advisor, fallback) on real cassettes and
through the whole plugin.

The expected numbers are recomputed here from the usage the recordings hold, in a few lines
of test code over the YAML, at Anthropic's published rates written down below. Nothing on
the expected side calls the plugin's parser.

What the API documents (docs/measurement.md, "Usage billed in usage.iterations"): with
iterations, what is billed is the sum over every iteration, each at its own model's rates;
the top-level usage is the executor's sampling only (the sum of the `message` steps), never
the compaction step, never the advisor's sub-inference.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import paths
import pytest
import yaml
from project_files import PLAIN_APP

from pytest_tokenbudget.cache.doctor import Doctor, diagnose_case
from pytest_tokenbudget.cli.budget_proposal import group
from pytest_tokenbudget.cli.cassette_scan import analyze
from pytest_tokenbudget.measure.samples import Sample, case_samples
from pytest_tokenbudget.measure.stats import endpoint_stats
from pytest_tokenbudget.pricing.prices import PriceBook
from pytest_tokenbudget.providers.exchanges import load_cassette_file, parse_exchange
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import ITERATION, Usage

FOLDER = paths.CASSETTES / "pydantic-ai-iterations"
CASSETTES = FOLDER / "test_anthropic"
MESSAGES = "https://api.anthropic.com/v1/messages"

# $ per million tokens (input, output, 5-minute write, 1-hour write, cache read), from
# Anthropic's pricing page (https://platform.claude.com/docs/en/about-claude/pricing) and the
# model pages (https://platform.claude.com/docs/en/models/sonnet-5/overview). Sonnet 5 and
# Fable 5 are not in the shipped table: the tests price them through `pricing:`.
RATES = {
    "claude-sonnet-4-6": ("3", "15", "3.75", "6", "0.30"),
    "claude-opus-4-8": ("5", "25", "6.25", "10", "0.50"),
    "claude-opus-4-7": ("5", "25", "6.25", "10", "0.50"),
    "claude-sonnet-5": ("2", "10", "2.50", "4", "0.20"),
    "claude-fable-5": ("10", "50", "12.50", "20", "1"),
}
PRICING = {  # `pricing:` entries for the models the shipped table does not know
    model: dict(
        zip(("input", "output", "cache_write_5m", "cache_write_1h", "cache_read"), r, strict=True)
    )
    for model, r in RATES.items()
    if model in ("claude-sonnet-5", "claude-fable-5")
}


# -- the expected side: the recordings read by hand ----------------------------------------
def recorded_usages(path: Path) -> list[tuple[str, dict]]:
    """(model, usage) of each interaction, as the file holds it: parsed_body's usage, or a
    stream's message_start usage with each message_delta's fields written over it."""
    found = []
    for item in yaml.safe_load(path.read_text())["interactions"]:
        response = item["response"]
        if "parsed_body" in response:
            body = response["parsed_body"]
            found.append((body["model"], body["usage"]))
            continue
        model, usage = "", {}
        for line in response["body"]["string"].splitlines():
            if line.startswith("data: "):
                event = json.loads(line[len("data: ") :])
                if event["type"] == "message_start":
                    model = event["message"]["model"]
                    usage.update(event["message"]["usage"])
                elif event["type"] == "message_delta":
                    usage.update(event["usage"])
        found.append((model, usage))
    return found


def billed(model: str, usage: dict) -> tuple[int, int, Fraction]:
    """(whole prompt, output, dollars) of one call: every iteration once, each at its model."""
    steps = usage.get("iterations") or [usage]
    prompt = output = 0
    cost = Fraction(0)
    for step in steps:
        at = (
            step.get("model")
            if step.get("type") in ("advisor_message", "fallback_message")
            else model
        )
        rate = [Fraction(r) for r in RATES[at]]
        written = step.get("cache_creation_input_tokens") or 0
        w1h = (step.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0
        counts = (
            step["input_tokens"],
            step["output_tokens"],
            written - w1h,
            w1h,
            step.get("cache_read_input_tokens") or 0,
        )
        prompt += counts[0] + counts[2] + counts[3] + counts[4]
        output += counts[1]
        cost += sum(n * r for n, r in zip(counts, rate, strict=True)) / 1_000_000
    return prompt, output, cost


def rank(values: list[int], pct: int) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(pct * len(ordered) / 100) - 1]


# -- the plugin's side ----------------------------------------------------------------------
def plugin_stats(paths: list[Path], **kw):
    """The endpoint the plugin makes of these files (the parser, the samples, the stats)."""
    samples = []
    for path in paths:
        calls = [c for e in load_cassette_file(path) for c in parse_exchange(e)]
        samples += [
            Sample(
                "ep", path.stem, path.name, i, c.model, c.usage, c.provider, c.batch, note=c.note
            )
            for i, c in enumerate(calls)
        ]
    cases = [p.stem for p in paths]
    return endpoint_stats("ep", samples, cases, book=PriceBook(PRICING), **kw)


REAL = sorted(CASSETTES.glob("*.yaml"))


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_each_real_cassette_is_billed_as_its_iterations(path):
    expected = [billed(model, usage) for model, usage in recorded_usages(path)]
    stats = plugin_stats([path])
    assert stats.calls == len(expected) == 1
    assert stats.prompt_tokens == [p for p, _, _ in expected]
    assert stats.output_tokens == [o for _, o, _ in expected]
    assert stats.cost_total == sum(c for _, _, c in expected)


def test_real_cassettes_as_one_endpoint():
    expected = [billed(m, u) for path in REAL for m, u in recorded_usages(path)]
    stats = plugin_stats(REAL, target_model="claude-sonnet-5")
    prompts, outputs = [p for p, _, _ in expected], [o for _, o, _ in expected]
    assert stats.calls == 5
    for pct in (50, 95):
        assert stats.metrics[f"input_tokens_p{pct}"] == rank(prompts, pct)
        assert stats.metrics[f"output_tokens_p{pct}"] == rank(outputs, pct)
    total = sum(c for _, _, c in expected)
    assert stats.cost_total == total
    assert stats.metrics["cost_per_request_usd"] == total / 5
    # the advisor's model counts for the calls that consulted it, and escalates their cases
    assert stats.models == {
        "claude-sonnet-5": 3,
        "claude-opus-4-8": 2,
        "claude-fable-5": 1,
        "claude-sonnet-4-6": 2,
    }
    assert stats.metrics["escalation_rate"] == Fraction(5, 5)  # every case: another model
    advisor = stats.iterations["advisor_message"]
    assert (advisor.calls, advisor.iterations) == (3, 3)
    assert advisor.models == {"claude-opus-4-8": 2, "claude-fable-5": 1}
    compaction = stats.iterations["compaction"]
    assert (compaction.calls, compaction.iterations) == (2, 2)
    assert set(stats.iterations) == {"advisor_message", "compaction"}


def test_the_compaction_call_of_the_brief():
    """Recorded as 229 in / 5 out at the top level; its compaction step read 100 tokens,
    wrote 55,096 to the cache and wrote 131: billed 55,425 in and 136 out. Its streamed twin
    read the 55,096 back: 55,377 in."""
    plain = CASSETTES / "test_anthropic_compaction_usage_with_cache.yaml"
    ((model, usage),) = recorded_usages(plain)
    assert (usage["input_tokens"], usage["output_tokens"]) == (229, 5)
    step = usage["iterations"][0]
    assert (step["type"], step["cache_creation_input_tokens"], step["output_tokens"]) == (
        "compaction",
        55_096,
        131,
    )
    stats = plugin_stats([plain])
    assert stats.metrics["input_tokens_p95"] == 229 + 100 + 55_096 == 55_425
    assert stats.metrics["output_tokens_p95"] == 5 + 131
    rate = [Fraction(r) for r in RATES[model]]
    dollars = ((229 + 100) * rate[0] + 136 * rate[1] + 55_096 * rate[2]) / 1_000_000
    assert stats.cost_total == dollars
    assert (
        stats.iterations["compaction"].cost
        == (100 * rate[0] + 131 * rate[1] + 55_096 * rate[2]) / 1_000_000
    )
    streamed = plugin_stats(
        [CASSETTES / "test_anthropic_compaction_usage_with_cache_streaming.yaml"]
    )
    assert streamed.metrics["input_tokens_p95"] == 181 + 100 + 55_096 == 55_377
    assert streamed.metrics["cache_hit_rate"] == Fraction(55_096, 55_377)


def test_calls_of_an_advisor_response():
    """The call keeps its executor's first `message` step, then one ITERATION call per
    later step: an advisor step at its model, a later `message` step at the call's (each
    sampling is priced by its own prompt; together they are the top-level usage)."""
    (exchange,) = load_cassette_file(CASSETTES / "test_anthropic_advisor_tool.yaml")
    main, advisor, again = parse_exchange(exchange)
    assert (main.kind, main.model, main.iteration) == ("messages", "claude-sonnet-5", "")
    assert (main.usage.input_tokens, main.usage.output_tokens) == (1128, 110)
    assert (again.kind, again.model, again.iteration) == (ITERATION, "claude-sonnet-5", "message")
    assert (again.usage.input_tokens, again.usage.output_tokens) == (1262, 11)
    assert (advisor.kind, advisor.model, advisor.iteration) == (
        ITERATION,
        "claude-opus-4-8",
        "advisor_message",
    )
    assert (advisor.usage.input_tokens, advisor.usage.output_tokens) == (2518, 22)
    # stream: iterations come in the final message_delta only
    (exchange,) = load_cassette_file(CASSETTES / "test_anthropic_advisor_tool_stream.yaml")
    main, advisor, again = parse_exchange(exchange)
    assert (main.usage.input_tokens, main.usage.output_tokens) == (1128, 135)
    assert (again.usage.input_tokens, again.usage.output_tokens) == (1283, 10)
    assert (advisor.usage.input_tokens, advisor.usage.output_tokens) == (2543, 18)
    assert main.streamed and advisor.streamed and again.streamed


def test_an_unpriced_advisor_model_is_never_priced_at_zero():
    path = CASSETTES / "test_anthropic_advisor_tool_redacted.yaml"  # advisor: claude-fable-5
    # genai-prices prices claude-fable-5: the advisor is renamed to a model nothing prices.
    calls = [c for e in load_cassette_file(path) for c in parse_exchange(e)]
    renamed = ["acme-advisor-9" if c.model == "claude-fable-5" else c.model for c in calls]
    samples = [
        Sample("ep", "c", "t", i, model, c.usage, note=c.note)
        for i, (c, model) in enumerate(zip(calls, renamed, strict=True))
    ]
    book = PriceBook({"claude-sonnet-5": PRICING["claude-sonnet-5"]})
    stats = endpoint_stats("ep", samples, ["c"], book=book, strict=False)
    assert stats.unpriced == {"acme-advisor-9": ["c"]}
    assert stats.cost_total is None and stats.metrics["cost_per_request_usd"] is None
    assert stats.iterations["advisor_message"].cost is None


def test_analyze_reads_iterations():
    analysis = analyze(FOLDER)
    assert not analysis.skipped
    samples = group(analysis, by="folder", root="x")["test_anthropic"]
    stats = endpoint_stats(
        "x", samples, sorted({s.case_id for s in samples}), book=PriceBook(PRICING)
    )
    expected = [billed(m, u) for path in REAL for m, u in recorded_usages(path)]
    assert stats.calls == 5
    assert sorted(stats.prompt_tokens) == sorted(p for p, _, _ in expected)
    assert stats.cost_total == sum(c for _, _, c in expected)


# -- semantics on written exchanges ---------------------------------------------------------
def exchange(body, *, request=b"") -> Exchange:
    raw = body if isinstance(body, str) else json.dumps(body)
    return Exchange("POST", MESSAGES, request, 200, {}, raw.encode())


def message(usage, model="claude-sonnet-4-6"):
    return {"type": "message", "model": model, "content": [], "usage": usage}


def step(kind, i, o, *, w=0, r=0, **extra):
    return {
        "type": kind,
        "input_tokens": i,
        "output_tokens": o,
        "cache_creation_input_tokens": w,
        "cache_read_input_tokens": r,
        **extra,
    }


def test_top_level_is_never_added_to_the_iterations():
    usage = {
        "input_tokens": 30,
        "output_tokens": 7,
        "iterations": [step("compaction", 900, 40), step("message", 10, 3), step("message", 20, 4)],
    }
    main, compaction, again = parse_exchange(exchange(message(usage)))
    # the message steps (the top level sums them), each its own sampling
    assert (main.usage.input_tokens, main.usage.output_tokens) == (10, 3)
    assert (again.usage.input_tokens, again.usage.output_tokens) == (20, 4)
    assert (compaction.model, compaction.usage.input_tokens) == ("claude-sonnet-4-6", 900)
    # pause_after_compaction: the compaction step alone, the top-level usage all zero
    paused = {"input_tokens": 0, "output_tokens": 0, "iterations": [step("compaction", 144, 276)]}
    main, compaction = parse_exchange(exchange(message(paused)))
    assert main.usage == Usage() and compaction.usage == Usage(144, 276)
    # no message step listed: the top-level usage stands for the executor's sampling
    odd = {"input_tokens": 50, "output_tokens": 5, "iterations": [step("compaction", 10, 1)]}
    main, _ = parse_exchange(exchange(message(odd)))
    assert main.usage == Usage(50, 5)
    # a fallback model answered: its step is the answer, the top level its view of it
    fallback = {
        "input_tokens": 80,
        "output_tokens": 9,
        "iterations": [step("fallback_message", 80, 9, model="claude-opus-4-7")],
    }
    main, answer = parse_exchange(exchange(message(fallback)))
    assert main.usage == Usage() and (answer.model, answer.usage) == (
        "claude-opus-4-7",
        Usage(80, 9),
    )
    # an empty list is no iteration at all
    (main,) = parse_exchange(
        exchange(message({"input_tokens": 5, "output_tokens": 1, "iterations": []}))
    )
    assert main.usage == Usage(5, 1)


def test_each_message_step_is_banded_by_its_own_prompt():
    """An advisor loop: Haiku 5.5 samples 60K, the advisor (Opus 4.7) 60K, Haiku 61K again.
    No sampling exceeds Haiku 5.5's 100K band, though the call's steps sum to 121K."""
    usage = {
        "input_tokens": 121_000,
        "output_tokens": 300,
        "iterations": [
            step("message", 60_000, 100),
            step("advisor_message", 60_000, 500, model="claude-opus-4-7"),
            step("message", 61_000, 200),
        ],
    }
    calls = parse_exchange(exchange(message(usage, model="claude-haiku-5-5")))
    samples = [
        Sample("ep", "c", "t", i, c.model, c.usage, note=c.note) for i, c in enumerate(calls)
    ]
    stats = endpoint_stats("ep", samples, ["c"], book=PriceBook())
    # Haiku 5.5 $0.10 / $0.50 (under 100K), Opus 4.7 $5 / $25
    haiku = Fraction(60_000 * 10 + 100 * 50 + 61_000 * 10 + 200 * 50, 100 * 10**6)
    opus = Fraction(60_000 * 5 + 500 * 25, 10**6)
    assert stats.cost_total == haiku + opus == Fraction("0.32475")
    assert stats.calls == 1 and stats.prompt_tokens == [181_000]
    assert set(stats.iterations) == {"advisor_message"}  # the executor's steps are the call's


def test_fallback_and_unknown_types_are_counted_at_their_model_and_named():
    usage = {
        "input_tokens": 0,
        "output_tokens": 0,
        "iterations": [
            step("message", 100, 0),
            step("fallback_message", 100, 20, model="claude-opus-4-7"),
            step("tool_search", 40, 2),
            step("tool_search", 60, 3, model="claude-opus-4-8"),
        ],
    }
    calls = parse_exchange(exchange(message(usage)))
    assert [(c.kind, c.iteration, c.model) for c in calls] == [
        ("messages", "", "claude-sonnet-4-6"),
        (ITERATION, "fallback_message", "claude-opus-4-7"),
        (ITERATION, "tool_search", "claude-sonnet-4-6"),  # no model: the call's
        (ITERATION, "tool_search", "claude-opus-4-8"),
    ]
    samples = [
        Sample("ep", "c", "t", i, c.model, c.usage, note=c.note) for i, c in enumerate(calls)
    ]
    (part,) = case_samples(samples)
    assert part.prompt == (300,) and part.output == (25,)
    assert part.notes == {
        "usage.iterations of unknown type 'tool_search': counted in the call's tokens and "
        "priced at claude-sonnet-4-6": 1,
    }
    stats = endpoint_stats("ep", samples, ["c"], book=PriceBook(), target_model="claude-sonnet-4-6")
    assert stats.calls == 1 and stats.metrics["escalation_rate"] == 1
    opus, sonnet = (Fraction(r) for r in ("5", "3"))
    assert (
        stats.cost_total
        == (100 * sonnet + (100 * opus + 20 * 25) + (40 * sonnet + 2 * 15) + (60 * opus + 3 * 25))
        / 10**6
    )
    assert stats.iterations["tool_search"].calls == 1
    assert stats.iterations["tool_search"].iterations == 2


def test_batch_results_carry_iterations_at_the_batch_discount():
    line = {
        "custom_id": "a",
        "result": {
            "type": "succeeded",
            "message": message(
                {
                    "input_tokens": 10,
                    "output_tokens": 2,
                    "iterations": [
                        step("message", 10, 2),
                        step("advisor_message", 50, 5, model="claude-opus-4-8"),
                    ],
                }
            ),
        },
    }
    ex = Exchange(
        "GET",
        "https://api.anthropic.com/v1/messages/batches/b1/results",
        b"",
        200,
        {},
        json.dumps(line).encode(),
    )
    main, advisor = parse_exchange(ex)
    assert (main.kind, main.batch, advisor.batch, advisor.model) == (
        "batch",
        True,
        True,
        "claude-opus-4-8",
    )
    samples = [
        Sample("ep", "a", "t", i, c.model, c.usage, batch=c.batch, note=c.note)
        for i, c in enumerate([main, advisor])
    ]
    stats = endpoint_stats("ep", samples, ["a"], book=PriceBook())
    assert stats.cost_total == Fraction(10 * 3 + 2 * 15 + 50 * 5 + 5 * 25, 2 * 10**6)


def test_an_advisor_step_without_its_model_is_an_error():
    from pytest_tokenbudget.errors import CassetteError

    usage = {"input_tokens": 1, "output_tokens": 1, "iterations": [step("advisor_message", 5, 5)]}
    with pytest.raises(CassetteError, match=r"usage\.iterations\[0\]\.model is missing"):
        parse_exchange(exchange(message(usage)))


def test_the_doctor_takes_a_compaction_steps_cache_write_as_evidence():
    """The compaction cassette asks for automatic caching (a top-level cache_control) on a
    55k-token prompt; its message step ran on the 229-token summary and cached nothing. The
    compaction step wrote the prefix: no `prefix-below-minimum`, and the prompt the doctor
    sees is the request as sent (the compaction step's), with its write as recorded."""
    path = CASSETTES / "test_anthropic_compaction_usage_with_cache.yaml"
    (exchange_,) = load_cassette_file(path)
    calls = parse_exchange(exchange_)
    doctor = Doctor()
    diagnose_case(doctor, "ep", "c", [(exchange_, calls)], {}, lambda model: 1024)
    assert [f.code for f in doctor.findings()] == []
    (seen,) = doctor.prompts
    assert seen.whole_input_tokens == 100 + 55_096
    assert seen.recorded == (0, 55_096, 0)
    # the same call with its iterations left out: the doctor would have cried wolf
    without = [calls[0]]
    doctor = Doctor()
    diagnose_case(doctor, "ep", "c", [(exchange_, without)], {}, lambda model: 1024)
    assert [f.code for f in doctor.findings()] == ["prefix-below-minimum"]


# -- through the plugin: recorded against the emulator, replayed offline --------------------
CONFIG = """\
endpoints:
  chat:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 100000
    requests_per_day: 1000
    cases: cases.yml
"""
CASES = """\
- id: plain
  question: What is a token?
- id: compact
  question: Please compact this long conversation.
- id: compact_stream
  question: Please compact this one too, streamed.
  stream: true
- id: advise
  question: Ask your advisor about retries.
- id: advise_stream
  question: Ask your advisor while streaming.
  stream: true
"""
TEST = """\
import pytest
from app import reply


@pytest.mark.token_budget("chat")
def test_chat(budget_case):
    assert reply(budget_case["question"], stream=budget_case.get("stream", False))
"""


def emulated_steps(request, usage):
    """What the emulator reports in usage.iterations: a compaction step before the answer,
    or an Opus advisor consulted between two executor steps (their sum is the top level)."""
    question = request["messages"][-1]["content"]
    answer = {
        k: usage[k]
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    }
    if "compact" in question:
        return [
            step(
                "compaction",
                120,
                310,
                w=48_000,
                cache_creation={
                    "ephemeral_5m_input_tokens": 48_000,
                    "ephemeral_1h_input_tokens": 0,
                },
            ),
            {"type": "message", **answer},
        ]
    if "advisor" in question:
        first = {**answer, "output_tokens": 1}
        second = {**answer, "output_tokens": answer["output_tokens"] - 1}
        return [
            {"type": "message", **first},
            step("advisor_message", 2_400, 650, model="claude-opus-4-8"),
            {"type": "message", **second},
        ]
    return None


@pytest.fixture
def iterations_project(pytester, recording_env):
    pytester.makefile(".yml", token_budgets=CONFIG, cases=CASES)
    pytester.makepyfile(app=PLAIN_APP, test_chat=TEST)
    pytester.syspathinsert()
    recording_env.iterations = emulated_steps
    return pytester


def test_recorded_iterations_are_billed_and_reported(
    iterations_project, recording_env, monkeypatch
):
    project = iterations_project
    args = ("--token-budget", "-p", "no:cacheprovider")
    project.runpytest(*args, "--token-budget-record=once").assert_outcomes(passed=5)
    served = [s for s in recording_env.served if s.path == "/v1/messages"]
    assert len(served) == 5
    with_steps = [s for s in served if "iterations" in s.usage]
    assert len(with_steps) == 4  # every case but `plain`

    monkeypatch.delenv("ANTHROPIC_API_KEY")  # CI: replay offline
    before = len(recording_env.served)
    result = project.runpytest(*args)
    result.assert_outcomes(passed=5)
    assert len(recording_env.served) == before
    endpoint = json.loads((project.path / ".token-budget" / "report.json").read_text())[
        "endpoints"
    ]["chat"]

    expected = {s.request["messages"][-1]["content"]: billed(s.model, s.usage) for s in served}
    prompts = [p for p, _, _ in expected.values()]
    outputs = [o for _, o, _ in expected.values()]
    total = sum(c for _, _, c in expected.values())
    assert endpoint["status"] == "pass", endpoint["problems"]
    assert endpoint["calls"] == 5
    metrics = endpoint["metrics"]
    assert metrics["input_tokens_p95"] == rank(prompts, 95) == max(prompts)
    assert metrics["input_tokens_p50"] == rank(prompts, 50)
    assert metrics["output_tokens_p95"] == rank(outputs, 95)
    assert metrics["cost_per_request_usd"] == float(round(total / 5, 9))
    # the two cases that consulted Opus escalated; its model is in the mix
    assert metrics["escalation_rate"] == 0.4
    assert endpoint["per_case"]["advise"]["escalated"] is True
    assert endpoint["per_case"]["advise"]["models"] == ["claude-opus-4-8", "claude-sonnet-4-6"]
    assert endpoint["per_case"]["compact"]["escalated"] is False
    assert endpoint["models"] == {"claude-sonnet-4-6": 5, "claude-opus-4-8": 2}

    sonnet = [Fraction(r) for r in RATES["claude-sonnet-4-6"]]
    opus = [Fraction(r) for r in RATES["claude-opus-4-8"]]
    compaction = (120 * sonnet[0] + 310 * sonnet[1] + 48_000 * sonnet[2]) / 10**6
    advisor = (2_400 * opus[0] + 650 * opus[1]) / 10**6
    assert endpoint["iterations"] == {
        "advisor_message": {
            "calls": 2,
            "iterations": 2,
            "input_tokens": 4_800,
            "output_tokens": 1_300,
            "cache_write_tokens": 0,
            "cache_read_tokens": 0,
            "cost_usd": float(round(2 * advisor, 9)),
            "models": {"claude-opus-4-8": 2},
        },
        "compaction": {
            "calls": 2,
            "iterations": 2,
            "input_tokens": 2 * 48_120,
            "output_tokens": 620,
            "cache_write_tokens": 96_000,
            "cache_read_tokens": 0,
            "cost_usd": float(round(2 * compaction, 9)),
            "models": {"claude-sonnet-4-6": 2},
        },
    }
    assert "Traceback" not in result.stdout.str()


def test_an_unknown_iteration_type_is_counted_and_named(
    iterations_project, recording_env, monkeypatch
):
    def steps(request, usage):
        return [
            {"type": "message", **{k: v for k, v in usage.items() if k != "cache_creation"}},
            step("web_rerank", 700, 9),
        ]

    recording_env.iterations = steps
    project = iterations_project
    args = ("--token-budget", "-p", "no:cacheprovider", "-k", "plain")
    project.runpytest(*args, "--token-budget-record=once").assert_outcomes(passed=1, deselected=4)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = project.runpytest(*args)
    result.assert_outcomes(passed=1, deselected=4)
    report = json.loads((project.path / ".token-budget" / "report.json").read_text())
    endpoint = report["endpoints"]["chat"]
    (served,) = [s for s in recording_env.served if s.path == "/v1/messages"]
    prompt = sum(
        served.usage[k]
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    assert endpoint["metrics"]["input_tokens_max"] == prompt + 700
    assert endpoint["iterations"]["web_rerank"]["iterations"] == 1
    assert any("unknown type 'web_rerank'" in w for w in endpoint["warnings"]), endpoint
    result.stdout.fnmatch_lines(["*unknown type 'web_rerank'*"])
