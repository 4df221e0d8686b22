"""Baseline comparison: two typed reports in, one `Diff` out.

Pure data and no pytest, so `tokenbudget diff`, the pytest run and the PR comment all
agree. A report read from a file comes in checked (report/reader.py: a baseline may be a
fork's, so every value read here has its type checked there) and typed
(report/json_io.report_from_json). Growth is judged in each metric's own direction
(measure/metrics.py: tokens and dollars are worse higher, cache-hit rates worse lower); a
metric whose direction this version does not know is shown, never gated. A budget keeps
its own kind (min or max), as the report states it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_tokenbudget.measure.metrics import metric as metric_facts
from pytest_tokenbudget.measure.metrics import number
from pytest_tokenbudget.report.diff_model import (
    ADDED,
    BUDGET,
    CHANGED,
    DIFF_SCHEMA,
    DIFF_VERSION,
    NOT_RUN,
    OK,
    REGRESSION,
    REMOVED,
    TOP_DRIVERS,
    UNCHANGED,
    WARN,
    BudgetRef,
    CaseDelta,
    Diff,
    EndpointDiff,
    MetricDiff,
    PartDiff,
    Value,
    delta_of,
    exact,
    pct_of,
)
from pytest_tokenbudget.report.model import (
    Anatomy,
    CaseFigures,
    EndpointReport,
    PartFigures,
    Report,
)
from pytest_tokenbudget.report.reader import FAIL
from pytest_tokenbudget.report.reader import NOT_RUN as HEAD_NOT_RUN


# -- comparing -------------------------------------------------------------------------
def compare(
    base: Report,
    head: Report,
    *,
    max_regression_pct: float | None,
    warn_pct: float | None = None,
) -> Diff:
    """Every metric of every endpoint, base against head, with a status for each.

    A metric is `regression` when it grew (got worse) by more than the gate —
    the endpoint's own `max_regression_pct` when the report carries one, else
    max_regression_pct — and `warn` when it grew by more than warn_pct, or by
    more than half the gate. `budget` (the head breaks a budget) wins over both.
    """
    base_eps = {ep.name: ep for ep in base.endpoints}
    head_eps = {ep.name: ep for ep in head.endpoints}
    names = list(head_eps) + [n for n in base_eps if n not in head_eps]
    endpoints = tuple(
        _compare_endpoint(n, base_eps.get(n), head_eps.get(n), max_regression_pct, warn_pct)
        for n in names
    )
    notes = [*base.load_notes, *head.load_notes]
    notes += _anatomy_notes(base_eps, head_eps)
    base_table, head_table = base.priced_with, head.priced_with
    if base_table and head_table and base_table != head_table:
        notes.append(
            f"baseline priced with {base_table}, head with {head_table}: "
            "dollar deltas include price changes"
        )
    elif base_table and base_table == head_table:
        notes.extend(_dated_price_note(base, head, base_table))
    return Diff(
        endpoints=endpoints,
        monthly_base=base.totals.monthly_cost_usd,
        monthly_head=head.totals.monthly_cost_usd,
        max_regression_pct=max_regression_pct,
        warn_pct=warn_pct,
        notes=tuple(notes),
        config=head.config,
        percentile_method=head.percentile_method,
        price_table=head_table,
    )


# At most this many of a report's models are looked up for a dated price change.
_DATED_MODELS = 200


def _dated_price_note(base: Report, head: Report, source: str) -> list[str]:
    """A note when both reports were priced with the same library but on different days
    (`as_of`) and its rates for a model they price changed between those days (the library
    dates some prices): the dollar deltas then include that change. Asked of the installed
    library only when it is the reports' version; with another, the days alone are noted."""
    from datetime import date

    from pytest_tokenbudget.pricing import source as price_source

    days = [str(r.prices.get("as_of") or "") for r in (base, head)]
    if not all(days) or days[0] == days[1]:
        return []
    note = f"baseline priced on {days[0]}, head on {days[1]} (both with {source})"
    try:
        on = [date.fromisoformat(d) for d in days]
        installed = f"{price_source.LIBRARY} {price_source.version()}"
    except Exception:  # noqa: BLE001 - an unreadable day or no library: the days alone
        return [f"{note}: dollar deltas may include price changes"]
    if installed != source:
        return [f"{note}: dollar deltas may include price changes ({installed} installed here)"]
    models = sorted(
        {
            model
            for r in (base, head)
            for ep in r.endpoints
            for model, priced in ep.price_sources.items()
            if str(priced).startswith(source)  # from the library, not `pricing:`
        }
    )[:_DATED_MODELS]
    changed = [m for m in models if price_source.lookup(m, on[0]) != price_source.lookup(m, on[1])]
    if not changed:
        return []
    listed = ", ".join(changed)
    return [
        f"{note}: {source} prices {listed} differently on these days: dollar deltas include price changes"
    ]


