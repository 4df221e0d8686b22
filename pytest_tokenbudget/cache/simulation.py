"""Prompt-cache simulation: the reads and writes the API would bill for requests as sent now.

Recorded usage says what the cache did when a cassette was made; replaying the requests
through the API's published rules (the source and date are in cache_minimums.json) says
what it does for the prompts as they are today, so a prompt edit that breaks caching
shows up before the bill does. The rules:

- A breakpoint (a block with `cache_control`) writes one entry, keyed by the model and
  the whole prefix up to it, tools → system → messages. Nothing is written elsewhere.
- A read checks, for each breakpoint (the last first), at most 20 positions ending at
  it for an entry an earlier request wrote; the longest unexpired one is read and its
  lifetime starts again, at the TTL it was written with. A run of tool_use (or
  tool_result) blocks is one position.
- After the read, each breakpoint past it writes the tokens since the previous read or
  write, billed at that breakpoint's TTL (5 minutes by default, or 1 hour).
- A prefix shorter than the model's minimum cacheable length caches nothing.
- More than 4 breakpoints, a 1-hour one after a 5-minute one, or an unknown TTL: the
  API refuses the request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pytest_tokenbudget.cache.prompt import MAX_BREAKPOINTS, PromptBlock, breakpoints
from pytest_tokenbudget.pricing.cache_rules import cache_rules

if TYPE_CHECKING:
    from pytest_tokenbudget.pricing.prices import PriceBook


class RejectedRequest(ValueError):
    """A request the API answers with 400 invalid_request_error instead of caching."""


def ttl_seconds() -> dict[str, float]:
    return {ttl: float(s) for ttl, s in cache_rules()["ttl_seconds"].items()}


@lru_cache(maxsize=1)
def _book() -> PriceBook:
    from pytest_tokenbudget.pricing.prices import PriceBook

    return PriceBook()


def minimum_cacheable(model: str, overrides: Mapping[str, int] | None = None) -> int:
    """The model's minimum cacheable prompt length; `overrides` (token_budgets.yml) win.

    Names resolve as prices do: a dated id or `-latest` alias takes its model's value.
    An override may also set `default`, the value for models nothing names.
    """
    canonical = _book().canonical
    names = list(dict.fromkeys((model, canonical(model))))
    given = dict(overrides or {})
    folded = {canonical(name): value for name, value in given.items()}
    for table in (given, folded, cache_rules()["minimums"]):
        for name in names:
            if name in table:
                return int(table[name])
    return int(given.get("default", cache_rules()["default"]))


def estimate_cumulative(
    blocks: Sequence[PromptBlock], total_tokens: int, pins: Mapping[int, int] | None = None
) -> list[int]:
    """Tokens up to and including each block, shared out by `chars`, when only the whole
    prompt was counted. `pins` are prefix sizes known exactly (block index -> tokens, e.g.
    a recorded call's cache read + write at its last breakpoint); between them, and up to
    `total_tokens` at the last block, tokens are interpolated in proportion to `chars`.
    """
    if total_tokens < 0:
        raise ValueError(f"total_tokens must be >= 0, got {total_tokens}")
    if not blocks:
        return []
    last = len(blocks) - 1
    anchors = dict(sorted((pins or {}).items()))
    if anchors.setdefault(last, total_tokens) != total_tokens:
        raise ValueError(f"pin at the last block ({anchors[last]}) is not the total {total_tokens}")
    out: list[int] = []
    start, value = -1, 0
    for end, target in anchors.items():
        if not 0 <= end <= last:
            raise ValueError(f"pin at block {end}: the prompt has blocks 0..{last}")
        if not value <= target <= total_tokens:
            raise ValueError(f"pins must grow with the prefix and stay within {total_tokens}")
        weights = [blocks[k].chars for k in range(start + 1, end + 1)]
        if sum(weights) == 0:  # nothing to go by: share evenly
            weights = [1] * len(weights)
        whole, running, span = sum(weights), 0, target - value
        for weight in weights:
            running += weight
            out.append(value + (2 * span * running + whole) // (2 * whole))  # nearest
        start, value = end, target
    return out


@dataclass(frozen=True)
class SimCall:
    """One request as the simulator sees it, at `at` seconds (when the request started)."""

    model: str
    blocks: Sequence[PromptBlock]
    cumulative: list[int]  # tokens up to and including each block; the last is the prompt
    at: float
    kinds: tuple[str, ...] = field(default=())  # each block's type (block_kinds); () = plain


@dataclass(frozen=True)
class Predicted:
    """How the API would bill one call's prompt."""

    read: int
    write_5m: int
    write_1h: int
    uncached: int

    @property
    def total(self) -> int:
        return self.read + self.write_5m + self.write_1h + self.uncached


def block_kinds(blocks: Sequence[PromptBlock]) -> tuple[str, ...]:
    """The type of each block (`tool`, `system`, `text`, `tool_use`, `tool_result`, ...):
    the lookback counts a run of tool_use or tool_result blocks as one position."""
    return tuple(block.kind for block in blocks)


def lookback(kinds: tuple[str, ...], point: int) -> Iterator[int]:
    """Block indices a read through the breakpoint at `point` checks, longest prefix first."""
    window = int(cache_rules()["lookback_positions"])
    runs = set(cache_rules()["lookback_runs"])
    positions, after = 0, None
    for j in range(point, -1, -1):
        kind = kinds[j] if kinds else None
        if not (kind in runs and kind == after):
            positions += 1
            if positions > window:
                return
        yield j
        after = kind


def check_breakpoints(blocks: Sequence[PromptBlock]) -> list[int]:
    """The breakpoints, or RejectedRequest with the API's reason."""
    found = breakpoints(blocks)
    if len(found) > MAX_BREAKPOINTS:
        raise RejectedRequest(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(found)}."
        )
    for i in found:
        if blocks[i].ttl not in ttl_seconds():
            raise RejectedRequest(f"{blocks[i].path}.cache_control.ttl: expected '5m' or '1h'")
    ttls = [blocks[i].ttl for i in found]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
        raise RejectedRequest("a ttl='1h' cache_control block must not come after a ttl='5m' one")
    return found


