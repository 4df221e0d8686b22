"""Prices from genai-prices' bundled data: every charge a recording shows, priced exactly.

Each expected figure is computed here from the published rates written in the test (Claude
pricing page, $ per million tokens), never from the library or the code under test. The
recordings are one-call vcrpy cassettes holding the usage the API reports for each case.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from paths import CASSETTES, DATA

from pytest_tokenbudget.cache.simulation import cache_rules, minimum_cacheable
from pytest_tokenbudget.errors import CassetteError, PricingError
from pytest_tokenbudget.measure.samples import Sample
from pytest_tokenbudget.measure.stats import endpoint_stats
from pytest_tokenbudget.pricing import source as price_source
from pytest_tokenbudget.pricing.prices import PriceBook, source_name, unpriced_call_message
from pytest_tokenbudget.providers.exchanges import load_cassette_file, parse_exchange

MESSAGES = "https://api.anthropic.com/v1/messages"
BATCH_RESULTS = "https://api.anthropic.com/v1/messages/batches/msgbatch_01/results"
M = 1_000_000


def cassette(tmp_path: Path, model: str, usage: dict, *, url: str = MESSAGES) -> Path:
    """A one-call vcrpy cassette: a Messages answer (or a batch results file) with this
    usage, as the API reports it."""
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok"}],
        "usage": usage,
    }
    if url == BATCH_RESULTS:
        body = json.dumps({"custom_id": "c1", "result": {"type": "succeeded", "message": message}})
    else:
        body = json.dumps(message)
    doc = {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": url,
                    "body": json.dumps({"model": model}),
                    "headers": {},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"content-type": ["application/json"]},
                    "body": {"string": body},
                },
            }
        ],
    }
    path = tmp_path / f"{model}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def cost_of(path: Path, book: PriceBook | None = None) -> Fraction:
    """The endpoint cost of a cassette's calls, through parsing, samples and stats."""
    calls = [c for e in load_cassette_file(path) for c in parse_exchange(e)]
    samples = [
        Sample("ep", "case", "t::case", i, c.model, c.usage, batch=c.batch, note=c.note)
        for i, c in enumerate(calls)
    ]
    stats = endpoint_stats("ep", samples, ["case"], book=book or PriceBook())
    assert stats.cost_total is not None
    return stats.cost_total


def test_haiku_5_5_bills_every_token_at_5x_above_a_100k_prompt(tmp_path):
    # Haiku 5.5: $0.10 in / $0.50 out; a prompt over 100,000 tokens: 5x on every token.
    path = cassette(tmp_path, "claude-haiku-5-5", {"input_tokens": 150_000, "output_tokens": 1_000})
    expected = Fraction(150_000 * 50 + 1_000 * 250, 100 * M)  # $0.50 and $2.50 per MTok
    assert cost_of(path) == expected == Fraction("0.0775")
    # at exactly 100,000 the prompt does not exceed the tier: base rates
    path = cassette(tmp_path, "claude-haiku-5-5", {"input_tokens": 100_000, "output_tokens": 1_000})
    assert cost_of(path) == Fraction(100_000 * 10 + 1_000 * 50, 100 * M)


def test_the_band_is_the_whole_prompt_cache_reads_and_writes_included(tmp_path):
    # 60,000 uncached + 50,000 read = 110,000: over 100K, so reads are at 5x too.
    usage = {"input_tokens": 60_000, "cache_read_input_tokens": 50_000, "output_tokens": 10}
    path = cassette(tmp_path, "claude-haiku-5-5", usage)
    # 5x of $0.10 in, $0.01 read (0.1x), $0.50 out
    assert cost_of(path) == Fraction(60_000 * 50 + 50_000 * 5 + 10 * 250, 100 * M)


def test_sonnet_5_5_cache_reads_at_its_own_rate(tmp_path):
    # Sonnet 5.5: $2 in, $10 out; cache reads 0.05x input = $0.10 (not the usual 0.1x)
    usage = {"input_tokens": 1_000, "cache_read_input_tokens": 10_000, "output_tokens": 500}
    path = cassette(tmp_path, "claude-sonnet-5-5", usage)
    assert cost_of(path) == Fraction(1_000 * 200 + 10_000 * 10 + 500 * 1_000, 100 * M)
    assert cost_of(path) == Fraction("0.008")


