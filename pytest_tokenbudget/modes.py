"""Option values, shared by the options (plugin) and the modules that act on them, in a
module cheap to import: every pytest run of a project that installs the plugin reads it."""

from __future__ import annotations

import argparse
import math

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
