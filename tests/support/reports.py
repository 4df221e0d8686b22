"""Hand-written reports (report.json as dicts) shared by the diff, comment, annotation and
hostile-report tests: a baseline (BASE) and a head (HEAD) whose every number was worked out
by hand, and builders for more."""

from __future__ import annotations

import markdown as md_lib

from pytest_tokenbudget.report.diff import compare
from pytest_tokenbudget.report.json_io import report_from_json


def compared(base, head, **gates):
    """report/diff.compare of two report.json documents, each read as the typed report."""
    return compare(report_from_json(base), report_from_json(head), **gates)


def report(endpoints, monthly, table="2026-11-01", version=1):
    return {
        "schema": "pytest-tokenbudget/report",
        "version": version,
        "config": "token_budgets.yml",
        "percentile_method": "nearest-rank over calls",
        "prices": {"table_date": table},
        "status": "pass",
        "endpoints": endpoints,
        "totals": {"monthly_cost_usd": monthly},
    }


def budget(key, metric, limit, actual, line, ok=True, drivers=()):
    return {
        "key": key,
        "metric": metric,
        "limit": limit,
        "actual": actual,
        "ok": ok,
        "line": line,
        "drivers": list(drivers),
    }


def case(inp, out, cost, escalated=False):
    return {
        "calls": 1,
        "input_tokens": inp,
        "output_tokens": out,
        "cost_usd": cost,
        "escalated": escalated,
    }


BASE = report(
    {
        "chat": {
            "status": "pass",
            "line": 3,
            "metrics": {
                "input_tokens_p95": 1000,
                "output_tokens_p95": 200,
                "escalation_rate": 0.1,
                "cache_hit_rate": 0.8,
                "cost_per_request_usd": 0.002,
                "monthly_cost_usd": 120.0,
            },
            "budgets": [
                budget("max_input_tokens_p95", "input_tokens_p95", 1300, 1000, 5),
                budget("min_cache_hit_rate", "cache_hit_rate", 0.6, 0.8, 7),
            ],
            "per_case": {
                "a": case(1000, 200, 0.002),
                "b": case(900, 150, 0.0018),
                "c": case(800, 100, 0.0015),
                "d": case(700, 90, 0.0012),
            },
        },
        "legacy": {
            "status": "pass",
            "line": 12,
            "metrics": {"input_tokens_p95": 50, "monthly_cost_usd": 4.0},
            "budgets": [],
            "per_case": {},
        },
    },
    monthly=124.0,
)

HEAD = report(
    {
        "chat": {
            "status": "pass",
            "line": 3,
            "metrics": {
                "input_tokens_p95": 1120,  # +120, +12%
                "output_tokens_p95": 212,  # +12, +6%
                "escalation_rate": 0.1,  # same
                "cache_hit_rate": 0.7,  # -0.1: 12.5% worse
                "cost_per_request_usd": 0.0021,  # +0.0001, +5% (exactly half the gate: not a warning)
                "monthly_cost_usd": 126.0,  # +6, +5%
            },
            "budgets": [
                budget("max_input_tokens_p95", "input_tokens_p95", 1300, 1120, 5),
                budget("min_cache_hit_rate", "cache_hit_rate", 0.6, 0.7, 7),
            ],
            "per_case": {
                "a": case(1000, 200, 0.002),  # 0
                "b": case(1100, 160, 0.0019),  # +200 input
                "c": case(850, 100, 0.0015),  # +50
                "d": case(760, 95, 0.0012),  # +60
                "e": case(300, 40, 0.0004),  # new case: +300
            },
        },
        "summarize": {
            "status": "pass",
            "line": 15,
            "metrics": {"input_tokens_p95": 400, "monthly_cost_usd": 30.0},
            "budgets": [budget("max_input_tokens_p95", "input_tokens_p95", 500, 400, 17)],
            "per_case": {},
        },
    },
    monthly=156.0,
)


def to_html(text):
    """GitHub renders Markdown inside <details>; python-markdown needs to be told to."""
    text = text.replace("<details>", '<details markdown="1">')
    return md_lib.markdown(text, extensions=["tables", "md_in_html"])
