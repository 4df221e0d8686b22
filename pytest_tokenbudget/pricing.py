"""Prices: the shipped, dated table plus the user's `pricing:` overrides.

Costs are computed with exact fractions from the decimal rates, so a report's
dollars are the rates times the tokens, not a float's approximation of them.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bedrock import bedrock_model
from .errors import PricingError
from .usage import Usage

if TYPE_CHECKING:
    from .config import Config, Problem

_TABLE = Path(__file__).with_name("prices.json")
# A dated snapshot or the moving alias of a model: `-20250929` (Anthropic), `-2024-08-06`
# (OpenAI), `@20250929` (Vertex AI), `-latest`. Each is priced as the model it names.
# Bedrock ids (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`) name the model they run.
_DATED = re.compile(r"(?:-\d{8}|@\d{8}|-\d{4}-\d{2}-\d{2}|-latest)$")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
HOOK_SOURCE = "pytest_tokenbudget_price hook"
MODEL_KEYS = ("target_model", "escalation_models")
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


def _rate(value: float | str) -> Fraction:
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
        premium = table["regional_premium"]
        self._premium = _rate(premium["rate"])
        self._premium_exempt = frozenset(premium["exempt"])
        self._overrides = {
            model: _price(model, rates, "token_budgets.yml")
            for model, rates in (overrides or {}).items()
        }

    def _names(self, model: str) -> Iterator[str]:
        """The names a model id resolves through, most specific first: itself, its alias,
        the model without its date (or `-latest`), that one's alias; for a Bedrock id,
        then the same for the Anthropic model it runs."""
        bedrock = bedrock_model(model)
        for given in (model, bedrock.model if bedrock else None):
            if not given:
                continue
            undated = _DATED.sub("", given)
            for name in (given, self._aliases.get(given), undated, self._aliases.get(undated)):
                if name:
                    yield name

    def lookup(self, model: str) -> Price | None:
        """The price from `pricing:` or the table; a dated id takes its model's price.

        A table price of a Bedrock id served in a region or geography (`us.`, in-region)
        carries the platforms' regional premium; a `pricing:` entry is taken as written.
        """
        for name in self._names(model):
            if name in self._overrides:
                return self._overrides[name]
            if name in self._table:
                return self._regional(model, self._table[name])
        return None

    def _regional(self, model: str, price: Price) -> Price:
        bedrock = bedrock_model(model)
        if bedrock is None or not bedrock.regional or price.model in self._premium_exempt:
            return price
        rates = {field: getattr(price, field) * self._premium for field in RATE_FIELDS}
        percent = (self._premium - 1) * 100
        source = f"{price.source} +{percent}% Bedrock regional"
        return Price(model=price.model, source=source, **rates)

    def find(self, model: str) -> Price | None:
        """lookup(), then the pytest_tokenbudget_price hook (asked once per model)."""
        found = self.lookup(model)
        if found is None and self._fallback is not None:
            if model not in self._from_fallback:
                rates = self._fallback(model)
                try:
                    self._from_fallback[model] = (
                        _price(model, rates, HOOK_SOURCE) if rates else None
                    )
                except (PricingError, TypeError, ValueError):
                    raise PricingError(
                        f"the pytest_tokenbudget_price hook returned {rates!r} for {model!r}: "
                        "expected $ per million tokens, at least {'input': ..., 'output': ...}",
                        key="pricing",
                    ) from None
            found = self._from_fallback[model]
        return found

    def price(self, model: str) -> Price:
        found = self.find(model)
        if found is None:
            raise PricingError(
                f"no price for model {model!r}. If the name is right, add its price to "
                f"token_budgets.yml:\n{pricing_snippet(model)}",
                key="pricing",
            )
        return found

    def canonical(self, model: str) -> str:
        """The model an id runs: its table name (dates, `-latest`, aliases and Bedrock ids
        folded), else the `pricing:` name it resolves to, else the id itself.

        A `pricing:` entry for an id as called changes its price, not which model it is:
        `us.anthropic.claude-sonnet-4-6` is still the target `claude-sonnet-4-6`.
        """
        names = list(self._names(model))
        for found in (self._table, self._overrides):
            for name in names:
                if name in found:
                    return name
        return model

    def names(self) -> list[str]:
        """Every name this book prices directly: `pricing:` keys, table models, aliases."""
        return list(dict.fromkeys([*self._overrides, *self._table, *self._aliases]))

    def suggest(self, model: str, n: int = 3) -> list[str]:
        """The nearest priced names to a model the book does not know."""
        return difflib.get_close_matches(model.lower(), self.names(), n=n, cutoff=0.6)

    def same_model(self, a: str, b: str) -> bool:
        return a == b or self.canonical(a) == self.canonical(b)


# -- messages ---------------------------------------------------------------------------
def yaml_key(name: str) -> str:
    """A model name as a YAML mapping key (quoted unless it is plain)."""
    return name if _PLAIN_KEY.fullmatch(name) else json.dumps(name)


def pricing_snippet(model: str) -> str:
    """The `pricing:` entry to add for a model, indented for an error message."""
    return (
        "  pricing:\n"
        f"    {yaml_key(model)}: {{input: 3.0, output: 15.0}}   # $ per million tokens: "
        "use the model's real rates\n"
        "(cache_write_5m, cache_write_1h and cache_read default to 1.25x, 2x and 0.1x input)"
    )


def _did_you_mean(names: list[str]) -> str:
    if not names:
        return ""
    quoted = [repr(n) for n in names]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return f" (did you mean {listed}?)"


def _listing(items: Iterable[str], limit: int = 5) -> str:
    listed = list(items)
    shown = ", ".join(listed[:limit])
    return shown + (f" and {len(listed) - limit} more" if len(listed) > limit else "")


def unpriced_call_message(model: str, case_ids: Iterable[str], config_name: str) -> str:
    """A model the API served (or a recording holds) that nothing prices."""
    cases = list(case_ids)
    noun = "case" if len(cases) == 1 else "cases"
    return (
        f"no price for model {model!r}, called in {noun} {_listing(cases)}: its calls are "
        f"not in the dollar metrics. If the name is right, add its price to {config_name}:\n"
        + pricing_snippet(model)
    )


# -- configured models ------------------------------------------------------------------
def configured_models(config: Config) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(YAML path, model) of every model token_budgets.yml names, each place once."""
    seen: set[tuple[Any, ...]] = set()

    def places(at: tuple[Any, ...], key: str, value: Any) -> Iterator[tuple[tuple[Any, ...], str]]:
        if isinstance(value, str):
            yield at + (key,), value
        elif isinstance(value, (list, tuple)):
            for i, model in enumerate(value):
                if isinstance(model, str):
                    yield at + (key, i), model

    found = [p for key in MODEL_KEYS for p in places(("defaults",), key, config.defaults.get(key))]
    for name, endpoint in config.endpoints.items():
        for key, value in (
            ("target_model", endpoint.target_model),
            ("escalation_models", endpoint.escalation_models),
        ):
            own = ("endpoints", name, key) in config.lines
            found.extend(places(("endpoints", name) if own else ("defaults",), key, value))
    for at, model in found:
        if at not in seen:
            seen.add(at)
            yield at, model


