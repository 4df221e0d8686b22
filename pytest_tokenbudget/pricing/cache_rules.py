"""The prompt cache's published rules (cache_minimums.json): minimum cacheable lengths per
model, the lookback window, the TTLs, with their dated source. Data only, read once; below
both the cache simulation and the price book, which checks it knows every model."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TypedDict

_TABLE = Path(__file__).with_name("cache_minimums.json")


class CacheRules(TypedDict):
    """cache_minimums.json as shipped (its notes left out: prose for the reader)."""

    schema: str
    date: str
    source: str
    unit: str
    default: int
    minimums: dict[str, int]
    from_earlier_page: list[str]
    unpublished: list[str]
    no_prompt_caching: list[str]
    lookback_positions: int
    lookback_runs: list[str]
    ttl_seconds: dict[str, int]


@lru_cache(maxsize=1)
def cache_rules() -> CacheRules:
    """The shipped, dated table: minimums per model, lookback window, TTLs."""
    rules: CacheRules = json.loads(_TABLE.read_text(encoding="utf-8"))
    return rules