def test_opus_5_5_five_minute_cache_write(tmp_path):
    # Opus 5.5: $4 in, $20 out, 5-minute writes 1.25x = $5
    usage = {
        "input_tokens": 200,
        "cache_creation_input_tokens": 3_000,
        "output_tokens": 400,
        "cache_creation": {"ephemeral_5m_input_tokens": 3_000, "ephemeral_1h_input_tokens": 0},
    }
    path = cassette(tmp_path, "claude-opus-5-5", usage)
    assert cost_of(path) == Fraction(200 * 4 + 3_000 * 5 + 400 * 20, M) == Fraction("0.0238")


def test_web_searches_are_billed_per_search_as_their_own_tier(tmp_path):
    # Sonnet 4.6: $3 in, $15 out; web search $10 per 1,000 searches
    usage = {
        "input_tokens": 1_200,
        "output_tokens": 300,
        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
    }
    path = cassette(tmp_path, "claude-sonnet-4-6", usage)
    tokens = Fraction(1_200 * 3 + 300 * 15, M)
    searches = Fraction(3 * 10, 1_000)
    assert cost_of(path) == tokens + searches == Fraction("0.0381")
    calls = [c for e in load_cassette_file(path) for c in parse_exchange(e)]
    samples = [Sample("ep", "c", "t", 0, calls[0].model, calls[0].usage)]
    stats = endpoint_stats("ep", samples, ["c"], book=PriceBook())
    tiers = stats.tier_costs["claude-sonnet-4-6"]
    assert tiers["web_search"] == searches
    assert tiers["input"] + tiers["output"] == tokens


def test_data_residency_is_1_1x_on_recent_models_only(tmp_path):
    # Opus 4.7 ($5 / $25) served in the US only: 1.1x every token price
    usage = {"input_tokens": 1_000, "output_tokens": 100, "inference_geo": "us"}
    path = cassette(tmp_path, "claude-opus-4-7", usage)
    assert cost_of(path) == Fraction(1_000 * 5 + 100 * 25, M) * Fraction(11, 10)
    # "global" (and "not_available", as real recordings show) is no residency
    usage["inference_geo"] = "global"
    assert cost_of(cassette(tmp_path, "claude-opus-4-7", usage)) == Fraction(7_500, M)
    # Haiku 4.5 predates data residency pricing: one price
    usage["inference_geo"] = "us"
    assert cost_of(cassette(tmp_path, "claude-haiku-4-5", usage)) == Fraction(1_000 + 500, M)


def test_a_batch_result_is_priced_at_the_batch_rates(tmp_path):
    # Sonnet 5.5 through the Message Batches API: half of $2 / $10 / $0.10 reads
    usage = {"input_tokens": 4_000, "cache_read_input_tokens": 2_000, "output_tokens": 800}
    path = cassette(tmp_path, "claude-sonnet-5-5", usage, url=BATCH_RESULTS)
    assert cost_of(path) == Fraction(4_000 * 100 + 2_000 * 5 + 800 * 500, 100 * M)


FAST_SINCE = (0, 2, 3)  # the genai-prices release that first lists fast-mode rates


def _installed() -> tuple[int, ...]:
    return tuple(int(p) for p in price_source.version().split(".")[:3])


@pytest.mark.skipif(_installed() < FAST_SINCE, reason="genai-prices lists no fast-mode rates")
def test_fast_mode_is_priced_where_the_source_lists_it(tmp_path):
    # Opus 5.5 fast mode: $8 in / $40 out
    usage = {"input_tokens": 1_000, "output_tokens": 200, "speed": "fast"}
    assert cost_of(cassette(tmp_path, "claude-opus-5-5", usage)) == Fraction(8_000 + 8_000, M)