def model_problems(
    config: Config,
    *,
    hook: Callable[[str], Mapping[str, float] | None] | None = None,
    hook_priced: Iterable[str] = (),
) -> list[Problem]:
    """Configured models that nothing prices: each an error at its file, line and key.

    ``hook`` is the pytest_tokenbudget_price hook (under pytest); ``hook_priced`` are
    models the user declares a hook prices (`tokenbudget check --hook-priced`, which runs
    no hooks).
    """
    from .config import Problem, _key_name, line_of

    book = PriceBook(config.pricing, fallback=hook)
    declared = set(hook_priced)
    shown = str(config.path)
    problems = []
    for at, model in configured_models(config):
        line, key = line_of(config.lines, at), _key_name(at)
        try:
            if model in declared or book.find(model) is not None:
                continue
        except PricingError as err:
            problems.append(Problem(shown, line, key, err.message))
            continue
        if hook is not None:  # under pytest: the hooks were asked
            where = ", in `pricing:` or from a pytest_tokenbudget_price hook"
            trailer = (
                "\nA pytest_tokenbudget_price hook is asked when pytest starts: put it in a "
                "plugin or in a conftest.py loaded then (the rootdir's, or tests/conftest.py)."
            )
        else:
            where = " or in `pricing:`"
            trailer = (
                "\nIf a pytest_tokenbudget_price hook prices it (tokenbudget check runs no "
                f"hooks), pass --hook-priced {shlex.quote(model)} instead."
            )
        problems.append(
            Problem(
                shown,
                line,
                key,
                f"unknown model {model!r}: no price in the shipped table{where}"
                f"{_did_you_mean(book.suggest(model))}. If the name is right, add its price "
                f"to {config.path.name}:\n{pricing_snippet(model)}{trailer}",
            )
        )
    return problems
