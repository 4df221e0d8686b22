"""Per-endpoint statistics from samples: percentiles, rates, costs.

Token sums are exact integers and costs exact fractions; rounding happens only
when the report is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from .pricing import PriceBook
from .samples import Sample
from .usage import Usage

PERCENTILES = (50, 90, 95, 99)
DAYS_PER_MONTH = 30


def nearest_rank(sorted_values: Sequence[int], pct: int) -> int:
    """Nearest-rank percentile: the smallest value with at least pct% of values at or below it."""
    rank = -(-pct * len(sorted_values) // 100)  # ceil without floats
    return sorted_values[max(rank, 1) - 1]


@dataclass
class CaseStats:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cost: Fraction | None = Fraction(0)  # None: it called a model nothing prices
    escalated: bool = False
    models: set[str] = field(default_factory=set)


@dataclass
class EndpointStats:
    name: str
    calls: int
    cases: int
    metrics: dict[str, float | int | None]
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
) -> EndpointStats:
    """Aggregate one endpoint. ``case_ids`` are the cases that ran (even without calls).

    A model nothing prices raises PricingError; with ``strict=False`` it is listed in
    ``unpriced`` instead, and every dollar figure it would be part of is None (never $0).
    """
    per_case: dict[str, CaseStats] = {cid: CaseStats() for cid in case_ids}
    prompt: list[int] = []
    output: list[int] = []
    call_cases: list[str] = []
    output_cases: list[str] = []
    models: dict[str, int] = defaultdict(int)
    # Cost is linear in tokens: sum tokens per (case, model, batch) first, price once.
    grouped: dict[tuple[str, str, bool], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    cache_read = 0
    recounted = 0
    input_only = 0
    for s in samples:
        u = s.usage
        p = u.prompt_tokens
        prompt.append(p)
        input_only += s.input_only
        if not s.input_only:
            output.append(u.output_tokens)
            output_cases.append(s.case_id)
        call_cases.append(s.case_id)
        models[s.model] += 1
        cache_read += u.cache_read_tokens
        recounted += s.recounted
        case = per_case.get(s.case_id)
        if case is None:
            case = per_case[s.case_id] = CaseStats()
        case.calls += 1
        case.input_tokens += p
        case.output_tokens += u.output_tokens
        case.cache_read_tokens += u.cache_read_tokens
        case.models.add(s.model)
        g = grouped[(s.case_id, s.model, s.batch or batch)]
        g[0] += u.input_tokens
        g[1] += u.output_tokens
        g[2] += u.cache_write_5m_tokens
        g[3] += u.cache_write_1h_tokens
        g[4] += u.cache_read_tokens

    price_sources: dict[str, str] = {}
    unpriced: dict[str, list[str]] = {}
    total = Fraction(0)
    for (case_id, model, is_batch), t in grouped.items():
        price = book.price(model) if strict else book.find(model)
        case = per_case[case_id]
        if price is None:
            seen = unpriced.setdefault(model, [])
            if case_id not in seen:
                seen.append(case_id)
            case.cost = None
            continue
        price_sources[model] = price.source
        cost = price.cost(Usage(*t), batch=is_batch)
        if case.cost is not None:
            case.cost += cost
        total += cost

    for case in per_case.values():
        case.escalated = any(
            _is_escalation(m, target_model, escalation_models, book) for m in case.models
        )

    calls = len(prompt)
    cases = len(per_case)
    metrics: dict[str, float | int | None] = {}
    for label, values in (("input_tokens", prompt), ("output_tokens", output)):
        ordered = sorted(values)
        for pct in PERCENTILES:
            metrics[f"{label}_p{pct}"] = nearest_rank(ordered, pct) if ordered else None
        metrics[f"{label}_max"] = ordered[-1] if ordered else None
    prompt_sum = sum(prompt)
    has_escalation_rule = escalation_models is not None or target_model is not None
    metrics["escalation_rate"] = (
        Fraction(sum(c.escalated for c in per_case.values()), cases)
        if cases and has_escalation_rule
        else None
    )
    metrics["cache_hit_rate"] = Fraction(cache_read, prompt_sum) if prompt_sum else None
    priced = not unpriced
    metrics["cost_per_call_usd"] = total / calls if calls and priced else None
    per_request = total / cases if cases and priced else None
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
        cost_total=total if priced else None,
        per_case=per_case,
        prompt_tokens=prompt,
        output_tokens=output,
        call_cases=call_cases,
        output_cases=output_cases,
        models=dict(models),
        price_sources=price_sources,
        recounted_calls=recounted,
        input_only_calls=input_only,
        unpriced=unpriced,
    )
