"""What the plugin keeps on pytest's config and items, and how it finds it again.

Shared by the wiring (plugin/hooks.py) and the items it makes (plugin/request_cases.py), so
neither imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_tokenbudget.measure.run import BudgetRun

RUN_KEY = pytest.StashKey["BudgetRun"]()  # the run, with --token-budget
BASELINE_KEY = pytest.StashKey[dict]()  # the loaded --token-budget-baseline report
CAPTURE_KEY = pytest.StashKey["CaseCapture"]()  # on an item: its capture, while it runs
SUMMARY_KEY = pytest.StashKey[list]()  # the terminal summary's lines
CASE_ID_KEY = pytest.StashKey[str]()  # on an item: the case it is (capture/case_ids.py)
CASE_PROBLEM_KEY = pytest.StashKey[str]()  # on an item: why its case cannot run


def run_of(config: pytest.Config) -> BudgetRun | None:
    return config.stash.get(RUN_KEY, None)
