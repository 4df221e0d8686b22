"""The price source: Pydantic's genai-prices library, read from the data it bundles.

Only the bundled data is read (never `get_snapshot()`, which an application's
`UpdatePrices` may have replaced with prices fetched from the network): a run's prices
are those of the installed library version, offline and the same on every machine.
Its rates are Decimals; they become Fractions here, exactly.

A model's rates come out as `SourceRates`: one rate set per long-context band
(a request whose prompt exceeds a band's start pays that band's rates on every token,
as Anthropic bills Haiku 5.5 above 100K and Sonnet 4.5 above 200K), for standard, batch
and fast-mode requests, plus the fee per web search. The library is imported when a
price is first needed, not when pytest starts.
"""

from __future__ import annotations

import re
import warnings
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from pytest_tokenbudget.providers.bedrock import bedrock_model

LIBRARY = "genai-prices"
# Token rates in the order of pricing.RATE_FIELDS, $ per million tokens.
Rates = tuple[Fraction, Fraction, Fraction, Fraction, Fraction]
BATCH = {"processing": "batch"}
FAST = {"speed": "fast"}
# Providers of the library this plugin prices: Claude direct, on Bedrock, on Vertex AI;
# OpenAI. Other providers match names too loosely to be asked about any id.
ANTHROPIC, BEDROCK, VERTEX, OPENAI = "anthropic", "aws", "google", "openai"


@lru_cache(maxsize=1)
def version() -> str:
    from importlib.metadata import version as installed

    return installed(LIBRARY)


def pricing_date() -> date:
    """The day whose prices a run uses: today (UTC), as a bill would. The library dates
    some prices (a model's rates changing on a day); a run prices every call at one date."""
    return datetime.now(timezone.utc).date()


def label(on: date | None = None) -> str:
    """How reports name the source: library, version and the day priced."""
    return f"{LIBRARY} {version()} bundled data, prices in force on {on or pricing_date()}"


def describe() -> dict[str, str]:
    """report.json's `prices`: the source (library and version: what a baseline's prices
    are compared by), the day priced, and the label the report's footer shows."""
    on = pricing_date()
    return {"source": f"{LIBRARY} {version()}", "as_of": on.isoformat(), "label": label(on)}


@lru_cache(maxsize=1)
def _providers() -> dict[str, Any]:
    from genai_prices import data

    return {p.id: p for p in data.providers}


@dataclass(frozen=True)
class SourceRates:
    """A model's rates in the library, as exact fractions."""

    model_id: str  # the library's id of the model (e.g. regional.anthropic.claude-...)
    provider: str  # the library's provider id
    starts: tuple[int, ...]  # long-context bands: above each start, the next rate set
    standard: tuple[Rates, ...]  # one per band: len(starts) + 1
    batch: tuple[Rates, ...] | None  # the library's batch rates; None: it has none
    fast: tuple[Rates, ...] | None  # fast mode (`speed: fast`); None: it has none
    web_search: Fraction | None  # $ per search (server tool); None: no fee known

    def band(self, prompt_tokens: int) -> int:
        """The band of a request whose whole prompt (uncached + cache writes + reads) is
        this long: how many starts it exceeds."""
        return bisect_left(self.starts, prompt_tokens)


def _fraction(value: Decimal) -> Fraction:
    return Fraction(value)  # a Decimal converts exactly


def _rate_at(price: Any, prompt: int) -> Fraction | None:
    """One price (a Decimal, tiered prices or None) for a request of this prompt length,
    by the library's own rule: the last tier whose start the prompt exceeds."""
    if price is None:
        return None
    base = getattr(price, "base", None)
    if base is None:
        return _fraction(price)
    for tier in reversed(price.tiers):
        if prompt > tier.start:
            return _fraction(tier.price)
    return _fraction(base)


def _starts(prices: Any) -> set[int]:
    return {
        tier.start
        for value in vars(prices).values()
        for tier in (getattr(value, "tiers", None) or ())
    }


def _token_rates(prices: Any, prompt: int) -> Rates | None:
    """The five token rates of one ModelPrice at one prompt length. A kind the library
    gives no price is billed as its parent, as the library computes it (cache reads and
    writes as input), except 1-hour writes: Anthropic bills them at 2x input on every
    platform, never at the 5-minute rate the library would fall back to."""
    value = {
        key: _rate_at(getattr(prices, key, None), prompt)
        for key in (
            "input_mtok",
            "output_mtok",
            "cache_read_mtok",
            "cache_write_mtok",
            "cache_write_5m_mtok",
            "cache_write_1h_mtok",
        )
    }
    base, output = value["input_mtok"], value["output_mtok"]
    if base is None or output is None:
        return None
    write = value["cache_write_mtok"] or base
    return (
        base,
        output,
        value["cache_write_5m_mtok"] or write,
        value["cache_write_1h_mtok"] or base * 2,
        value["cache_read_mtok"] or base,
    )


def _variant(model: Any, when: datetime, context: Mapping[str, str]) -> Any | None:
    """The model's prices for a request context, or None when the library has no variant
    for it (it would answer the standard prices)."""
    get = model.get_prices
    standard = get(when)
    with warnings.catch_warnings():  # some releases warn when no variant matches
        warnings.simplefilter("ignore")
        try:
            varied = get(when, context)
        except TypeError:  # a library too old to know request contexts
            return None
    return None if varied == standard else varied


