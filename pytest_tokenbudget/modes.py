"""Option values, shared by the options (plugin) and the modules that act on them, in a
module cheap to import: every pytest run of a project that installs the plugin reads it."""

from __future__ import annotations

import argparse
import math
from typing import Any

RECORD_MODES = ("none", "once", "new_episodes", "all")
UPDATE_MODES = ("tighten", "loosen")  # --token-budget-update[=loosen]


# argparse types: a bad value is one usage error, before the run starts
def parse_mode(text: str) -> str:
    if text in UPDATE_MODES:
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a mode (tighten or loosen): write a mode with '=' "
        "(--token-budget-update=loosen), and put test paths before a bare --token-budget-update"
    )


def parse_margin(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a percentage of 0 or more, such as 10, got {text!r}"
        )
    return value


# Set on pytest's option namespace when any --token-budget-* option is parsed, from the
# command line, addopts, PYTEST_ADDOPTS or an @file alike: even at its default value.
GIVEN = "token_budget_option_given"


def given(action: str) -> type[argparse.Action]:
    """argparse's `action` (store, store_true) that also records that it was given."""
    base = {"store": argparse._StoreAction, "store_true": argparse._StoreTrueAction}[action]

    class Given(base):  # type: ignore[valid-type,misc]
        def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
            setattr(namespace, GIVEN, True)
            super().__call__(parser, namespace, values, option)

    return Given