class CacheSimulator:
    """The API's prompt cache, fed requests in the order they were sent."""

    def __init__(self, minimum: Callable[[str], int], ids: PrefixIds | None = None) -> None:
        self._minimum = minimum
        self._ids = ids or PrefixIds()
        self._entries: dict[str, tuple[float, str]] = {}  # prefix id -> (expiry, ttl)

    def call(self, c: SimCall) -> Predicted:
        if len(c.cumulative) != len(c.blocks) or (c.kinds and len(c.kinds) != len(c.blocks)):
            raise ValueError("cumulative (and kinds) need one entry per block")
        points = check_breakpoints(c.blocks)
        ttls = ttl_seconds()
        minimum = self._minimum(c.model)
        ids = self._ids(c.model, c.blocks)
        read_at, read = -1, 0
        for bp in reversed(points):
            for j in lookback(c.kinds, bp):
                expiry, ttl = self._entries.get(ids[j], (float("-inf"), "5m"))
                if c.cumulative[j] >= minimum and expiry > c.at:
                    read_at, read = j, c.cumulative[j]
                    self._entries[ids[j]] = (c.at + ttls[ttl], ttl)
                    break
            if read_at >= 0:
                break
        written = {"5m": 0, "1h": 0}
        done = read
        for bp in points:
            if bp <= read_at or c.cumulative[bp] < minimum:
                continue
            ttl = c.blocks[bp].ttl or "5m"
            written[ttl] += c.cumulative[bp] - done
            done = c.cumulative[bp]
            self._entries[ids[bp]] = (c.at + ttls[ttl], ttl)
        total = c.cumulative[-1] if c.cumulative else 0
        uncached = total - read - written["5m"] - written["1h"]
        return Predicted(read, written["5m"], written["1h"], uncached)


class PrefixSizes:
    """Exact prefix sizes a recording gives away, for pinning estimate_cumulative.

    A recorded call's cache read + write is its prompt up to its last breakpoint, to the
    token. The same prefix recurs in other calls (the next turn of a chat reads exactly
    there), so sizes are kept by model and prefix and pin every call that shares one.
    """

    def __init__(self, ids: PrefixIds | None = None) -> None:
        self._ids = ids or PrefixIds()
        self._sizes: dict[str, int] = {}

    def learn(self, model: str, blocks: Sequence[PromptBlock], read: int, written: int) -> None:
        points = breakpoints(blocks)
        if points and read + written:
            self._sizes[self._ids(model, blocks)[points[-1]]] = read + written

    def pins(self, model: str, blocks: Sequence[PromptBlock]) -> dict[int, int]:
        ids = self._ids(model, blocks)
        return {i: self._sizes[p] for i, p in enumerate(ids) if p in self._sizes}


class PrefixIds:
    """Each block's prefix id: a digest of the model and every block key up to that block,
    the key of the cache entry a breakpoint there writes.

    The last prompt of each model is remembered: an agent's next call repeats it and adds
    a turn, so only the new blocks are hashed (hashing every prefix of every call anew is
    n^2 digests for a loop of n calls).
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[tuple[PromptBlock, ...], list[str], Any]] = {}

    def __call__(self, model: str, blocks: Sequence[PromptBlock]) -> list[str]:
        """The ids, one per block (a list the caller must not change)."""
        blocks = tuple(blocks)
        last = self._last.get(model)
        if last is not None and blocks[: len(last[0])] == last[0]:  # same blocks: C-speed
            if len(blocks) == len(last[0]):
                return last[1]
            ids, digest, new = list(last[1]), last[2].copy(), blocks[len(last[0]) :]
        else:
            ids, digest, new = [], hashlib.sha256(model.encode("utf-8")), blocks
        for block in new:
            digest.update(b"\x00" + block.key.encode("utf-8"))
            ids.append(digest.copy().hexdigest())
        self._last[model] = (blocks, ids, digest)
        return ids
