"""What the plugin keeps on pytest's config and items, and how it finds it again.

Shared by the wiring (plugin/hooks.py) and the items it makes (plugin/request_cases.py), so
neither imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_tokenbudget.measure.run import BudgetRun
    from pytest_tokenbudget.plugin.handle import CaseCapture

RUN_KEY: pytest.StashKey[BudgetRun] = pytest.StashKey()  # the run, with --token-budget
BASELINE_KEY = pytest.StashKey[dict[str, Any]]()  # the loaded --token-budget-baseline report
# on an item: its capture, while it runs
CAPTURE_KEY: pytest.StashKey[CaseCapture] = pytest.StashKey()
SUMMARY_KEY = pytest.StashKey[list[str]]()  # the terminal summary's lines
CASE_ID_KEY = pytest.StashKey[str]()  # on an item: the case it is (capture/case_ids.py)
CASE_PROBLEM_KEY = pytest.StashKey[str]()  # on an item: why its case cannot run


def run_of(config: pytest.Config) -> BudgetRun | None:
    return config.stash.get(RUN_KEY, None)
