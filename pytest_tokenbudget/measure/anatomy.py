"""Where an endpoint's tokens go: each call's prompt and answer by part, and per endpoint.

A call's input is split into the parts of cache/parts.py (tools, system, history,
tool_results, documents, latest_turn) and its output into `text`, `thinking` and
`tool_use`; `unattributed` is what the parts leave of what the call was billed, so the
figures of a call always add up to its recorded prompt and output.

- Input, counted: when token_counts.json holds the counts of the request and of its
  prefixes (capture/counting.py counts them in count mode), every part is exact, and
  `unattributed` is the recorded prompt less the count (0 in count mode).
- Input, estimated: each part from its own text (cache/parts.units), never as a share of
  the whole: a part that did not change keeps its figure when another grows, and the
  estimates' error is `unattributed`, never spread over the parts.
- Output: from the response's own blocks. A response of one kind (text only, say) is
  exact: that part is the billed output. With thinking, the thinking is what the billed
  output leaves after the text and tool calls' estimates (Claude 4 bills the full thinking
  and returns a summary); otherwise each part is estimated and the rest is `unattributed`.

Per endpoint: each part's mean and p95 tokens per call, its dollars (each call's tokens
priced at the tier their place in the prompt falls in: cache reads first, then 1-hour and
5-minute writes, then uncached, parts in cache order) and whether every figure is exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

from pytest_tokenbudget.cache.parts import (
    INPUT_PARTS,
    EstimateMemo,
    block_units,
    counted_parts,
    estimate_parts,
)
from pytest_tokenbudget.capture.counting import CountCache, part_counts
from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.measure.stats import percentiles
from pytest_tokenbudget.pricing.prices import PriceBook
from pytest_tokenbudget.providers import bedrock
from pytest_tokenbudget.providers.bodies import (
    as_object,
    decode_body,
    event_kind,
    header,
    is_stream,
    read_json,
    sse_events,
)
from pytest_tokenbudget.providers.recorders import Exchange
from pytest_tokenbudget.providers.usage import Call

UNATTRIBUTED = "unattributed"
OUTPUT_PARTS = ("text", "thinking", "tool_use")
INPUT = (*INPUT_PARTS, UNATTRIBUTED)
OUTPUT = (*OUTPUT_PARTS, UNATTRIBUTED)
TEXT, THINKING, TOOL_USE = range(len(OUTPUT_PARTS))
_OUT = len(INPUT)  # where the output figures start in CallAnatomy.tokens
# The parts a budget may limit: metric -> part (config/budgets.py's max_<part>_tokens).
PART_METRICS = {"system_tokens_p95": "system", "tools_tokens_p95": "tools"}
_MILLION = 1_000_000


class CallAnatomy(NamedTuple):
    """One call by part. Plain values only: kept to the end of the run (one per call) and
    shipped from xdist workers as they are."""

    endpoint: str
    case_id: str
    test_id: str
    model: str
    batch: bool
    context: str  # the usage's pricing context ("" for a standard request)
    # as billed: uncached input, cache writes 5m and 1h, cache reads, output (-1: none
    # measured, a request case counted and never generated)
    billed: tuple[int, int, int, int, int]
    tokens: tuple[int, ...]  # INPUT's figures, then OUTPUT's
    exact: int  # bit k: tokens[k] is exact
    counted: bool  # the input was split by counted prefixes

    @property
    def prompt(self) -> int:
        return sum(self.billed[:4])


# -- one call ---------------------------------------------------------------------------------
def input_figures(
    request: Mapping[str, Any],
    whole: int,
    counts: CountCache | None = None,
    memo: EstimateMemo | None = None,
) -> tuple[list[int], int, bool]:
    """(INPUT figures, exact bits, counted): counted when the cache holds every prefix."""
    found = part_counts(counts, dict(request)) if counts is not None else None
    if found is not None:
        counted, chain = found
        parts = counted_parts(chain, counted)
        return [*parts, whole - counted], (1 << len(INPUT)) - 1, True
    parts = estimate_parts(request, memo)
    exact = sum(1 << k for k, n in enumerate(parts) if n == 0)  # a part with no content
    return [*parts, whole - sum(parts)], exact, False


def output_figures(blocks: Sequence[tuple[int, int]] | None, billed: int) -> tuple[list[int], int]:
    """(OUTPUT figures, exact bits) of a response's (part, estimated tokens) blocks."""
    if blocks is None:  # a response this version cannot read: all of it unattributed
        return [0, 0, 0, billed], 0
    estimate = [0, 0, 0]
    present = [False, False, False]
    for part, n in blocks:
        estimate[part] += n
        present[part] = True
    absent = sum(1 << k for k in range(3) if not present[k])
    kinds = sum(present)
    if present[THINKING]:  # billed in full, returned as a summary: what the rest leaves
        rest = billed - estimate[TEXT] - estimate[TOOL_USE]
        estimate[THINKING] = max(rest, 0)
        return [*estimate, min(rest, 0)], absent
    if kinds == 1:  # one kind of block: it is the whole output
        only = present.index(True)
        figures = [0, 0, 0, 0]
        figures[only] = billed
        return figures, 0b1111
    return [*estimate, billed - sum(estimate)], absent | (0 if kinds else 1 << 3)


