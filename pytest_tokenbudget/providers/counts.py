"""A token count as the API reports it: a whole number, at least 0, below any forgery.

Below providers/anthropic.py, openai.py and bedrock.py, which read counts from recorded answers.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_tokenbudget.errors import CassetteError

MAX_TOKEN_COUNT = 10**12  # far beyond any context window; bigger is corruption or forgery


def token_count(value: Any, where: str = "token count") -> int:
    """A token count: missing or null is 0; it must be a whole number of at least 0.

    A JSON number with a zero fraction (``12.0``) is that whole number, as JSON Schema's
    ``integer`` takes it. Anything else (negative, fractional, NaN, infinite, a boolean, a
    string, a list, an object) is a ``CassetteError`` naming ``where``, the field.
    """
    if value is None:
        return 0
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if number is None:
        if isinstance(value, float) and not math.isnan(value):  # a fraction, or infinite
            raise CassetteError(f"token count {value!r} is not a whole number ({where})")
        raise CassetteError(f"token count {value!r} is not a number ({where})")
    if number < 0:
        raise CassetteError(f"token count {value!r} is negative ({where})")
    if number > MAX_TOKEN_COUNT:
        power = int(number.bit_length() * 0.30103)  # no float or str: either may overflow
        raise CassetteError(f"token count of about 10^{power} is beyond any request ({where})")
    return number
