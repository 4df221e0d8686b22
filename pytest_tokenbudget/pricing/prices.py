"""Prices: the genai-prices library's bundled data, the user's `pricing:` overrides and
the price hook, and what a request's usage costs at them.

Costs are computed with exact fractions from the decimal rates, so a report's
dollars are the rates times the tokens, not a float's approximation of them.
A request is priced by what it was: its prompt's length (long-context bands), batch,
fast mode, data residency, and the server tools it used (web searches).
prices.json holds only what the library does not model (pricing/additions.py reads it).
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.errors import PricingError
from pytest_tokenbudget.pricing import source as price_source
from pytest_tokenbudget.pricing.additions import shipped_table
from pytest_tokenbudget.pricing.cache_rules import cache_rules
from pytest_tokenbudget.providers.bedrock import bedrock_model
from pytest_tokenbudget.providers.usage import Usage, context_fields

if TYPE_CHECKING:
    from pytest_tokenbudget.config.budgets import Config
    from pytest_tokenbudget.files.yaml_source import Problem

# A dated snapshot or the moving alias of a model: `-20250929` (Anthropic), `-2024-08-06`
# (OpenAI), `@20250929` (Vertex AI), `-latest`. Each is priced as the model it names.
# Bedrock ids (`us.anthropic.claude-sonnet-4-5-20250929-v1:0`) name the model they run.
_DATED = price_source.DATED
_PLAIN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
HOOK_SOURCE = "pytest_tokenbudget_price hook"
OVERRIDE_SOURCE = "token_budgets.yml"
MODEL_KEYS = ("target_model", "escalation_models")
_MILLION = 1_000_000
RATE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
# The cost breakdown's tiers: each token rate, then the server tools' fees.
WEB_SEARCH = "web_search"
COST_TIERS = (*RATE_FIELDS, WEB_SEARCH)
Rates = tuple[Fraction, Fraction, Fraction, Fraction, Fraction]
BATCH_DISCOUNT = Fraction(1, 2)


def pricing_context(speed: str, inference_geo: str) -> str:
    """The pricing context key of a request served so (usage.Usage.pricing_context)."""
    return Usage(speed=speed, inference_geo=inference_geo).pricing_context


_context = context_fields


@dataclass(frozen=True)
class Price:
    """Dollar rates per million tokens for one model, and how a request changes them.

    The five rate fields are a standard request's below any long-context band. ``bands``
    holds the standard rates per band (band 0 first) when the model has bands above
    ``starts``; ``batch_bands`` the batch rates (None: half of standard, Anthropic's rule);
    ``fast_bands`` fast mode's (None: not priced). ``web_search`` is $ per search.
    """

    model: str
    input: Fraction
    output: Fraction
    cache_write_5m: Fraction
    cache_write_1h: Fraction
    cache_read: Fraction
    source: str  # "genai-prices 0.2.5", "token_budgets.yml" or the hook
    web_search: Fraction | None = None
    starts: tuple[int, ...] = ()
    bands: tuple[Rates, ...] = ()
    batch_bands: tuple[Rates, ...] | None = None
    fast_bands: tuple[Rates, ...] | None = None
    residency: Fraction = Fraction(1)  # multiplier when served in one geography
    supplement: str = ""  # bands added from prices.json (the library lists none), and why

    @property
    def flat(self) -> Rates:
        return (self.input, self.output, self.cache_write_5m, self.cache_write_1h, self.cache_read)

    def band(self, prompt_tokens: int) -> int:
        """How many long-context starts a request's whole prompt exceeds."""
        return sum(prompt_tokens > start for start in self.starts)

    def rates(self, *, band: int = 0, batch: bool = False, context: str = "") -> Rates | None:
        """The token rates of a request; None when the source has no price for its
        context (fast mode on a model it lists no fast rates for, an unknown speed)."""
        given = _context(context)
        speed = given.get("speed", "standard")
        standard = self.bands or (self.flat,)
        if speed == "fast":
            if self.fast_bands is None:
                return None
            table = self.fast_bands
        elif speed == "standard":
            table = standard
        else:
            return None
        rates: tuple[Fraction, ...] = table[band]
        if batch:
            # A variant's batch rates when the source has them, else half (fast: half too).
            own = self.batch_bands if speed == "standard" else None
            rates = own[band] if own is not None else tuple(r * BATCH_DISCOUNT for r in rates)
        if "inference_geo" in given:
            rates = tuple(r * self.residency for r in rates)
        i, o, w5, w1, r = rates
        return (i, o, w5, w1, r)

    def cost(self, usage: Usage, *, batch: bool = False) -> Fraction:
        """Exact dollars for one request's usage (its band, context and searches)."""
        context = usage.pricing_context
        rates = self.rates(band=self.band(usage.prompt_tokens), batch=batch, context=context)
        if rates is None:
            raise PricingError(unpriced_context_message(self.model, context), key="pricing")
        tokens = (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_write_5m_tokens,
            usage.cache_write_1h_tokens,
            usage.cache_read_tokens,
        )
        total = sum((t * r for t, r in zip(tokens, rates, strict=True)), Fraction(0)) / _MILLION
        if usage.web_search_requests:
            if self.web_search is None:
                raise PricingError(unpriced_search_message(self.model), key="pricing")
            total += usage.web_search_requests * self.web_search
        return total


def _rate(value: float | str) -> Fraction:
    return Fraction(str(value))


def _price(model: str, rates: Mapping[str, Any], source: str, search: Fraction | None) -> Price:
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
    if "web_search" in rates:  # $ per 1,000 searches, as providers list it
        search = _rate(rates["web_search"]) / 1000
    return Price(
        model,
        given["input"],
        given["output"],
        given["cache_write_5m"],
        given["cache_write_1h"],
        given["cache_read"],
        source=source,
        web_search=search,
    )


def source_name() -> str:
    """The price source as reports name it: library and version."""
    return f"{price_source.LIBRARY} {price_source.version()}"


def table_date() -> str:
    """The price source and the day priced, for a report's footer."""
    return price_source.label()


def _from_source(
    name: str, found: price_source.SourceRates, residency: Fraction, supplement: str = ""
) -> Price:
    flat = found.standard[0]
    source = source_name()
    if found.provider not in (price_source.ANTHROPIC, price_source.OPENAI):
        source += f" ({found.provider} {found.model_id})"  # a platform's own price
    return Price(
        name,
        *flat,
        source=source,
        web_search=found.web_search,
        starts=found.starts,
        bands=found.standard if found.starts else (),
        batch_bands=found.batch,
        fast_bands=found.fast,
        residency=residency,
        supplement=supplement,
    )


def _long_context(
    model: str, found: price_source.SourceRates
) -> tuple[price_source.SourceRates, str]:
    """The library's rates with prices.json's long-context band added, for a model the
    rule names that the library lists no band for (Sonnet 4 everywhere, Sonnet 4.5 on
    Bedrock); else as they are. The band's rates are the model's own times the rule's
    multipliers, so a platform's premium carries into it."""
    rule = shipped_table()["long_context"]
    if found.starts or model not in rule["models"]:
        return found, ""
    scale = tuple(_rate(rule["multipliers"][field]) for field in RATE_FIELDS)

    def banded(table: tuple[Rates, ...] | None) -> tuple[Rates, ...] | None:
        if table is None:
            return None
        above = tuple(r * m for r, m in zip(table[0], scale, strict=True))
        return (table[0], (above[0], above[1], above[2], above[3], above[4]))

    added = replace(
        found,
        starts=(int(rule["above"]),),
        standard=banded(found.standard) or found.standard,
        batch=banded(found.batch),
        fast=banded(found.fast),
    )
    return added, f"prices.json long_context rule, {rule['date']}, {rule['source']}"


class PriceBook:
    """Looks up a model's price: user overrides first, then the price source, then the
    pytest_tokenbudget_price hook."""

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, float]] | None = None,
        fallback: Callable[[str], Mapping[str, float] | None] | None = None,
    ) -> None:
        self._fallback = fallback
        self._from_fallback: dict[str, Price | None] = {}
        table = shipped_table()
        self._aliases: dict[str, str] = table["aliases"]
        residency = table["data_residency"]
        self._residency = _rate(residency["multiplier"])
        self._residency_exempt = frozenset(residency["exempt"])
        self._given = dict(overrides or {})
        self._overrides = {
            model: _price(model, rates, OVERRIDE_SOURCE, self._source_search(model))
            for model, rates in self._given.items()
        }
        self._found: dict[str, Price | None] = {}
        self._known_names: frozenset[str] | None = None
        self._source_rates: dict[str, price_source.SourceRates] = {}

    def _source_search(self, model: str) -> Fraction | None:
        """The source's web-search fee of a model a `pricing:` entry prices (its token
        rates are overridden, the per-search fee is still the provider's)."""
        try:
            found = price_source.lookup(model)
        except Exception:  # noqa: BLE001 - a fee is a convenience here, never a failure
            return None
        return found.web_search if found is not None else None

    def _names(self, model: str) -> Iterator[str]:
        """The names a model id resolves through, most specific first: its alias, itself,
        the model without its date (or `-latest`) and that one's alias; for a Bedrock id,
        then the same for the Anthropic model it runs."""
        bedrock = bedrock_model(model)
        for given in (model, bedrock.model if bedrock else None):
            if not given:
                continue
            undated = _DATED.sub("", given)
            for name in (self._aliases.get(given), given, self._aliases.get(undated), undated):
                if name:
                    yield name

    def _source(self, model: str) -> Price | None:
        """The source's price of an id as called, else of the first name it resolves to."""
        if model in self._found:
            return self._found[model]
        found = None
        for name in dict.fromkeys((model, *self._names(model))):
            rates = price_source.lookup(name)
            if rates is not None:
                self._source_rates[model] = rates
                canonical = self.canonical(model)
                exempt = (
                    canonical in self._residency_exempt or rates.provider != price_source.ANTHROPIC
                )
                rates, supplement = _long_context(canonical, rates)
                found = _from_source(
                    canonical, rates, Fraction(1) if exempt else self._residency, supplement
                )
                break
        self._found[model] = found
        return found

    def source_rates(self, model: str) -> price_source.SourceRates | None:
        """The library's entry a model id is priced from (None: not from the library)."""
        self._source(model)
        return self._source_rates.get(model)

    def lookup(self, model: str) -> Price | None:
        """The price from `pricing:` (any name the id resolves to), else the source's.

        A Bedrock or Vertex AI id takes the platform's own price from the source (Bedrock's
        regional ids carry its regional premium); a `pricing:` entry is taken as written.
        """
        for name in self._names(model):
            if name in self._overrides:
                return self._overrides[name]
        return self._source(model)

    def find(self, model: str) -> Price | None:
        """lookup(), then the pytest_tokenbudget_price hook (asked once per model)."""
        found = self.lookup(model)
        if found is None and self._fallback is not None:
            if model not in self._from_fallback:
                rates = self._fallback(model)
                try:
                    self._from_fallback[model] = (
                        _price(model, rates, HOOK_SOURCE, None) if rates else None
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
                f"no price for model {model!r}.{upgrade_hint(model)} If the name is right, "
                f"add its price to token_budgets.yml:\n{pricing_snippet(model)}",
                key="pricing",
            )
        return found

    def _known(self) -> frozenset[str]:
        """Model names as reports use them: the source's Claude and OpenAI models (dates,
        `-latest` and legacy aliases folded) and the cache rules' models."""
        if self._known_names is not None:
            return self._known_names
        names = set(cache_rules()["minimums"])
        for provider in (price_source.ANTHROPIC, price_source.OPENAI):
            for name in price_source.model_names(provider):
                undated = _DATED.sub("", name)
                names.add(self._aliases.get(undated, undated))
        self._known_names = frozenset(names)
        return self._known_names

    def canonical(self, model: str) -> str:
        """The model an id runs: its known name (dates, `-latest`, aliases and Bedrock ids
        folded), else the `pricing:` name it resolves to, else the id itself.

        A `pricing:` entry for an id as called changes its price, not which model it is:
        `us.anthropic.claude-sonnet-4-6` is still the target `claude-sonnet-4-6`.
        """
        names = list(self._names(model))
        for found in (self._known(), self._overrides):
            for name in names:
                if name in found:
                    return name
        return model

    def names(self) -> list[str]:
        """Every name this book prices directly: `pricing:` keys, then the source's."""
        return list(dict.fromkeys([*self._overrides, *sorted(self._known())]))

    def suggest(self, model: str, n: int = 3) -> list[str]:
        """The nearest priced names to a model the book does not know."""
        return difflib.get_close_matches(model.lower(), self.names(), n=n, cutoff=0.6)

    def same_model(self, a: str, b: str) -> bool:
        return a == b or self.canonical(a) == self.canonical(b)


