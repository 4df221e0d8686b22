"""report.json: the one `Report` written as JSON, and a report.json read back as one.

`report_json` is the one place report.json's document is made (finish/conclusion.py calls
it once, after every verdict is in, and `write_report` writes it with report.md and
report.html). `report_from_json` reads a report.json that report/reader.py has checked
(a baseline, a fork's artifact) as the typed report, for the comparison and the renderers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_tokenbudget.files.atomic import write_together
from pytest_tokenbudget.measure.accounting import UnmeasuredCase, cause_lines
from pytest_tokenbudget.measure.metrics import metric as facts
from pytest_tokenbudget.measure.reprice import OUTPUT
from pytest_tokenbudget.providers.scrub import refuse_if_secret
from pytest_tokenbudget.report.model import (
    PERCENTILE_METHOD,
    Anatomy,
    BudgetCheck,
    CacheFigures,
    CaseFigures,
    EndpointReport,
    Failure,
    Fix,
    PartFigures,
    PromptCacheFinding,
    Regression,
    Report,
    Reprice,
    Totals,
    UpdateVerdict,
    judged,
)
from pytest_tokenbudget.report.reader import FAIL, LOAD_NOTES, PASS, SCHEMA, VERSION


# -- writing -----------------------------------------------------------------------------
def report_json(report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "version": VERSION,
        "config": report.config,
        "percentile_method": report.percentile_method,
        "prices": dict(report.prices) or {"table_date": report.table_date},
        "status": report.status,
        "headline": report.headline,
        "failures": [_failure_json(f) for f in report.failures],
        "fixes": [{"what": f.what, "command": f.command} for f in report.fixes],
    }
    if report.overrides_note:
        out["prices"]["overrides_note"] = report.overrides_note
    out["endpoints"] = {ep.name: endpoint_json(ep) for ep in report.endpoints}
    out["totals"] = {
        "calls": report.totals.calls,
        "cost_usd": report.totals.cost_usd,
        "monthly_cost_usd": report.totals.monthly_cost_usd,
    }
    out["findings"] = [_finding_json(f) for f in report.findings]
    if report.update is not None:
        out["update"] = {"status": PASS if report.update.ok else FAIL, "error": report.update.error}
    if report.notes:
        out["notes"] = list(report.notes)
    if report.diff is not None:
        from pytest_tokenbudget.report.diff import diff_json

        out["diff"] = diff_json(report.diff)
    return out


def _finding_json(f: PromptCacheFinding) -> dict[str, Any]:
    return {
        "code": f.code,
        "level": f.level,
        "endpoint": f.endpoint,
        "where": f.where,
        "cases": list(f.cases),
        "message": f.message,
        "fix": f.fix,
    }


def _failure_json(f: Failure) -> dict[str, Any]:
    return {
        "endpoint": f.endpoint,
        "kind": f.kind,
        "message": f.message,
        "key": f.key,
        "line": f.line,
    }


def endpoint_json(ep: EndpointReport) -> dict[str, Any]:
    out: dict[str, Any] = {"status": ep.status, "headline": ep.headline, "line": ep.line}
    if ep.max_regression_pct is not None:
        out["max_regression_pct"] = ep.max_regression_pct
    out["calls"] = ep.calls
    out["cases"] = ep.cases
    out["complete"] = ep.complete
    out["unmeasured_cases"] = [
        {"case": c.case, "test": c.test, "kind": c.kind, "message": c.message}
        for c in ep.unmeasured
    ]
    if not ep.measured:
        out.update(no_call_cases=[], metrics={}, budgets=[], per_case={})
    else:
        # cases that ran and made no API call, and whether the per-case metrics count them
        out["no_call_cases"] = list(ep.no_call_cases)
        out["cases_without_calls"] = ep.cases_without_calls
        out["metrics"] = dict(ep.metrics)
        if ep.partial_metrics is not None:
            out["partial_metrics"] = dict(ep.partial_metrics)
        out["budgets"] = [
            {
                "key": b.key,
                "metric": b.metric,
                "limit": b.limit,
                "actual": b.actual,
                "ok": b.ok,
                "line": b.line,
                "drivers": list(b.drivers),
                **({"note": b.note} if b.note else {}),
                **({"estimated": True} if b.estimated else {}),
            }
            for b in ep.budgets
        ]
        out["per_case"] = {
            case_id: {
                "calls": c.calls,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "cost_usd": c.cost_usd,
                "escalated": c.escalated,
                "models": list(c.models),
            }
            for case_id, c in ep.per_case.items()
        }
        out["models"] = dict(ep.models)
        out["price_sources"] = dict(ep.price_sources)
        if ep.unpriced_models:  # model -> cases that called it; its dollars are not counted
            out["unpriced_models"] = {m: list(c) for m, c in ep.unpriced_models.items()}
        out["recounted_calls"] = ep.recounted_calls
        out.update(ep.extra)
        if ep.reprice is not None:
            out["reprice"] = _reprice_json(ep.reprice)
        if ep.anatomy is not None:
            out["anatomy"] = _anatomy_json(ep.anatomy)
    if ep.cache is not None:
        out["cache"] = _cache_json(ep.cache)
    out["recorders"] = list(ep.recorders)
    out["warnings"] = list(ep.warnings)
    out["problems"] = list(ep.all_problems)
    if ep.regressions is not None:
        out["regressions"] = [
            {
                "metric": r.metric,
                "key": r.key,
                "line": r.line,
                "base": r.base,
                "head": r.head,
                "delta": r.delta,
                "pct": r.pct,
                "gate_pct": r.gate_pct,
                "drivers": list(r.drivers),
            }
            for r in ep.regressions
        ]
    return out


def _cache_json(cache: CacheFigures) -> dict[str, Any]:
    out: dict[str, Any] = {
        "recorded": None if cache.recorded is None else dict(cache.recorded),
        "predicted": None if cache.predicted is None else dict(cache.predicted),
        "min_cache_hit_rate_checks": cache.checks,
    }
    if cache.note:
        out["note"] = cache.note
    return out


def _anatomy_json(a: Anatomy) -> dict[str, Any]:
    def parts(figures: Mapping[str, PartFigures]) -> dict[str, Any]:
        return {
            name: {"mean": p.mean, "p95": p.p95, "cost_share": p.cost_share, "exact": p.exact}
            for name, p in figures.items()
        }

    return {
        "calls": a.calls,
        "counted_calls": a.counted_calls,
        "input": parts(a.input),
        "output": parts(a.output),
    }


def _reprice_json(r: Reprice) -> dict[str, Any]:
    out: dict[str, Any] = {"model": r.model, "cost_per_request_usd": r.cost_per_request_usd}
    if r.projected:
        out["monthly_cost_usd"] = r.monthly_cost_usd
    out["input_tokens_p95"] = r.input_tokens_p95
    out["input_exact"] = r.input_exact
    out["output"] = r.output
    return out


# -- reading ---------------------------------------------------------------------------------
def report_from_json(data: Mapping[str, Any]) -> Report:
    """A report.json (this version's or an older one) as the typed report, for renderers
    that start from a file. Per-call charts are not in the file: they stay empty."""
    endpoints = tuple(
        _endpoint_from_json(name, ep) for name, ep in (data.get("endpoints") or {}).items()
    )
    totals = data.get("totals") or {}
    prices = data.get("prices") or {}
    update = data.get("update")
    kept = ("source", "as_of", "label", "table_date")
    return Report(
        config=str(data.get("config", "token_budgets.yml")),
        table_date=str(prices.get("label") or prices.get("table_date", "?")),
        prices={k: str(v) for k, v in prices.items() if k in kept},
        endpoints=endpoints,
        totals=Totals(
            totals.get("calls", sum(ep.calls for ep in endpoints)),
            totals.get("cost_usd"),
            totals.get("monthly_cost_usd"),
        ),
        percentile_method=str(data.get("percentile_method", PERCENTILE_METHOD)),
        findings=tuple(_finding_from_json(f) for f in data.get("findings") or ()),
        fixes=tuple(Fix(f["what"], f["command"]) for f in data.get("fixes") or ()),
        update=UpdateVerdict(update.get("status") != FAIL, update.get("error", ""))
        if isinstance(update, dict)
        else None,
        notes=tuple(data.get("notes") or ()),
        overrides_note=str(prices.get("overrides_note", "")),
        load_notes=tuple(data.get(LOAD_NOTES) or ()),
    )


def _finding_from_json(f: Mapping[str, Any]) -> PromptCacheFinding:
    return PromptCacheFinding(
        code=f.get("code", ""),
        level=f.get("level", ""),
        endpoint=f.get("endpoint", ""),
        where=f.get("where", ""),
        message=f.get("message", ""),
        fix=f.get("fix"),
        cases=tuple(f.get("cases") or ()),
    )


def _endpoint_from_json(name: str, ep: Mapping[str, Any]) -> EndpointReport:
    def listed(key: str) -> tuple[Any, ...]:
        return tuple(ep.get(key) or ())

    regressions = ep.get("regressions")
    unmeasured = tuple(
        UnmeasuredCase(u["case"], u.get("test", ""), u.get("kind", "error"), u.get("message", ""))
        for u in ep.get("unmeasured_cases") or ()
    )
    causes = cause_lines(unmeasured)
    report = EndpointReport(
        name=name,
        status=str(ep.get("status", PASS)),
        line=ep.get("line"),
        max_regression_pct=ep.get("max_regression_pct"),
        measured=bool(ep.get("metrics") or ep.get("per_case") or ep.get("budgets")),
        calls=int(ep.get("calls") or 0),
        cases=int(ep.get("cases") or 0),
        metrics=dict(ep.get("metrics") or {}),
        partial_metrics=ep.get("partial_metrics"),
        budgets=tuple(
            BudgetCheck(
                b["key"],
                b["metric"],
                _kind(b["key"], b["metric"]),
                b.get("limit"),
                b.get("actual"),
                b.get("ok"),
                b.get("line"),
                tuple(b.get("drivers") or ()),
                b.get("note", ""),
                bool(b.get("estimated")),
            )
            for b in ep.get("budgets") or ()
        ),
        per_case={
            case_id: CaseFigures(
                c.get("calls", 0),
                c.get("input_tokens", 0),
                c.get("output_tokens", 0),
                c.get("cost_usd"),
                bool(c.get("escalated")),
                tuple(c.get("models") or ()),
            )
            for case_id, c in (ep.get("per_case") or {}).items()
        },
        no_call_cases=listed("no_call_cases"),
        cases_without_calls=str(ep.get("cases_without_calls", "exclude")),
        models=dict(ep.get("models") or {}),
        price_sources=dict(ep.get("price_sources") or {}),
        unpriced_models={m: tuple(c) for m, c in (ep.get("unpriced_models") or {}).items()},
        recounted_calls=int(ep.get("recounted_calls") or 0),
        cache=_cache_from_json(ep.get("cache")),
        reprice=_reprice_from_json(ep.get("reprice")),
        anatomy=_anatomy_from_json(ep.get("anatomy")),
        recorders=listed("recorders"),
        warnings=listed("warnings"),
        problems=tuple(p for p in listed("problems") if p not in causes),
        unmeasured=unmeasured,
        regressions=None
        if regressions is None
        else tuple(
            Regression(
                r["metric"],
                r.get("base"),
                r.get("head"),
                r.get("delta"),
                r.get("pct"),
                r.get("gate_pct", 0),
                r.get("key"),
                r.get("line"),
                tuple(r.get("drivers") or ()),
            )
            for r in regressions
        ),
    )
    return judged(report)


def _kind(key: str, metric: str) -> str:
    """A budget's kind, which report.json leaves to its metric: "min" when higher is better;
    for a metric this version does not know, by the key's name."""
    m = facts(metric)
    higher = m.higher_is_better if m.better else key.startswith("min_")
    return "min" if higher else "max"


def _cache_from_json(cache: Mapping[str, Any] | None) -> CacheFigures | None:
    if cache is None:
        return None
    return CacheFigures(
        recorded=cache.get("recorded"),
        predicted=cache.get("predicted"),
        checks=str(cache.get("min_cache_hit_rate_checks", "")),
        note=str(cache.get("note", "")),
    )


def _anatomy_from_json(a: Mapping[str, Any] | None) -> Anatomy | None:
    """An endpoint's anatomy; None in a report from before there was one."""
    if a is None:
        return None

    def parts(figures: Mapping[str, Any] | None) -> dict[str, PartFigures]:
        return {
            name: PartFigures(
                p.get("mean"), p.get("p95"), p.get("cost_share"), bool(p.get("exact"))
            )
            for name, p in (figures or {}).items()
        }

    return Anatomy(
        calls=int(a.get("calls") or 0),
        counted_calls=int(a.get("counted_calls") or 0),
        input=parts(a.get("input")),
        output=parts(a.get("output")),
    )


def _reprice_from_json(r: Mapping[str, Any] | None) -> Reprice | None:
    if r is None:
        return None
    return Reprice(
        model=str(r.get("model", "?")),
        cost_per_request_usd=r.get("cost_per_request_usd"),
        monthly_cost_usd=r.get("monthly_cost_usd"),
        projected="monthly_cost_usd" in r,
        input_tokens_p95=r.get("input_tokens_p95"),
        input_exact=bool(r.get("input_exact")),
        output=str(r.get("output", OUTPUT)),
    )


# -- the files -----------------------------------------------------------------------------
def write_report(
    directory: Path, report: Mapping[str, Any], markdown: str, *, html: str | None = None
) -> tuple[Path, Path]:
    """Every file is scanned for secrets before any is written; then all are replaced as
    one set (atomic.write_together), so the folder holds one run's report, never report.json
    of one run beside report.md of another. Other files in the folder are left alone; a
    report.html of an older run is removed when this run writes none."""
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    json_path = directory / "report.json"
    md_path = directory / "report.md"
    files = [(json_path, text), (md_path, markdown), (directory / "report.html", html)]
    for path, content in files:
        if content is not None:
            refuse_if_secret(content, path=str(path))
    write_together(files)
    return json_path, md_path
