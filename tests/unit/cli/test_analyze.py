"""`tokenbudget analyze`: budgets proposed from the cassettes a team already has.

Expected numbers are recomputed here from the vendored files themselves (read with
yaml.safe_load and a regex for streams, nearest-rank p95 by hand, prices from the raw
price table), never by asking the code under test.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote

import paths
import pytest
import yaml
from paths import CASSETTES, DATA

from pytest_tokenbudget.cli import main
from pytest_tokenbudget.cli.budget_proposal import endpoint_name
from pytest_tokenbudget.formatting import nice_ceiling

EXAMPLE = paths.EXAMPLE / "cassettes"
# The hand-written table prices came from before genai-prices: the models used here kept
# their prices (Bedrock's regional premium included), so the figures must not move.
PRICES = json.loads((DATA / "prices" / "prices-2026-11-01.json").read_text())

# -- reading the vendored files by hand ----------------------------------------------------
PROMPT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def stream_payloads(raw: bytes) -> list[bytes]:
    """The payload of each AWS event-stream frame: a 12-byte prelude (total length, headers
    length, CRC), the headers, the payload, a 4-byte CRC."""
    payloads, at = [], 0
    while at < len(raw):
        total, headers = struct.unpack_from(">II", raw, at)
        payloads.append(raw[at + 12 + headers : at + total - 4])
        at += total
    return payloads


def bedrock_call(uri: str, response: dict) -> tuple[str, int, int] | None:
    """(model, whole prompt, output) of an Amazon Bedrock call: the model is the id in the
    URL; Converse's inputTokens is the uncached input (totalTokens adds the cache counts)."""
    model = unquote(uri.split("/model/", 1)[1].rsplit("/", 1)[0])
    body = response.get("parsed_body")
    if body is None:
        stored = response["body"]
        body = bytes.fromhex(stored["content"]) if "content" in stored else stored["string"]
    if isinstance(body, bytes) and uri.endswith("/converse-stream"):
        events = [json.loads(p) for p in stream_payloads(body)]
        usage = next(e["usage"] for e in events if "usage" in e)  # the metadata event
    elif isinstance(body, bytes):  # InvokeModel: chunks {"bytes": base64 of the model's own}
        chunks = [
            json.loads(base64.b64decode(json.loads(p)["bytes"])) for p in stream_payloads(body)
        ]
        metrics = [
            c["amazon-bedrock-invocationMetrics"]
            for c in chunks
            if "amazon-bedrock-invocationMetrics" in c
        ]
        return (
            (model, metrics[0]["inputTokenCount"], metrics[0]["outputTokenCount"])
            if metrics
            else None
        )
    else:
        usage = (body if isinstance(body, dict) else json.loads(body))["usage"]
    cached = usage.get("cacheReadInputTokens", 0) + usage.get("cacheWriteInputTokens", 0)
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"] + cached
    return model, usage["inputTokens"] + cached, usage["outputTokens"]


