"""How numbers read in the terminal and in Markdown (the JSON keeps them raw)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

Number = Fraction | int | float | None


def tokens(value: Number) -> str:
    return "—" if value is None else f"{int(value):,}"


def rate(value: Number) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f}%"


def usd(value: Number) -> str:
    if value is None:
        return "—"
    v = float(value)
    if v == 0:
        return "$0"
    if abs(v) < 0.01:
        return f"${v:.5f}"
    if abs(v) < 100:
        return f"${v:,.4f}" if abs(v) < 1 else f"${v:,.2f}"
    return f"${v:,.0f}"


def nice_ceiling(value: Fraction | float) -> int:
    """Round up to 2 significant digits, as a person writes a limit: 3,310 -> 3,400; 87 -> 87;
    0.4 -> 1 (`tokenbudget analyze`'s suggestions, `--token-budget-update`'s token budgets)."""
    if value <= 0:
        return 0
    digits = max(math.floor(math.log10(value)) - 1, 0)
    step = 10**digits
    return int(math.ceil(value / step) * step)


def metric(name: str, value: Number) -> str:
    if name.endswith("_usd"):
        return usd(value)
    if name.endswith("_rate"):
        return rate(value)
    return tokens(value)


# The summary row's metrics, in the order every summary (terminal, Markdown, HTML) shows them.
SUMMARY_METRICS = (
    "input_tokens_p95",
    "output_tokens_p95",
    "escalation_rate",
    "cache_hit_rate",
    "cost_per_request_usd",
    "monthly_cost_usd",
)


def summary_cells(metrics: Mapping[str, Number]) -> list[str]:
    """p95 in, p95 out, escalation, cache hit, $/request, $/month, as they read."""
    return [metric(name, metrics.get(name)) for name in SUMMARY_METRICS]
