"""`tokenbudget prices [MODEL...]`: the rates a run uses for a model, and where they come from.

So a reviewer can check a number in a report by hand: every rate set a request of the model
can be billed at (standard, each long-context band, batch, fast mode), the per-search fee,
the data-residency multiplier, and their source (genai-prices and its version, the day
priced, or the `pricing:` entry of token_budgets.yml that overrides it).
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.cli.command import ExitCode
from pytest_tokenbudget.errors import ConfigError, PricingError

if TYPE_CHECKING:
    from pytest_tokenbudget.cli.command import Subparsers
    from pytest_tokenbudget.pricing.prices import PriceBook, Rates

HEADERS = ("input", "output", "write 5m", "write 1h", "read")


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Register `tokenbudget prices [MODEL...] [--config PATH]`."""
    parser = subparsers.add_parser(
        "prices",
        help="show the rates used for models and where they come from",
        description="Show the rates pytest --token-budget uses for each MODEL ($ per million "
        "tokens) and their source: the genai-prices release and the day priced, or a "
        "`pricing:` override in token_budgets.yml. Without MODEL, every model the config "
        "names. Exit 2 when a model has no price.",
    )
    parser.add_argument("models", nargs="*", metavar="MODEL", help="a model id, as called")
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("token_budgets.yml"),
        metavar="PATH",
        help="its `pricing:` overrides win (default: token_budgets.yml, when it exists)",
    )
    return parser


def decimal(value: Fraction) -> str:
    """A rate as the exact decimal it is (rates are decimals times decimal multipliers);
    one that does not end (a hook's 1/3) to 12 places."""
    digits, scaled = 0, value
    while scaled.denominator != 1 and digits < 12:
        scaled *= 10
        digits += 1
    units = round(scaled)
    if not digits:
        return str(units)
    text = f"{units:0{digits + 1}d}"
    return f"{text[:-digits]}.{text[-digits:]}".rstrip("0").rstrip(".")


def _row(label: str, rates: Rates | None) -> str:
    assert rates is not None  # asked only for the contexts the price lists
    return f"  {label:<32}" + "".join(f"{decimal(r):>10}" for r in rates)


def describe_model(model: str, book: PriceBook) -> list[str]:
    """The lines `tokenbudget prices` prints for one model (PricingError when unpriced)."""
    from pytest_tokenbudget.pricing import source as price_source
    from pytest_tokenbudget.pricing.prices import OVERRIDE_SOURCE

    price = book.price(model)
    lines: list[str] = []
    found = book.source_rates(model)
    if price.source == OVERRIDE_SOURCE:
        lines.append(
            f"{model}: `pricing:` in token_budgets.yml (overrides genai-prices; as written)"
        )
    elif found is not None:
        # price.source names a platform's own entry already (Bedrock, Vertex AI): once
        entry = "" if found.model_id in price.source else f" ({found.provider} {found.model_id})"
        lines.append(
            f"{model}: {price.source}{entry}, prices in force on {price_source.pricing_date()}"
        )
    else:
        lines.append(f"{model}: {price.source}")
    lines.append(f"  {'$ per million tokens':<32}" + "".join(f"{h:>10}" for h in HEADERS))
    bands = [""] + [f", prompt > {start:,}" for start in price.starts]
    for band, suffix in enumerate(bands):
        lines.append(_row(f"standard{suffix}", price.rates(band=band)))
    for band, suffix in enumerate(bands):
        source = "" if price.batch_bands is not None else " (half)"
        lines.append(_row(f"batch{source}{suffix}", price.rates(band=band, batch=True)))
    if price.fast_bands is not None:
        for band, suffix in enumerate(bands):
            lines.append(_row(f"fast{suffix}", price.rates(band=band, context="speed=fast")))
    else:
        lines.append("  fast mode: no rate listed (a `speed: fast` request is an error)")
    if price.web_search is not None:
        lines.append(f"  web search: ${decimal(price.web_search * 1000)} per 1,000 searches")
    else:
        lines.append("  web search: no fee listed (a request that searched is an error)")
    if price.supplement:
        lines.append(
            f"  long context above {price.starts[0]:,}: from the {price.supplement} "
            "(genai-prices lists no such tier for this model)"
        )
    if price.residency != 1:
        lines.append(
            f"  data residency (usage.inference_geo names one geography): "
            f"{decimal(price.residency)}x every token rate (prices.json)"
        )
    return lines


def run(args: argparse.Namespace) -> ExitCode:
    from pytest_tokenbudget.config.budgets import load_config
    from pytest_tokenbudget.pricing.prices import PriceBook, configured_models

    overrides: dict[str, Any] = {}
    models = list(args.models)
    if args.config.exists():
        config = load_config(args.config)
        overrides = config.pricing
        if not models:
            models = list(dict.fromkeys(m for _, m in configured_models(config)))
    if not models:
        raise ConfigError(f"name a model, or run where {args.config} names some")
    book = PriceBook(overrides)
    failed = False
    for index, model in enumerate(models):
        try:
            lines = describe_model(model, book)
        except PricingError as err:  # said, and the other models still shown
            print(f"tokenbudget prices: {err.message}", file=sys.stderr)
            failed = True
            continue
        if index:
            print()
        print("\n".join(lines))
    return ExitCode.BAD_INPUT if failed else ExitCode.OK
