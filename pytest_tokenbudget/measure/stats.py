"""Per-endpoint statistics from samples: percentiles, rates, costs.

Token sums are exact integers and costs exact fractions; rounding happens only
when the report is written. The work is per test and per (case, model, batch)
group, not per call: tokens are summed per group when a test ends (measure/samples.py),
costs are integers over one common denominator, and percentiles come from the
counts of each token value, so 10^6 calls aggregate in a fraction of a second.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import accumulate
from typing import Any

from pytest_tokenbudget.errors import PricingError
from pytest_tokenbudget.measure.samples import CaseSamples, Sample, case_samples
from pytest_tokenbudget.pricing.prices import (
    _MILLION,
    COST_TIERS,
    WEB_SEARCH,
    Price,
    PriceBook,
    unpriced_key,
)
from pytest_tokenbudget.providers.usage import Usage, context_fields, iteration_type

PERCENTILES = (50, 90, 95, 99)
# A metric's value: token counts as ints, rates and dollars exact; None when not measurable.
MetricValue = Fraction | int | None
DAYS_PER_MONTH = 30
# How a case that made no API call counts in the per-case metrics (escalation_rate,
# cost_per_request_usd, monthly_cost_usd): left out of them, or as a $0 request.
CASES_WITHOUT_CALLS = ("exclude", "count")


@dataclass(slots=True)
class CaseStats:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost: Fraction | None = Fraction(0)  # None: it called a model nothing prices
    escalated: bool = False
    models: set[str] = field(default_factory=set)


@dataclass
class IterationStats:
    """Usage of one ``usage.iterations`` type (compaction, advisor_message, ...) over an
    endpoint: billed beside the top-level usage, already inside every other figure (the
    calls' tokens, the cost, the models), shown apart here."""

    calls: int = 0  # calls with at least one iteration of the type
    iterations: int = 0
    input_tokens: int = 0  # whole prompts: uncached + cache writes + cache reads
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost: Fraction | None = Fraction(0)  # at each iteration's model; None: a model unpriced
    models: dict[str, int] = field(default_factory=dict)  # model -> iterations

    def to_dict(self, number: Callable[[str, Any], Any]) -> dict[str, Any]:
        """report.json's `endpoints.<name>.iterations.<type>` (``number`` rounds dollars)."""
        return {
            "calls": self.calls,
            "iterations": self.iterations,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cost_usd": number("cost_usd", self.cost),
            "models": dict(sorted(self.models.items())),
        }


@dataclass
class EndpointStats:
    name: str
    calls: int
    cases: int
    metrics: dict[str, MetricValue]
    cost_total: Fraction | None  # None when a call's model has no price
    per_case: dict[str, CaseStats]
    prompt_tokens: list[int]  # per call, in sample order (for drivers of budgets)
    output_tokens: list[int]
    call_cases: list[str]
    output_cases: list[str]  # case of each output value (input-only calls have none)
    models: dict[str, int]  # model -> calls
    price_sources: dict[str, str]  # model -> where its price came from
    recounted_calls: int = 0
    input_only_calls: int = 0
    unpriced: dict[str, list[str]] = field(default_factory=dict)  # model -> its cases
    # model -> cost tier (pricing.COST_TIERS: each token rate, then web searches) ->
    # dollars; the tiers add up to cost_total
    tier_costs: dict[str, dict[str, Fraction]] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)  # a call's note -> calls with it
    # cases that ran and made no API call, in case order, and how they count
    no_call_cases: list[str] = field(default_factory=list)
    cases_without_calls: str = "exclude"
    # the cases the per-case metrics are over: every case with `count`, else those with calls
    requests: int = 0
    # usage billed in usage.iterations beside the calls' own, per type (already counted above)
    iterations: dict[str, IterationStats] = field(default_factory=dict)


def _is_escalation(
    model: str, target: str | None, escalation: Sequence[str] | None, book: PriceBook
) -> bool:
    if escalation is not None:
        return any(book.same_model(model, m) for m in escalation)
    if target is None:
        return False
    return not book.same_model(model, target)