def upgrade_hint(model: str) -> str:
    """A sentence for a model the installed genai-prices does not know: the release that
    prices it when we know one, else, for a Claude or OpenAI name, that a newer one may."""
    newer = shipped_table()["first_priced_in"]["models"]
    undated = _DATED.sub("", model)
    installed = price_source.version()
    if undated in newer:
        return (
            f" genai-prices {installed} does not price it, {newer[undated]} and later do: "
            "upgrade genai-prices (or add `pricing:`)."
        )
    if re.match(r"(?:[a-z-]+\.)?(?:anthropic\.)?claude-|gpt-|o\d", model):
        return (
            f" If it is newer than genai-prices {installed}, upgrade genai-prices "
            "(or add `pricing:`)."
        )
    return ""


# What a `pricing:` entry costs the model: it is taken as written, for every request.
_AS_WRITTEN = (
    "a `pricing:` entry replaces all of genai-prices' rates for the model, as written: its "
    "long-context bands, its own cache-read rate and the data-residency multiplier then no "
    "longer apply"
)


def _source_lists_fast(model: str) -> bool:
    try:
        found = price_source.lookup(model)
    except Exception:  # noqa: BLE001 - only chooses the advice
        return False
    return found is not None and found.fast is not None


def unpriced_context_message(model: str, context: str) -> str:
    """A request in a context (fast mode, ...) nothing prices for its model: what fixes it.
    A `pricing:` entry has no fast-mode rates, so it can only hide the library's."""
    given = _context(context)
    if "speed" in given:
        installed = price_source.version()
        head = f"no price for {model!r} at speed {given['speed']!r}"
        if given["speed"] == "fast" and _source_lists_fast(model):
            return (
                f"{head}: genai-prices {installed} lists its fast-mode rates, but the model's "
                "`pricing:` entry replaces them and a `pricing:` entry has no fast-mode rates: "
                "remove the entry to price these requests"
            )
        since = shipped_table()["first_priced_in"]["fast_mode"]
        return (
            f"{head} in genai-prices {installed} (fast-mode rates are in {since} and later, "
            "for the models Anthropic lists them for): upgrade genai-prices; a `pricing:` "
            "entry has no fast-mode rates, so it cannot price these requests"
        )
    return f"no price for {model!r} for requests with {context}"


