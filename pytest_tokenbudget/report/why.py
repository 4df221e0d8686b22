"""Why an endpoint's cost moved, in one line a reviewer reads first: the parts of its
prompt and answer that grew (report.json's anatomy), in tokens per call, then dollars.

"chat_reply: +1,440 input tokens per call (+44.5%), all in the system prompt; +$158/month".
Read from the comparison with the baseline (report/diff_model.py `PartDiff`); without an
anatomy on both sides, the line says which metrics moved instead. Also the parts' names as
people say them, and where an endpoint's tokens go when there is no baseline. Plain text:
each renderer (report.md, report.html, the terminal) escapes it for its sink.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_tokenbudget.measure.metrics import label
from pytest_tokenbudget.measure.metrics import metric as facts
from pytest_tokenbudget.report.diff_model import CHANGED, Diff, EndpointDiff, MetricDiff, PartDiff
from pytest_tokenbudget.report.model import Anatomy, PartFigures

INPUT_NAMES = {
    "tools": "tool definitions",
    "system": "system prompt",
    "history": "conversation history",
    "tool_results": "tool results",
    "documents": "documents and images",
    "latest_turn": "latest user turn",
    "unattributed": "unattributed",
}
OUTPUT_NAMES = {
    "text": "text",
    "thinking": "thinking",
    "tool_use": "tool calls",
    "unattributed": "unattributed",
}
# A part is named when its move is at least this share of the largest one: an estimate's
# error (in `unattributed`) or a stray token elsewhere does not crowd the line.
NAMED_SHARE = 0.05
MAX_NAMED = 3
# Without an anatomy: the metrics the line names, the first that moved (dollars come last).
METRIC_ORDER = (
    "input_tokens_p95",
    "output_tokens_p95",
    "system_tokens_p95",
    "tools_tokens_p95",
    "escalation_rate",
    "cache_hit_rate",
    "predicted_cache_hit_rate",
)
MAX_METRICS = 3
MAX_LINES = 10  # endpoints named; the rest are in the table


# A part a newer version names reads by its key; any other key a report.json holds (it is
# hostile input) as "another part", so the line never carries text that could be markup.
_PART_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")


def part_name(side: str, part: str) -> str:
    names = INPUT_NAMES if side == "input" else OUTPUT_NAMES
    if part in names:
        return names[part]
    return part.replace("_", " ") if _PART_KEY.fullmatch(part) else "another part"


@dataclass(frozen=True)
class Why:
    endpoint: str
    text: str  # after the endpoint's name: "+1,440 input tokens per call (...), ..."


def why_lines(diff: Diff, limit: int = MAX_LINES) -> tuple[list[Why], int]:
    """One line per changed endpoint, the largest move in dollars first; and how many more
    changed than `limit` lets through."""
    found = []
    for order, endpoint in enumerate(diff.endpoints):
        if endpoint.change != CHANGED:
            continue
        text = endpoint_why(endpoint)
        if text:
            monthly = _monthly(endpoint)
            size = abs(float(monthly.delta)) if monthly and monthly.delta is not None else -1.0
            found.append((-size, order, Why(endpoint.name, text)))
    found.sort(key=lambda item: (item[0], item[1]))
    lines = [why for _, _, why in found]
    return lines[:limit], max(len(lines) - limit, 0)


def endpoint_why(endpoint: EndpointDiff) -> str:
    """The parts that moved, side by side, and the dollars; else the metrics that moved."""
    sides = [_side(endpoint.anatomy, side) for side in ("input", "output")]
    moved = [text for text in sides if text]
    if not moved:
        moved = _metrics(endpoint)
    money = _money(endpoint)
    return "; ".join([*moved, *([money] if money else [])])


# -- from the anatomy -------------------------------------------------------------------
def _side(parts: Sequence[PartDiff], side: str) -> str | None:
    """ "+1,440 input tokens per call (+44.5%), all in the system prompt"; None when either
    report has no anatomy on this side, or nothing on it moved."""
    mine = [p for p in parts if p.side == side]
    if not mine or any(p.base_mean is None or p.head_mean is None for p in mine):
        return None
    moves = [p for p in mine if p.delta_mean is not None and round(p.delta_mean) != 0]
    if not moves:
        return None
    total = sum(float(p.delta_mean or 0) for p in mine)
    base = sum(float(p.base_mean or 0) for p in mine)
    largest = max(abs(float(p.delta_mean or 0)) for p in moves)
    named = sorted(
        (p for p in moves if abs(float(p.delta_mean or 0)) >= NAMED_SHARE * largest),
        key=lambda p: -abs(float(p.delta_mean or 0)),
    )[:MAX_NAMED]
    if round(total) == 0:
        head = f"{side} tokens per call unchanged overall"
    else:
        pct = f" ({total / base * 100:+.1f}%)" if base else " (from 0)"
        head = f"{_tokens(total)} {side} tokens per call{pct}"
    return f"{head}, {_where(side, named, everything=len(moves) == len(named) == 1)}"


def _where(side: str, named: Sequence[PartDiff], *, everything: bool) -> str:
    first = named[0]
    if everything:  # no other part moved by a token
        where = "unattributed" if first.part == "unattributed" else _in(side, first.part)
        return f"all {where}" + ("" if first.exact else " (estimated)")
    moves = [f"{part_name(side, p.part)} {_figure(p)}" for p in named]
    spread = sum(abs(float(p.delta_mean or 0)) for p in named)
    if abs(float(first.delta_mean or 0)) * 2 > spread:  # one part is most of it
        return f"mostly {_the(side, first.part)} ({_figure(first)})" + "".join(
            f", {move}" for move in moves[1:]
        )
    return ", ".join(moves)


def _in(side: str, part: str) -> str:
    return "in " + _the(side, part)


def _the(side: str, part: str) -> str:
    name = part_name(side, part)
    known = side == "input" and part in INPUT_NAMES and part != "unattributed"
    return f"the {name}" if known else name


def _figure(p: PartDiff) -> str:
    return ("" if p.exact else "~") + _tokens(float(p.delta_mean or 0))


def _tokens(value: float) -> str:
    return f"{round(value):+,}"


# -- without an anatomy -------------------------------------------------------------------
def _metrics(endpoint: EndpointDiff) -> list[str]:
    """Today's rows in one line: the budgeted and p95 metrics that moved."""
    by_name = {m.metric: m for m in endpoint.metrics}
    out = []
    for name in METRIC_ORDER:
        m = by_name.get(name)
        if m is not None and m.changed and m.delta is not None:
            out.append(f"{label(name)} {_change(m)}")
    return [", ".join(out[:MAX_METRICS])] if out else []