def test_fast_mode_without_a_listed_rate_is_an_error_never_the_standard_price(tmp_path):
    usage = {"input_tokens": 1_000, "output_tokens": 200, "speed": "fast"}
    # Sonnet 4.6 has no fast-mode rate: never priced as standard, never $0
    calls = [
        c
        for e in load_cassette_file(cassette(tmp_path, "claude-sonnet-4-6", usage))
        for c in parse_exchange(e)
    ]
    samples = [Sample("ep", "c", "t", 0, calls[0].model, calls[0].usage)]
    stats = endpoint_stats("ep", samples, ["c"], book=PriceBook(), strict=False)
    assert stats.cost_total is None
    (what,) = stats.unpriced
    assert what == "claude-sonnet-4-6 [speed=fast]"
    message = unpriced_call_message(what, ["c"], "token_budgets.yml")
    assert message.startswith("no price for 'claude-sonnet-4-6' at speed 'fast' in genai-prices")
    assert "upgrade genai-prices" in message


def test_a_pricing_override_wins_over_the_source_and_keeps_the_search_fee(tmp_path):
    book = PriceBook({"claude-sonnet-4-6": {"input": 1, "output": 2}})
    usage = {
        "input_tokens": 1_000,
        "output_tokens": 1_000,
        "server_tool_use": {"web_search_requests": 2},
    }
    path = cassette(tmp_path, "claude-sonnet-4-6", usage)
    # the override's $1 / $2, and the provider's $10 per 1,000 searches
    assert cost_of(path, book) == Fraction(1_000 + 2_000, M) + Fraction(20, 1_000)
    own = PriceBook({"claude-sonnet-4-6": {"input": 1, "output": 2, "web_search": 5}})
    assert cost_of(path, own) == Fraction(3_000, M) + Fraction(10, 1_000)


@pytest.mark.skipif(_installed() < FAST_SINCE, reason="genai-prices lists no fast-mode rates")
def test_a_fast_request_of_an_overridden_model_says_what_prices_it(tmp_path):
    # Opus 5.5 lists fast-mode rates in genai-prices; a `pricing:` entry replaces them
    book = PriceBook({"claude-opus-5-5": {"input": 4, "output": 20}})
    usage = {"input_tokens": 1_000, "output_tokens": 100, "speed": "fast"}
    calls = [
        c
        for e in load_cassette_file(cassette(tmp_path, "claude-opus-5-5", usage))
        for c in parse_exchange(e)
    ]
    samples = [Sample("ep", "c", "t", 0, calls[0].model, calls[0].usage)]
    stats = endpoint_stats("ep", samples, ["c"], book=book, strict=False)
    (what,) = stats.unpriced
    message = unpriced_call_message(what, ["c"], "token_budgets.yml")
    assert "`pricing:` entry replaces them" in message and "remove the entry" in message
    assert "price the model in `pricing:`" not in message
    without = unpriced_call_message("claude-sonnet-4-6 [speed=fast]", ["c"], "t.yml")
    assert "a `pricing:` entry has no fast-mode rates" in without


def test_the_web_search_advice_says_what_a_pricing_entry_drops():
    message = unpriced_call_message("claude-sonnet-4-5@20250929 [web_search]", ["c"], "t.yml")
    assert "add `web_search` ($ per 1,000 searches) to its `pricing:` entry" in message
    assert "long-context bands" in message and "data-residency multiplier" in message


def test_a_pricing_entry_may_give_the_web_search_fee(tmp_path, capsys):
    from pytest_tokenbudget.cli import main
    from pytest_tokenbudget.config.budgets import load_config

    path = tmp_path / "token_budgets.yml"
    path.write_text(
        "pricing:\n  acme-1: {input: 1, output: 2, web_search: 7.5}\n"
        "endpoints:\n  chat:\n    target_model: acme-1\n    max_input_tokens_p95: 9\n"
    )
    assert main(["check", "--config", str(path)]) == 0, capsys.readouterr().err
    price = PriceBook(load_config(path).pricing).price("acme-1")
    assert price.web_search == Fraction("7.5") / 1_000  # $ per search


def test_the_hook_prices_what_neither_the_source_nor_pricing_knows():
    book = PriceBook(fallback=lambda m: {"input": 4, "output": 8} if m == "acme-1" else None)
    assert book.price("acme-1").source == "pytest_tokenbudget_price hook"
    assert book.price("claude-sonnet-4-6").source == source_name()  # the source first


