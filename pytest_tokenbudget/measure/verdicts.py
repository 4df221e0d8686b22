"""Budget verdicts: each budget of an endpoint checked against its metric."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from pytest_tokenbudget.measure.anatomy import PART_METRICS, EndpointAnatomy
from pytest_tokenbudget.measure.stats import EndpointStats

TOP_DRIVERS = 5


class BudgetLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def limit(self) -> float: ...
    @property
    def kind(self) -> str: ...  # "max" | "min"
    @property
    def line(self) -> int: ...


@dataclass(frozen=True)
class Verdict:
    key: str
    metric: str
    kind: str  # "max": actual <= limit; "min": actual >= limit (the budget's own)
    limit: float
    actual: Fraction | float | None  # exact (a Fraction) from stats; int for token counts
    ok: bool | None  # None: could not be evaluated (see note)
    line: int
    drivers: tuple[str, ...] = ()  # case ids that drive the metric, worst first
    note: str = ""
    estimated: bool = False  # the actual is an estimate (a part of the prompt, not counted)


def judge(
    stats: EndpointStats, budgets: Iterable[BudgetLike], anatomy: EndpointAnatomy | None = None
) -> list[Verdict]:
    """Each budget against its metric; `anatomy` gives the prompt parts' (max_system_tokens)."""
    verdicts = []
    for b in budgets:
        actual = stats.metrics.get(b.metric)
        if actual is None:
            verdicts.append(
                Verdict(
                    b.key,
                    b.metric,
                    b.kind,
                    b.limit,
                    None,
                    None,
                    b.line,
                    note=_why_missing(b.metric, stats),
                )
            )
            continue
        limit = Fraction(str(b.limit))
        ok = actual <= limit if b.kind == "max" else actual >= limit
        estimated = anatomy is not None and anatomy.estimated(b.metric)
        if b.metric in PART_METRICS:
            drivers = () if ok or anatomy is None else anatomy.drivers(b.metric, limit, TOP_DRIVERS)
        else:
            drivers = () if ok else _drivers(stats, b.metric, limit)
        verdicts.append(
            Verdict(
                b.key, b.metric, b.kind, b.limit, actual, ok, b.line, drivers, estimated=estimated
            )
        )
    return verdicts


def _why_missing(metric: str, stats: EndpointStats) -> str:
    if stats.calls == 0:
        return "no API calls were captured"
    if metric in PART_METRICS:
        return (
            "not measurable: no Anthropic Messages request was captured, so no prompt was "
            "split into its parts"
        )
    if stats.unpriced and metric.endswith("_usd"):
        return f"not checked: no price for {', '.join(stats.unpriced)}"
    if metric == "monthly_cost_usd":
        return "not checked: set requests_per_day to project a monthly cost"
    if metric == "escalation_rate":
        return "not checked: set target_model or escalation_models"
    return "not measurable from this run"


def _drivers(stats: EndpointStats, metric: str, limit: Fraction) -> tuple[str, ...]:
    """The cases to look at first when this budget breaks."""
    cases = stats.per_case
    if metric.startswith(("input_tokens", "output_tokens")):
        if metric.startswith("input"):
            pairs = zip(stats.call_cases, stats.prompt_tokens, strict=True)
        else:
            pairs = zip(stats.output_cases, stats.output_tokens, strict=True)
        worst: dict[str, int] = {}
        for case_id, value in pairs:
            if value > limit:
                worst[case_id] = max(value, worst.get(case_id, 0))
        ranked = sorted(worst, key=lambda c: (-worst[c], c))
    elif metric == "escalation_rate":
        ranked = sorted(c for c, s in cases.items() if s.escalated)
    elif metric == "cache_hit_rate":

        def hit(c: str) -> Fraction:
            s = cases[c]
            return Fraction(s.cache_read_tokens, s.input_tokens) if s.input_tokens else Fraction(1)

        ranked = sorted((c for c in cases if cases[c].calls), key=lambda c: (hit(c), c))
    else:  # costs
        ranked = sorted(cases, key=lambda c: (-(cases[c].cost or 0), c))
    return tuple(ranked[:TOP_DRIVERS])
