"""The report: every verdict of one run in one typed structure, and report.json from it.

Built once, after every verdict is in: budgets, the cases that could not be measured,
other problems, the regression gate and `--token-budget-update`. The terminal,
report.json, report.md, report.html, annotations, the job summary and the exit code are
all rendered from the one `Report`, so none of them can tell another story. Renderers
read it and never reach back into measurement; the per-call figures report.html draws
(`Charts`) travel in it for that reason, though report.json leaves them out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.files.atomic import write_together
from pytest_tokenbudget.measure.accounting import (
    UnmeasuredCase,
    cause_lines,
    headline,
)
from pytest_tokenbudget.measure.metrics import MONEY_DIGITS, RATE_DIGITS, USD, label, number  # noqa: F401 (re-exported)
from pytest_tokenbudget.measure.metrics import metric as facts
from pytest_tokenbudget.providers.scrub import refuse_if_secret
from pytest_tokenbudget.report.reader import FAIL, NOT_RUN, PASS, SCHEMA, VERSION

if TYPE_CHECKING:
    from pytest_tokenbudget.report.diff import Diff

PERCENTILE_METHOD = "nearest-rank over calls"

Value = int | float | None
# Kinds of failure, in the order an endpoint's headline picks them (worst first: _judged).
CASES, PROBLEM, BUDGET, REGRESSION, UPDATE = "cases", "problem", "budget", "regression", "update"


# -- the model ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetCheck:
    key: str
    metric: str
    limit: float
    actual: Value
    ok: bool | None  # None: not checked (see note)
    line: int | None
    drivers: tuple[str, ...] = ()  # the cases to look at first when it breaks
    note: str = ""

    @property
    def kind(self) -> str:
        return "min" if facts(self.metric).higher_is_better else "max"


@dataclass(frozen=True)
class CaseFigures:
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Value
    escalated: bool
    models: tuple[str, ...]


@dataclass(frozen=True)
class Regression:
    """A metric the regression gate stopped: worse than the baseline by more than the gate."""

    metric: str
    base: Value
    head: Value
    delta: Value
    pct: float | None  # None: grew from 0
    gate_pct: float
    key: str | None  # the budget key on this metric, if any
    line: int | None  # of that key, else of the endpoint
    drivers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    """One reason the run fails, in one plain line; renderers escape it for their sink."""

    kind: str  # cases | problem | budget | regression | update
    message: str
    endpoint: str | None = None  # None: the run's own (the budget update)
    key: str | None = None  # the budget key or metric it is about, for annotations
    line: int | None = None  # in token_budgets.yml


@dataclass(frozen=True)
class Fix:
    """One command that fixes a whole class of failures of the run, said once."""

    what: str
    command: str


@dataclass(frozen=True)
class Charts:
    """What report.html draws and report.json leaves out: per-call tokens, costs by tier."""

    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    tier_costs: Mapping[str, Mapping[str, Fraction]]  # model -> tier -> dollars
    requests: int  # the cases the dollars are over (cost_per_request_usd's)
    unpriced: tuple[str, ...]


@dataclass(frozen=True)
class EndpointReport:
    name: str
    status: str  # pass | fail | not-run
    line: int | None = None
    max_regression_pct: float | None = None
    measured: bool = False  # False: nothing to show figures of (not run, or no statistics)
    calls: int = 0
    cases: int = 0  # cases that ran, measured or not
    # The endpoint's values. All None when a case could not be measured: the values of
    # the other cases are in partial_metrics, never presented as the endpoint's.
    metrics: Mapping[str, Value] = field(default_factory=dict)
    partial_metrics: Mapping[str, Value] | None = None
    budgets: tuple[BudgetCheck, ...] = ()
    per_case: Mapping[str, CaseFigures] = field(default_factory=dict)
    no_call_cases: tuple[str, ...] = ()
    cases_without_calls: str = "exclude"
    models: Mapping[str, int] = field(default_factory=dict)
    price_sources: Mapping[str, str] = field(default_factory=dict)
    unpriced_models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    recounted_calls: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)  # facts only report.json shows
    cache: Mapping[str, Any] | None = None
    recorders: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # failures that are not budgets nor unmeasured cases
    unmeasured: tuple[UnmeasuredCase, ...] = ()
    regressions: tuple[Regression, ...] | None = None  # None: no regression gate applied
    failures: tuple[Failure, ...] = ()  # worst first: failures[0] is the headline
    charts: Charts | None = None
    reprice: Mapping[str, Any] | None = None  # --token-budget-reprice: informational only

    @property
    def complete(self) -> bool:
        return not self.unmeasured

    @property
    def headline(self) -> str | None:
        return self.failures[0].message if self.failures else None

    @property
    def all_problems(self) -> tuple[str, ...]:
        """The unmeasured cases, one line per cause, then the other problems."""
        return (*cause_lines(self.unmeasured), *self.problems)


@dataclass(frozen=True)
class UpdateVerdict:
    """How `--token-budget-update` went: its lines for the terminal, and whether it failed."""

    ok: bool
    error: str = ""
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Totals:
    calls: int = 0
    cost_usd: Value = None
    monthly_cost_usd: Value = None


@dataclass(frozen=True)
class Report:
    config: str
    table_date: str
    endpoints: tuple[EndpointReport, ...]
    totals: Totals = Totals()
    percentile_method: str = PERCENTILE_METHOD
    findings: tuple[Mapping[str, Any], ...] = ()  # prompt-cache findings (cache_doctor)
    fixes: tuple[Fix, ...] = ()
    diff: Diff | None = None  # against --token-budget-baseline
    update: UpdateVerdict | None = None  # --token-budget-update
    notes: tuple[str, ...] = ()  # about the run itself (a gate asked for without a baseline)
    overrides_note: str = ""
    # the price source: source (library and version), as_of (the day priced), label
    prices: Mapping[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> tuple[Failure, ...]:
        """Every reason the run fails, endpoint by endpoint, then the run's own."""
        out = [f for ep in self.endpoints for f in ep.failures]
        if self.update is not None and not self.update.ok:
            out.append(Failure(UPDATE, f"budget update failed: {self.update.error}"))
        return tuple(out)

    @property
    def status(self) -> str:
        return FAIL if self.failures else PASS

    @property
    def failed_endpoints(self) -> tuple[EndpointReport, ...]:
        return tuple(ep for ep in self.endpoints if ep.status == FAIL)

    @property
    def headline(self) -> str:
        """The verdict in one line: what failed, or that everything is within budget."""
        ran = [ep for ep in self.endpoints if ep.status != NOT_RUN]
        skipped = len(self.endpoints) - len(ran)
        failed = self.failed_endpoints
        parts = []
        if failed:
            n = len(self.endpoints)
            parts.append(f"{len(failed)} of {n} endpoint{'s' if n != 1 else ''} failed")
        if self.update is not None and not self.update.ok:
            parts.append("budget update failed")
        if parts:
            return "; ".join(parts)
        if not ran:
            return f"no endpoint ran ({skipped} not run)"
        text = f"All {len(ran)} endpoint{'s' if len(ran) != 1 else ''} within budget"
        if skipped:
            text += f" ({skipped} not run)"
        if self.diff is not None:
            text += ", no regression"
        return text

    def to_json(self) -> dict[str, Any]:
        return report_json(self)