def endpoint_stats(
    name: str,
    samples: Iterable[Sample],
    case_ids: Iterable[str],
    *,
    book: PriceBook,
    target_model: str | None = None,
    escalation_models: Sequence[str] | None = None,
    requests_per_day: float | None = None,
    batch: bool = False,
    strict: bool = True,
    cases_without_calls: str = "exclude",
) -> EndpointStats:
    """Aggregate one endpoint. ``case_ids`` are the cases that ran (even without calls).

    A model nothing prices raises PricingError; with ``strict=False`` it is listed in
    ``unpriced`` instead, and every dollar figure it would be part of is None (never $0).
    A case that made no call is left out of the per-case metrics (``"exclude"``) or
    counts as a $0 request (``"count"``); either way it is listed in ``no_call_cases``.
    """
    return endpoint_stats_of(
        name,
        case_samples(samples),
        case_ids,
        book=book,
        target_model=target_model,
        escalation_models=escalation_models,
        requests_per_day=requests_per_day,
        batch=batch,
        strict=strict,
        cases_without_calls=cases_without_calls,
    )


def percentiles(values: Sequence[int], label: str, metrics: dict[str, MetricValue]) -> None:
    """Nearest-rank percentiles and the maximum, from the count of each value (the same
    numbers as sorting every value, without sorting them)."""
    if not values:
        for pct in PERCENTILES:
            metrics[f"{label}_p{pct}"] = None
        metrics[f"{label}_max"] = None
        return
    counts = Counter(values)
    keys = sorted(counts)
    at_or_below = list(accumulate(counts[k] for k in keys))
    n = len(values)
    for pct in PERCENTILES:
        rank = max(-(-pct * n // 100), 1)
        metrics[f"{label}_p{pct}"] = keys[bisect_left(at_or_below, rank)]
    metrics[f"{label}_max"] = keys[-1]


# A rate set: (model, batch, pricing context, long-context band). Requests of one set are
# priced alike, so their tokens are summed first and priced once.
RateKey = tuple[str, bool, str, int]


def _weights(
    rate_sets: dict[RateKey, tuple[Fraction, ...]],
) -> tuple[int, dict[RateKey, tuple[int, ...]]]:
    """One denominator for every cost, and each rate set's rates as integers over it: the
    dollars of a group are then a sum of integer products. A rate set is the five token
    rates ($ per million) and the fee per web search (times a million, to share the unit)."""
    lcm = math.lcm(1, *(r.denominator for rs in rate_sets.values() for r in rs))
    denominator = _MILLION * lcm
    return denominator, {
        key: tuple(r.numerator * (lcm // r.denominator) for r in rs)
        for key, rs in rate_sets.items()
    }


def _rate_set(price: Price, key: RateKey, searches: bool) -> tuple[Fraction, ...] | str:
    """The six rates of a rate set, or what has no price (pricing.unpriced_key)."""
    model, is_batch, context, band = key
    rates = price.rates(band=band, batch=is_batch, context=context)
    if rates is None:
        return unpriced_key(model, context)
    if searches and price.web_search is None:
        return unpriced_key(model, WEB_SEARCH)
    return (*rates, (price.web_search or Fraction(0)) * _MILLION)


def _iteration_costs(
    parts: Sequence[CaseSamples],
    iterations: dict[str, IterationStats],
    prices: dict[str, Price | None],
    batch: bool,
) -> None:
    """Each iteration type's dollars, row by row (iterations are few): every iteration is a
    request of its own, priced at its model, context and prompt length."""
    for part in parts:
        if not part.iterations:
            continue
        for model, i, o, w5, w1, r, _, is_batch, _, _, note, web, context in part.rows:
            step = iteration_type(note) if note else ""
            it = iterations.get(step) if step else None
            if it is None or it.cost is None:
                continue
            price = prices.get(model)
            usage = Usage(i, o, w5, w1, r, web, **context_fields(context))
            try:
                it.cost += price.cost(usage, batch=is_batch or batch) if price else None  # type: ignore[operator]
            except (PricingError, TypeError):
                it.cost = None


def endpoint_stats_of(
    name: str,
    parts: Iterable[CaseSamples],
    case_ids: Iterable[str],
    *,
    book: PriceBook,
    target_model: str | None = None,
    escalation_models: Sequence[str] | None = None,
    requests_per_day: float | None = None,
    batch: bool = False,
    strict: bool = True,
    cases_without_calls: str = "exclude",
) -> EndpointStats:
    """`endpoint_stats` of samples kept per test (samples.CaseSamples), in call order."""
    if cases_without_calls not in CASES_WITHOUT_CALLS:
        raise ValueError(f"cases_without_calls must be one of {CASES_WITHOUT_CALLS}")
    parts = list(parts)
    per_case: dict[str, CaseStats] = {cid: CaseStats() for cid in case_ids}
    models: dict[str, int] = {}
    notes: dict[str, int] = {}
    # Cost is linear in tokens within a rate set: sum tokens per (case, rate set) first,
    # price once. (case, model, batch, context, band) -> [input, output, w5m, w1h, read,
    # web searches]
    grouped: dict[tuple[str, str, bool, str, int], Sequence[int]] = {}
    # (iteration type, model, batch) -> [iterations, calls, input, output, w5m, w1h, read]
    steps: dict[tuple[str, str, bool], Sequence[int]] = {}
    cache_read = recounted = input_only = 0
    calls = 0
    for part in parts:
        cid = part.case_id
        calls += len(part.prompt)
        for model, n in part.models.items():
            models[model] = models.get(model, 0) + n
        for note, n in part.notes.items():
            notes[note] = notes.get(note, 0) + n
        cache_read += part.cache_read_sum
        recounted += part.recounted
        input_only += part.input_only
        case = per_case.get(cid)
        if case is None:
            case = per_case[cid] = CaseStats()
        case.calls += len(part.prompt)
        case.input_tokens += part.prompt_sum
        case.output_tokens += part.output_sum
        case.cache_read_tokens += part.cache_read_sum
        case.models.update(part.models)
        for (model, is_batch, context), sums in part.groups.items():
            key = (cid, model, is_batch or batch, context, 0)
            g = grouped.get(key)  # the part's own list, read only: a sum is a new list
            grouped[key] = sums if g is None else [a + b for a, b in zip(g, sums, strict=True)]
        for (step, model, is_batch), sums in part.iterations.items():
            key3 = (step, model, is_batch or batch)
            g = steps.get(key3)
            steps[key3] = sums if g is None else [a + b for a, b in zip(g, sums, strict=True)]

    prices: dict[str, Price | None] = {}
    for _, model, _, _, _ in grouped:
        if model not in prices:
            prices[model] = book.price(model) if strict else book.find(model)
    # A model with long-context bands bills each request by its own prompt's length: its
    # calls are grouped again, one by one (only this model's, only then).
    banded = {m: p for m, p in prices.items() if p is not None and p.starts}
    if banded:
        grouped = {k: v for k, v in grouped.items() if k[1] not in banded}
        for part in parts:
            if banded.keys().isdisjoint(part.models):
                continue
            for model, i, o, w5, w1, r, _, is_batch, _, _, _, web, context in part.rows:
                price = banded.get(model)
                if price is None:
                    continue
                key = (part.case_id, model, is_batch or batch, context, price.band(i + w5 + w1 + r))
                g = grouped.get(key)
                row = (i, o, w5, w1, r, web)
                grouped[key] = row if g is None else [a + b for a, b in zip(g, row, strict=True)]
    rate_sets: dict[RateKey, tuple[Fraction, ...]] = {}
    unpriced_sets: dict[RateKey, str] = {}
    searched = {(m, b, c, n) for (_, m, b, c, n), t in grouped.items() if t[5]}
    for _, model, is_batch, context, band in grouped:
        rk: RateKey = (model, is_batch, context, band)
        price = prices[model]
        if price is None or rk in rate_sets or rk in unpriced_sets:
            continue
        found = _rate_set(price, rk, rk in searched)
        if isinstance(found, str):
            unpriced_sets[rk] = found
        else:
            rate_sets[rk] = found
    denominator, weights = _weights(rate_sets)
    price_sources: dict[str, str] = {}
    unpriced: dict[str, list[str]] = {}
    tier_sums: dict[str, list[int]] = {}  # model -> numerator per cost tier
    case_sums: dict[str, int] = {}
    unpriced_cases: set[str] = set()
    total = 0
    for (case_id, model, is_batch, context, band), t in grouped.items():
        price = prices[model]
        rk = (model, is_batch, context, band)
        if price is None or rk in unpriced_sets:
            what = unpriced_sets.get(rk, model)
            seen = unpriced.setdefault(what, [])
            if case_id not in seen:
                seen.append(case_id)
            unpriced_cases.add(case_id)
            continue
        price_sources[model] = price.source
        w = weights[rk]
        tiers = tier_sums.setdefault(model, [0] * len(COST_TIERS))
        cost = 0
        for k in range(len(COST_TIERS)):  # each rate's units alone: cost is linear
            part_cost = t[k] * w[k]
            tiers[k] += part_cost
            cost += part_cost
        case_sums[case_id] = case_sums.get(case_id, 0) + cost
        total += cost
    for case_id, case in per_case.items():
        if case_id in unpriced_cases:
            case.cost = None
        elif case_id in case_sums:
            case.cost = Fraction(case_sums[case_id], denominator)
    tier_costs = {
        model: {tier: Fraction(n, denominator) for tier, n in zip(COST_TIERS, sums, strict=True)}
        for model, sums in tier_sums.items()
    }
    iterations: dict[str, IterationStats] = {}
    for (step, model, _batch), (n, n_calls, i, o, w5, w1, r) in sorted(steps.items()):
        it = iterations.setdefault(step, IterationStats())
        it.calls += n_calls
        it.iterations += n
        it.input_tokens += i + w5 + w1 + r
        it.output_tokens += o
        it.cache_write_tokens += w5 + w1
        it.cache_read_tokens += r
        it.models[model] = it.models.get(model, 0) + n
    if steps:
        _iteration_costs(parts, iterations, prices, batch)

    escalates: dict[str, bool] = {}
    for case in per_case.values():
        for m in case.models:
            if m not in escalates:
                escalates[m] = _is_escalation(m, target_model, escalation_models, book)
            if escalates[m]:
                case.escalated = True
                break

    # The per-call lists last: while they are young, every collection of the young generation
    # would walk their 10^6 items, and the steps above allocate ~10 objects per case.
    prompt: list[int] = []
    output: list[int] = []
    call_cases: list[str] = []
    output_cases: list[str] = []
    for part in parts:
        prompt += part.prompt
        output += part.output
        call_cases += [part.case_id] * len(part.prompt)
        output_cases += [part.case_id] * len(part.output)
    prompt_sum = sum(part.prompt_sum for part in parts)
    cases = len(per_case)
    no_call_cases = [case_id for case_id, case in per_case.items() if not case.calls]
    # The per-case metrics are over the requests: every case that ran, or (the default) only
    # those that made a call, since a test a mock answered is no $0 request of the app.
    requests = cases if cases_without_calls == "count" else cases - len(no_call_cases)
    metrics: dict[str, MetricValue] = {}
    percentiles(prompt, "input_tokens", metrics)
    percentiles(output, "output_tokens", metrics)
    has_escalation_rule = escalation_models is not None or target_model is not None
    metrics["escalation_rate"] = (
        Fraction(sum(c.escalated for c in per_case.values()), requests)
        if requests and has_escalation_rule
        else None
    )
    metrics["cache_hit_rate"] = Fraction(cache_read, prompt_sum) if prompt_sum else None
    priced = not unpriced
    cost_total = Fraction(total, denominator)
    metrics["cost_per_call_usd"] = cost_total / calls if calls and priced else None
    per_request = cost_total / requests if requests and priced else None
    metrics["cost_per_request_usd"] = per_request
    metrics["monthly_cost_usd"] = (
        per_request * Fraction(str(requests_per_day)) * DAYS_PER_MONTH
        if per_request is not None and requests_per_day is not None
        else None
    )
    return EndpointStats(
        name=name,
        calls=calls,
        cases=cases,
        metrics=metrics,
        cost_total=cost_total if priced else None,
        per_case=per_case,
        prompt_tokens=prompt,
        output_tokens=output,
        call_cases=call_cases,
        output_cases=output_cases,
        models=models,
        price_sources=price_sources,
        recounted_calls=recounted,
        input_only_calls=input_only,
        unpriced=unpriced,
        tier_costs=tier_costs,
        notes=notes,
        no_call_cases=no_call_cases,
        cases_without_calls=cases_without_calls,
        requests=requests,
        iterations=iterations,
    )
