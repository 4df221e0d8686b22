"""What a comparison with the baseline says: the `Diff` and its parts, as plain data.

report/diff.py computes it (`compare`); the report (report/model.py) carries it, and the
renderers read it. Apart from the comparing, so that the report's model and the comparison
import this rather than each other. Differences are exact: JSON numbers are taken as the
decimals they were written as.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

from pytest_tokenbudget.measure.metrics import number

DIFF_SCHEMA = "pytest-tokenbudget/diff"
DIFF_VERSION = 1
TOP_DRIVERS = 3

# status of one metric, worst last
OK, WARN, REGRESSION, BUDGET = "ok", "warn", "regression", "budget"
# change of one endpoint
CHANGED, UNCHANGED, ADDED, REMOVED, NOT_RUN = "changed", "unchanged", "added", "removed", "not-run"

Value = int | float | None


@dataclass(frozen=True)
class BudgetRef:
    """The head's budget on a metric, as report.json states it."""

    key: str
    limit: float
    kind: str  # "max" | "min"
    ok: bool | None
    line: int | None
    drivers: tuple[str, ...] = ()  # the head report's own drivers (worst cases)


@dataclass(frozen=True)
class CaseDelta:
    """How much one case moved the quantity behind a metric."""

    case_id: str
    field: str  # input_tokens | output_tokens | cost_usd
    base: Value
    head: Value
    delta: Value
    new: bool = False  # the case is not in the baseline


@dataclass(frozen=True)
class MetricDiff:
    metric: str
    base: Value
    head: Value
    delta: Value  # head - base; None when either side is missing
    pct: float | None  # delta over base, in %; None when base is 0 or missing
    trend: str  # worse | better | same | changed (direction unknown) | n/a
    status: str  # ok | warn | regression | budget
    budget: BudgetRef | None = None
    drivers: tuple[CaseDelta, ...] = ()

    @property
    def changed(self) -> bool:
        return self.trend in ("worse", "better", "changed")


@dataclass(frozen=True)
class PartDiff:
    """How one part of the calls' prompts or answers moved (report.model.Anatomy)."""

    side: str  # input | output
    part: str  # tools, system, ..., unattributed; text, thinking, tool_use, unattributed
    base_mean: Value  # tokens per call
    head_mean: Value
    delta_mean: Value  # head - base; None when either side lacks the part
    base_p95: Value
    head_p95: Value
    delta_p95: Value
    # the part's share of the cost times the monthly projection, head less base; None when
    # either side has no projection (requests_per_day) or no dollar figure
    delta_monthly_usd: Value
    exact: bool  # both sides' figures were counted; else at least one is estimated


@dataclass(frozen=True)
class EndpointDiff:
    name: str
    change: str  # changed | unchanged | added | removed | not-run
    base_status: str | None
    head_status: str | None
    line: int | None
    max_regression_pct: float | None  # the gate applied here: endpoint override or global
    warn_pct: float | None
    metrics: tuple[MetricDiff, ...]
    problems: tuple[str, ...] = ()  # the head's non-budget failures
    warnings: tuple[str, ...] = ()
    failed: bool = False  # the head failed in its own run, beyond its own regression gate
    anatomy: tuple[PartDiff, ...] = ()  # when either side has one


@dataclass(frozen=True)
class Diff:
    endpoints: tuple[EndpointDiff, ...]
    monthly_base: Value
    monthly_head: Value
    max_regression_pct: float | None
    warn_pct: float | None
    notes: tuple[str, ...] = ()
    config: str | None = None  # the head's token_budgets.yml, for annotations
    percentile_method: str | None = None
    price_table: str | None = None

    @property
    def monthly_delta(self) -> Value:
        if self.monthly_base is None or self.monthly_head is None:
            return None
        return delta_of("monthly_cost_usd", self.monthly_base, self.monthly_head)

    @property
    def monthly_pct(self) -> float | None:
        return pct_of(self.monthly_base, self.monthly_head)

    def rows(self) -> Iterator[tuple[EndpointDiff, MetricDiff]]:
        for endpoint in self.endpoints:
            for metric in endpoint.metrics:
                yield endpoint, metric

    def with_status(self, *statuses: str) -> list[tuple[EndpointDiff, MetricDiff]]:
        return [(e, m) for e, m in self.rows() if m.status in statuses]

    @property
    def failed(self) -> bool:
        """A broken budget, a tripped regression gate, or a head endpoint that failed."""
        return bool(self.with_status(BUDGET, REGRESSION)) or any(e.failed for e in self.endpoints)


def exact(value: float) -> Fraction:
    """JSON numbers as the decimals they were written as, so 0.11 - 0.1 is exactly 0.01."""
    return Fraction(value) if isinstance(value, int) else Fraction(repr(float(value)))


def delta_of(metric: str, base: float, head: float) -> int | float | None:
    if isinstance(base, int) and isinstance(head, int):
        return head - base
    return number(metric, exact(head) - exact(base))


def pct_of(base: Value, head: Value) -> float | None:
    if base is None or head is None or base == 0:
        return None
    return round(float((exact(head) - exact(base)) / abs(exact(base)) * 100), 2)
