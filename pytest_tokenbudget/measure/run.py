"""State of one `pytest --token-budget` run: samples in, report out.

Kept on the pytest config; under xdist each worker fills its own and the
controller merges them, so the report is computed once, from all samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from pytest_tokenbudget.cache.doctor import Doctor, diagnose_case
from pytest_tokenbudget.capture.counting import CountCache
from pytest_tokenbudget.config.budgets import Config
from pytest_tokenbudget.errors import PricingError
from pytest_tokenbudget.formatting import rate as fmt_rate
from pytest_tokenbudget.measure.accounting import RECORDING_KINDS, unmeasured
from pytest_tokenbudget.measure.samples import (
    SAMPLE_KINDS,
    CaseRun,
    CaseSamples,
    Row,
    Sample,
    case_samples,
    in_test_order,
)
from pytest_tokenbudget.measure.stats import EndpointStats, endpoint_stats_of
from pytest_tokenbudget.measure.verdicts import judge
from pytest_tokenbudget.pricing import source as price_source
from pytest_tokenbudget.pricing.prices import PriceBook, unpriced_call_message
from pytest_tokenbudget.providers.usage import Call, Exchange, parse_exchange
from pytest_tokenbudget.report.model import EndpointResult, Report, build_report


@dataclass
class Options:
    config_path: Path
    cassettes: Path | None
    report_dir: Path
    record_mode: str = "none"
    count: bool = False
    reprice: str | None = None  # --token-budget-reprice MODEL (measure/reprice.py)


@dataclass
class BudgetRun:
    config: Config
    options: Options
    # each test's calls, summed as the test ends (samples.CaseSamples)
    parts: list[CaseSamples] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)  # single samples added by hand
    case_runs: list[CaseRun] = field(default_factory=list)
    counts: CountCache | None = None  # count cache: request cases, and count mode
    can_count_online: bool = False
    # the plugin's hooks, as plain callables so this module needs no pytest
    parse: Callable[[Exchange], list[Call]] = parse_exchange
    price_hook: Callable[[str], Mapping[str, float] | None] | None = None
    scrub_hook: Callable[[dict[str, Any]], None] | None = None
    doctor: Doctor = field(default_factory=Doctor)  # prompt-cache findings
    # test id -> what the capture found wrong with its recording (accounting.RECORDING_KINDS)
    recordings: dict[str, str] = field(default_factory=dict)
    # each test's calls at the --token-budget-reprice model (measure/reprice.py), as `parts`
    reprice_parts: list[CaseSamples] = field(default_factory=list)
    reprice_send: Callable[[dict[str, Any]], tuple[int, Any, bytes]] | None = None
    _worker_counts: list[tuple[int, int]] = field(default_factory=list)
    _minimums: dict[str, int] = field(default_factory=dict)  # by model: asked per call

    @property
    def count_stats(self) -> tuple[int, int]:
        """(count_tokens requests sent, counts answered from the cache), over all workers."""
        own = (self.counts.api_calls, self.counts.hits) if self.counts else (0, 0)
        pairs = [own] + self._worker_counts
        return sum(p[0] for p in pairs), sum(p[1] for p in pairs)

    # -- collecting -------------------------------------------------------------
    def add_calls(
        self, calls: Iterable[Call], *, endpoint: str, case_id: str, test_id: str
    ) -> None:
        """All calls of one test, in the order they were made."""
        rows: list[Row] = []
        for call in calls:
            if call.kind not in SAMPLE_KINDS:
                continue
            u = call.usage
            rows.append(
                (
                    call.model,
                    u.input_tokens,
                    u.output_tokens,
                    u.cache_write_5m_tokens,
                    u.cache_write_1h_tokens,
                    u.cache_read_tokens,
                    call.provider,
                    call.batch,
                    call.recounted,
                    call.input_only,
                    call.note,
                    u.web_search_requests,
                    u.pricing_context,
                )
            )
        if rows:
            self.parts.append(CaseSamples(endpoint, case_id, test_id, rows))

    @property
    def counts_online(self) -> bool:
        """count_tokens may be asked now: count mode, with a key (measure/reprice.py)."""
        return bool(self.options.count and self.can_count_online)

    def add_repriced(self, rows: list[Row], *, endpoint: str, case_id: str, test_id: str) -> None:
        """One test's calls at the --token-budget-reprice model (reprice.repriced_rows)."""
        if rows:
            self.reprice_parts.append(CaseSamples(endpoint, case_id, test_id, rows))

    def all_parts(self) -> list[CaseSamples]:
        """Every test's samples, those added by hand included."""
        return self.parts + case_samples(self.samples) if self.samples else self.parts

    def add_case_run(self, run: CaseRun) -> None:
        self.case_runs.append(run)

    def note_recording(self, test_id: str, kind: str) -> None:
        """The test's recording is missing, stale or unreadable: its case is not measured,
        and re-recording it is the fix (measure/accounting.py)."""
        if kind not in RECORDING_KINDS:
            raise ValueError(f"not a recording problem: {kind!r}")
        self.recordings[test_id] = kind

    def diagnose(
        self,
        endpoint: str,
        case_id: str,
        exchanges: list[tuple[Exchange, list[Call]]],
        volatile: Mapping[int, Any],
        test_id: str = "",
    ) -> None:
        """Show one case's requests to the prompt-cache doctor."""
        diagnose_case(
            self.doctor, endpoint, case_id, exchanges, dict(volatile), self.cache_minimum, test_id
        )

    def cache_minimum(self, model: str) -> int:
        """The model's minimum cacheable prompt length: `cache_minimums:`, then the table."""
        found = self._minimums.get(model)
        if found is None:
            from pytest_tokenbudget.cache.simulation import minimum_cacheable

            found = self._minimums[model] = minimum_cacheable(model, self.config.cache_minimums)
        return found

    # -- xdist ------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        return {
            "samples": [p.to_wire() for p in self.all_parts()],
            "case_runs": [c.to_dict() for c in self.case_runs],
            "counts": list(self.count_stats),
            "doctor": self.doctor.to_wire(),
            "recordings": self.recordings,
            "reprice": [p.to_wire() for p in self.reprice_parts],
        }

    def merge_wire(self, data: dict[str, Any]) -> None:
        self.parts.extend(CaseSamples.from_wire(s) for s in data["samples"])
        self.case_runs.extend(CaseRun.from_dict(c) for c in data["case_runs"])
        self._worker_counts.append(tuple(data.get("counts", (0, 0))))  # type: ignore[arg-type]
        self.doctor.merge_wire(data.get("doctor", {}))
        self.recordings.update(data.get("recordings", {}))
        self.reprice_parts.extend(CaseSamples.from_wire(s) for s in data.get("reprice", ()))

    # -- evaluation -------------------------------------------------------------
    def results(self) -> list[EndpointResult]:
        book = PriceBook(self.config.pricing, fallback=self.price_hook)
        # Workers finish in any order: sort so a parallel run reports exactly as a serial one.
        parts = in_test_order(self.all_parts())
        runs = sorted(self.case_runs, key=lambda r: r.test_id)
        return [self._evaluate(name, parts, runs, book) for name in self.config.endpoints]

    def _evaluate(
        self, name: str, parts: list[CaseSamples], runs: list[CaseRun], book: PriceBook
    ) -> EndpointResult:
        ep = self.config.endpoints[name]
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
            if (u := unmeasured(r, self.recordings.get(r.test_id), calls.get(r.test_id, 0)))
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
        cache = self._cache_figures(name, stats, lost_tests)
        budgets = ep.budgets
        if self.options.count:  # nothing recorded tells what the cache does for new prompts
            budgets = tuple(
                replace(b, metric="predicted_cache_hit_rate")
                if b.key == "min_cache_hit_rate"
                else b
                for b in budgets
            )
        result = EndpointResult(
            name,
            "pass",
            stats,
            judge(stats, budgets),
            line=ep.line,
            max_regression_pct=ep.max_regression_pct,
            cache=cache,
            unmeasured=lost,
            cases_run=stats.cases + len(lost),
        )
        if cache is not None and not lost:
            checked = any(b.key == "min_cache_hit_rate" for b in budgets)
            note = cache_note(cache, ep.requests_per_day, checked=checked)
            if note:
                cache["note"] = note
                result.warnings.append(note)
        # sorted: a parallel run reports as a serial one
        result.recorders = sorted({name for run in ran for name in run.recorders})
        if self.options.count and any(r != "pytest-tokenbudget" for r in result.recorders):
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
            result.problems.append(unpriced_call_message(model, cases, self.config.path.name))
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
        if self.options.reprice and not lost:  # never part of the verdict above
            result.reprice = self._repriced(name, case_ids, book)
        return result

    def _repriced(self, name: str, case_ids: list[str], book: PriceBook) -> dict[str, Any] | None:
        from pytest_tokenbudget.measure.reprice import reprice_figures

        assert self.options.reprice is not None
        mine = in_test_order([p for p in self.reprice_parts if p.endpoint == name])
        return reprice_figures(
            name,
            mine,
            case_ids,
            model=self.options.reprice,
            endpoint=self.config.endpoints[name],
            book=book,
        )

    def diagnose_request(
        self, endpoint: str, case_id: str, request: dict[str, Any], tokens: int, test_id: str
    ) -> None:
        """A request case counted, never sent: the doctor sees it as sent now."""
        minimum = self.cache_minimum(str(request.get("model", "")))
        self.doctor.add_call(endpoint, case_id, request, tokens, minimum, test_id=test_id)

    def _cache_figures(self, name: str, stats: Any, lost_tests: set[str]) -> dict[str, Any] | None:
        """Recorded and predicted cache reads and writes; the prediction is also a metric.
        Over the cases measured whole, as every other figure."""
        from pytest_tokenbudget.cache.prediction import predict, recorded_totals
        from pytest_tokenbudget.report.model import number

        prompts = [
            p for p in self.doctor.prompts if p.endpoint == name and p.test_id not in lost_tests
        ]
        if not prompts:
            return None
        predicted = predict(
            prompts,
            minimum=self.cache_minimum,
            requests_per_day=self.config.endpoints[name].requests_per_day,
        )
        stats.metrics["predicted_cache_hit_rate"] = predicted.hit_rate

        def rate(value: Any) -> Any:
            return number("cache_hit_rate", value)

        return {
            "recorded": recorded_totals(prompts).to_dict(rate),
            "predicted": predicted.to_dict(rate),
            "min_cache_hit_rate_checks": "predicted" if self.options.count else "recorded",
        }

    def report(self) -> Report:
        """The measurement, judged against the budgets; plugin/finish.py adds the regression
        gate and the budget update before anything is rendered."""
        results = self.results()
        findings = [
            f
            for f in self.doctor.findings()
            if f.endpoint in self.config.endpoints
            and self.config.endpoints[f.endpoint].cache_lint != "off"
        ]
        for result in results:
            errors = [f for f in findings if f.endpoint == result.name and f.level == "error"]
            if errors and self.config.endpoints[result.name].cache_lint == "error":
                result.problems.append(
                    f"prompt cache: {len(errors)} error-level finding(s), and cache_lint: error"
                )
                result.status = "fail"
        prices = price_source.describe()
        return build_report(
            results,
            config_path=self.config.path.name,
            price_table_date=prices["label"],
            findings=[f.to_dict() for f in findings],
            prices=prices,
        )