def _provider_for(model: str) -> str:
    if bedrock_model(model) is not None:
        return BEDROCK
    if "@" in model:  # Vertex AI's spelling: claude-sonnet-4-5@20250929
        return VERTEX
    return ANTHROPIC if model.lower().startswith("claude") else OPENAI


# A dated snapshot or moving alias of a model: `-20250929`, `-2024-08-06`, `@20250929`,
# `-latest`; OpenAI's `-0125`. Folded before a name is held to the library's names. A date
# is a real YYYYMMDD (`-12345678` is no snapshot of anything), and the 4-digit OpenAI
# snapshot is never folded from a Claude id (`claude-opus-4-7-2026` is a typo).
_YMD = r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
DATED = re.compile(
    rf"(?:-{_YMD}|@{_YMD}|-(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])|-latest)$"
)
_SNAPSHOT = re.compile(r"-\d{4}$")
_VERTEX_DATE = re.compile(rf"@{_YMD}$")
# How the library spells a Bedrock id in its names: without the `-v1` version (`-v1:0`).
_VERSION = re.compile(r"-v\d+$")


def _names_of(clause: Any) -> set[str]:
    """The literal names a library match clause spells out (equals, starts_with,
    contains, ends_with), as model ids: without a Bedrock version or a trailing `@`."""
    out = set()
    for key in ("equals", "starts_with", "contains", "ends_with"):
        value = getattr(clause, key, None)
        if isinstance(value, str):
            out.add(_VERSION.sub("", value.lower().rstrip("@")))
    for part in getattr(clause, "or_", None) or ():
        out |= _names_of(part)
    return out


def _spellings(model: str, provider: str) -> set[str]:
    """The names an id as called stands for, to be found among the library's: a Bedrock id
    without its ARN and version, with and without its geography; a Vertex AI id without
    its `@date`; every id with its date folded (an OpenAI one with its 4-digit snapshot)."""
    name = model.lower()
    found = {name}
    if provider == BEDROCK:
        parsed = bedrock_model(name)
        if parsed is not None:
            geo = f"{parsed.geography}." if parsed.geography else ""
            found = {f"{geo}anthropic.{parsed.model}", f"anthropic.{parsed.model}", parsed.model}
    elif provider == VERTEX:
        found = {_VERTEX_DATE.sub("", name)}
    found |= {DATED.sub("", n) for n in found}
    if provider == OPENAI:
        found |= {_SNAPSHOT.sub("", n) for n in found}
    return found


def _named(model: str, provider: str, info: Any) -> bool:
    """Whether an id is one the library names, dates folded. Its matching is by prefix
    and substring (`claude-opus-4-7` matches `claude-opus-4-77`, and
    `us.anthropic.claude-opus-4-7` matches `us.anthropic.claude-opus-4-77-v1:0`): a typo
    must stay an unknown model, never another model's price."""
    known = _names_of(info.match) | {_VERSION.sub("", info.id.lower().split(":")[0])}
    return not known.isdisjoint(_spellings(model, provider))


def _as_listed(model: str) -> str:
    """A Bedrock ARN as the model id it ends in (the library lists ids, not ARNs)."""
    parsed = bedrock_model(model)
    if parsed is None:
        return model
    geo = f"{parsed.geography}." if parsed.geography else ""
    return f"{geo}anthropic.{parsed.model}"


def _find(model: str) -> tuple[str, Any] | None:
    providers = _providers()
    provider = providers.get(_provider_for(model))
    if provider is None:
        return None
    listed = _as_listed(model) if provider.id == BEDROCK else model
    found = provider.find_model(listed, all_providers=list(providers.values()))
    if found is None or not _named(model, provider.id, found):
        return None
    return provider.id, found


@lru_cache(maxsize=512)
def lookup(model: str, on: date | None = None) -> SourceRates | None:
    """The library's rates for a model id as called (a Bedrock or Vertex AI id is priced
    as that platform lists it), or None when the bundled data does not know it."""
    found = _find(model)
    if found is None:
        return None
    provider, info = found
    when = datetime.combine(on or pricing_date(), datetime.min.time(), timezone.utc)
    standard = info.get_prices(when)
    variants = {name: _variant(info, when, ctx) for name, ctx in (("batch", BATCH), ("fast", FAST))}
    starts = sorted(
        _starts(standard).union(*(_starts(v) for v in variants.values() if v is not None))
    )
    # A representative prompt for each band: 0, then one past each start.
    prompts = [0, *(s + 1 for s in starts)]

    def bands(prices: Any) -> tuple[Rates, ...] | None:
        rates = [_token_rates(prices, p) for p in prompts]
        return None if any(r is None for r in rates) else tuple(r for r in rates if r)

    rates = bands(standard)
    if rates is None:  # no token prices (an image or audio model): not ours to price
        return None
    search = getattr(standard, "web_searches_kcount", None)
    return SourceRates(
        model_id=info.id,
        provider=provider,
        starts=tuple(starts),
        standard=rates,
        batch=bands(variants["batch"]) if variants["batch"] is not None else None,
        fast=bands(variants["fast"]) if variants["fast"] is not None else None,
        web_search=_fraction(search) / 1000 if search is not None else None,
    )


def model_names(provider: str = ANTHROPIC) -> list[str]:
    """The library's model ids of a provider (for suggestions)."""
    found = _providers().get(provider)
    return [m.id for m in found.models] if found is not None else []