def test_bedrock_regional_ids_carry_the_platform_premium():
    # Bedrock: a `us.` profile costs 10% more than the global one for Sonnet 4.5 ($3 / $15)
    book = PriceBook()
    regional = book.price("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert (regional.input, regional.output) == (Fraction("3.3"), Fraction("16.5"))
    world = book.price("global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert (world.input, world.output) == (3, 15)
    assert book.canonical("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == "claude-sonnet-4-5"


def test_an_unknown_model_is_an_error_with_the_snippet_and_the_upgrade_hint():
    with pytest.raises(PricingError) as info:
        PriceBook().price("claude-opus-7")
    message = info.value.message
    assert message.startswith(
        "no price for model 'claude-opus-7'. If it is newer than genai-prices"
    )
    assert "upgrade genai-prices (or add `pricing:`)" in message
    assert "    claude-opus-7: {input: 3.0, output: 15.0}" in message


@pytest.mark.parametrize("typo", ["claude-opus-4-77", "claude-sonnet-4-6-foo", "claude-2.1"])
def test_the_library_prefix_match_never_prices_a_typo_as_another_model(typo):
    # genai-prices matches `claude-opus-4-7` as a prefix: `claude-opus-4-77` stays unknown
    assert PriceBook().find(typo) is None
    assert PriceBook().find("claude-opus-4-7-20260101").input == 5  # a dated id still folds


def test_a_model_a_newer_genai_prices_knows_names_that_release(monkeypatch):
    # as under an older library: the source does not know claude-fable-5-2
    real = price_source.lookup
    monkeypatch.setattr(
        price_source, "lookup", lambda m, on=None: None if "fable-5-2" in m else real(m, on)
    )
    monkeypatch.setattr(price_source, "version", lambda: "0.1.12")
    with pytest.raises(PricingError) as info:
        PriceBook().price("claude-fable-5-2")
    assert (
        "genai-prices 0.1.12 does not price it, 0.2.3 and later do: upgrade genai-prices "
        "(or add `pricing:`)" in info.value.message
    )


def test_prices_come_from_the_bundled_data_even_when_an_app_updates_the_library(monkeypatch):
    """An application may run genai-prices' UpdatePrices (network): never our prices."""
    from genai_prices import data_snapshot

    monkeypatch.setattr(data_snapshot, "get_snapshot", lambda: pytest.fail("not bundled"))
    price_source.lookup.cache_clear()
    try:
        assert PriceBook().price("claude-sonnet-5").input == 2
    finally:
        price_source.lookup.cache_clear()


def test_report_fields_name_the_library_version_and_day():
    fields = price_source.describe()
    from importlib.metadata import version

    assert fields["source"] == f"genai-prices {version('genai-prices')}"
    assert fields["label"].startswith(fields["source"] + " bundled data")
    assert fields["as_of"] in fields["label"]


# -- what genai-prices leaves out: the supplement in prices.json ---------------------------
# Sonnet 4 and 4.5 above a 200K prompt: $6 in / $22.50 out on every token (Claude API,
# global Bedrock profile); Bedrock regional ids 10% more: $6.60 / $24.75.
@pytest.mark.parametrize(
    ("model", "input_rate", "output_rate"),
    [
        ("claude-sonnet-4-20250514", "6", "22.5"),
        ("claude-sonnet-4-0", "6", "22.5"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "6.6", "24.75"),
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "6.6", "24.75"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "6", "22.5"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "6", "22.5"),
        ("claude-sonnet-4@20250514", "6", "22.5"),  # Vertex AI
        ("claude-sonnet-4-5", "6", "22.5"),  # the library's own tier, unchanged
    ],
)
def test_sonnet_4_and_4_5_long_context_is_billed_on_every_id(
    tmp_path, model, input_rate, output_rate
):
    usage = {"input_tokens": 250_000, "output_tokens": 1_000}
    expected = (250_000 * Fraction(input_rate) + 1_000 * Fraction(output_rate)) / M
    assert cost_of(cassette(tmp_path, model, usage)) == expected


def test_long_context_figures_as_published(tmp_path):
    usage = {"input_tokens": 250_000, "output_tokens": 1_000}
    assert cost_of(cassette(tmp_path, "claude-sonnet-4-20250514", usage)) == Fraction("1.5225")
    us = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert cost_of(cassette(tmp_path, us, usage)) == Fraction("1.67475")
    world = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert cost_of(cassette(tmp_path, world, usage)) == Fraction("1.5225")


def test_long_context_scales_cache_writes_and_reads_and_stops_at_200k(tmp_path):
    # Sonnet 4: 150,000 uncached + 40,000 5-minute writes + 20,000 reads = 210,000 > 200K:
    # $6 in, $7.50 writes (1.25x), $0.60 reads (0.1x), $22.50 out
    usage = {
        "input_tokens": 150_000,
        "cache_creation_input_tokens": 40_000,
        "cache_read_input_tokens": 20_000,
        "output_tokens": 100,
    }
    expected = Fraction(150_000 * 600 + 40_000 * 750 + 20_000 * 60 + 100 * 2250, 100 * M)
    assert cost_of(cassette(tmp_path, "claude-sonnet-4-20250514", usage)) == expected
    # exactly 200,000: base rates ($3 / $3.75 / $0.30 / $15)
    usage["input_tokens"] = 140_000
    expected = Fraction(140_000 * 300 + 40_000 * 375 + 20_000 * 30 + 100 * 1500, 100 * M)
    assert cost_of(cassette(tmp_path, "claude-sonnet-4-20250514", usage)) == expected


def test_prices_command_shows_the_added_long_context_band_and_its_source(capsys):
    from pytest_tokenbudget.cli import main

    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert main(["prices", model, "--config", "absent.yml"]) == 0
    out = capsys.readouterr().out.splitlines()
    # the platform's entry is named once in the header
    assert out[0].count("regional.anthropic.claude-sonnet-4-5-20250929-v1:0") == 1
    assert out[3].split() == [
        "standard,",
        "prompt",
        ">",
        "200,000",
        "6.6",
        "24.75",
        "8.25",
        "13.2",
        "0.66",
    ]
    (line,) = [x for x in out if x.startswith("  long context above 200,000")]
    assert "prices.json" in line and "platform.claude.com" in line


def test_a_one_hour_cache_write_is_2x_input_where_the_library_lists_none(tmp_path):
    # Vertex AI Sonnet 4 ($3 in, $15 out): a 1-hour write is 2x input = $6 per MTok
    usage = {
        "input_tokens": 0,
        "cache_creation_input_tokens": 10_000,
        "output_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 10_000},
    }
    assert cost_of(cassette(tmp_path, "claude-sonnet-4@20250514", usage)) == Fraction("0.06")
    # Vertex AI Opus 4.1 ($15 in): $30 per MTok
    assert cost_of(cassette(tmp_path, "claude-opus-4-1@20250805", usage)) == Fraction("0.3")


def test_a_bedrock_foundation_model_arn_takes_the_regional_price():
    # Sonnet 4.5 in one region on Bedrock: $3.30 in / $16.50 out
    arn = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"
    usage = {"input_tokens": 1_000, "output_tokens": 100}
    expected = Fraction(1_000 * 33 + 100 * 165, 10 * M)
    assert expected == Fraction("0.00495")
    assert PriceBook().price(arn).cost(parse_usage(usage)) == expected


def parse_usage(usage: dict):
    from pytest_tokenbudget.providers.anthropic import usage_from_api

    return usage_from_api(usage, "usage")


PLATFORM_TYPOS = [
    "us.anthropic.claude-opus-4-77-v1:0",
    "anthropic.claude-opus-4-77-v1:0",
    "global.anthropic.claude-opus-4-77-v1:0",
    "claude-opus-4-77@20260101",
    "claude-sonnet-4-5-foo@20250929",
    "claude-opus-4-1-foo@2025",
    "claude-haiku-4-5-x@20251001",
    "claude-opus-4-7-7777",
    "claude-opus-4-7-2026",
    "claude-haiku-5-5-12345678",
]


@pytest.mark.parametrize("typo", PLATFORM_TYPOS)
def test_a_typo_in_a_bedrock_vertex_or_dated_id_is_an_unknown_model(typo):
    assert PriceBook().find(typo) is None


def test_tokenbudget_check_flags_platform_typos(tmp_path, capsys):
    from pytest_tokenbudget.cli import main

    path = tmp_path / "token_budgets.yml"
    path.write_text(
        "endpoints:\n  a:\n    max_input_tokens_p95: 9\n    target_model: claude-sonnet-4-6\n"
        f"    escalation_models: {json.dumps(PLATFORM_TYPOS)}\n"
    )
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    for index, typo in enumerate(PLATFORM_TYPOS):
        assert f"escalation_models[{index}]: unknown model {typo!r}" in err


@pytest.mark.parametrize(
    "model",
    [
        "us.anthropic.claude-opus-4-7-v1:0",
        "global.anthropic.claude-opus-4-7-v1:0",
        "anthropic.claude-3-haiku-20240307-v1:0:48k",
        "claude-opus-4-7@20260101",
        "claude-sonnet-4@20250514",
        "claude-haiku-4-5@20251001",
        "claude-opus-4-7-20260101",
        "gpt-3.5-turbo-0125",
        "gpt-4o-2024-08-06",
    ],
)
def test_real_platform_and_dated_ids_are_still_priced(model):
    assert PriceBook().find(model) is not None


# -- cache rules for every priced Claude model --------------------------------------------
def test_every_claude_model_the_source_prices_has_cache_rules():
    rules = cache_rules()
    book = PriceBook()
    ruled = set(rules["minimums"]) | set(rules["unpublished"]) | set(rules["no_prompt_caching"])
    claude = price_source.model_names()  # the Claude API's models
    assert claude  # the library prices some: an empty list would check nothing
    missing = [m for m in claude if book.canonical(m) not in ruled]
    assert missing == []


def test_models_without_a_published_minimum_keep_the_conservative_default():
    rules = cache_rules()
    for model in rules["unpublished"]:
        assert minimum_cacheable(model) == rules["default"] == 4096


# -- the old table's figures ----------------------------------------------------------------
OLD_TABLE = json.loads((DATA / "prices" / "prices-2026-11-01.json").read_text())
REAL_CASSETTES = CASSETTES


def _old_cost(model: str, usage, batch: bool) -> Fraction | None:
    from pytest_tokenbudget.providers.bedrock import bedrock_model

    found = bedrock_model(model)
    name = found.model if found else model
    name = OLD_TABLE["aliases"].get(name, name)
    for suffix in ("-latest",):
        name = name.removesuffix(suffix)
    import re

    name = re.sub(r"(-\d{8}|@\d{8}|-\d{4}-\d{2}-\d{2})$", "", name)
    name = OLD_TABLE["aliases"].get(name, name)
    rates = OLD_TABLE["models"].get(name)
    if rates is None:
        return None
    premium = OLD_TABLE["regional_premium"]
    factor = Fraction(1)
    if found and found.regional and name not in premium["exempt"]:
        factor = Fraction(str(premium["rate"]))
    r = {k: Fraction(str(v)) * factor for k, v in rates.items() if k != "provider"}
    cost = (
        usage.input_tokens * r["input"]
        + usage.output_tokens * r["output"]
        + usage.cache_write_5m_tokens * r["cache_write_5m"]
        + usage.cache_write_1h_tokens * r["cache_write_1h"]
        + usage.cache_read_tokens * r["cache_read"]
    ) / M
    return cost / 2 if batch else cost


def test_real_cassettes_are_priced_as_the_old_table_priced_them():
    """Every call of the vendored real cassettes, on a model whose rates did not change, costs
    what the hand-written table said (OpenAI batch cached input aside: none recorded)."""
    book = PriceBook()
    compared = 0
    unreadable: list[str] = []
    for path in sorted(REAL_CASSETTES.rglob("*.y*ml")):
        try:
            calls = [c for e in load_cassette_file(path) for c in parse_exchange(e)]
        except CassetteError:  # unreadable on purpose (tested in test_usage.py)
            unreadable.append(path.name)
            continue
        for call in calls:
            if call.kind in ("count_tokens",) or not call.model:
                continue
            old = _old_cost(call.model, call.usage, call.batch)
            price = book.find(call.model)
            if old is None or price is None:
                continue
            assert price.cost(call.usage, batch=call.batch) == old, (path.name, call.model)
            compared += 1
    assert compared >= 20 and len(unreadable) <= 1


# -- tokenbudget prices ------------------------------------------------------------------------
def test_prices_command_shows_each_rate_set_and_its_source(capsys):
    from pytest_tokenbudget.cli import main

    assert main(["prices", "claude-haiku-5-5", "--config", "absent.yml"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"claude-haiku-5-5: {source_name()} (anthropic claude-haiku-5-5)")
    # Haiku 5.5 as published: $0.10 / $0.50, writes 1.25x and 2x, reads 0.1x; 5x above 100K
    assert out[2].split() == ["standard", "0.1", "0.5", "0.125", "0.2", "0.01"]
    assert out[3].split() == [
        "standard,",
        "prompt",
        ">",
        "100,000",
        "0.5",
        "2.5",
        "0.625",
        "1",
        "0.05",
    ]
    assert "  web search: $10 per 1,000 searches" in out


def test_prices_command_names_a_pricing_override_and_fails_on_an_unknown_model(tmp_path, capsys):
    from pytest_tokenbudget.cli import main

    config = tmp_path / "token_budgets.yml"
    config.write_text(
        "pricing:\n  claude-sonnet-4-6: {input: 1.5, output: 7}\n"
        "endpoints:\n  chat:\n    target_model: claude-sonnet-4-6\n    max_input_tokens_p95: 9\n"
    )
    assert main(["prices", "--config", str(config)]) == 0  # the config's models
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == "claude-sonnet-4-6: `pricing:` in token_budgets.yml (overrides genai-prices; as written)"
    )
    assert out[2].split() == ["standard", "1.5", "7", "1.875", "3", "0.15"]
    assert main(["prices", "claude-opus-7", "--config", str(config)]) == 2
    assert "no price for model 'claude-opus-7'" in capsys.readouterr().err


# -- end to end: a pytest --token-budget run -------------------------------------------------
E2E_BUDGETS = """\
endpoints:
  agent:
    max_input_tokens_p95: 1000000
    requests_per_day: 10
    cases: [{id: long}, {id: search}, {id: geo}]
"""

E2E_TEST = """\
import pytest

USAGE = {
    "long": ("claude-haiku-5-5", {"input_tokens": 150000, "output_tokens": 1000}),
    "search": ("claude-sonnet-4-6", {"input_tokens": 1200, "output_tokens": 300,
                                     "server_tool_use": {"web_search_requests": 3}}),
    "geo": ("claude-opus-4-7", {"input_tokens": 1000, "output_tokens": 100,
                                "inference_geo": "us"}),
}


@pytest.mark.token_budget("agent")
def test_agent(token_budget, budget_case):
    model, usage = USAGE[budget_case["id"]]
    token_budget.record(usage, model=model)
"""


def test_a_run_prices_every_charge_and_names_the_source(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=E2E_BUDGETS)
    pytester.makepyfile(test_agent=E2E_TEST)
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    report = json.loads((pytester.path / ".token-budget" / "report.json").read_text())
    assert report["prices"]["source"] == source_name()
    assert report["prices"]["as_of"] == price_source.pricing_date().isoformat()
    agent = report["endpoints"]["agent"]
    assert set(agent["price_sources"].values()) == {source_name()}
    # published rates, $ per MTok: Haiku 5.5 5x above 100K ($0.50 / $2.50); Sonnet 4.6
    # $3 / $15 and $10 per 1,000 searches; Opus 4.7 $5 / $25, 1.1x served in the US only
    expected = {
        "long": Fraction(150_000 * 50 + 1_000 * 250, 100 * M),
        "search": Fraction(1_200 * 3 + 300 * 15, M) + Fraction(3 * 10, 1_000),
        "geo": Fraction(1_000 * 5 + 100 * 25, M) * Fraction(11, 10),
    }
    for case, dollars in expected.items():
        assert agent["per_case"][case]["cost_usd"] == pytest.approx(float(dollars), abs=1e-9)
    assert agent["metrics"]["cost_per_request_usd"] == pytest.approx(
        float(sum(expected.values()) / 3), abs=1e-9
    )
    html = (pytester.path / ".token-budget" / "report.html").read_text()
    assert 'data-model="claude-sonnet-4-6" data-tier="web_search"' in html
    markdown = (pytester.path / ".token-budget" / "report.md").read_text()
    assert f"Prices: {source_name()} bundled data, prices in force on" in markdown
