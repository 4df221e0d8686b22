"""State of one `pytest --token-budget` run: every test's samples, collected as it runs.

Kept on the pytest config; under xdist each worker fills its own and the controller
merges them (`to_wire`, `merge_wire`), so the run is evaluated once, from all samples
(measure/evaluation.py), and reported once (report/build.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_tokenbudget.cache.doctor import Doctor, diagnose_case
from pytest_tokenbudget.cache.parts import EstimateMemo
from pytest_tokenbudget.capture.counting import CountCache
from pytest_tokenbudget.config.budgets import Config
from pytest_tokenbudget.measure.accounting import RECORDING_KINDS
from pytest_tokenbudget.measure.anatomy import CallAnatomy, call_anatomy, response_blocks
from pytest_tokenbudget.measure.samples import (
    SAMPLE_KINDS,
    CaseRun,
    CaseSamples,
    Row,
    Sample,
    case_samples,
)
from pytest_tokenbudget.providers.exchanges import parse_exchange
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import Call, Usage


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
    # each Anthropic Messages call by part (measure/anatomy.py), as the tests end
    anatomy: list[CallAnatomy] = field(default_factory=list)
    _anatomy_memos: dict[str, EstimateMemo] = field(default_factory=dict)  # per endpoint
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
        self._anatomize(endpoint, case_id, exchanges, test_id)

    def _anatomize(
        self,
        endpoint: str,
        case_id: str,
        exchanges: list[tuple[Exchange, list[Call]]],
        test_id: str,
    ) -> None:
        """Each Anthropic Messages call of one case, by part (measure/anatomy.py)."""
        counts = self._part_counts()
        memo = self._anatomy_memos.setdefault(endpoint, {})
        for exchange, calls in exchanges:
            call = next(
                (c for c in calls if c.kind == "messages" and c.provider == "anthropic"), None
            )
            if call is None:
                continue
            try:
                request = exchange.request_json
            except RecursionError:  # nested deeper than json can read: no prompt to split
                continue
            if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
                continue
            self.anatomy.append(
                call_anatomy(
                    endpoint,
                    case_id,
                    test_id,
                    request,
                    call,
                    response_blocks(exchange),
                    counts=counts,
                    memo=memo,
                )
            )

    def _part_counts(self) -> CountCache | None:
        """The count cache, when it holds any count: the prefixes that make an anatomy exact."""
        return self.counts if self.counts is not None and len(self.counts) else None

    def diagnose_request(
        self, endpoint: str, case_id: str, request: dict[str, Any], tokens: int, test_id: str
    ) -> None:
        """A request case counted, never sent: the doctor sees it as sent now."""
        model = str(request.get("model", ""))
        minimum = self.cache_minimum(model)
        self.doctor.add_call(endpoint, case_id, request, tokens, minimum, test_id=test_id)
        if isinstance(request.get("messages"), list):
            call = Call("anthropic", "messages", model, Usage(input_tokens=tokens))
            self.anatomy.append(
                call_anatomy(
                    endpoint,
                    case_id,
                    test_id,
                    request,
                    call,
                    None,
                    counts=self._part_counts(),
                    memo=self._anatomy_memos.setdefault(endpoint, {}),
                    output=False,
                )
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
            "anatomy": [list(a) for a in self.anatomy],
        }

    def merge_wire(self, data: dict[str, Any]) -> None:
        self.parts.extend(CaseSamples.from_wire(s) for s in data["samples"])
        self.case_runs.extend(CaseRun.from_dict(c) for c in data["case_runs"])
        sent, cached = data.get("counts", (0, 0))
        self._worker_counts.append((sent, cached))
        self.doctor.merge_wire(data.get("doctor", {}))
        self.recordings.update(data.get("recordings", {}))
        self.reprice_parts.extend(CaseSamples.from_wire(s) for s in data.get("reprice", ()))
        for a in data.get("anatomy", ()):
            endpoint, case_id, test_id, model, batch, context, billed, tokens, exact, counted = a
            self.anatomy.append(
                CallAnatomy(
                    endpoint,
                    case_id,
                    test_id,
                    model,
                    batch,
                    context,
                    (billed[0], billed[1], billed[2], billed[3], billed[4]),
                    tuple(tokens),
                    exact,
                    counted,
                )
            )
