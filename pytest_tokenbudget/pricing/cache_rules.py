"""The prompt cache's published rules (cache_minimums.json): minimum cacheable lengths per
model, the lookback window, the TTLs, with their dated source. Data only, read once; below
both the cache simulation and the price book, which checks it knows every model."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

_TABLE = Path(__file__).with_name("cache_minimums.json")


@lru_cache(maxsize=1)
def cache_rules() -> dict[str, Any]:
    """The shipped, dated table: minimums per model, lookback window, TTLs."""
    return json.loads(_TABLE.read_text(encoding="utf-8"))
