"""Building the one `Report` of a run: the only place one is made from a measurement.

`report_of` evaluates the run (measure/evaluation.py) and builds the report of the
measurement and its budgets; the regression gate (`with_gate`) and `--token-budget-update`
(`with_update`) then give new reports with their verdicts in. Every figure is rounded
here, once, as report.json writes it (measure/metrics.number).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from fractions import Fraction
from typing import Any

from pytest_tokenbudget.cache.doctor import CacheFinding
from pytest_tokenbudget.cache.prediction import CacheTotals
from pytest_tokenbudget.measure.accounting import fix_command, fix_what
from pytest_tokenbudget.measure.anatomy import EndpointAnatomy, PartStats
from pytest_tokenbudget.measure.evaluation import EndpointCache, EndpointResult, evaluate
from pytest_tokenbudget.measure.metrics import RATE_DIGITS, number
from pytest_tokenbudget.measure.reprice import OUTPUT, Repricing
from pytest_tokenbudget.measure.run import BudgetRun
from pytest_tokenbudget.measure.verdicts import Verdict
from pytest_tokenbudget.pricing import source as price_source
from pytest_tokenbudget.report.diff_model import REGRESSION, Diff, EndpointDiff
from pytest_tokenbudget.report.model import (
    Anatomy,
    BudgetCheck,
    CacheFigures,
    CaseFigures,
    Charts,
    EndpointReport,
    Fix,
    PartFigures,
    PromptCacheFinding,
    Regression,
    Report,
    Reprice,
    Totals,
    UpdateVerdict,
    Value,
    judged,
)
from pytest_tokenbudget.report.reader import NOT_RUN, PASS


def report_of(run: BudgetRun) -> Report:
    """The run's measurement, judged against its budgets; finish/conclusion.py adds the
    regression gate and the budget update before anything is rendered."""
    evaluation = evaluate(run)
    prices = price_source.describe()
    return build_report(
        evaluation.results,
        config_path=run.config.path.name,
        price_table_date=prices["label"],
        findings=evaluation.findings,
        prices=prices,
    )


def build_report(
    results: Iterable[EndpointResult],
    *,
    config_path: str,
    price_table_date: str,
    findings: Iterable[CacheFinding] = (),
    prices: Mapping[str, str] | None = None,
) -> Report:
    """The report of the measurement and the budgets; the gate and the update join later
    (`with_gate`, `with_update`), each giving a new Report with its verdicts in."""
    results = list(results)
    endpoints = tuple(endpoint_report(r) for r in results)
    unmeasured = [c for ep in endpoints for c in ep.unmeasured]
    command = fix_command(unmeasured)
    fixes = (Fix(fix_what(unmeasured), command),) if command else ()
    return Report(
        config=config_path,
        table_date=price_table_date,
        endpoints=endpoints,
        totals=_totals(results, endpoints),
        findings=tuple(_finding(f) for f in findings),
        fixes=fixes,
        prices=dict(prices or {"table_date": price_table_date}),
    )


def endpoint_report(result: EndpointResult) -> EndpointReport:
    ep = EndpointReport(
        name=result.name,
        status=NOT_RUN if result.status == NOT_RUN else PASS,  # the failures decide
        line=result.line,
        max_regression_pct=result.max_regression_pct,
        cache=_cache(result.cache),
        recorders=tuple(result.recorders),
        warnings=tuple(result.warnings),
        unmeasured=tuple(result.unmeasured),
        cases=result.cases_run,
        problems=tuple(result.problems),
        reprice=_reprice(result.reprice),
    )
    stats = result.stats
    if stats is None:
        return judged(ep)
    incomplete = bool(result.unmeasured)
    metrics = {k: number(k, v) for k, v in stats.metrics.items()}
    partial = None
    if incomplete:  # not the endpoint's values, and no projection from them
        partial = {**metrics, "monthly_cost_usd": None}
        metrics = dict.fromkeys(metrics)
    extra: dict[str, Any] = {}  # measurement facts only report.json shows
    if stats.iterations:  # usage.iterations per type (measure/stats.py)
        extra["iterations"] = {k: v.to_dict(number) for k, v in stats.iterations.items()}
    return judged(
        replace(
            ep,
            measured=True,
            calls=stats.calls,
            metrics=metrics,
            partial_metrics=partial,
            budgets=tuple(_check(v, result, incomplete) for v in result.verdicts),
            per_case={
                case_id: CaseFigures(
                    c.calls,
                    c.input_tokens,
                    c.output_tokens,
                    number("cost_usd", c.cost),
                    c.escalated,
                    tuple(sorted(c.models)),
                )
                for case_id, c in stats.per_case.items()
            },
            no_call_cases=tuple(stats.no_call_cases),
            cases_without_calls=stats.cases_without_calls,
            models=dict(stats.models),
            price_sources=dict(stats.price_sources),
            unpriced_models={m: tuple(cases) for m, cases in stats.unpriced.items()},
            recounted_calls=stats.recounted_calls,
            extra=extra,
            charts=Charts(
                tuple(stats.prompt_tokens),
                tuple(stats.output_tokens),
                stats.tier_costs,
                stats.requests,
                tuple(stats.unpriced),
            ),
            anatomy=None if incomplete else _anatomy(result.anatomy, stats.cost_total),
        )
    )


MEAN_DIGITS = 2  # tokens per call, on average


def _anatomy(anatomy: EndpointAnatomy | None, cost_total: Fraction | None) -> Anatomy | None:
    """The endpoint's calls by part, each figure rounded as report.json writes it; a part's
    dollars as its share of the endpoint's whole cost."""
    if anatomy is None:
        return None

    def part(p: PartStats) -> PartFigures:
        share = p.cost / cost_total if p.cost is not None and cost_total else None
        mean = p.mean if p.mean.denominator == 1 else round(p.mean, MEAN_DIGITS)
        return PartFigures(
            mean=int(mean) if mean.denominator == 1 else float(mean),
            p95=p.p95,
            cost_share=float(round(share, RATE_DIGITS)) if share is not None else None,
            exact=p.exact,
        )

    return Anatomy(
        calls=anatomy.calls,
        counted_calls=anatomy.counted_calls,
        input={name: part(p) for name, p in anatomy.input.items()},
        output={name: part(p) for name, p in anatomy.output.items()},
    )


