from fractions import Fraction

import pytest
import yaml

from pytest_tokenbudget.errors import PricingError
from pytest_tokenbudget.pricing.prices import PriceBook, pricing_snippet, source_name
from pytest_tokenbudget.providers.usage import Usage

USAGE = Usage(
    input_tokens=1000,
    output_tokens=500,
    cache_write_5m_tokens=2000,
    cache_write_1h_tokens=100,
    cache_read_tokens=3000,
)


def test_each_token_kind_at_its_own_rate():
    # Sonnet 4.6: $3 in, $15 out, $3.75 5m write, $6 1h write, $0.30 read (per MTok)
    expected = Fraction(1000 * 300 + 500 * 1500 + 2000 * 375 + 100 * 600 + 3000 * 30, 100 * 10**6)
    assert PriceBook().price("claude-sonnet-4-6").cost(USAGE) == expected == Fraction("0.0195")


def test_batch_halves_every_rate():
    price = PriceBook().price("claude-sonnet-4-6")
    assert price.cost(USAGE, batch=True) == Fraction("0.00975")


@pytest.mark.parametrize(
    ("model", "input_rate"),
    [
        ("claude-sonnet-4-5-20250929", "3"),
        ("claude-haiku-4-5-20251001", "1"),
        ("claude-3-5-haiku-latest", "0.8"),
        ("claude-opus-4-1-20250805", "15"),
        ("claude-opus-4-7", "5"),
        ("claude-3-haiku-20240307", "0.25"),
        ("claude-sonnet-4-5", "3"),  # the model itself
        ("claude-sonnet-4-6-20261201", "3"),  # a dated snapshot the table has no alias for
        ("claude-3-7-sonnet-latest", "3"),
        ("claude-sonnet-4-5@20250929", "3"),  # Vertex AI spelling
        ("gpt-4o-mini-2024-07-18", "0.15"),  # OpenAI dated snapshot
        ("gpt-3.5-turbo-0125", "0.5"),
    ],
)
def test_dated_ids_and_aliases_resolve(model, input_rate):
    assert PriceBook().price(model).input == Fraction(input_rate)


@pytest.mark.parametrize(
    ("model", "canonical"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-sonnet-4-6-20261201", "claude-sonnet-4-6"),
        ("mystery-9", "mystery-9"),
    ],
)
def test_canonical_names_fold_dates_and_aliases(model, canonical):
    assert PriceBook().canonical(model) == canonical


def test_unknown_model_is_an_error_that_says_how_to_price_it():
    with pytest.raises(PricingError) as info:
        PriceBook().price("my-proxy-model")
    assert info.value.message == (
        "no price for model 'my-proxy-model'. If the name is right, add its price to "
        "token_budgets.yml:\n"
        "  pricing:\n"
        "    my-proxy-model: {input: 3.0, output: 15.0}   # $ per million tokens: use the "
        "model's real rates\n"
        "(cache_write_5m, cache_write_1h and cache_read default to 1.25x, 2x and 0.1x input)"
    )


def test_a_dated_id_of_an_overridden_model_takes_the_override():
    book = PriceBook(
        {"claude-sonnet-4-5": {"input": 2.0, "output": 8.0}, "house": {"input": 1, "output": 1}}
    )
    assert book.price("claude-sonnet-4-5-20250929").source == "token_budgets.yml"
    assert book.price("claude-sonnet-4-5-20250929").input == 2
    assert book.price("house-latest").source == "token_budgets.yml"
    assert book.canonical("house-20260101") == "house"
    assert book.price("claude-sonnet-4-6").source == source_name()


def test_find_asks_the_hook_once_and_names_its_source():
    asked = []

    def hook(model):
        asked.append(model)
        return {"input": 4, "output": 20} if model == "acme-1" else None

    book = PriceBook(fallback=hook)
    assert book.find("acme-1").source == "pytest_tokenbudget_price hook"
    assert book.find("acme-1").input == 4
    assert book.find("nope") is None and book.find("nope") is None
    assert book.find("claude-sonnet-4-6").source.startswith("genai-prices ")
    assert asked == ["acme-1", "nope"]


@pytest.mark.parametrize("rates", [{"input": 1}, {"input": "x", "output": 1}, 7])
def test_a_hook_price_without_rates_is_a_pricing_error(rates):
    with pytest.raises(
        PricingError, match="pytest_tokenbudget_price hook returned .* for 'acme-1'"
    ):
        PriceBook(fallback=lambda model: rates).find("acme-1")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-9-zz", ["claude-opus-5-5", "claude-opus-4-8", "claude-opus-4-7"]),
        ("claude-sonet-4-6", ["claude-sonnet-4-6", "claude-sonnet-4-5", "claude-sonnet-4"]),
        ("Claude-Haiku-4-5", ["claude-haiku-4-5"]),
        ("gpt-4o-mni", ["gpt-4o-mini"]),
        ("hous-model", ["house-model"]),  # pricing: keys are suggested too
        ("acme-proxy-2", []),
    ],
)
def test_suggestions_come_from_the_source_names_and_pricing_keys(model, expected):
    book = PriceBook({"house-model": {"input": 1, "output": 2}})
    assert book.suggest(model)[: len(expected) or None] == expected


@pytest.mark.parametrize(
    ("name", "key"),
    [("claude-opus-9", "claude-opus-9"), ("bedrock:claude", '"bedrock:claude"'), ("a b", '"a b"')],
)
def test_snippet_is_yaml_that_prices_the_model(name, key):
    lines = pricing_snippet(name).splitlines()
    assert lines[1].startswith(f"    {key}: {{input: 3.0")
    assert yaml.safe_load("\n".join(lines[:2])) == {
        "pricing": {name: {"input": 3.0, "output": 15.0}}
    }


def test_override_wins_and_fills_cache_rates_from_published_multipliers():
    book = PriceBook({"my-proxy-model": {"input": 2.0, "output": 8.0}})
    price = book.price("my-proxy-model")
    assert (price.cache_write_5m, price.cache_write_1h, price.cache_read) == (
        Fraction("2.5"),
        Fraction(4),
        Fraction("0.2"),
    )
    assert price.source == "token_budgets.yml"
    assert book.price("claude-sonnet-4-6").source == source_name()


def test_same_model_folds_dates():
    book = PriceBook()
    assert book.same_model("claude-sonnet-4-5-20250929", "claude-sonnet-4-5")
    assert not book.same_model("claude-sonnet-4-5", "claude-opus-4-7")
