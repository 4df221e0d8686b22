"""report.json: the versioned record of one run that diffs, comments and dashboards read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from .atomic import write_atomic
from .scrub import refuse_if_secret
from .stats import EndpointStats
from .verdicts import Verdict

SCHEMA = "pytest-tokenbudget/report"
VERSION = 1
MONEY_DIGITS = 9  # nano-dollars: exact for any realistic token count times a cent-rate
RATE_DIGITS = 6
PERCENTILE_METHOD = "nearest-rank over calls"

CORE_METRICS = (
    "input_tokens_p50", "input_tokens_p95", "input_tokens_max",
    "output_tokens_p50", "output_tokens_p95", "output_tokens_max",
    "escalation_rate", "cache_hit_rate",
    "cost_per_call_usd", "cost_per_request_usd", "monthly_cost_usd",
)  # fmt: skip


@dataclass
class EndpointResult:
    name: str
    status: str  # pass | fail | not-run
    stats: EndpointStats | None
    verdicts: list[Verdict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures that are not budgets
    line: int | None = None
    max_regression_pct: float | None = None
    cache: dict[str, Any] | None = None  # recorded and predicted cache figures
    recorders: list[str] = field(default_factory=list)  # who served its calls (capture.py)


def number(metric: str, value: Fraction | float | None) -> int | float | None:
    """How a metric is written: token counts as ints, dollars and rates rounded once, here."""
    if value is None or isinstance(value, int):
        return value
    digits = MONEY_DIGITS if metric.endswith("_usd") else RATE_DIGITS
    return float(round(Fraction(value), digits))


def endpoint_json(result: EndpointResult) -> dict[str, Any]:
    out: dict[str, Any] = {"status": result.status, "line": result.line}
    if result.max_regression_pct is not None:
        out["max_regression_pct"] = result.max_regression_pct
    stats = result.stats
    if stats is None:
        out.update(calls=0, cases=0, no_call_cases=[], metrics={}, budgets=[], per_case={})
    else:
        out["calls"] = stats.calls
        out["cases"] = stats.cases
        # cases that ran and made no API call, and whether the per-case metrics count them
        out["no_call_cases"] = stats.no_call_cases
        out["cases_without_calls"] = stats.cases_without_calls
        out["metrics"] = {k: number(k, v) for k, v in stats.metrics.items()}
        out["budgets"] = [
            {
                "key": v.key,
                "metric": v.metric,
                "limit": v.limit,
                "actual": number(v.metric, v.actual),
                "ok": v.ok,
                "line": v.line,
                "drivers": list(v.drivers),
                **({"note": v.note} if v.note else {}),
            }
            for v in result.verdicts
        ]
        out["per_case"] = {
            case_id: {
                "calls": c.calls,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "cost_usd": number("cost_usd", c.cost),
                "escalated": c.escalated,
                "models": sorted(c.models),
            }
            for case_id, c in stats.per_case.items()
        }
        out["models"] = stats.models
        out["price_sources"] = stats.price_sources
        if stats.unpriced:  # model -> cases that called it; its dollars are not counted
            out["unpriced_models"] = stats.unpriced
        out["recounted_calls"] = stats.recounted_calls
        if getattr(stats, "iterations", None):  # usage.iterations per type (stats.py)
            out["iterations"] = {k: v.to_dict(number) for k, v in stats.iterations.items()}
    if result.cache is not None:
        out["cache"] = result.cache
    out["recorders"] = result.recorders
    out["warnings"] = result.warnings
    out["problems"] = result.problems
    return out


def build_report(
    results: list[EndpointResult], *, config_path: str, price_table_date: str
) -> dict[str, Any]:
    monthly = [
        r.stats.metrics.get("monthly_cost_usd")
        for r in results
        if r.stats is not None and r.stats.metrics.get("monthly_cost_usd") is not None
    ]
    costs = [r.stats.cost_total for r in results if r.stats]
    # A model with no price makes every total that would include it unknown, not smaller.
    unpriced = any(r.stats.unpriced for r in results if r.stats)
    total_cost = None if unpriced else sum((c for c in costs if c is not None), Fraction(0))
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "config": config_path,
        "percentile_method": PERCENTILE_METHOD,
        "prices": {"table_date": price_table_date},
        "status": "fail" if any(r.status == "fail" for r in results) else "pass",
        "endpoints": {r.name: endpoint_json(r) for r in results},
        "totals": {
            "calls": sum(r.stats.calls for r in results if r.stats),
            "cost_usd": number("cost_usd", total_cost),
            "monthly_cost_usd": number("monthly_cost_usd", sum(monthly, Fraction(0)))
            if monthly and not unpriced
            else None,
        },
    }


def write_report(
    directory: Path, report: dict[str, Any], markdown: str, *, html: str | None = None
) -> tuple[Path, Path]:
    """Every file is scanned for secrets before any is written, each atomically."""
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    json_path = directory / "report.json"
    md_path = directory / "report.md"
    files = [(json_path, text), (md_path, markdown)]
    if html is not None:
        files.append((directory / "report.html", html))
    for path, content in files:
        refuse_if_secret(content, path=str(path))
    for path, content in files:
        write_atomic(path, content)
    return json_path, md_path