def hand_calls(path: Path) -> list[tuple[str, int, int]]:
    """(model, whole prompt, output) of each generation call with usage in a vendored file."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    calls = []
    for interaction in doc.get("interactions") or doc.get("http_interactions"):
        uri, response = interaction["request"]["uri"], interaction["response"]
        status = response["status"]
        status = status["code"] if isinstance(status, dict) else status
        if status != 200 or "count_tokens" in uri or uri.endswith(("/batches", "/count-tokens")):
            continue
        if "/model/" in uri:
            found = bedrock_call(uri, response)
            calls += [found] if found else []
            continue
        if "parsed_body" in response:  # pydantic-ai
            body = response["parsed_body"]
        elif "content" in response["body"]:  # cassetter
            body = response["body"]["content"]
        else:
            body = response["body"]["string"]
        if isinstance(body, bytes):
            body = gzip.decompress(body).decode()
        if isinstance(body, str) and body.lstrip().startswith(("event:", "data:")):
            events = [json.loads(d) for d in re.findall(r"^data: (\{.*\})\s*$", body, re.MULTILINE)]
            if "chat/completions" in uri:
                usage = next((e["usage"] for e in reversed(events) if e.get("usage")), None)
                model = events[-1]["model"]
            else:
                start = next(e for e in events if e["type"] == "message_start")
                delta = [e for e in events if e["type"] == "message_delta"][-1]
                usage = {**start["message"]["usage"], **delta["usage"]}
                model = start["message"]["model"]
        else:
            data = body if isinstance(body, dict) else json.loads(body)
            usage, model = data.get("usage"), data["model"]
        if not usage:
            continue
        if "prompt_tokens" in usage:  # OpenAI counts cached tokens inside the prompt
            calls.append((model, usage["prompt_tokens"], usage["completion_tokens"]))
        else:  # with usage.iterations, every iteration is billed once (the top level is not)
            steps = usage.get("iterations") or [usage]
            prompt = sum(step.get(k) or 0 for step in steps for k in PROMPT_FIELDS)
            calls.append((model, prompt, sum(step["output_tokens"] for step in steps)))
    return calls


def hand_advisor_models(path: Path) -> set[str]:
    """The models of the advisor steps (usage.iterations) a vendored file records."""
    text = path.read_text(encoding="utf-8")
    return set(re.findall(r'"type":"advisor_message","model":"([^"]+)"', text)) | set(
        re.findall(r"model: (\S+)\n\s+output_tokens: \d+\n\s+type: advisor_message", text)
    )


def p95(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]  # nearest rank


def two_digits_up(value: float) -> int:
    """The proposal's rounding, said another way: up to two significant digits."""
    step = 10 ** max(len(str(int(value))) - 2, 0)
    return int(-(-value // step) * step)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["analyze", *args])
    out, err = capsys.readouterr()
    return code, out, err


def measured(text: str, endpoint: str, key: str) -> tuple[int, int]:
    """(limit, measured) of one budget line in one endpoint's block of the proposal."""
    block = text.split(f"\n  {endpoint}:\n", 1)[1]
    block = re.split(r"\n(?!    )", block, maxsplit=1)[0]  # up to the next endpoint or note
    found = re.search(rf"^    {key}: (\d+)   # measured (\d+)$", block, re.MULTILINE)
    assert found, (endpoint, key, block)
    return int(found[1]), int(found[2])


# -- tests ---------------------------------------------------------------------------------
def test_nice_ceiling_rounds_up_to_two_significant_digits():
    assert [nice_ceiling(v) for v in (3310, 87, 0.4, 1406.4, 0)] == [3400, 87, 1, 1500, 0]
    assert [two_digits_up(v) for v in (3310, 87, 0.4, 1406.4)] == [3400, 87, 1, 1500]


# folder under tests/data/cassettes -> the endpoint analyze names it (two `test_anthropic`
# module folders clash, so they take their parent's name too)
FOLDERS = {
    "anthropic": "anthropic",
    "openai": "openai",
    "vcr-ruby": "vcr-ruby",
    "vcr-r": "vcr-r",
    "pydantic-ai-parsed-body/test_anthropic": "pydantic-ai-parsed-body.test_anthropic",
    "pydantic-ai-cassetter/test_anthropic": "pydantic-ai-cassetter.test_anthropic",
    "bedrock-converse/pydantic-ai/test_bedrock": "pydantic-ai.test_bedrock",
    "bedrock-converse/pydantic-ai-cassetter/test_bedrock": "pydantic-ai-cassetter.test_bedrock",
    "bedrock-converse/openllmetry/test_anthropic": "openllmetry.test_anthropic",
    "bedrock-converse/openllmetry/test_titan": "test_titan",
    "pydantic-ai-iterations/test_anthropic": "pydantic-ai-iterations.test_anthropic",
}


def test_proposes_p95s_from_every_recorders_files(capsys):
    code, out, _ = run(capsys, str(CASSETTES))
    assert code == 0
    proposal = yaml.safe_load(out)["endpoints"]
    assert set(proposal) == set(FOLDERS.values())
    for folder, endpoint in FOLDERS.items():
        calls = [c for p in sorted((CASSETTES / folder).glob("*.y*ml")) for c in hand_calls(p)]
        for side, values in (("input", [c[1] for c in calls]), ("output", [c[2] for c in calls])):
            key = f"max_{side}_tokens_p95"
            limit, shown = measured(out, endpoint, key)
            assert shown == p95(values), (endpoint, side)
            assert limit == proposal[endpoint][key] == two_digits_up(p95(values) * 1.2)
    # the real Anthropic cassettes: 310, 465, 1167 (4+1163), 1167 (4+0+1163), 721
    assert measured(out, "anthropic", "max_input_tokens_p95") == (1500, 1167)
    assert proposal["openai"]["target_model"] == "gpt-3.5-turbo-0125"  # 4 of its 6 calls


def test_cost_budget_is_the_mean_cost_of_a_cassette_plus_headroom(capsys):
    _, out, _ = run(capsys, str(CASSETTES / "vcr-ruby"), "--headroom", "50")
    rates = PRICES["models"]["claude-3-haiku"]  # claude-3-haiku-20240307
    rate_in, rate_out = Fraction(str(rates["input"])), Fraction(str(rates["output"]))
    files = sorted((CASSETTES / "vcr-ruby").glob("*.yml"))
    costs = [
        sum(rate_in * i + rate_out * o for _, i, o in calls) / 1_000_000
        for calls in map(hand_calls, files)
        if calls
    ]
    assert len(costs) == 2  # the messages and the streaming cassette; the rest hold no usage
    mean = sum(costs) / len(costs)
    proposal = yaml.safe_load(out)["endpoints"]["vcr-ruby"]
    assert proposal["max_cost_per_request_usd"] == round(float(mean * Fraction(3, 2)), 6)
    assert f"# measured {round(float(mean), 6):.6f}".rstrip("0") in out
    assert proposal["target_model"] == "claude-3-haiku-20240307"


@pytest.mark.parametrize("by", ["folder", "file", "model"])
def test_every_grouping_is_a_token_budgets_yml_that_check_accepts(capsys, tmp_path, by):
    code, out, _ = run(capsys, str(CASSETTES), "--by", by)
    assert code == 0
    config = tmp_path / "token_budgets.yml"
    config.write_text(out, encoding="utf-8")
    assert main(["check", "--config", str(config)]) == 0, capsys.readouterr().err
    endpoints = yaml.safe_load(out)["endpoints"]
    every_call = [c for p in sorted(CASSETTES.rglob("*.y*ml")) for c in hand_calls(p)]
    if by == "model":  # an advisor's steps are its model's (priced at its rates)
        advisors = {m for p in sorted(CASSETTES.rglob("*.y*ml")) for m in hand_advisor_models(p)}
        assert set(endpoints) == {endpoint_name(m) for m, _, _ in every_call} | advisors
    if by == "file":
        with_usage = [p for p in CASSETTES.rglob("*.y*ml") if hand_calls(p)]
        assert len(endpoints) == len(with_usage)
    # no price: amazon.titan-text-express-v1 only (genai-prices prices claude-sonnet-5 and
    # claude-fable-5, which the old hand-written table did not)
    unpriced = 1
    assert sum(1 for e in endpoints.values() if "target_model" in e) == len(endpoints) - unpriced
    assert "# target_model: claude-sonnet-5   # no price" not in out
    assert "# target_model: amazon.titan-text-express-v1   # no price" in out


def test_a_model_without_a_price_is_not_proposed(capsys):
    code, out, _ = run(capsys, str(BEDROCK / "openllmetry" / "test_titan"))
    assert code == 0
    proposal = yaml.safe_load(out)["endpoints"]["test_titan"]
    assert "target_model" not in proposal and "max_cost_per_request_usd" not in proposal
    assert "allowed_escalation_rate" not in proposal  # needs a target_model
    assert "amazon.titan-text-express-v1 has no price (genai-prices, `pricing:`)" in out


def test_a_model_the_old_table_lacked_is_priced(capsys):
    """claude-sonnet-5 (an R vcr file) had no price until prices came from genai-prices."""
    code, out, _ = run(capsys, str(CASSETTES / "vcr-r"))
    assert code == 0 and "no price" not in out
    calls = {
        m: (i, o) for p in sorted((CASSETTES / "vcr-r").glob("*.yml")) for m, i, o in hand_calls(p)
    }
    # Published rates, $ per MTok: Sonnet 5 $2 in / $10 out, Sonnet 3.5 $3 / $15.
    (i5, o5), (i35, o35) = calls["claude-sonnet-5"], calls["claude-3-5-sonnet-20241022"]
    mean = Fraction(i5 * 2 + o5 * 10 + i35 * 3 + o35 * 15, 2 * 10**6)
    found = re.search(r"max_cost_per_request_usd: [\d.]+   # measured ([\d.]+)", out)
    assert found and float(found[1]) == pytest.approx(float(mean), abs=1e-6)
    assert yaml.safe_load(out)["endpoints"]["vcr-r"]["max_input_tokens_p95"] == two_digits_up(36)


LIMIT_EXCEEDED = "test_anthropic_model_usage_limit_exceeded"
COUNT_ERROR = "test_anthropic_count_tokens_error"
BATCH_CREATE = "batch create (usage comes with the batch results)"
NO_STREAM_USAGE = "stream carried no usage (set stream_options.include_usage)"
TITAN_NO_USAGE = (
    "Bedrock stream of amazon.titan-text-express-v1 (not a Claude model) without usage "
    "(no amazon-bedrock-invocationMetrics in its chunks)"
)


def test_each_skipped_file_is_named_with_why(capsys):
    _, _, err = run(capsys, str(CASSETTES))
    skipped = [line.strip() for line in err.splitlines() if line.startswith("  skipped ")]
    counts_only = "count_tokens only (counts the prompt, generates nothing)"
    bedrock = "bedrock-converse/pydantic-ai/test_bedrock"
    expected = [
        ("anthropic/ddtrace_error_400_no_usage.yaml", "error response (HTTP 400)"),
        ("anthropic/llm-anthropic_count_tokens.yaml", f"{counts_only} ×2"),
        (
            "bedrock-converse/openllmetry/test_guardrails/test_guardrail_invoke_stream.yaml",
            TITAN_NO_USAGE,
        ),
        (f"{bedrock}/test_bedrock_model_usage_limit_exceeded.yaml", counts_only),
        (f"{bedrock}/test_bedrock_streaming_error.yaml", "error response (HTTP 400)"),
        (f"pydantic-ai-cassetter/test_anthropic/{LIMIT_EXCEEDED}.yaml", counts_only),
        (f"pydantic-ai-parsed-body/test_anthropic/{COUNT_ERROR}.yaml", "error response (HTTP 404)"),
        ("vcr-ruby/anthropic-rb_batch_create_no_usage.yml", BATCH_CREATE),
        ("vcr-ruby/anthropic-rb_batch_results_404.yml", "error response (HTTP 404) ×2"),
        ("vcr-ruby/ruby-openai_stream_without_usage.yml", NO_STREAM_USAGE),
    ]
    assert skipped == [f"skipped {path}: no usage: {why}" for path, why in expected]
    files = [p for p in CASSETTES.rglob("*") if p.suffix in (".yaml", ".yml")]
    assert f"{len(files)} files read, {len(files) - 10} with usage, 10 skipped" in err


def test_unreadable_files_are_named_with_file_and_line(capsys, tmp_path):
    shutil.copy(CASSETTES / "vcr-ruby/anthropic-rb_messages.yml", tmp_path / "good.yml")
    (tmp_path / "bad.yaml").write_text("interactions:\n  - request: [unclosed\n")
    text = (CASSETTES / "vcr-ruby/anthropic-rb_batch_results_404.yml").read_text()
    second = text.index("- request:", text.index("- request:") + 1)
    (tmp_path / "broken.yml").write_text(
        text[:second] + text[second:].replace("code: 404", "code: gone", 1)
    )
    (tmp_path / "token_budgets.yml").write_text("endpoints: {chat: {max_input_tokens_p95: 9}}\n")
    code, out, err = run(capsys, str(tmp_path))
    assert code == 0 and yaml.safe_load(out)["endpoints"]
    bad_line = err.split("skipped bad.yaml:", 1)[1].split(":", 1)[0]
    assert bad_line.isdigit() and "unreadable: corrupt cassette (YAML" in err
    line = text[:second].count("\n") + 1
    assert f"skipped broken.yml:{line}: unreadable: interaction 1 is malformed" in err
    assert "skipped token_budgets.yml: not a cassette" in err


def test_pytest_recording_layout_one_endpoint_per_test_module(capsys, tmp_path):
    tests = tmp_path / "tests"
    layout = {
        "test_anthropic/test_tools.yaml": "anthropic/llm-anthropic_tools_stream_multiturn.yaml",
        "test_anthropic/test_caching.yaml": "anthropic/openllmetry_prompt_caching_gzip.yaml",
        "test_anthropic/test_count_tokens.yaml": "anthropic/llm-anthropic_count_tokens.yaml",
        "test_instrumentor/test_tools.yaml": "anthropic/openinference_parallel_tool_use_plain.yaml",
    }
    for name, source in layout.items():
        (tests / "cassettes" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CASSETTES / source, tests / "cassettes" / name)
    code, out, _ = run(capsys, str(tests))
    assert code == 0
    proposal = yaml.safe_load(out)["endpoints"]
    assert set(proposal) == {"test_anthropic", "test_instrumentor"}
    module = [c for s in list(layout.values())[:3] for c in hand_calls(CASSETTES / s)]
    shown = measured(out, "test_anthropic", "max_input_tokens_p95")[1]
    assert shown == p95([c[1] for c in module])
    assert "# 2 files (vcrpy ×2), 2 cases, 4 calls" in out  # count_tokens alone is no case
    _, by_file, _ = run(capsys, str(tests), "--by", "file")
    assert set(yaml.safe_load(by_file)["endpoints"]) == {
        "test_anthropic.test_tools",  # two test_tools.yaml: the module tells them apart
        "test_instrumentor.test_tools",
        "test_caching",
    }
    _, by_model, _ = run(capsys, str(tests), "--by", "model")
    models = Counter(c[0] for s in layout.values() for c in hand_calls(CASSETTES / s))
    assert set(yaml.safe_load(by_model)["endpoints"]) == set(models)


def test_batch_results_jsonl_is_one_case_per_request_at_batch_prices(capsys, tmp_path):
    usage = [(1200, 80), (900, 60), (1500, 95)]
    lines = [
        {
            "custom_id": f"q{i}",
            "result": {
                "type": "succeeded",
                "message": {
                    "model": "claude-haiku-4-5",
                    "usage": {"input_tokens": i_, "output_tokens": o},
                },
            },
        }
        for i, (i_, o) in enumerate(usage)
    ]
    lines.append(
        {"custom_id": "q9", "result": {"type": "errored", "error": {"type": "overloaded"}}}
    )
    (tmp_path / "nightly").mkdir()
    (tmp_path / "nightly" / "msgbatch_01.jsonl").write_text("\n".join(map(json.dumps, lines)))
    failed = [lines[-1], {**lines[-1], "custom_id": "q8"}]
    (tmp_path / "nightly" / "msgbatch_02.jsonl").write_text("\n".join(map(json.dumps, failed)))
    code, out, err = run(capsys, str(tmp_path))
    assert code == 0
    proposal = yaml.safe_load(out)["endpoints"]["nightly"]
    assert "# 1 file (batch results), 3 cases, 3 calls" in out
    assert proposal["max_input_tokens_p95"] == two_digits_up(p95([u[0] for u in usage]) * 1.2)
    rates = PRICES["models"]["claude-haiku-4-5"]
    full = [
        Fraction(str(rates["input"])) * i + Fraction(str(rates["output"])) * o for i, o in usage
    ]
    mean = sum(full) / len(full) / 1_000_000 / 2  # the Batch API halves every rate
    assert proposal["max_cost_per_request_usd"] == round(float(mean * Fraction(6, 5)), 6)
    assert "skipped nightly/msgbatch_02.jsonl: no usage: batch request errored ×2" in err


def test_endpoint_names_are_valid_and_unique(capsys, tmp_path):
    source = CASSETTES / "vcr-ruby/anthropic-rb_messages.yml"
    for folder in ("a/cassettes/chat", "b/cassettes/chat", "my feature!", "true"):
        (tmp_path / folder).mkdir(parents=True)
        shutil.copy(source, tmp_path / folder / "x.yml")
    _, out, _ = run(capsys, str(tmp_path))
    assert set(yaml.safe_load(out)["endpoints"]) == {"a.chat", "b.chat", "my_feature", "true"}
    assert "\n  'true':\n" in out  # a plain `true:` would load as a boolean
    assert endpoint_name("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == (
        "us.anthropic.claude-sonnet-4-5-20250929-v1_0"
    )


def test_headroom_and_example_layout(capsys):
    code, out, _ = run(capsys, str(EXAMPLE), "--headroom", "0")
    assert code == 0
    proposal = yaml.safe_load(out)["endpoints"]
    assert set(proposal) == {"chat_reply", "triage"}
    assert proposal["chat_reply"]["target_model"] == "claude-sonnet-4-6"
    by_endpoint = defaultdict(list)
    for path in EXAMPLE.rglob("*.yaml"):
        by_endpoint[path.parent.name] += hand_calls(path)
    for name, calls in by_endpoint.items():  # no headroom: the budget is the rounded p95
        assert proposal[name]["max_output_tokens_p95"] == two_digits_up(p95([c[2] for c in calls]))


def test_nothing_usable_or_bad_arguments_exit_2(capsys, tmp_path):
    (tmp_path / "ep").mkdir()
    (tmp_path / "ep" / "bad.yaml").write_text("interactions: [unclosed")
    code, out, err = run(capsys, str(tmp_path))
    assert code == 2 and out == ""
    assert "skipped ep/bad.yaml:1: unreadable: corrupt cassette" in err
    assert "no API calls with usage found" in err
    assert run(capsys, str(tmp_path / "missing"))[0] == 2
    assert run(capsys, str(CASSETTES), "--headroom", "-5")[0] == 2
    assert main(["analyze", str(CASSETTES), "--by", "color"]) == 2


# -- Amazon Bedrock: Converse, ConverseStream ------------------------------------------------
BEDROCK = CASSETTES / "bedrock-converse"
CACHED_DOCUMENTS = "test_bedrock_cache_messages_with_document_as_last_content"


def regional_rates(model: str) -> dict[str, Fraction]:
    """A model's table rates, with Bedrock's regional premium unless the table exempts it."""
    premium = PRICES["regional_premium"]
    factor = Fraction(1) if model in premium["exempt"] else Fraction(str(premium["rate"]))
    return {k: Fraction(str(v)) * factor for k, v in PRICES["models"][model].items()}


def test_converse_calls_are_measured_with_their_cache_and_priced(capsys):
    """pydantic-ai's Converse cassettes: usage in camelCase, the model in the URL (a `us.`
    profile, URL-quoted), writes and reads of the prompt cache, a 10% regional premium."""
    code, out, err = run(capsys, str(BEDROCK / "pydantic-ai"), "--by", "file")
    assert code == 0 and "not an API call" not in err
    endpoint = CACHED_DOCUMENTS  # --by file: one endpoint per cassette, named after it
    proposal = yaml.safe_load(out)["endpoints"][endpoint]
    assert proposal["target_model"] == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    doc = yaml.safe_load(
        (BEDROCK / "pydantic-ai/test_bedrock" / f"{CACHED_DOCUMENTS}.yaml").read_text()
    )
    usages = [i["response"]["parsed_body"]["usage"] for i in doc["interactions"]]
    prompts = [
        u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheWriteInputTokens"] for u in usages
    ]
    assert measured(out, endpoint, "max_input_tokens_p95")[1] == max(prompts) == 3 + 1712 + 236
    hit = sum(u["cacheReadInputTokens"] for u in usages) / sum(prompts)
    assert f"min_cache_hit_rate: {round(hit - 0.1, 2)}   # measured {hit:.2f}" in out
    rates = regional_rates("claude-sonnet-4-5")
    cost = (
        sum(
            rates["input"] * u["inputTokens"]
            + rates["cache_write_5m"] * u["cacheWriteInputTokens"]
            + rates["cache_read"] * u["cacheReadInputTokens"]
            + rates["output"] * u["outputTokens"]
            for u in usages
        )
        / 1_000_000
    )  # one case: its cost is the cost per request
    assert proposal["max_cost_per_request_usd"] == round(float(cost * Fraction(6, 5)), 6)
    # the ConverseStream (event-stream frames, usage in its metadata event)
    stream = yaml.safe_load(out)["endpoints"]["test_bedrock_model_thinking_part_stream"]
    ((model, prompt, output),) = hand_calls(
        BEDROCK / "pydantic-ai/test_bedrock/test_bedrock_model_thinking_part_stream.yaml"
    )
    assert (stream["target_model"], stream["max_output_tokens_p95"]) == (
        model,
        two_digits_up(output * 1.2),
    )
    assert (
        measured(out, "test_bedrock_model_thinking_part_stream", "max_input_tokens_p95")[1]
        == prompt
        == 36
    )


def test_a_cassette_with_version_first_is_read(capsys, tmp_path):
    """cassetter writes `version: 1` first; the same recording as pydantic-ai's vcrpy file."""
    code, out, err = run(capsys, str(BEDROCK / "pydantic-ai-cassetter"))
    assert code == 0 and "1 file read, 1 with usage, 0 skipped" in err
    path = (
        BEDROCK / "pydantic-ai-cassetter/test_bedrock/test_bedrock_model_thinking_part_stream.yaml"
    )
    assert path.read_text().startswith("version: 1\n")
    ((_, prompt, output),) = hand_calls(path)
    assert measured(out, "test_bedrock", "max_input_tokens_p95") == (
        two_digits_up(prompt * 1.2),
        prompt,
    )
    assert measured(out, "test_bedrock", "max_output_tokens_p95")[1] == output
    # and a vcrpy file whose `version` was moved first reads as the original does
    source = CASSETTES / "anthropic/openinference_parallel_tool_use_plain.yaml"
    text = source.read_text()
    (tmp_path / "ep").mkdir()
    (tmp_path / "ep" / "first.yaml").write_text("version: 1\n" + text.removesuffix("version: 1\n"))
    code, out, err = run(capsys, str(tmp_path))
    assert code == 0 and "1 file read, 1 with usage, 0 skipped" in err
    assert measured(out, "ep", "max_input_tokens_p95")[1] == hand_calls(source)[0][1]


def test_an_inference_profile_arn_is_priced_as_the_model_it_ends_in(capsys):
    code, out, _ = run(capsys, str(BEDROCK / "openllmetry/test_anthropic"))
    assert code == 0
    ((model, prompt, output),) = hand_calls(
        BEDROCK / "openllmetry/test_anthropic/test_anthropic_cross_region.yaml"
    )
    assert model.startswith("arn:aws:bedrock:") and model.endswith(
        "/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
    )
    rates = regional_rates("claude-3-7-sonnet")  # exempt from the premium: the table price
    cost = (rates["input"] * prompt + rates["output"] * output) / 1_000_000
    proposal = yaml.safe_load(out)["endpoints"]["test_anthropic"]
    assert proposal["target_model"] == model
    assert proposal["max_cost_per_request_usd"] == round(float(cost * Fraction(6, 5)), 6)


def event_stream(*frames: tuple[dict[str, str], bytes]) -> bytes:
    """AWS event-stream frames with string headers, CRCs computed here."""
    out = b""
    for headers, payload in frames:
        raw = b"".join(
            bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
            for k, v in headers.items()
        )
        prelude = struct.pack(">II", 16 + len(raw) + len(payload), len(raw))
        frame = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw + payload
        out += frame + struct.pack(">I", zlib.crc32(frame))
    return out


def test_every_skip_names_its_real_reason(capsys, tmp_path):
    """A stream that ended in an exception, another model's stream without usage, a model
    that is not Claude with usage (measured), a file without `version` that was not cut."""
    (tmp_path / "ep").mkdir()
    throttled = event_stream(
        ({":message-type": "event", ":event-type": "messageStart"}, b'{"role":"assistant"}'),
        ({":message-type": "exception", ":exception-type": "throttlingException"}, b"{}"),
    )
    host = "https://bedrock-runtime.us-east-1.amazonaws.com"
    uri = f"{host}/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    interaction = {
        "request": {"method": "POST", "body": "{}", "uri": uri},
        "response": {
            "status": {"code": 200, "message": "OK"},
            "body": {"string": throttled},
            "headers": {"content-type": ["application/vnd.amazon.eventstream"]},
        },
    }
    document = {"interactions": [interaction], "version": 1}
    (tmp_path / "ep" / "throttled.yaml").write_text(yaml.safe_dump(document))
    for name in (
        "test_guardrails/test_guardrail_invoke_stream",
        "test_titan/test_titan_invoke_stream",
    ):
        shutil.copy(BEDROCK / "openllmetry" / f"{name}.yaml", tmp_path / "ep")
    text = (CASSETTES / "vcr-ruby/anthropic-rb_messages.yml").read_text()
    whole = (CASSETTES / "anthropic/llm-anthropic_tools_stream_multiturn.yaml").read_text()
    (tmp_path / "ep" / "no_version.yaml").write_text(
        whole.replace("version: 1\n", "recorded_by: a script\n")
    )
    (tmp_path / "ep" / "cut.yml").write_text(text)  # a Ruby file, whole: read
    code, out, err = run(capsys, str(tmp_path))
    assert code == 0
    assert (
        "skipped ep/throttled.yaml: no usage: stream ended in an exception (throttlingException)"
        in err
    )
    assert f"skipped ep/test_guardrail_invoke_stream.yaml: no usage: {TITAN_NO_USAGE}" in err
    assert "unreadable" not in err and "truncated" not in err
    assert "5 files read, 3 with usage, 2 skipped" in err
    ((_, prompt, output),) = hand_calls(
        BEDROCK / "openllmetry/test_titan/test_titan_invoke_stream.yaml"
    )
    assert "amazon.titan-text-express-v1 ×1" in out and (prompt, output) == (28, 188)


# -- what is proposed ------------------------------------------------------------------------
def messages_cassette(calls: list[tuple[str, dict]]) -> str:
    """A vcrpy cassette of Messages calls (model, usage), in call order."""
    interactions = [
        {
            "request": {
                "method": "POST",
                "uri": "https://api.anthropic.com/v1/messages",
                "body": json.dumps({"model": model}),
            },
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": {},
                "body": {"string": json.dumps({"model": model, "usage": usage})},
            },
        }
        for model, usage in calls
    ]
    return yaml.safe_dump({"interactions": interactions, "version": 1})


