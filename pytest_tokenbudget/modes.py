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


MAX_GATE_PCT = 1_000_000  # as a budget file's max_regression_pct (config_schema.json)


def parse_gate(text: str) -> float:
    """A regression gate, --token-budget-max-regression's and the commands' ("10" or "10%"):
    a percentage from 0 to MAX_GATE_PCT, as the budget file's. nan, inf or a larger number
    would make a gate that never trips."""
    try:
        pct = float(text.removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not 0 <= pct <= MAX_GATE_PCT:  # nan fails both
        raise argparse.ArgumentTypeError(
            f"a percentage of growth must be a number from 0 to {MAX_GATE_PCT:,}, got {text!r}"
        )
    return pct + 0.0  # -0 is 0


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