def response_blocks(exchange: Exchange) -> list[tuple[int, int]] | None:
    """(output part, estimated tokens) of each block of a Messages response: JSON, an SSE
    stream or a Bedrock event stream; None when the body cannot be read."""
    try:
        body = decode_body(exchange.headers, exchange.body)
        content: Any
        content_type = header(exchange.headers, "content-type").lower()
        if bedrock.CONTENT_TYPE in content_type or bedrock.is_event_stream(body):
            content = _streamed(bedrock.stream_events(body))
        elif is_stream(exchange.headers, body):
            content = _streamed(sse_events(body))
        else:
            content = as_object(read_json(body, exchange.headers)).get("content")
    except (CassetteError, ValueError, RecursionError):
        return None
    found = []
    for block in content if isinstance(content, list) else ():
        part = _output_part(block)
        if part is not None:
            found.append((part, block_units(block)))
    return found


def _output_part(block: Any) -> int | None:
    kind = str(block.get("type", "")) if isinstance(block, dict) else ""
    if kind == "text":
        return TEXT
    if kind in ("thinking", "redacted_thinking"):
        return THINKING
    if kind.endswith("tool_use"):
        return TOOL_USE
    return None  # a server tool's result in the answer: the API's doing, no output


def _streamed(events: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The content blocks a stream builds, from their start and their deltas."""
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    for name, event in events:
        kind = event_kind(name, event)
        index = event.get("index")
        if not isinstance(index, int):
            continue
        if kind == "content_block_start":
            blocks[index] = dict(as_object(event.get("content_block")))
        elif kind == "content_block_delta" and index in blocks:
            delta = as_object(event.get("delta"))
            block = blocks[index]
            for field in ("text", "thinking"):
                if isinstance(delta.get(field), str):
                    block[field] = str(block.get(field, "")) + delta[field]
            if isinstance(delta.get("partial_json"), str):
                partial.setdefault(index, []).append(delta["partial_json"])
    for index, pieces in partial.items():  # a tool call's input, streamed as JSON text
        try:
            blocks[index]["input"] = json.loads("".join(pieces))
        except (ValueError, RecursionError):
            blocks[index]["input"] = "".join(pieces)
    return [blocks[i] for i in sorted(blocks)]


def call_anatomy(
    endpoint: str,
    case_id: str,
    test_id: str,
    request: Mapping[str, Any],
    call: Call,
    response: Sequence[tuple[int, int]] | None,
    *,
    counts: CountCache | None = None,
    memo: EstimateMemo | None = None,
    output: bool = True,
) -> CallAnatomy:
    """One Messages call by part; `output` False: counted, never generated."""
    u = call.usage
    whole = u.input_tokens + u.cache_write_5m_tokens + u.cache_write_1h_tokens
    whole += u.cache_read_tokens
    inputs, exact, counted = input_figures(request, whole, counts, memo)
    outputs, out_exact = output_figures(response, u.output_tokens) if output else ([0] * 4, 0)
    billed = (
        u.input_tokens,
        u.cache_write_5m_tokens,
        u.cache_write_1h_tokens,
        u.cache_read_tokens,
        u.output_tokens if output else -1,
    )
    return CallAnatomy(
        endpoint,
        case_id,
        test_id,
        call.model,
        call.batch,
        u.pricing_context,
        billed,
        (*inputs, *outputs),
        exact | out_exact << _OUT,
        counted,
    )


# -- an endpoint ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartStats:
    mean: Fraction  # tokens per call
    p95: int  # nearest rank, as every percentile of the report
    cost: Fraction | None  # dollars over the endpoint's calls; None: a model has no price
    exact: bool  # every call's figure was counted (or is 0 for want of content)


@dataclass(frozen=True)
class EndpointAnatomy:
    calls: int  # calls whose prompt was split (Anthropic Messages requests)
    counted_calls: int  # of them, split by counted prefixes
    input: dict[str, PartStats]  # INPUT order
    output: dict[str, PartStats]  # OUTPUT order; {} when no call's output was measured
    worst: dict[str, dict[str, int]]  # budgeted part -> case -> its largest figure

    def metrics(self) -> dict[str, int]:
        """The budgeted parts' metrics (config/budgets.py: max_system_tokens, ...)."""
        return {metric: self.input[part].p95 for metric, part in PART_METRICS.items()}

    def estimated(self, metric: str) -> bool:
        part = PART_METRICS.get(metric)
        return part is not None and not self.input[part].exact

    def drivers(self, metric: str, limit: Fraction, top: int) -> tuple[str, ...]:
        """The cases whose calls carry the most of a budgeted part over its limit."""
        worst = self.worst.get(PART_METRICS.get(metric, ""), {})
        over = [case for case, n in worst.items() if n > limit]
        return tuple(sorted(over, key=lambda c: (-worst[c], c))[:top])


def endpoint_anatomy(
    calls: Sequence[CallAnatomy], *, book: PriceBook, batch: bool = False
) -> EndpointAnatomy | None:
    """The endpoint's figures; None when no call was split."""
    if not calls:
        return None
    measured = [c for c in calls if c.billed[4] >= 0]
    costs = _part_costs(calls, book, batch)
    inputs = {name: _part(calls, k, costs[k] if costs else None) for k, name in enumerate(INPUT)}
    outputs = {
        name: _part(measured, _OUT + k, costs[_OUT + k] if costs else None)
        for k, name in enumerate(OUTPUT)
    }
    worst: dict[str, dict[str, int]] = {}
    for part in PART_METRICS.values():
        k = INPUT.index(part)
        seen = worst[part] = {}
        for c in calls:
            seen[c.case_id] = max(c.tokens[k], seen.get(c.case_id, c.tokens[k]))
    return EndpointAnatomy(
        calls=len(calls),
        counted_calls=sum(c.counted for c in calls),
        input=inputs,
        output=outputs if measured else {},
        worst=worst,
    )


def _part(calls: Sequence[CallAnatomy], k: int, cost: Fraction | None) -> PartStats:
    values = [c.tokens[k] for c in calls]
    found: dict[str, Any] = {}
    percentiles(values, "part", found)
    return PartStats(
        mean=Fraction(sum(values), len(values)) if values else Fraction(0),
        p95=found["part_p95"] or 0,
        cost=cost,
        exact=all(c.exact >> k & 1 for c in calls),
    )


# Rate indices (pricing.RATE_FIELDS) in the order a prompt's tokens are billed: the cache
# read covers the start, writes the next (1-hour breakpoints come before 5-minute ones),
# the rest is uncached.
_READ, _W1H, _W5M, _UNCACHED, _OUTPUT = 4, 3, 2, 0, 1


def _part_costs(
    calls: Sequence[CallAnatomy], book: PriceBook, batch: bool
) -> list[Fraction] | None:
    """Each figure's dollars over the calls (INPUT then OUTPUT); None when one is unpriced.
    Tokens are summed per (rate set, figure, rate) first and priced once."""
    sums: dict[tuple[str, bool, str, int], list[list[int]]] = {}
    for c in calls:
        price = book.find(c.model)
        if price is None:
            return None
        key = (c.model, c.batch or batch, c.context, price.band(c.prompt))
        table = sums.get(key)
        if table is None:
            table = sums[key] = [[0] * 5 for _ in range(len(INPUT) + len(OUTPUT))]
        uncached, w5m, w1h, read, output = c.billed
        tiers = [(_READ, read), (_W1H, w1h), (_W5M, w5m), (_UNCACHED, uncached)]
        _allocate(table, 0, c.tokens[: len(INPUT_PARTS)], tiers)
        if output >= 0:
            _allocate(table, _OUT, c.tokens[_OUT : _OUT + len(OUTPUT_PARTS)], [(_OUTPUT, output)])
    totals = [Fraction(0)] * (len(INPUT) + len(OUTPUT))
    for (model, is_batch, context, band), table in sums.items():
        price = book.find(model)
        rates = price.rates(band=band, batch=is_batch, context=context) if price else None
        if rates is None:
            return None
        for k, row in enumerate(table):
            totals[k] += sum((n * r for n, r in zip(row, rates, strict=True)), Fraction(0))
    return [t / _MILLION for t in totals]


def _allocate(
    table: list[list[int]], start: int, parts: Sequence[int], tiers: list[tuple[int, int]]
) -> None:
    """Each part's tokens, in order, to the tiers in the order they are billed; what the
    parts leave of the tiers is `unattributed`'s (the row after the parts)."""
    left = [[rate, n] for rate, n in tiers]
    at = 0
    for k, n in enumerate(parts):
        n = max(n, 0)
        while n and at < len(left):
            rate, room = left[at]
            take = min(n, room)
            table[start + k][rate] += take
            left[at][1] -= take
            n -= take
            if left[at][1] == 0:
                at += 1
    for rate, room in left:
        table[start + len(parts)][rate] += room