def cost_of(model: str, usage: dict) -> Fraction:
    rates = {k: Fraction(str(v)) for k, v in PRICES["models"][model].items()}
    return (
        rates["input"] * usage.get("input_tokens", 0)
        + rates["output"] * usage["output_tokens"]
        + rates["cache_read"] * usage.get("cache_read_input_tokens", 0)
    ) / 1_000_000


ROUTE = ("claude-haiku-4-5", {"input_tokens": 150, "output_tokens": 5})
SUMMARY = ("claude-haiku-4-5", {"input_tokens": 900, "output_tokens": 60})
ANSWER = ("claude-sonnet-4-6", {"input_tokens": 1200, "output_tokens": 300})
ESCALATION = ("claude-opus-4-7", {"input_tokens": 1200, "output_tokens": 300})


def test_a_cheap_router_is_not_the_target_model(capsys, tmp_path):
    """Each case: Haiku routes and summarises (2 calls), Sonnet answers (1 call), Opus once.
    Haiku is the model of most calls, Sonnet of most cost: Sonnet is the endpoint's model,
    and Haiku, called in every case, is not an escalation (else every case escalates)."""
    (tmp_path / "reply").mkdir()
    cases = [
        [ROUTE, SUMMARY, ANSWER, ESCALATION],
        [ROUTE, SUMMARY, ANSWER],
        [ROUTE, SUMMARY, ANSWER],
    ]
    for i, calls in enumerate(cases):
        (tmp_path / "reply" / f"case{i}.yaml").write_text(messages_cassette(calls))
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 0
    proposal = yaml.safe_load(out)["endpoints"]["reply"]
    counts = Counter(model for calls in cases for model, _ in calls)
    costs = Counter()
    for calls in cases:
        for model, usage in calls:
            costs[model] += cost_of(model, usage)
    assert counts.most_common(1)[0][0] == "claude-haiku-4-5"  # most calls
    assert costs.most_common(1)[0][0] == "claude-sonnet-4-6"  # most cost
    assert proposal["target_model"] == "claude-sonnet-4-6"
    assert proposal["escalation_models"] == ["claude-opus-4-7"]
    assert proposal["allowed_escalation_rate"] == round(1 / 3 + 0.05, 2)  # the one Opus case
    share = float(costs["claude-haiku-4-5"] / sum(costs.values()))
    assert (
        f"# most calls: claude-haiku-4-5 (6 calls in 3 of 3 cases, {share:.0%} of the cost)" in out
    )
    assert "claude-haiku-4-5: cheaper, called in most cases (a router or a first step?)" in out
    config = tmp_path / "token_budgets.yml"
    config.write_text(out)
    assert main(["check", "--config", str(config)]) == 0, capsys.readouterr().err
    # Without a pricier model, no escalation budget: Haiku would be one in every case.
    (tmp_path / "reply" / "case0.yaml").write_text(messages_cassette(cases[1]))
    _, out, _ = run(capsys, str(tmp_path))
    proposal = yaml.safe_load(out)["endpoints"]["reply"]
    assert proposal["target_model"] == "claude-sonnet-4-6"
    assert "allowed_escalation_rate" not in proposal and "escalation_models" not in proposal
    assert "# allowed_escalation_rate: not proposed: claude-haiku-4-5 (cheaper" in out