def _compare_endpoint(
    name: str,
    base: EndpointReport | None,
    head: EndpointReport | None,
    max_regression_pct: float | None,
    warn_pct: float | None,
) -> EndpointDiff:
    own_gate = head.max_regression_pct if head is not None else None
    if own_gate is None and base is not None:
        own_gate = base.max_regression_pct
    gate = own_gate if own_gate is not None else max_regression_pct
    warn = warn_pct if warn_pct is not None else (gate / 2 if gate is not None else None)
    base_metrics: Mapping[str, Value] = base.metrics if base is not None else {}
    head_metrics: Mapping[str, Value] = head.metrics if head is not None else {}
    budgets = _budgets(head)
    order = list(head_metrics) + [m for m in base_metrics if m not in head_metrics]
    order += [m for m in budgets if m not in order]
    metrics = tuple(
        _compare_metric(
            m,
            base_metrics.get(m),
            head_metrics.get(m),
            budgets.get(m),
            gate,
            warn,
            base.per_case if base is not None else {},
            head.per_case if head is not None else {},
        )
        for m in order
    )
    if head is None:
        change = REMOVED
    elif base is None:
        change = ADDED
    elif head.status == HEAD_NOT_RUN:
        change = NOT_RUN
    else:
        change = CHANGED if any(m.changed for m in metrics) else UNCHANGED
    either = head if head is not None else base
    return EndpointDiff(
        name=name,
        change=change,
        base_status=base.status if base is not None else None,
        head_status=head.status if head is not None else None,
        line=either.line if either is not None else None,
        max_regression_pct=gate,
        warn_pct=warn,
        metrics=metrics,
        problems=head.all_problems if head is not None else (),
        warnings=head.warnings if head is not None else (),
        failed=_head_failed(head),
        anatomy=_compare_anatomy(base, head),
    )


def _compare_anatomy(
    base: EndpointReport | None, head: EndpointReport | None
) -> tuple[PartDiff, ...]:
    """Each part's change in tokens per call, and in dollars a month where both sides
    project a monthly cost (the part's cost share of it)."""
    sides = [ep.anatomy if ep is not None else None for ep in (base, head)]
    if sides[0] is None and sides[1] is None:
        return ()
    monthly = [_monthly(ep) for ep in (base, head)]
    out = []
    for side in ("input", "output"):
        figures = [_figures(a, side) for a in sides]
        for part in list(figures[1]) + [p for p in figures[0] if p not in figures[1]]:
            b, h = figures[0].get(part), figures[1].get(part)
            dollars = [_dollars(f, m) for f, m in zip((b, h), monthly, strict=True)]
            out.append(
                PartDiff(
                    side=side,
                    part=part,
                    base_mean=b.mean if b else None,
                    head_mean=h.mean if h else None,
                    delta_mean=_delta(b.mean if b else None, h.mean if h else None),
                    base_p95=b.p95 if b else None,
                    head_p95=h.p95 if h else None,
                    delta_p95=_delta(b.p95 if b else None, h.p95 if h else None),
                    delta_monthly_usd=_delta(*dollars, money=True),
                    exact=bool(b and h and b.exact and h.exact),
                )
            )
    return tuple(out)


