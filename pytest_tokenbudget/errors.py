"""The small family of errors users see.

Each carries where the problem is (file, line, key) so the edge — pytest's
UsageError or the command line's exit code — renders it once, without a traceback.
"""

from __future__ import annotations

import os
from typing import Any


class TokenBudgetError(Exception):
    """Base error: a message plus the place it is about."""

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "")
        if self.key:
            where = f"{where}: {self.key}" if where else self.key
        return f"{where}: {self.message}" if where else self.message


class ConfigError(TokenBudgetError):
    """token_budgets.yml, a cases file or a command-line flag is wrong."""


class CassetteError(TokenBudgetError):
    """A cassette is missing, corrupt, stale or would hold a secret."""


class PricingError(TokenBudgetError):
    """A model has no price: never priced silently at $0."""


class ReportError(TokenBudgetError):
    """A report or baseline file cannot be read."""


class SecretError(TokenBudgetError):
    """A file about to be written still holds a credential-shaped value."""


def kind_of(value: Any) -> str:
    """What a value that should have been something else is, for a message."""
    if isinstance(value, bool):
        return f"a boolean ({value!r})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return f"{type(value).__name__} {value!r}"[:60]
