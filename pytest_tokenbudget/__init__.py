"""pytest-tokenbudget: token and dollar budgets for code that calls Claude, as a pytest gate."""

__version__ = "0.1.0"