def _figures(anatomy: Anatomy | None, side: str) -> Mapping[str, PartFigures]:
    if anatomy is None:
        return {}
    return anatomy.input if side == "input" else anatomy.output


def _monthly(ep: EndpointReport | None) -> Value:
    return ep.metrics.get("monthly_cost_usd") if ep is not None else None


def _dollars(figures: PartFigures | None, monthly: Value) -> Value:
    if figures is None or figures.cost_share is None or monthly is None:
        return None
    return number("monthly_cost_usd", exact(figures.cost_share) * exact(monthly))


def _delta(base: Value, head: Value, *, money: bool = False) -> Value:
    if base is None or head is None:
        return None
    if isinstance(base, int) and isinstance(head, int):
        return head - base
    return number("monthly_cost_usd" if money else "tokens_mean", exact(head) - exact(base))


def _anatomy_notes(
    base: Mapping[str, EndpointReport], head: Mapping[str, EndpointReport]
) -> list[str]:
    """A note where one report counted an endpoint's parts and the other estimated them:
    the request's framing is in `latest_turn` when counted, in `unattributed` when not."""
    notes = []
    for name, ep in head.items():
        before = base.get(name)
        a, b = ep.anatomy, before.anatomy if before is not None else None
        if a is None or b is None:
            continue
        if (a.counted_calls == a.calls) != (b.counted_calls == b.calls):
            counted = "head" if a.counted_calls == a.calls else "baseline"
            notes.append(
                f"{name}: the {counted}'s prompt parts were counted, the other's estimated: "
                "their difference includes the estimate's error"
            )
    return notes


def _head_failed(head: EndpointReport | None) -> bool:
    """The head endpoint failed its own run, for a reason this comparison does not judge
    again: a regression past the gate of that run is not one (this comparison has its own)."""
    if head is None or head.status != FAIL:
        return False
    gate_only = (
        bool(head.regressions)
        and not head.all_problems
        and head.complete
        and all(b.ok is not False for b in head.budgets)
    )
    return not gate_only


def _budgets(endpoint: EndpointReport | None) -> dict[str, BudgetRef]:
    """The budget on each metric; a broken one wins if a metric somehow has two."""
    out: dict[str, BudgetRef] = {}
    for b in endpoint.budgets if endpoint is not None else ():
        ref = BudgetRef(
            key=b.key,
            limit=b.limit,
            kind=b.kind,
            ok=b.ok,
            line=b.line,
            drivers=b.drivers,
        )
        if b.metric not in out or ref.ok is False:
            out[b.metric] = ref
    return out


def _compare_metric(
    metric: str,
    base: Value,
    head: Value,
    budget: BudgetRef | None,
    gate: float | None,
    warn: float | None,
    base_cases: Mapping[str, CaseFigures],
    head_cases: Mapping[str, CaseFigures],
) -> MetricDiff:
    trend = _trend(metric, base, head)
    growth = _growth(metric, base, head)  # % in the bad direction
    if budget is not None and budget.ok is False:
        status = BUDGET
    elif growth is not None and gate is not None and growth > gate:
        status = REGRESSION
    elif growth is not None and warn is not None and growth > warn:
        status = WARN
    else:
        status = OK
    drivers: tuple[CaseDelta, ...] = ()
    if status != OK and trend == "worse":
        drivers = _drivers(metric, base_cases, head_cases)
    return MetricDiff(
        metric=metric,
        base=base,
        head=head,
        delta=delta_of(metric, base, head) if base is not None and head is not None else None,
        pct=pct_of(base, head),
        trend=trend,
        status=status,
        budget=budget,
        drivers=drivers,
    )


def _trend(metric: str, base: Value, head: Value) -> str:
    if base is None or head is None:
        return "n/a"
    if head == base:
        return "same"
    facts = metric_facts(metric)
    if facts.better is None:
        return "changed"
    return "better" if (head > base) == facts.higher_is_better else "worse"


