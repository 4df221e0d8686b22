"""The run's evaluation: each endpoint's samples measured and judged against its budgets.

In: the run's state (measure/run.py: every test's samples, its case runs, the prompt-cache
doctor, merged across xdist workers). Out: one `EndpointResult` per configured endpoint
(its statistics, verdicts, warnings and problems, the cases that could not be measured) and
the prompt-cache findings the config asks to see. report/build.py turns them into the one
`Report`; nothing here knows report.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction

from pytest_tokenbudget.cache.checklist import Costing
from pytest_tokenbudget.cache.doctor import CacheFinding
from pytest_tokenbudget.cache.finding import CHECKLIST_CODES
from pytest_tokenbudget.cache.prediction import CacheTotals
from pytest_tokenbudget.errors import PricingError
from pytest_tokenbudget.formatting import rate as fmt_rate
from pytest_tokenbudget.measure.accounting import UnmeasuredCase, unmeasured
from pytest_tokenbudget.measure.anatomy import EndpointAnatomy, endpoint_anatomy
from pytest_tokenbudget.measure.metrics import number
from pytest_tokenbudget.measure.reprice import Repricing, reprice_figures
from pytest_tokenbudget.measure.run import BudgetRun
from pytest_tokenbudget.measure.samples import CaseRun, CaseSamples, in_test_order
from pytest_tokenbudget.measure.stats import EndpointStats, endpoint_stats_of
from pytest_tokenbudget.measure.verdicts import Verdict, judge
from pytest_tokenbudget.pricing.prices import PriceBook, unpriced_call_message


@dataclass(frozen=True)
class EndpointCache:
    """An endpoint's prompt-cache reads and writes: as recorded, and as predicted for the
    prompts sent now (cache/prediction.py)."""

    recorded: CacheTotals
    predicted: CacheTotals
    checks: str  # which of the two min_cache_hit_rate checks: recorded | predicted
    note: str = ""  # why their hit rates differ, when they do by 5 points or more


@dataclass
class EndpointResult:
    """One endpoint as measured and judged against its budgets."""

    name: str
    status: str  # pass | fail | not-run
    stats: EndpointStats | None
    verdicts: list[Verdict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures that are not budgets
    line: int | None = None
    max_regression_pct: float | None = None
    cache: EndpointCache | None = None  # recorded and predicted cache figures
    recorders: list[str] = field(
        default_factory=list
    )  # who served its calls (capture/recording.py)
    unmeasured: list[UnmeasuredCase] = field(default_factory=list)  # cases that cannot count
    cases_run: int = 0  # cases that ran, measured or not
    reprice: Repricing | None = None  # --token-budget-reprice (measure/reprice.py); no verdict
    anatomy: EndpointAnatomy | None = None  # its calls by part (measure/anatomy.py)


@dataclass(frozen=True)
class Evaluation:
    """Every endpoint's result, in the config's order, and the prompt-cache findings shown."""

    results: list[EndpointResult]
    findings: list[CacheFinding]  # of endpoints whose cache_lint is not off


def evaluate(run: BudgetRun) -> Evaluation:
    """The measurement, judged against the budgets (the regression gate and the budget
    update judge later, on the report: report/build.py)."""
    results = _results(run)
    endpoints = run.config.endpoints
    costing = Costing.of(run.config, run.price_hook)  # the cost checklist's dollars
    findings = [
        f
        for f in run.doctor.findings(costing)
        if f.endpoint in endpoints
        and (endpoints[f.endpoint].cache_lint != "off" or f.code in CHECKLIST_CODES)
    ]
    for result in results:
        errors = [f for f in findings if f.endpoint == result.name and f.level == "error"]
        if errors and endpoints[result.name].cache_lint == "error":
            result.problems.append(
                f"prompt cache: {len(errors)} error-level finding(s), and cache_lint: error"
            )
            result.status = "fail"
    return Evaluation(results, findings)


def _results(run: BudgetRun) -> list[EndpointResult]:
    book = PriceBook(run.config.pricing, fallback=run.price_hook)
    # Workers finish in any order: sort so a parallel run reports exactly as a serial one.
    parts = in_test_order(run.all_parts())
    runs = sorted(run.case_runs, key=lambda r: r.test_id)
    return [_evaluate(run, name, parts, runs, book) for name in run.config.endpoints]


def _evaluate(
    run: BudgetRun, name: str, parts: list[CaseSamples], runs: list[CaseRun], book: PriceBook
) -> EndpointResult:
    ep = run.config.endpoints[name]
    ran = [r for r in runs if r.endpoint == name and r.outcome != "skipped"]
    mine = [p for p in parts if p.endpoint == name]
    if not ran and not mine:
        return EndpointResult(
            name, "not-run", None, line=ep.line, max_regression_pct=ep.max_regression_pct
        )
    # Every case accounted for: one that cannot be measured whole is left out of the
    # figures (never a $0 request) and fails the endpoint (measure/accounting.py).
    calls: dict[str, int] = {}
    for part in mine:
        calls[part.test_id] = calls.get(part.test_id, 0) + len(part)
    lost = [
        u
        for r in ran
        if (u := unmeasured(r, run.recordings.get(r.test_id), calls.get(r.test_id, 0)))
    ]
    lost_tests = {u.test for u in lost}
    if lost_tests:
        ran = [r for r in ran if r.test_id not in lost_tests]
        mine = [p for p in mine if p.test_id not in lost_tests]
    case_ids = list(dict.fromkeys(r.case_id for r in ran))
    try:
        stats = endpoint_stats_of(
            name,
            mine,
            case_ids,
            book=book,
            target_model=ep.target_model,
            escalation_models=ep.escalation_models,
            requests_per_day=ep.requests_per_day,
            batch=ep.batch,
            strict=False,
            cases_without_calls=ep.cases_without_calls,
        )
    except PricingError as err:  # a pytest_tokenbudget_price hook answered nonsense
        return EndpointResult(
            name,
            "fail",
            None,
            problems=[err.message],
            line=ep.line,
            max_regression_pct=ep.max_regression_pct,
            unmeasured=lost,
            cases_run=len(case_ids) + len(lost),
        )
    cache = _cache_figures(run, name, lost_tests)
    if cache is not None:  # the prediction is also a metric, that a budget may check
        predicted = cache.predicted.hit_rate
        stats = replace(stats, metrics={**stats.metrics, "predicted_cache_hit_rate": predicted})
    anatomy = endpoint_anatomy(
        [a for a in run.anatomy if a.endpoint == name and a.test_id not in lost_tests],
        book=book,
        batch=ep.batch,
    )
    if anatomy is not None:  # the parts a budget may limit (max_system_tokens, ...)
        stats = replace(stats, metrics={**stats.metrics, **anatomy.metrics()})
    budgets = ep.budgets
    if run.options.count:  # nothing recorded tells what the cache does for new prompts
        budgets = tuple(
            replace(b, metric="predicted_cache_hit_rate") if b.key == "min_cache_hit_rate" else b
            for b in budgets
        )
    result = EndpointResult(
        name,
        "pass",
        stats,
        judge(stats, budgets, anatomy),
        line=ep.line,
        max_regression_pct=ep.max_regression_pct,
        cache=cache,
        unmeasured=lost,
        cases_run=stats.cases + len(lost),
        anatomy=anatomy,
    )
    if cache is not None and not lost:
        checked = any(b.key == "min_cache_hit_rate" for b in budgets)
        note = cache_note(cache, ep.requests_per_day, checked=checked)
        if note:
            result.cache = replace(cache, note=note)
            result.warnings.append(note)
    # sorted: a parallel run reports as a serial one
    result.recorders = sorted({name for run in ran for name in run.recorders})
    if run.options.count and any(r != "pytest-tokenbudget" for r in result.recorders):
        result.warnings.append(
            "count mode re-counts only the plugin's own cassettes: calls served by "
            f"{', '.join(r for r in result.recorders if r != 'pytest-tokenbudget')} "
            "keep their recorded input"
        )
    if stats.calls == 0 and stats.cases:
        result.problems.append(
            "its tests ran but captured no API call: is the client created before the "
            "cassette (at import time), using a transport vcrpy does not patch, or is "
            "the code path no longer calling the API?"
        )
    elif stats.no_call_cases:
        result.warnings.append(no_call_warning(stats))
    for model, cases in stats.unpriced.items():
        result.problems.append(unpriced_call_message(model, cases, run.config.path.name))
    result.warnings.extend(unmeasured_warnings(ran))
    mocked = [run.case_id for run in ran if "mock" in run.recorders]
    if mocked:
        result.warnings.append(
            f"calls of {len(mocked)} case(s) were answered by a mock of the test's own "
            f"(respx or the like), so their usage is the mock's: {named_cases(mocked)}"
        )
    if stats.calls and stats.calls < ep.min_samples:
        result.warnings.append(
            f"{stats.calls} call{'s' if stats.calls != 1 else ''} is below min_samples "
            f"({ep.min_samples}): "
            "percentiles are indicative only"
        )
    if stats.recounted_calls:
        result.warnings.append(
            f"{stats.recounted_calls} of {stats.calls} calls were re-counted with count_tokens "
            "after a prompt change: their output tokens and cache figures come from the "
            "recording, so the cache-hit rate is stale until the cases are re-recorded"
        )
    result.warnings.extend(f"{n} call(s): {note}" for note, n in sorted(stats.notes.items()))
    if stats.input_only_calls:
        result.warnings.append(
            f"{stats.input_only_calls} of {stats.calls} calls were counted but never "
            "generated (request cases without a recording): output tokens and costs leave "
            "them out; record them with --token-budget-record=once to measure output"
        )
    for model, source in sorted(stats.price_sources.items()):
        if source == "token_budgets.yml":
            result.warnings.append(f"{model} priced from your pricing: override")
    if lost or result.problems or any(v.ok is False for v in result.verdicts):
        result.status = "fail"
    if run.options.reprice and not lost:  # never part of the verdict above
        result.reprice = _repriced(run, name, case_ids, book)
    return result


def _repriced(run: BudgetRun, name: str, case_ids: list[str], book: PriceBook) -> Repricing | None:
    assert run.options.reprice is not None
    mine = in_test_order([p for p in run.reprice_parts if p.endpoint == name])
    return reprice_figures(
        name,
        mine,
        case_ids,
        model=run.options.reprice,
        endpoint=run.config.endpoints[name],
        book=book,
    )


def _cache_figures(run: BudgetRun, name: str, lost_tests: set[str]) -> EndpointCache | None:
    """Recorded and predicted cache reads and writes, over the cases measured whole, as
    every other figure."""
    from pytest_tokenbudget.cache.prediction import predict, recorded_totals

    prompts = [p for p in run.doctor.prompts if p.endpoint == name and p.test_id not in lost_tests]
    if not prompts:
        return None
    predicted = predict(
        prompts,
        minimum=run.cache_minimum,
        requests_per_day=run.config.endpoints[name].requests_per_day,
    )
    checks = "predicted" if run.options.count else "recorded"
    return EndpointCache(recorded_totals(prompts), predicted, checks)


CACHE_TTL_SECONDS = 300  # the default (5-minute) prompt-cache lifetime; 1 h when written so
AGREE_PP = Fraction(5, 100)  # recorded and predicted hit rates this close need no note


def cache_note(
    cache: EndpointCache, requests_per_day: float | None, *, checked: bool = False
) -> str:
    """Why the recorded and predicted cache-hit rates differ, when they do by 5 points or
    more: the table shows the recorded one, and a budget may check the other. The rates
    are compared and shown as the report writes them (rounded: measure/metrics.number)."""
    recorded, predicted = cache.recorded, cache.predicted
    rec = number("cache_hit_rate", recorded.hit_rate)
    pred = number("cache_hit_rate", predicted.hit_rate)
    if rec is None or pred is None or abs(Fraction(str(rec)) - Fraction(str(pred))) < AGREE_PP:
        return ""
    why = []
    changed = predicted.calls - recorded.calls
    if changed > 0:
        why.append(
            f"{changed} of {predicted.calls} calls no longer match the prompt they were "
            "recorded with, so the recorded rate leaves them out"
        )
    ttl = 3600 if recorded.write_1h_tokens else CACHE_TTL_SECONDS
    gap = 86_400 / requests_per_day if requests_per_day else 0.0
    if pred < rec and gap > ttl:
        why.append(
            f"at requests_per_day {requests_per_day:g} a request comes every {gap:,.0f} s, "
            f"longer than the cache lives ({ttl // 60} min), so the prediction lets it expire "
            "between requests; the recording was made with the cases one after another"
        )
    elif pred > rec:
        traffic = f"at requests_per_day {requests_per_day:g}" if requests_per_day else "all at once"
        why.append(
            "each case was recorded on its own, from a cold cache; the prediction sends the "
            f"cases as production traffic ({traffic}), so later requests read what earlier "
            "ones wrote"
        )
    if not why:
        why.append(
            "the recording is what the API answered when each case was recorded; the "
            "prediction simulates the cache for the prompts as sent now, in test order"
        )
    return (
        f"cache-hit rate recorded {fmt_rate(rec)}, predicted {fmt_rate(pred)}: "
        + "; ".join(why)
        + (f" (min_cache_hit_rate checks the {cache.checks} rate)" if checked else "")
    )


NAMED_CASES = 10  # no-call cases named in a warning; report.json lists them all


def named_cases(cases: list[str], listed: str = "") -> str:
    """The first NAMED_CASES case ids, and how many more (and where all are listed)."""
    named = ", ".join(cases[:NAMED_CASES])
    if len(cases) > NAMED_CASES:
        named += f" and {len(cases) - NAMED_CASES} more" + (f" ({listed})" if listed else "")
    return named


def no_call_warning(stats: EndpointStats) -> str:
    """Cases that made no API call, named, and how they count in the per-case metrics."""
    cases = stats.no_call_cases
    named = named_cases(cases, listed="report.json: no_call_cases")
    metrics = "escalation_rate, cost_per_request_usd and monthly_cost_usd"
    if stats.cases_without_calls == "count":
        how = f"they count as $0 requests in {metrics} (cases_without_calls: count)"
    else:
        how = (
            f"{metrics} are over the other {stats.requests} (cases_without_calls: exclude; "
            "set count to make them $0 requests)"
        )
    return f"no API call captured in {len(cases)} of {stats.cases} cases: {named}; {how}"


def unmeasured_warnings(ran: Iterable[CaseRun]) -> list[str]:
    """One line per kind of API request that carried no usage: how many, in which cases.
    Such requests are not calls in the token figures (a 0 would dilute every percentile)."""
    cases: dict[str, list[str]] = {}
    for run in ran:
        for request in run.unmeasured:
            cases.setdefault(request, []).append(run.case_id)
    return [
        f"{len(ids)} API request(s) carried no usage and are not in the token or cost figures: "
        f"{request}, in case(s) {named_cases(list(dict.fromkeys(ids)))}"
        for request, ids in sorted(cases.items())
    ]
