"""Prices: the shipped, dated table plus the user's `pricing:` overrides.

Costs are computed with exact fractions from the decimal rates, so a report's
dollars are the rates times the tokens, not a float's approximation of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from .errors import PricingError
from .usage import Usage

_TABLE = Path(__file__).with_name("prices.json")
_DATED = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")
_MILLION = 1_000_000
RATE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


@dataclass(frozen=True)
class Price:
    """Dollar rates per million tokens for one model."""

    model: str
    input: Fraction
    output: Fraction
    cache_write_5m: Fraction
    cache_write_1h: Fraction
    cache_read: Fraction
    source: str  # "table 2026-11-01" or "token_budgets.yml"

    def cost(self, usage: Usage, *, batch: bool = False) -> Fraction:
        """Exact dollars for this usage; the Batch API halves every rate."""
        total = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_write_5m_tokens * self.cache_write_5m
            + usage.cache_write_1h_tokens * self.cache_write_1h
            + usage.cache_read_tokens * self.cache_read
        ) / _MILLION
        return total * BATCH_DISCOUNT if batch else total


BATCH_DISCOUNT = Fraction(1, 2)


def _rate(value: float | int | str) -> Fraction:
    return Fraction(str(value))


def _price(model: str, rates: Mapping[str, float], source: str) -> Price:
    given = {field: _rate(rates[field]) for field in RATE_FIELDS if field in rates}
    if "input" not in given or "output" not in given:
        raise PricingError(
            f"price of {model!r} needs at least input and output rates", key="pricing"
        )
    base = given["input"]
    # Anthropic's published multipliers, for overrides that give only input/output.
    given.setdefault("cache_write_5m", base * Fraction(5, 4))
    given.setdefault("cache_write_1h", base * 2)
    given.setdefault("cache_read", base / 10)
    return Price(model=model, source=source, **given)


@lru_cache(maxsize=1)
def shipped_table() -> dict:
    return json.loads(_TABLE.read_text(encoding="utf-8"))


def table_date() -> str:
    """The date of the Anthropic prices (the table's main date)."""
    return str(shipped_table()["dates"]["anthropic"])


class PriceBook:
    """Looks up a model's price: user overrides first, then the shipped table."""

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, float]] | None = None,
        fallback: Callable[[str], Mapping[str, float] | None] | None = None,
    ) -> None:
        self._fallback = fallback
        self._from_fallback: dict[str, Price | None] = {}
        table = shipped_table()
        self._aliases: dict[str, str] = table["aliases"]
        dates = table["dates"]
        self._table = {
            model: _price(model, rates, f"table {dates[rates.get('provider', 'anthropic')]}")
            for model, rates in table["models"].items()
        }
        self._overrides = {
            model: _price(model, rates, "token_budgets.yml")
            for model, rates in (overrides or {}).items()
        }

    def lookup(self, model: str) -> Price | None:
        if model in self._overrides:
            return self._overrides[model]
        for candidate in (model, self._aliases.get(model), _DATED.sub("", model)):
            if candidate and candidate in self._table:
                return self._table[candidate]
            if candidate and candidate in self._aliases:
                return self._table[self._aliases[candidate]]
        return None

    def price(self, model: str) -> Price:
        found = self.lookup(model)
        if found is None and self._fallback is not None:
            if model not in self._from_fallback:
                rates = self._fallback(model)
                self._from_fallback[model] = (
                    _price(model, rates, "pytest_tokenbudget_price hook") if rates else None
                )
            found = self._from_fallback[model]
        if found is None:
            raise PricingError(
                f"no price for model {model!r}. Add it to token_budgets.yml:\n"
                f"  pricing:\n"
                f"    {model}: {{input: 3.0, output: 15.0}}   # $ per million tokens\n"
                f"(cache_write_5m, cache_write_1h and cache_read default to 1.25x, 2x and 0.1x input)",
                key="pricing",
            )
        return found

    def canonical(self, model: str) -> str:
        """The table's name for a model (dated ids and -latest folded), or the model itself."""
        if model in self._overrides:
            return model
        for candidate in (model, _DATED.sub("", model)):
            if candidate in self._table:
                return candidate
            if candidate in self._aliases:
                return self._aliases[candidate]
        return model

    def same_model(self, a: str, b: str) -> bool:
        return a == b or self.canonical(a) == self.canonical(b)