def unpriced_search_message(model: str) -> str:
    return (
        f"no web-search fee for {model!r} in genai-prices {price_source.version()}: add "
        f"`web_search` ($ per 1,000 searches) to its `pricing:` entry (with its input and "
        f"output rates; {_AS_WRITTEN})"
    )


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
    called = f"called in {noun} {_listing(cases)}: its calls are not in the dollar metrics"
    model, _, what = model.partition(" [")
    if what:  # a known model, requests of it the source has no price for (unpriced_key)
        what = what.rstrip("]")
        why = (
            unpriced_search_message(model)
            if what == WEB_SEARCH
            else unpriced_context_message(model, what)
        )
        return f"{why}; {called}"
    return (
        f"no price for model {model!r}, {called}.{upgrade_hint(model)} If the name is right, "
        f"add its price to {config_name}:\n" + pricing_snippet(model)
    )


def unpriced_key(model: str, what: str = "") -> str:
    """How stats names what has no price: a model, or `model [context]` for requests of a
    known model in a context (or with a server tool) the source does not price."""
    return f"{model} [{what}]" if what else model


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
    from pytest_tokenbudget.config.budgets import _key_name
    from pytest_tokenbudget.files.yaml_source import Problem, line_of

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
                f"unknown model {model!r}: no price in {source_name()}{where}"
                f"{_did_you_mean(book.suggest(model))}.{upgrade_hint(model)} If the name is "
                "right, add its price "
                f"to {config.path.name}:\n{pricing_snippet(model)}{trailer}",
            )
        )
    return problems
