"""Samples: one per API call, attributed to its endpoint, case and test.

A run keeps them per test (`CaseSamples`): the calls as rows of plain data, plus the
sums aggregation needs, added up once when the test ends. The end of a run then works
on one object per test, not one per call, and xdist workers ship the rows as they are.

Usage billed in ``usage.iterations`` (a compaction step, an advisor's sub-inference)
arrives as rows of its own right after its call's, marked by their note
(usage.ITERATION_NOTE): each is folded into that call (its tokens are the call's, its
dollars are at its own model) and summed per iteration type for the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NamedTuple

from pytest_tokenbudget.providers.usage import (
    EXECUTOR_STEP,
    ITERATION,
    KNOWN_ITERATIONS,
    Usage,
    context_fields,
    iteration_type,
)

# Call kinds that are samples: generation calls, and the iterations billed with them
# (folded into their call). count_tokens generates nothing.
SAMPLE_KINDS = frozenset({"messages", "batch", "chat", "responses", ITERATION})

# One call, as plain data: (model, input, output, cache_write_5m, cache_write_1h, cache_read,
# provider, batch, recounted, input_only, note, web_searches, context); the token fields are
# Usage's, in its order; context is its pricing_context ("" for a standard request).
Row = tuple[str, int, int, int, int, int, str, bool, bool, bool, str, int, str]


@dataclass(frozen=True)
class Sample:
    endpoint: str
    case_id: str
    test_id: str
    index: int  # order of the call within its test
    model: str
    usage: Usage
    provider: str = "anthropic"
    batch: bool = False
    recounted: bool = False  # input tokens re-counted with count_tokens
    input_only: bool = False  # counted, never generated: output not measured
    note: str = ""

    def row(self) -> Row:
        u = self.usage
        return (
            self.model,
            u.input_tokens,
            u.output_tokens,
            u.cache_write_5m_tokens,
            u.cache_write_1h_tokens,
            u.cache_read_tokens,
            self.provider,
            self.batch,
            self.recounted,
            self.input_only,
            self.note,
            u.web_search_requests,
            u.pricing_context,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        u = self.usage
        return {
            "endpoint": self.endpoint,
            "case_id": self.case_id,
            "test_id": self.test_id,
            "index": self.index,
            "model": self.model,
            "usage": {
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cache_write_5m_tokens": u.cache_write_5m_tokens,
                "cache_write_1h_tokens": u.cache_write_1h_tokens,
                "cache_read_tokens": u.cache_read_tokens,
                "web_search_requests": u.web_search_requests,
                "speed": u.speed,
                "inference_geo": u.inference_geo,
            },
            "provider": self.provider,
            "batch": self.batch,
            "recounted": self.recounted,
            "input_only": self.input_only,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        return cls(**{**data, "usage": Usage(**data["usage"])})


class CaseSamples:
    """The samples of one test of one case, in call order (indices ``first_index`` on).

    The sums are taken here, once per test: tokens per call (whole prompts, outputs),
    calls per model, token and web-search totals per (model, batch, pricing context) for
    pricing, and the case's totals.

    A row whose note marks a ``usage.iterations`` entry (usage.ITERATION_NOTE) is part of
    the call before it: its tokens are added to that call's prompt and output, its model
    counts as called by that call (once per call), and its tokens are priced at its model.
    ``iterations`` sums them per type: (type, model, batch) -> [iterations, calls, input,
    output, cache_write_5m, cache_write_1h, cache_read]. A row with no call before it in
    the test (a part left alone by a grouping) counts as a call of its own.
    """

    __slots__ = (
        "cache_read_sum",
        "case_id",
        "endpoint",
        "first_index",
        "groups",
        "input_only",
        "iterations",
        "models",
        "notes",
        "output",
        "output_sum",
        "prompt",
        "prompt_sum",
        "recounted",
        "rows",
        "test_id",
    )

    def __init__(
        self, endpoint: str, case_id: str, test_id: str, rows: Iterable[Row], first_index: int = 0
    ) -> None:
        self.endpoint = endpoint
        self.case_id = case_id
        self.test_id = test_id
        self.first_index = first_index
        # Tuples, not lists: kept to the end of the run, and the garbage collector stops
        # tracking a tuple of plain values (a run's full collections scan fewer objects).
        self.rows = tuple(rows)
        prompt: list[int] = []
        output: list[int] = []
        models: dict[str, int] = {}
        # (model, batch, context) -> [input, output, cache_write_5m, cache_write_1h,
        # cache_read, web_searches]
        groups: dict[tuple[str, bool, str], list[int]] = {}
        notes: dict[str, int] = {}
        iterations: dict[tuple[str, str, bool], list[int]] = {}
        output_sum = cache_read = recounted = input_only = 0
        # of the call the rows since belong to: its model, whether its output is measured (a
        # counted request case's is not), and the models and types its iterations added (None
        # until it has one: a set per call would cost every run of plain calls)
        call_model, call_output = "", False
        seen: set[str] | None = None
        for model, i, o, w5, w1, r, _provider, batch, rec, only, note, web, ctx in rows:
            step = iteration_type(note) if note else ""
            if step and prompt:  # billed with the call before it: one call, more tokens
                prompt[-1] += i + w5 + w1 + r
                if call_output:
                    output[-1] += o
                if seen is None:
                    seen = set()
                if model != call_model and model not in seen:
                    seen.add(model)
                    models[model] = models.get(model, 0) + 1
            else:  # a call
                call_model, call_output, seen = model, not only, None
                prompt.append(i + w5 + w1 + r)
                if only:
                    input_only += 1
                else:
                    output.append(o)
                if rec:
                    recounted += 1
                if note and not step:
                    notes[note] = notes.get(note, 0) + 1
                models[model] = models.get(model, 0) + 1
            if step and step != EXECUTOR_STEP:  # the executor's own steps: the call's
                if seen is None:
                    seen = set()
                sums = iterations.get((step, model, batch))
                if sums is None:
                    sums = iterations[(step, model, batch)] = [0, 0, 0, 0, 0, 0, 0]
                first = "\0" + step not in seen  # this call's first of its type
                seen.add("\0" + step)
                sums[0] += 1
                sums[1] += first
                sums[2] += i
                sums[3] += o
                sums[4] += w5
                sums[5] += w1
                sums[6] += r
                if first and step not in KNOWN_ITERATIONS:  # named, never dropped
                    unknown = (
                        f"usage.iterations of unknown type {step!r}: counted in the call's "
                        f"tokens and priced at {model}"
                    )
                    notes[unknown] = notes.get(unknown, 0) + 1
            g = groups.get((model, batch, ctx))
            if g is None:
                groups[(model, batch, ctx)] = [i, o, w5, w1, r, web]  # tuples once summed
            else:
                g[0] += i
                g[1] += o
                g[2] += w5
                g[3] += w1
                g[4] += r
                g[5] += web
            output_sum += o
            cache_read += r
        self.prompt = tuple(prompt)
        self.output = tuple(output)
        self.models = models
        self.groups = {key: tuple(sums) for key, sums in groups.items()}
        self.notes = notes
        self.iterations = {key: tuple(sums) for key, sums in iterations.items()}
        self.prompt_sum = sum(prompt)
        self.output_sum = output_sum
        self.cache_read_sum = cache_read
        self.recounted = recounted
        self.input_only = input_only

    def __len__(self) -> int:
        return len(self.rows)

    def samples(self) -> Iterator[Sample]:
        for index, row in enumerate(self.rows, self.first_index):
            model, i, o, w5, w1, r, provider, batch, rec, only, note, web, ctx = row
            usage = Usage(i, o, w5, w1, r, web, **context_fields(ctx))
            yield Sample(
                self.endpoint,
                self.case_id,
                self.test_id,
                index,
                model,
                usage,
                provider,
                batch,
                rec,
                only,
                note,
            )

    def to_wire(self) -> tuple[str, str, str, int, tuple[Row, ...]]:
        """Plain data, so xdist workers can ship samples to the controller."""
        return (self.endpoint, self.case_id, self.test_id, self.first_index, self.rows)

    @classmethod
    def from_wire(cls, data: Any) -> CaseSamples:
        endpoint, case_id, test_id, first_index, rows = data
        return cls(endpoint, case_id, test_id, [tuple(r) for r in rows], first_index)


def case_samples(samples: Iterable[Sample]) -> list[CaseSamples]:
    """Samples in the order given, as runs of consecutive calls of one test of one case."""
    out: list[CaseSamples] = []
    rows: list[Row] = []
    last: Sample | None = None
    for s in samples:
        if last is not None and (
            s.test_id != last.test_id
            or s.case_id != last.case_id
            or s.endpoint != last.endpoint
            or s.index != last.index + 1
        ):
            out.append(
                CaseSamples(
                    last.endpoint, last.case_id, last.test_id, rows, last.index - len(rows) + 1
                )
            )
            rows = []
        rows.append(s.row())
        last = s
    if last is not None:
        out.append(
            CaseSamples(last.endpoint, last.case_id, last.test_id, rows, last.index - len(rows) + 1)
        )
    return out


def in_test_order(parts: Iterable[CaseSamples]) -> list[CaseSamples]:
    """Sorted by test, then by call index (stable), as a serial run collects them, so that
    a parallel run reports exactly as a serial one. Sorts tests, not calls, unless one test
    has samples from several places whose indices interleave."""
    by_test: dict[str, list[CaseSamples]] = {}
    for part in parts:
        by_test.setdefault(part.test_id, []).append(part)
    out: list[CaseSamples] = []
    for test_id in sorted(by_test):
        group = by_test[test_id]
        if all(a.first_index + len(a) <= b.first_index for a, b in pairwise(group)):
            out.extend(group)
        else:  # rare: sort its calls by index (stable), as sorting every sample would
            singles = sorted((s for part in group for s in part.samples()), key=lambda s: s.index)
            out.extend(case_samples(singles))
    return out


class CaseRun(NamedTuple):
    """What happened to one case of an endpoint during the run. One per case, kept to the
    end: its lists are tuples, which the garbage collector stops tracking."""

    endpoint: str
    case_id: str
    test_id: str
    outcome: str = "passed"  # passed | failed | skipped
    errors: tuple[str, ...] = ()
    recorders: tuple[str, ...] = ()  # who served its calls (capture/recording.py)
    unmeasured: tuple[str, ...] = ()  # API requests whose answer carried no usage

    def to_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "case_id": self.case_id,
            "test_id": self.test_id,
            "outcome": self.outcome,
            "errors": list(self.errors),
            "recorders": list(self.recorders),
            "unmeasured": list(self.unmeasured),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseRun:
        return cls(
            **{
                **data,
                "errors": tuple(data.get("errors", ())),
                "recorders": tuple(data.get("recorders", ())),
                "unmeasured": tuple(data.get("unmeasured", ())),
            }
        )
