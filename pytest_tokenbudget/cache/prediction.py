"""Cache reads and writes per endpoint: as recorded, and as predicted for the prompts sent now.

The prediction replays an endpoint's Messages calls through the cache simulator in
test order, as production traffic: cases `86400 / requests_per_day` seconds apart
(all at once without requests_per_day), a case's calls back to back. Prefix sizes
come from the recording where it gives them away (a call's cache read + write is its
prompt up to its last breakpoint), otherwise from each block's share of the whole
prompt (cache_sim.estimate_cumulative).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pytest_tokenbudget.cache.doctor import PromptSeen, in_test_order
from pytest_tokenbudget.cache.simulation import (
    CacheSimulator,
    PrefixIds,
    PrefixSizes,
    RejectedRequest,
    SimCall,
    estimate_cumulative,
)

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class CacheTotals:
    calls: int
    prompt_tokens: int  # whole prompts: uncached + writes + reads
    read_tokens: int
    write_5m_tokens: int
    write_1h_tokens: int

    @property
    def hit_rate(self) -> Fraction | None:
        return Fraction(self.read_tokens, self.prompt_tokens) if self.prompt_tokens else None

    def to_dict(self, rate: Callable[[Fraction | None], Any]) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "read_tokens": self.read_tokens,
            "write_5m_tokens": self.write_5m_tokens,
            "write_1h_tokens": self.write_1h_tokens,
            "hit_rate": rate(self.hit_rate),
        }


def recorded_totals(prompts: Sequence[PromptSeen]) -> CacheTotals:
    """What the recording says, for the calls whose recording still matches the prompt."""
    known = [(p.whole_input_tokens, p.recorded) for p in prompts if p.recorded is not None]
    return CacheTotals(
        calls=len(known),
        prompt_tokens=sum(whole for whole, _ in known),
        read_tokens=sum(read for _, (read, _, _) in known),
        write_5m_tokens=sum(write_5m for _, (_, write_5m, _) in known),
        write_1h_tokens=sum(write_1h for _, (_, _, write_1h) in known),
    )


def predict(
    prompts: Sequence[PromptSeen],
    *,
    minimum: Callable[[str], int],
    requests_per_day: float | None,
) -> CacheTotals:
    ordered = in_test_order(prompts)
    ids = PrefixIds()  # shared: learning, pinning and simulating ask for the same prompts
    sizes = PrefixSizes(ids)
    for p in ordered:
        if p.recorded is not None:
            sizes.learn(p.model, p.blocks, p.recorded[0], p.recorded[1] + p.recorded[2])
    gap = SECONDS_PER_DAY / requests_per_day if requests_per_day else 0.0
    simulator = CacheSimulator(minimum, ids)
    read = w5m = w1h = whole = 0
    case, at = None, -gap
    for p in ordered:
        if p.test_id != case:
            case, at = p.test_id, at + gap
        whole += p.whole_input_tokens
        if not p.blocks:
            continue
        try:
            pins = {
                i: v for i, v in sizes.pins(p.model, p.blocks).items() if v <= p.whole_input_tokens
            }
            # The API bills a few tokens of framing after the last block that no prefix
            # holds: a pin on the last block is the prompt without them.
            total = pins.get(len(p.blocks) - 1, p.whole_input_tokens)
            cumulative = estimate_cumulative(p.blocks, total, pins)
        except ValueError:  # pins that contradict the prompt (it changed): go by share
            cumulative = estimate_cumulative(p.blocks, p.whole_input_tokens)
        try:
            got = simulator.call(SimCall(p.model, p.blocks, cumulative, at, p.kinds))
        except RejectedRequest:  # the doctor names it; the API would cache nothing
            continue
        read, w5m, w1h = read + got.read, w5m + got.write_5m, w1h + got.write_1h
    return CacheTotals(len(ordered), whole, read, w5m, w1h)
