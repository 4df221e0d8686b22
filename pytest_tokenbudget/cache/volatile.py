"""Values that change between runs: timestamps, dates, ids, counters.

The rule that separates "the same request with a volatile value" from a real
change: two request bodies are the same request when their JSON is identical
after every span matching one of volatile_pattern() (below) is replaced by one
placeholder, in every string. Structure, keys, the model, numbers outside
strings and every other character must be equal. So a new timestamp, a fresh
UUID or a request counter in the system prompt is volatile; an edited word, an
added tool or another model is a change.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from pytest_tokenbudget.cache.prompt import block_of, breakpoints, prompt_blocks, string_leaves

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:day|sday|nesday|rsday|urday)?"
# Longest first: a timestamp is one span, not a date, a time and some numbers.
_PATTERNS = [
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
    rf"{_DAY}, \d{{1,2}} {_MONTH} \d{{4}} \d{{2}}:\d{{2}}:\d{{2}}(?: GMT|[+-]\d{{4}})?",
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    rf"\b(?:{_DAY},? )?{_MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b",
    rf"\b(?:{_DAY},? )?\d{{1,2}} {_MONTH}\.?,? \d{{4}}\b",
    r"\d{4}-\d{2}-\d{2}|\b\d{1,2}/\d{1,2}/\d{2,4}\b",
    r"\b\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?: ?[AaPp][Mm])?",
    r"\b[A-Za-z]{2,12}_[A-Za-z0-9]{8,}\b",  # prefixed ids: req_…, msg_…, user_…
    r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b",  # hex ids, digests
    rf"\b{_DAY}\b",
    r"\d+(?:\.\d+)?",
]


@functools.cache
def volatile_pattern() -> re.Pattern[str]:
    """Every volatile value, as one pattern; compiled on first use (~13 ms), since most
    runs never compare two prompts."""
    return re.compile("|".join(_PATTERNS))


_PLACEHOLDER = "\x00"


def mask(text: str) -> str:
    return volatile_pattern().sub(_PLACEHOLDER, text)


def masked(obj: Any) -> Any:
    """The JSON value with every volatile span of every string replaced."""
    if isinstance(obj, str):
        return mask(obj)
    if isinstance(obj, dict):
        return {k: masked(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [masked(v) for v in obj]
    return obj


@dataclass(frozen=True)
class Span:
    """One volatile value that differs: where, both values, and what it does to the cache."""

    path: str  # "system[0].text", "messages[0].content[1].text"
    offset: int  # character offset in the string as sent now
    before: str  # the other value (recorded, or an earlier request's)
    after: str  # the value as sent now
    in_cached_prefix: bool  # before (or in) a breakpoint's block: every request misses

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "offset": self.offset,
            "before": self.before,
            "after": self.after,
            "in_cached_prefix": self.in_cached_prefix,
        }


def volatile_spans(before: Any, after: Any) -> list[Span] | None:
    """The volatile values by which `after` differs from `before`; None when it differs in
    more than those (a substantive change), [] when the two are equal."""
    if before == after:
        return []
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    if masked(before) != masked(after):
        return None
    blocks = prompt_blocks(after)
    points = breakpoints(blocks)
    last = points[-1] if points else -1
    old = dict(string_leaves(before))
    spans = []
    for path, text in string_leaves(after):
        if old.get(path) == text:
            continue
        index = block_of(path, blocks)
        cached = index is not None and index <= last
        pattern = volatile_pattern()
        pairs = zip(pattern.finditer(old[path]), pattern.finditer(text), strict=False)
        for was, now in pairs:
            if was.group() != now.group():
                spans.append(Span(path, now.start(), was.group(), now.group(), cached))
    return spans