def test_no_budget_that_cannot_fail_is_proposed(capsys, tmp_path):
    """Opus checks every Sonnet answer (escalation rate 1.0) and 5% of the prompt is read
    from the cache: `allowed_escalation_rate: 1.0` and `min_cache_hit_rate: 0.0` would
    pass whatever happens, so each is a comment that says why."""
    (tmp_path / "review").mkdir()
    answer = (
        "claude-sonnet-4-6",
        {"input_tokens": 1900, "cache_read_input_tokens": 100, "output_tokens": 500},
    )
    check = ("claude-opus-4-7", {"input_tokens": 40, "output_tokens": 2})
    for i in range(4):
        (tmp_path / "review" / f"case{i}.yaml").write_text(messages_cassette([answer, check]))
    code, out, _ = run(capsys, str(tmp_path))
    assert code == 0
    proposal = yaml.safe_load(out)["endpoints"]["review"]
    assert proposal["target_model"] == "claude-sonnet-4-6"  # the cost, in every case
    hit = 4 * 100 / (4 * (2000 + 40))
    assert hit - 0.1 <= 0
    assert "min_cache_hit_rate" not in proposal and "allowed_escalation_rate" not in proposal
    assert (
        f"# min_cache_hit_rate: not proposed: measured {hit:.2f}, so the floor "
        "(measured - 0.1) would be 0.0, which cannot fail"
    ) in out
    assert (
        "# allowed_escalation_rate: not proposed: 4 of 4 cases call a model other than "
        "target_model (measured 1.00), so the limit would be 1.0, which cannot fail"
    ) in out


@pytest.mark.slow
def test_a_reader_that_leaves_early_gets_no_traceback():
    """`tokenbudget analyze DIR | head -0`: the reader has gone before the YAML is printed.

    The read end is closed before the command starts, so its first write fails whatever the
    machine's load (a reader that leaves after one byte raced the command's last write)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        reader = subprocess.run(
            [sys.executable, "-m", "pytest_tokenbudget.cli", "analyze", str(CASSETTES)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    err = reader.stderr.decode()
    assert reader.returncode == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
