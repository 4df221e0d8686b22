"""`--token-budget-reprice MODEL`: what each endpoint's recorded traffic would cost on MODEL.

Informational only, never a verdict. Every Messages call is priced again at MODEL's rates
with the same price machinery (cache reads and writes, batch, long-context bands by the
prompt's length). Output is assumed the same as recorded. Input is exact for MODEL when
count_tokens counted the request with `model` replaced (count mode, or a count kept in
token_counts.json under the same key scheme, which includes the model, so replay in CI
reuses it offline); otherwise it is the recorded input, an estimate, since tokenizers differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from pytest_tokenbudget.capture.counting import (
    CountCache,
    count_key,
    count_sync,
    counted_request,
    counter_client,
)
from pytest_tokenbudget.errors import CassetteError, PricingError
from pytest_tokenbudget.measure.samples import SAMPLE_KINDS, CaseSamples, Row
from pytest_tokenbudget.measure.stats import MetricValue, endpoint_stats_of
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import Call, with_count

if TYPE_CHECKING:
    from pytest_tokenbudget.config.budgets import Endpoint
    from pytest_tokenbudget.pricing.prices import PriceBook

OUTPUT = "as recorded"
TOKENIZER_CAVEAT = (
    "repriced input assumes the same token count where it was not counted for the model: "
    "tokenizers differ (Opus 4.7 and the 5.x generation count up to ~35% more tokens for the "
    "same text); count mode (--token-budget-count) counts it exactly"
)
# Calls repriced: Anthropic's generation calls and the iterations billed with them.
REPRICED_KINDS = SAMPLE_KINDS - {"chat", "responses"}

Send = Callable[[dict[str, Any]], tuple[int, Any, bytes]]


class RepriceRun(Protocol):
    """What repricing needs of the run (session.BudgetRun): its count cache, whether it
    may ask count_tokens now, and the sender it keeps once made."""

    counts: CountCache | None
    reprice_send: Send | None

    @property
    def counts_online(self) -> bool: ...


def unknown_model_message(model: str, book: PriceBook, config_name: str) -> str | None:
    """Why MODEL cannot be repriced at (nothing prices it), or None when it can."""
    from pytest_tokenbudget.pricing.prices import (
        _did_you_mean,
        pricing_snippet,
        source_name,
        upgrade_hint,
    )

    try:
        if book.find(model) is not None:
            return None
    except PricingError as err:  # a price hook answered nonsense
        return f"--token-budget-reprice {model}: {err.message}"
    return (
        f"--token-budget-reprice: unknown model {model!r}: no price in {source_name()}, in "
        f"`pricing:` or from a pytest_tokenbudget_price hook{_did_you_mean(book.suggest(model))}."
        f"{upgrade_hint(model)} If the name is right, add its price to {config_name}:\n"
        f"{pricing_snippet(model)}"
    )


def repriced_rows(
    run: RepriceRun, model: str, exchanges: list[tuple[Exchange, list[Call]]], manual: list[Call]
) -> list[Row]:
    """The test's calls as rows at MODEL; a row's `recounted` flag says its input was
    counted for MODEL (exact), else it is the recorded input (estimated)."""
    rows: list[Row] = []
    for exchange, calls in exchanges:
        # one generation per exchange: its request is the one to count (an exchange with
        # iterations is counted too; their own prompts stay estimates)
        generations = [c for c in calls if c.kind == "messages"]
        counted = _count_for(run, model, exchange) if len(generations) == 1 else None
        rows += [_row(c, model, counted) for c in calls if c.kind in REPRICED_KINDS]
    rows += [_row(c, model, None) for c in manual if c.kind in REPRICED_KINDS]
    return rows


def _row(call: Call, model: str, counted: int | None) -> Row:
    if counted is not None and call.kind == "messages":
        call = with_count(call, counted, True)
    else:
        call = replace(call, recounted=False)
    u = call.usage
    return (
        model,
        u.input_tokens,
        u.output_tokens,
        u.cache_write_5m_tokens,
        u.cache_write_1h_tokens,
        u.cache_read_tokens,
        "anthropic",
        call.batch,
        call.recounted,
        call.input_only,
        call.note,
        u.web_search_requests,
        u.pricing_context,
    )


def _count_for(run: RepriceRun, model: str, exchange: Exchange) -> int | None:
    """count_tokens of the request with `model` replaced: kept in token_counts.json, else
    (count mode with a key) asked; None when neither, or when it cannot be counted."""
    from pytest_tokenbudget.capture.transport import is_messages_url

    if run.counts is None or not is_messages_url(exchange.method, exchange.url):
        return None
    try:
        body = json.loads(exchange.request_body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    body = {**body, "model": model}
    try:
        kept = run.counts.lookup(count_key(counted_request(body)))
        if kept is not None or not run.counts_online:
            return kept
        return count_sync(run.counts, body, _sender(run)).input_tokens
    except CassetteError:
        return None  # the figure stays an estimate; the count cache's own error is said elsewhere


def _sender(run: RepriceRun) -> Send:
    if run.reprice_send is None:
        run.reprice_send = counter_client()
    return run.reprice_send


@dataclass(frozen=True)
class Repricing:
    """What an endpoint's recorded traffic would cost on another model (exact figures)."""

    model: str
    cost_per_request: MetricValue  # None: something in it has no price at the model
    monthly_cost: MetricValue
    projected: bool  # the endpoint sets requests_per_day: a monthly figure is reported
    input_tokens_p95: MetricValue
    input_exact: bool  # every call's input counted for the model, none estimated


def reprice_figures(
    name: str,
    parts: Iterable[CaseSamples],
    case_ids: list[str],
    *,
    model: str,
    endpoint: Endpoint,
    book: PriceBook,
) -> Repricing | None:
    """The endpoint's calls priced at MODEL; None when the endpoint made no call."""
    parts = list(parts)
    stats = endpoint_stats_of(
        name,
        parts,
        case_ids,
        book=book,
        requests_per_day=endpoint.requests_per_day,
        batch=endpoint.batch,
        strict=False,
        cases_without_calls=endpoint.cases_without_calls,
    )
    if not stats.calls:
        return None
    metrics = stats.metrics
    return Repricing(
        model=model,
        cost_per_request=metrics["cost_per_request_usd"],
        monthly_cost=metrics["monthly_cost_usd"],
        projected=endpoint.requests_per_day is not None,
        input_tokens_p95=metrics["input_tokens_p95"],
        input_exact=stats.recounted_calls == stats.calls,
    )