def judged(ep: EndpointReport) -> EndpointReport:
    """The endpoint's failures, worst first, and the status they give it."""
    failures: list[Failure] = []
    if ep.unmeasured:
        failures.append(
            Failure(CASES, headline(ep.unmeasured, ep.cases), ep.name, "cases", ep.line)
        )
    failures += [Failure(PROBLEM, p, ep.name, "problem", ep.line) for p in ep.problems]
    for b in ep.budgets:
        if b.ok is False:
            failures.append(Failure(BUDGET, budget_message(b), ep.name, b.key, b.line))
    for r in ep.regressions or ():
        failures.append(
            Failure(REGRESSION, regression_message(r), ep.name, r.key or r.metric, r.line)
        )
    status = ep.status
    if status != NOT_RUN:
        status = FAIL if failures or status == FAIL else PASS
    return replace(ep, failures=tuple(failures), status=status)


def budget_message(b: BudgetCheck) -> str:
    return (
        f"{label(b.metric)} {facts(b.metric).show(b.actual)} breaks {b.key} "
        f"({facts(b.metric).show(b.limit)})"
    )


def regression_message(r: Regression) -> str:
    m = facts(r.metric)
    change = f"{r.pct:+.1f}%" if r.pct is not None else "from 0"
    return (
        f"{m.label} {m.show(r.base)} → {m.show(r.head)} ({change}) is past the "
        f"{r.gate_pct:g}% regression gate"
    )


# -- report.json -------------------------------------------------------------------------
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
    out["findings"] = [dict(f) for f in report.findings]
    if report.update is not None:
        out["update"] = {"status": PASS if report.update.ok else FAIL, "error": report.update.error}
    if report.notes:
        out["notes"] = list(report.notes)
    if report.diff is not None:
        from pytest_tokenbudget.report.diff import diff_json

        out["diff"] = diff_json(report.diff)
    return out


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
            out["reprice"] = dict(ep.reprice)
    if ep.cache is not None:
        out["cache"] = dict(ep.cache)
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


# -- reading report.json back --------------------------------------------------------------
def report_from_json(data: Mapping[str, Any]) -> Report:
    """A report.json (this version's or an older one) as the typed report, for renderers
    that start from a file. Per-call charts are not in the file: they stay empty."""
    endpoints = tuple(
        _endpoint_from_json(name, ep) for name, ep in (data.get("endpoints") or {}).items()
    )
    totals = data.get("totals") or {}
    prices = data.get("prices") or {}
    update = data.get("update")
    return Report(
        config=str(data.get("config", "token_budgets.yml")),
        table_date=str(prices.get("label") or prices.get("table_date", "?")),
        prices={k: str(v) for k, v in prices.items() if k in ("source", "as_of", "label")},
        endpoints=endpoints,
        totals=Totals(
            totals.get("calls", sum(ep.calls for ep in endpoints)),
            totals.get("cost_usd"),
            totals.get("monthly_cost_usd"),
        ),
        percentile_method=str(data.get("percentile_method", PERCENTILE_METHOD)),
        findings=tuple(data.get("findings") or ()),
        fixes=tuple(Fix(f["what"], f["command"]) for f in data.get("fixes") or ()),
        update=UpdateVerdict(update.get("status") != FAIL, update.get("error", ""))
        if isinstance(update, dict)
        else None,
        notes=tuple(data.get("notes") or ()),
        overrides_note=str(prices.get("overrides_note", "")),
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
                b.get("limit"),
                b.get("actual"),
                b.get("ok"),
                b.get("line"),
                tuple(b.get("drivers") or ()),
                b.get("note", ""),
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
        cache=ep.get("cache"),
        reprice=ep.get("reprice"),
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
