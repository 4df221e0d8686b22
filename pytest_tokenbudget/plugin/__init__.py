"""pytest wiring: options, marker, fixtures and hooks, and the end of a run.

In: pytest's config, items and reports. Out: a `BudgetRun` fed with every call, and at the end
the report files, the terminal summary and the exit status. Logic lives in the packages below;
this package decides only when it runs. Unlike the other packages, this one's face imports: it
is the `pytest11` entry point (`pytest_tokenbudget.plugin`), and pytest looks the hooks and
fixtures up on this module.
"""

from pytest_tokenbudget.plugin.hooks import (
    budget_case,
    pytest_addhooks,
    pytest_addoption,
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_generate_tests,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
    token_budget,
)

__all__ = [
    "pytest_addoption",
    "pytest_addhooks",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_collection_modifyitems",
    "pytest_collection_finish",
    "budget_case",
    "token_budget",
    "pytest_sessionfinish",
    "pytest_testnodedown",
    "pytest_terminal_summary",
]
