"""The end of a --token-budget-shard run: shard.json written, no verdict.

A shard measures part of the suite (one job of a CI matrix); its budgets are judged by
`tokenbudget merge` over every shard (measure/shards.py), so the run's exit code stays the
tests' own. A shard that cannot be written fails the run: the merge would miss its tests.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from pytest_tokenbudget.errors import TokenBudgetError
from pytest_tokenbudget.plugin.paths import display_path

if TYPE_CHECKING:
    from pytest_tokenbudget.measure.run import BudgetRun


def end_shard(session: pytest.Session, run: BudgetRun) -> list[str]:
    """Write the shard; the terminal summary's line saying where, or why not."""
    from pytest_tokenbudget.measure.shards import current_commit, shard_summary, write_shard

    config = session.config
    try:
        path = write_shard(run, commit=current_commit(config.rootpath, os.environ))
    except (TokenBudgetError, OSError) as err:
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return [f"FAIL could not write the shard: {err}"]
    calls, cases = shard_summary(run)
    return [
        f"token budget: shard written: {display_path(path, config)} ({calls} calls from "
        f"{cases} cases); the verdict comes from `tokenbudget merge`"
    ]
