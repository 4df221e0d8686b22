"""prices.json, read once: what the price source (genai-prices) does not model. The data
residency premium and its exempt models, the long-context band of the models the library
lists none for, the genai-prices release that first prices a model or fast mode, and the
model names reports have always used. Data only, with its dated sources; priced in
pricing/prices.py.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TypedDict

_TABLE = Path(__file__).with_name("prices.json")


class DataResidency(TypedDict):
    date: str
    multiplier: float
    source: str
    exempt: list[str]  # models that pay no premium


class LongContext(TypedDict):
    date: str
    source: str
    models: list[str]
    above: int  # prompt tokens past which every token is billed at the band's rates
    multipliers: dict[str, float]  # rate field -> times the model's own rate


class FirstPricedIn(TypedDict):
    models: dict[str, str]  # model -> the genai-prices release that first prices it
    fast_mode: str


class PriceAdditions(TypedDict):
    """prices.json as shipped (its notes left out: prose for the reader)."""

    schema: str
    data_residency: DataResidency
    long_context: LongContext
    first_priced_in: FirstPricedIn
    aliases: dict[str, str]


@lru_cache(maxsize=1)
def shipped_table() -> PriceAdditions:
    table: PriceAdditions = json.loads(_TABLE.read_text(encoding="utf-8"))
    return table