def _change(m: MetricDiff) -> str:
    text = facts(m.metric).show_delta(m.delta)
    return text + (f" ({m.pct:+.1f}%)" if m.pct is not None else " (from 0)")


def _monthly(endpoint: EndpointDiff) -> MetricDiff | None:
    return next((m for m in endpoint.metrics if m.metric == "monthly_cost_usd"), None)


def _money(endpoint: EndpointDiff) -> str | None:
    """The endpoint's change in dollars a month; per request when there is no projection.
    One dollar figure per line (two `$` on a line are math to GitHub)."""
    for metric, unit in (("monthly_cost_usd", "month"), ("cost_per_request_usd", "request")):
        m = next((x for x in endpoint.metrics if x.metric == metric), None)
        if m is not None and m.delta is not None:
            if m.delta == 0:
                return None
            return f"{facts(metric).show_delta(m.delta)}/{unit}"
    return None


# -- where the tokens go, without a baseline ------------------------------------------------
@dataclass(frozen=True)
class Share:
    part: str
    name: str
    mean: float
    share: float | None  # of the side's tokens per call; None when negative or no total
    exact: bool


def shares(anatomy: Anatomy, side: str) -> tuple[float, list[Share]]:
    """(mean tokens per call, the parts that hold any, largest first)."""
    figures: Mapping[str, PartFigures] = anatomy.input if side == "input" else anatomy.output
    total = sum(float(f.mean or 0) for f in figures.values())
    out = [
        Share(
            part,
            part_name(side, part),
            float(f.mean or 0),
            float(f.mean or 0) / total if total > 0 and (f.mean or 0) > 0 else None,
            f.exact,
        )
        for part, f in figures.items()
        if round(float(f.mean or 0)) != 0
    ]
    return total, sorted(out, key=lambda s: -s.mean)


def where_the_tokens_go(anatomy: Anatomy) -> str:
    """ "1,113 input tokens per call: system prompt ~1,090 (98%), ...; 19 output: text 19"."""
    out = []
    for side in ("input", "output"):
        total, parts = shares(anatomy, side)
        if not parts:
            continue
        items = ", ".join(
            f"{s.name} {'' if s.exact else '~'}{round(s.mean):,}"
            + (f" ({_percent(s.share)})" if s.share is not None and len(parts) > 1 else "")
            for s in parts
        )
        what = f"{side} tokens per call" if side == "input" else side
        out.append(f"{round(total):,} {what}: {items}")
    return "; ".join(out)


def _percent(share: float) -> str:
    return "<1%" if share < 0.005 else f"{share:.0%}"