CACHE_TTL_SECONDS = 300  # the default (5-minute) prompt-cache lifetime; 1 h when written so
AGREE_PP = Fraction(5, 100)  # recorded and predicted hit rates this close need no note


def cache_note(
    cache: Mapping[str, Any], requests_per_day: float | None, *, checked: bool = False
) -> str:
    """Why the recorded and predicted cache-hit rates differ, when they do by 5 points or
    more: the table shows the recorded one, and a budget may check the other."""
    recorded, predicted = cache.get("recorded") or {}, cache.get("predicted") or {}
    rec, pred = recorded.get("hit_rate"), predicted.get("hit_rate")
    if rec is None or pred is None or abs(Fraction(str(rec)) - Fraction(str(pred))) < AGREE_PP:
        return ""
    why = []
    changed = predicted.get("calls", 0) - recorded.get("calls", 0)
    if changed > 0:
        why.append(
            f"{changed} of {predicted['calls']} calls no longer match the prompt they were "
            "recorded with, so the recorded rate leaves them out"
        )
    ttl = 3600 if recorded.get("write_1h_tokens") else CACHE_TTL_SECONDS
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
    which = cache.get("min_cache_hit_rate_checks", "recorded")
    return (
        f"cache-hit rate recorded {fmt_rate(rec)}, predicted {fmt_rate(pred)}: "
        + "; ".join(why)
        + (f" (min_cache_hit_rate checks the {which} rate)" if checked else "")
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


def calls_of(exchanges: Iterable[Any]) -> list[Call]:
    calls: list[Call] = []
    for exchange in exchanges:
        calls.extend(parse_exchange(exchange))
    return calls
