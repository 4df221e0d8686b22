"""Prefixes compared across requests: the part of a request the cache key covers, a
digest of it with its volatile values masked (equal for requests that differ only in
those), and the volatile values by which two such variants differ.

The doctor (cache/doctor.py) groups an endpoint's requests by masked digest and compares
the variants of each group; a variant keeps its request only while it is the only one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pytest_tokenbudget.cache.prompt import (
    PromptBlock,
    block_of,
    breakpoints,
    prompt_blocks,
    string_leaves,
)
from pytest_tokenbudget.cache.volatile import Span, masked, volatile_pattern

# path -> (in the cached prefix?, (offset, value) of each volatile value in the string)
VolatileValues = dict[str, tuple[bool, tuple[tuple[int, str], ...]]]


@dataclass
class Variant:
    """One distinct prefix among the requests that differ only in volatile values.

    Its request is kept only while it is the only variant of its group; once there are two
    it is reduced to its volatile values (path -> in the cached prefix?, (offset, value)...),
    all that comparing two variants needs (volatile.volatile_spans, from both sides)."""

    first: tuple[str, int, str]  # (test id, index, case id) of its earliest call
    cases: dict[str, None]  # every case it was seen in (an ordered set)
    request: dict[str, Any] | None
    values: VolatileValues | None = None
    last: str = ""  # its last breakpoint's path

    def volatile(self) -> VolatileValues:
        """Its volatile values; from here on the request is no longer kept."""
        if self.values is None:
            self.values, self.last = volatile_values(self.request or {})
            self.request = None
        return self.values

    def to_wire(self) -> list[Any]:
        values = (
            None
            if self.values is None
            else [[p, c, [list(m) for m in v]] for p, (c, v) in self.values.items()]
        )
        return [list(self.first), list(self.cases), self.request, values, self.last]

    @classmethod
    def from_wire(cls, data: list[Any]) -> Variant:
        first, cases, request, values, last = data
        return cls(
            (first[0], first[1], first[2]),
            dict.fromkeys(cases),
            request,
            None
            if values is None
            else {p: (c, tuple((m[0], m[1]) for m in v)) for p, c, v in values},
            last,
        )


def volatile_values(prefix: dict[str, Any]) -> tuple[VolatileValues, str]:
    """Every volatile value of the prefix by path, as volatile_spans finds them; and the
    path of its last breakpoint."""
    blocks = prompt_blocks(prefix)
    points = breakpoints(blocks)
    last = points[-1] if points else -1
    pattern = volatile_pattern()
    out: VolatileValues = {}
    for path, text in string_leaves(prefix):
        found = tuple((m.start(), m.group()) for m in pattern.finditer(text))
        if found:
            index = block_of(path, blocks)
            out[path] = (index is not None and index <= last, found)
    return out, blocks[last].path if points else "none"


def variant_spans(before: VolatileValues, after: VolatileValues) -> list[Span]:
    """The values by which two variants of one prefix differ (they are equal once masked,
    so each string has as many volatile values on both sides)."""
    spans = []
    for path, (cached, now) in after.items():
        was = before.get(path, (False, ()))[1]
        for (_, old), (offset, new) in zip(was, now, strict=False):
            if old != new:
                spans.append(Span(path, offset, old, new, cached))
    return spans


def prefix_only(
    request: dict[str, Any], blocks: list[PromptBlock], points: list[int]
) -> dict[str, Any]:
    """The request cut after its last breakpoint's block: what the cache key covers.

    A top-level cache_control (automatic caching) is kept: it is where the breakpoint is.
    """
    last = blocks[points[-1]].path
    cut: dict[str, Any] = {"model": request.get("model")}
    for key in ("tools", "system", "cache_control"):
        if key in request:
            cut[key] = request[key]
    found = _MESSAGE_BLOCK.fullmatch(last)
    if found:
        i = int(found["message"])
        messages = list(request["messages"][: i + 1])
        if found["part"] is not None:  # a content list: up to the breakpoint's part
            messages[i] = {
                **messages[i],
                "content": messages[i]["content"][: int(found["part"]) + 1],
            }
        cut["messages"] = messages
    return cut


_MESSAGE_BLOCK = re.compile(r"messages\[(?P<message>\d+)\]\.content(?:\[(?P<part>\d+)\])?")


def masked_digest(prefix: dict[str, Any], memo: dict[Any, Any]) -> str:
    """A digest of the prefix with its volatile values masked: equal for requests that
    differ only in those. Each distinct part is masked once (`memo`, as in cache/prompt.py):
    an agent's prefix repeats its history, cases share their system prompt, and masking
    is regular expressions over it."""
    # keys of the request, then each message by its place
    parts: list[tuple[str | int, Any]] = [(k, v) for k, v in prefix.items() if k != "messages"]
    parts += enumerate(prefix.get("messages") or [])
    digests = []
    for key, value in parts:
        seen = memo.get(("masked", key))
        if seen is None or seen[0] != value:
            text = json.dumps([key, masked(value)], sort_keys=True)
            seen = memo[("masked", key)] = (value, hashlib.sha256(text.encode()).hexdigest())
        digests.append(seen[1])
    return hashlib.sha256(" ".join(digests).encode()).hexdigest()