def _growth(metric: str, base: Value, head: Value) -> float | None:
    """How much worse, in % of the baseline; infinite when it got worse from zero."""
    facts = metric_facts(metric)
    if base is None or head is None or facts.better is None:
        return None
    worse = exact(head) - exact(base)
    if facts.higher_is_better:
        worse = -worse
    if worse == 0:
        return 0.0
    if base == 0:
        return float("inf") if worse > 0 else float("-inf")
    return float(worse / abs(exact(base)) * 100)


def _case_field(metric: str) -> str:
    """Which per-case quantity a metric moves with (cache misses show up as cost)."""
    if metric.startswith(("input_tokens", "system_tokens", "tools_tokens")):
        return "input_tokens"  # a part of the prompt grows a case's input
    if metric.startswith("output_tokens"):
        return "output_tokens"
    return "cost_usd"


def _drivers(
    metric: str, base_cases: Mapping[str, CaseFigures], head_cases: Mapping[str, CaseFigures]
) -> tuple[CaseDelta, ...]:
    """The cases that contribute most to the growth, biggest first."""
    field = _case_field(metric)
    deltas = []
    escalation = metric == "escalation_rate"
    for case_id, case in head_cases.items():
        before = base_cases.get(case_id)
        if escalation and (not case.escalated or (before is not None and before.escalated)):
            continue  # only the cases that newly escalate drive the escalation rate
        head_value = getattr(case, field) or 0
        base_value = (getattr(before, field) if before is not None else None) or 0
        delta = delta_of(field, base_value, head_value)
        if delta is not None and (delta > 0 or escalation):
            deltas.append(
                CaseDelta(
                    case_id,
                    field,
                    base_value if before is not None else None,
                    head_value,
                    delta,
                    before is None,
                )
            )
    deltas.sort(key=lambda d: (-exact(d.delta or 0), d.case_id))
    return tuple(deltas[:TOP_DRIVERS])


# -- JSON ------------------------------------------------------------------------------
def diff_json(diff: Diff) -> dict[str, Any]:
    """The `diff` section of report.json and the output of `tokenbudget diff --format json`."""

    def budget(b: BudgetRef | None) -> dict[str, Any] | None:
        if b is None:
            return None
        return {"key": b.key, "limit": b.limit, "kind": b.kind, "ok": b.ok, "line": b.line}

    return {
        "schema": DIFF_SCHEMA,
        "version": DIFF_VERSION,
        "status": "fail" if diff.failed else "pass",
        "max_regression_pct": diff.max_regression_pct,
        "warn_pct": diff.warn_pct,
        "notes": list(diff.notes),
        "totals": {
            "monthly_cost_usd": {
                "base": diff.monthly_base,
                "head": diff.monthly_head,
                "delta": diff.monthly_delta,
                "pct": diff.monthly_pct,
            }
        },
        "endpoints": {
            e.name: {
                "change": e.change,
                "base_status": e.base_status,
                "head_status": e.head_status,
                "max_regression_pct": e.max_regression_pct,
                "warn_pct": e.warn_pct,
                "metrics": {
                    m.metric: {
                        "base": m.base,
                        "head": m.head,
                        "delta": m.delta,
                        "pct": m.pct,
                        "trend": m.trend,
                        "status": m.status,
                        "budget": budget(m.budget),
                        "drivers": [
                            {
                                "case": d.case_id,
                                "field": d.field,
                                "base": d.base,
                                "head": d.head,
                                "delta": d.delta,
                                "new": d.new,
                            }
                            for d in m.drivers
                        ],
                    }
                    for m in e.metrics
                },
                **({"anatomy": _anatomy_json(e.anatomy)} if e.anatomy else {}),
            }
            for e in diff.endpoints
        },
    }


def _anatomy_json(parts: tuple[PartDiff, ...]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {"input": {}, "output": {}}
    for p in parts:
        out[p.side][p.part] = {
            "base_mean": p.base_mean,
            "head_mean": p.head_mean,
            "delta_mean": p.delta_mean,
            "base_p95": p.base_p95,
            "head_p95": p.head_p95,
            "delta_p95": p.delta_p95,
            "delta_monthly_usd": p.delta_monthly_usd,
            "exact": p.exact,
        }
    return out