def _check(v: Verdict, result: EndpointResult, incomplete: bool) -> BudgetCheck:
    if incomplete:
        n, ran = len(result.unmeasured), result.cases_run
        note = f"not checked: {n} of {ran} cases not measured"
        return BudgetCheck(v.key, v.metric, v.kind, v.limit, None, None, v.line, note=note)
    actual = number(v.metric, v.actual)
    return BudgetCheck(
        v.key, v.metric, v.kind, v.limit, actual, v.ok, v.line, v.drivers, v.note, v.estimated
    )


def _cache(cache: EndpointCache | None) -> CacheFigures | None:
    if cache is None:
        return None
    return CacheFigures(
        recorded=_cache_totals(cache.recorded),
        predicted=_cache_totals(cache.predicted),
        checks=cache.checks,
        note=cache.note,
    )


def _cache_totals(totals: CacheTotals) -> dict[str, Value]:
    return totals.to_dict(lambda rate: number("cache_hit_rate", rate))


def _reprice(r: Repricing | None) -> Reprice | None:
    if r is None:
        return None
    return Reprice(
        model=r.model,
        cost_per_request_usd=number("cost_per_request_usd", r.cost_per_request),
        monthly_cost_usd=number("monthly_cost_usd", r.monthly_cost),
        projected=r.projected,
        input_tokens_p95=number("input_tokens_p95", r.input_tokens_p95),
        input_exact=r.input_exact,
        output=OUTPUT,
    )


def _finding(f: CacheFinding) -> PromptCacheFinding:
    return PromptCacheFinding(f.code, f.level, f.endpoint, f.where, f.message, f.fix, f.cases)


def _totals(results: list[EndpointResult], endpoints: tuple[EndpointReport, ...]) -> Totals:
    measured = [r.stats for r in results if r.stats is not None]
    # A model with no price, or a case not measured, makes every total that would include
    # it unknown, not smaller.
    unknown = any(s.unpriced for s in measured) or any(ep.unmeasured for ep in endpoints)
    monthly = [  # exact: the stats keep Fractions until they are written
        Fraction(m) for s in measured if (m := s.metrics.get("monthly_cost_usd")) is not None
    ]
    cost = sum((s.cost_total for s in measured if s.cost_total is not None), Fraction(0))
    return Totals(
        calls=sum(s.calls for s in measured),
        cost_usd=None if unknown else number("cost_usd", cost),
        monthly_cost_usd=number("monthly_cost_usd", sum(monthly, Fraction(0)))
        if monthly and not unknown
        else None,
    )


def with_gate(report: Report, diff: Diff) -> Report:
    """The report with the baseline comparison in: each endpoint's regressions."""
    by_name = {e.name: e for e in diff.endpoints}
    endpoints = tuple(
        judged(replace(ep, regressions=_regressions(by_name.get(ep.name))))
        if ep.status != NOT_RUN
        else ep
        for ep in report.endpoints
    )
    return replace(report, endpoints=endpoints, diff=diff)


def _regressions(e: EndpointDiff | None) -> tuple[Regression, ...]:
    if e is None or e.max_regression_pct is None:
        return ()
    out = []
    for m in e.metrics:
        if m.status != REGRESSION:
            continue
        key = m.budget.key if m.budget is not None else None
        line = m.budget.line if m.budget is not None and m.budget.line else e.line
        drivers = tuple(d.case_id for d in m.drivers)
        out.append(
            Regression(
                m.metric, m.base, m.head, m.delta, m.pct, e.max_regression_pct, key, line, drivers
            )
        )
    return tuple(out)


def with_update(report: Report, update: UpdateVerdict) -> Report:
    return replace(report, update=update)


def with_notes(report: Report, *notes: str) -> Report:
    return replace(report, notes=report.notes + notes)
