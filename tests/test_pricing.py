from fractions import Fraction

import pytest

from pytest_tokenbudget.errors import PricingError
from pytest_tokenbudget.pricing import PriceBook, table_date
from pytest_tokenbudget.usage import Usage

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
    ],
)
def test_dated_ids_and_aliases_resolve(model, input_rate):
    assert PriceBook().price(model).input == Fraction(input_rate)


def test_unknown_model_is_an_error_that_says_how_to_price_it():
    with pytest.raises(PricingError) as info:
        PriceBook().price("my-proxy-model")
    message = str(info.value)
    assert "my-proxy-model" in message
    assert "pricing:" in message and "input:" in message


def test_override_wins_and_fills_cache_rates_from_published_multipliers():
    book = PriceBook({"my-proxy-model": {"input": 2.0, "output": 8.0}})
    price = book.price("my-proxy-model")
    assert (price.cache_write_5m, price.cache_write_1h, price.cache_read) == (
        Fraction("2.5"),
        Fraction(4),
        Fraction("0.2"),
    )
    assert price.source == "token_budgets.yml"
    assert book.price("claude-sonnet-4-6").source == f"table {table_date()}"


def test_same_model_folds_dates():
    book = PriceBook()
    assert book.same_model("claude-sonnet-4-5-20250929", "claude-sonnet-4-5")
    assert not book.same_model("claude-sonnet-4-5", "claude-opus-4-7")
