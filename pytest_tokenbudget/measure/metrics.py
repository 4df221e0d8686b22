"""The metrics of report.json, each with its facts: which way is better, its name, its unit.

One table, read by everything that judges or shows a metric: budget verdicts, the
regression gate and `tokenbudget diff` (which way is worse), the ratchet (which way
a budget tightens, how it rounds), the terminal, Markdown and HTML (what a person
reads). A metric the plugin computes and this table misses is a bug the tests catch
(tests/unit/measure/test_metric_facts.py), never a silent "lower is better".
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from pytest_tokenbudget import formatting as fmt

TOKENS, RATE, USD = "tokens", "rate", "usd"
LOWER, HIGHER = "lower", "higher"  # which way is better
PERCENTILE_LABELS = ("p50", "p90", "p95", "p99", "max")


@dataclass(frozen=True)
class Metric:
    name: str  # the key in report.json's `metrics`
    label: str  # what a person reads: "input tokens p95"
    unit: str  # tokens | rate | usd
    better: str | None  # lower | higher; None: unknown (a newer report's metric)
    meaning: str  # one line: what it measures

    @property
    def higher_is_better(self) -> bool:
        return self.better == HIGHER

    def show(self, value: Fraction | float | None) -> str:
        """The value as it reads: 1,172 · 84.6% · $0.00155; "—" when not measured."""
        if self.unit == USD:
            return fmt.usd(value)
        if self.unit == RATE:
            return fmt.rate(value)
        return fmt.tokens(value)

    def show_delta(self, delta: Fraction | float | None) -> str:
        """A change as it reads: +172 · -10.0 pp · +$0.00010; "0" for none, "—" unknown."""
        if delta is None:
            return "—"
        if delta == 0:
            return "0"
        sign = "+" if delta > 0 else "-"
        if self.unit == RATE:
            return f"{sign}{abs(float(delta)) * 100:.1f} pp"
        if self.unit == USD:
            return sign + fmt.usd(-delta if delta < 0 else delta)
        return f"{sign}{abs(int(delta)):,}"


def _tokens(side: str) -> list[Metric]:
    what = "whole prompt (uncached + cache writes + cache reads)" if side == "input" else "output"
    which = {q: "maximum" if q == "max" else f"nearest-rank {q}" for q in PERCENTILE_LABELS}
    return [
        Metric(
            f"{side}_tokens_{q}",
            f"{side} tokens {q}",
            TOKENS,
            LOWER,
            f"{which[q]} of the {what} tokens per call",
        )
        for q in PERCENTILE_LABELS
    ]


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        *_tokens("input"),
        *_tokens("output"),
        Metric(
            "escalation_rate",
            "escalation rate",
            RATE,
            LOWER,
            "share of requests (cases) with a call to an escalation model",
        ),
        Metric(
            "cache_hit_rate",
            "cache-hit rate",
            RATE,
            HIGHER,
            "recorded cache reads over whole-prompt input tokens",
        ),
        Metric(
            "predicted_cache_hit_rate",
            "predicted cache-hit rate",
            RATE,
            HIGHER,
            "cache reads the simulator predicts for the prompts as sent now, over them",
        ),
        Metric(
            "system_tokens_p95",
            "system prompt tokens p95",
            TOKENS,
            LOWER,
            "nearest-rank p95 of the system prompt's tokens per call (its anatomy)",
        ),
        Metric(
            "tools_tokens_p95",
            "tool definition tokens p95",
            TOKENS,
            LOWER,
            "nearest-rank p95 of the tool definitions' tokens per call (its anatomy)",
        ),
        Metric("cost_per_call_usd", "$ per call", USD, LOWER, "mean dollars per API call"),
        Metric(
            "cost_per_request_usd", "$ per request", USD, LOWER, "mean dollars per request (case)"
        ),
        Metric(
            "monthly_cost_usd",
            "$ per month",
            USD,
            LOWER,
            "cost per request × requests_per_day × 30",
        ),
    ]
}


def metric(name: str) -> Metric:
    """The facts of a metric. One this version does not know (a newer report's) reads by
    its suffix, under its own key, with no direction: it is shown, never gated."""
    found = METRICS.get(name)
    if found is not None:
        return found
    unit = USD if name.endswith("_usd") else RATE if name.endswith("_rate") else TOKENS
    return Metric(name, name, unit, None, "not known to this version of pytest-tokenbudget")


def label(name: str) -> str:
    return metric(name).label


def show(name: str, value: Fraction | float | None) -> str:
    return metric(name).show(value)


# -- how a metric is written in report.json -------------------------------------------
MONEY_DIGITS = 9  # nano-dollars: exact for any realistic token count times a cent-rate
RATE_DIGITS = 6


def number(name: str, value: Fraction | float | None) -> int | float | None:
    """How a metric is written: token counts as ints, dollars and rates rounded once, here."""
    if value is None or isinstance(value, int):
        return value
    digits = MONEY_DIGITS if metric(name).unit == USD else RATE_DIGITS
    return float(round(Fraction(value), digits))
