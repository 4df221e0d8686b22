"""The report: every verdict of one run in one typed structure.

Built once (report/build.py), after every verdict is in: budgets, the cases that could
not be measured, other problems, the regression gate and `--token-budget-update`. The
terminal, report.json (report/json_io.py), report.md, report.html, annotations, the job
summary and the exit code are all rendered from the one `Report`, so none of them can
tell another story. Renderers read it and never reach back into measurement; the
per-call figures report.html draws (`Charts`) travel in it for that reason, though
report.json leaves them out. Every figure in it is as report.json writes it (rounded
once, by measure/metrics.number).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.measure.accounting import UnmeasuredCase, cause_lines, headline
from pytest_tokenbudget.measure.anatomy import PART_METRICS
from pytest_tokenbudget.measure.metrics import label
from pytest_tokenbudget.measure.metrics import metric as facts
from pytest_tokenbudget.report.reader import FAIL, NOT_RUN, PASS

if TYPE_CHECKING:
    from pytest_tokenbudget.report.diff_model import Diff

PERCENTILE_METHOD = "nearest-rank over calls"

Value = int | float | None
# Kinds of failure, in the order an endpoint's headline picks them (worst first: judged).
CASES, PROBLEM, BUDGET, REGRESSION, UPDATE = "cases", "problem", "budget", "regression", "update"


# -- the model ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BudgetCheck:
    key: str
    metric: str
    kind: str  # "max": actual <= limit; "min": actual >= limit (the budget's, as configured)
    limit: float
    actual: Value
    ok: bool | None  # None: not checked (see note)
    line: int | None
    drivers: tuple[str, ...] = ()  # the cases to look at first when it breaks
    note: str = ""
    estimated: bool = False  # the actual is an estimate (a prompt part that was not counted)


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
class CacheFigures:
    """An endpoint's prompt-cache reads and writes, as recorded and as predicted for the
    prompts sent now (each: calls, prompt_tokens, read_tokens, write_5m_tokens,
    write_1h_tokens, hit_rate)."""

    recorded: Mapping[str, Value] | None
    predicted: Mapping[str, Value] | None
    checks: str  # which of the two min_cache_hit_rate checks: recorded | predicted
    note: str = ""  # why their hit rates differ, when they do


@dataclass(frozen=True)
class Reprice:
    """--token-budget-reprice: what the endpoint's traffic would cost on another model.
    Informational only, never a verdict."""

    model: str
    cost_per_request_usd: Value
    monthly_cost_usd: Value
    projected: bool  # requests_per_day is set: a monthly figure is part of it
    input_tokens_p95: Value
    input_exact: bool  # the input was counted for the model, not estimated
    output: str  # how output tokens are taken: as recorded


@dataclass(frozen=True)
class PromptCacheFinding:
    """What breaks prompt caching (cache/doctor.py), where, and the fix."""

    code: str
    level: str  # error | warning | note
    endpoint: str
    where: str  # the path in the request: "system[0].text"
    message: str
    fix: str | None
    cases: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartFigures:
    """One part of the calls' prompts or answers (measure/anatomy.py)."""

    mean: Value  # tokens per call
    p95: Value  # tokens per call, nearest rank
    cost_share: Value  # of the endpoint's cost; None when a dollar figure is unknown
    exact: bool  # every call's figure was counted; else estimated


@dataclass(frozen=True)
class Anatomy:
    """Where an endpoint's tokens go: its calls' input and output by part."""

    calls: int  # calls whose prompt was split (Anthropic Messages requests)
    counted_calls: int  # of them, split by counted prefixes (exact)
    input: Mapping[str, PartFigures]  # tools, system, ..., latest_turn, unattributed
    output: Mapping[str, PartFigures]  # text, thinking, tool_use, unattributed; {}: none measured

    def estimated(self, side: str, part: str) -> bool:
        figures = (self.input if side == "input" else self.output).get(part)
        return figures is not None and not figures.exact


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
    cache: CacheFigures | None = None
    recorders: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # failures that are not budgets nor unmeasured cases
    unmeasured: tuple[UnmeasuredCase, ...] = ()
    regressions: tuple[Regression, ...] | None = None  # None: no regression gate applied
    failures: tuple[Failure, ...] = ()  # worst first: failures[0] is the headline
    charts: Charts | None = None
    reprice: Reprice | None = None
    anatomy: Anatomy | None = None  # absent when no call was split, or a case not measured

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
    findings: tuple[PromptCacheFinding, ...] = ()
    fixes: tuple[Fix, ...] = ()
    diff: Diff | None = None  # against --token-budget-baseline
    update: UpdateVerdict | None = None  # --token-budget-update
    notes: tuple[str, ...] = ()  # about the run itself (a gate asked for without a baseline)
    overrides_note: str = ""
    # the price source as report.json states it: source (library and version), as_of (the
    # day priced), label; an older report's table_date
    prices: Mapping[str, str] = field(default_factory=dict)
    load_notes: tuple[str, ...] = ()  # what reading it from a file found (report/reader.py)

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

    @property
    def priced_with(self) -> str | None:
        """What priced it, as a comparison names it: the library and its version
        (`genai-prices 0.2.5`), or an older report's price table."""
        if self.prices.get("source"):
            return self.prices["source"]
        table = self.prices.get("table_date")
        return f"the table of {table}" if table else None


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
        part = PART_METRICS.get(r.metric)
        estimated = bool(part and ep.anatomy and ep.anatomy.estimated("input", part))
        message = regression_message(r, estimated=estimated)
        failures.append(Failure(REGRESSION, message, ep.name, r.key or r.metric, r.line))
    status = ep.status
    if status != NOT_RUN:
        status = FAIL if failures or status == FAIL else PASS
    return replace(ep, failures=tuple(failures), status=status)


def budget_message(b: BudgetCheck) -> str:
    estimated = " (estimated)" if b.estimated else ""
    return (
        f"{label(b.metric)} {facts(b.metric).show(b.actual)}{estimated} breaks {b.key} "
        f"({facts(b.metric).show(b.limit)})"
    )


def regression_message(r: Regression, *, estimated: bool = False) -> str:
    m = facts(r.metric)
    change = f"{r.pct:+.1f}%" if r.pct is not None else "from 0"
    return (
        f"{m.label} {m.show(r.base)} → {m.show(r.head)} ({change}"
        f"{', estimated' if estimated else ''}) is past the {r.gate_pct:g}% regression gate"
    )
