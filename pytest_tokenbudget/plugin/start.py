"""The start of a --token-budget run: its inputs checked, then the run made.

Everything that can be wrong before a test runs is a usage error now, never a $0 or a
missing budget at the end: the budget file, a model nothing prices, an unknown
--token-budget-reprice model, an unreadable baseline, a shard asked to judge.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_tokenbudget.errors import TokenBudgetError
from pytest_tokenbudget.plugin.paths import budget_paths, report_dir

if TYPE_CHECKING:
    from pytest_tokenbudget.config.budgets import Config
    from pytest_tokenbudget.measure.run import BudgetRun, Options


def start_run(config: pytest.Config) -> tuple[BudgetRun, dict[str, Any] | None]:
    """The run, and the baseline report it is compared with; a UsageError for bad input."""
    from pytest_tokenbudget.capture.counting import CACHE_FILE, CountCache
    from pytest_tokenbudget.measure.run import BudgetRun

    _check_shard(config)
    options = _options(config)
    budget_config = _load_config(config, options.config_path)
    baseline = _load_baseline(config)
    if options.cassettes is None:
        options.cassettes = budget_config.path.parent / "cassettes"
    run = BudgetRun(budget_config, options, counts=CountCache(options.cassettes / CACHE_FILE))
    _connect_hooks(config, run)
    return run, baseline


def _options(config: pytest.Config) -> Options:
    from pytest_tokenbudget.measure.run import Options

    path, cassette_dir = budget_paths(config)
    reports = report_dir(config)
    for name, where in (("config", path), ("cassettes", cassette_dir), ("report", reports)):
        if where is not None and "\x00" in str(where):  # no file system takes one
            raise pytest.UsageError(
                f"pytest-tokenbudget: --token-budget-{name} (or its ini key): "
                "a path cannot hold a NUL character"
            )
    return Options(
        config_path=path,
        cassettes=cassette_dir,
        report_dir=reports,
        record_mode=config.getoption("token_budget_record"),
        count=config.getoption("token_budget_count"),
        reprice=config.getoption("token_budget_reprice"),
    )


# The options that judge a whole run: a shard holds part of one, so they belong to the merge.
SHARD_REFUSES = {
    "token_budget_baseline": ("--token-budget-baseline", "`tokenbudget merge --baseline`"),
    "token_budget_max_regression": (
        "--token-budget-max-regression",
        "`tokenbudget merge --max-regression`",
    ),
    "token_budget_update": ("--token-budget-update", "a run of the whole suite"),
}


def _check_shard(config: pytest.Config) -> None:
    if not config.getoption("token_budget_shard"):
        return
    for dest, (flag, instead) in SHARD_REFUSES.items():
        if config.getoption(dest) is not None:
            raise pytest.UsageError(
                f"pytest-tokenbudget: {flag} judges the whole run, and a --token-budget-shard "
                f"run measures part of it: use {instead} instead"
            )


def _load_config(config: pytest.Config, path: Path) -> Config:
    """token_budgets.yml, with every model it names priced (by genai-prices, `pricing:`
    or a pytest_tokenbudget_price hook)."""
    from pytest_tokenbudget.config.budgets import load_config
    from pytest_tokenbudget.files.yaml_source import problems_error
    from pytest_tokenbudget.pricing.prices import model_problems

    try:
        budget_config = load_config(path)
        unknown = model_problems(
            budget_config, hook=lambda model: config.hook.pytest_tokenbudget_price(model=model)
        )
        if unknown:
            raise problems_error(unknown)
        reprice = config.getoption("token_budget_reprice")
        if reprice is not None:
            _check_reprice(reprice, budget_config, config)
    except TokenBudgetError as err:
        raise pytest.UsageError(f"pytest-tokenbudget: {err}") from None
    return budget_config


def _check_reprice(model: str, budget_config: Config, config: pytest.Config) -> None:
    """A --token-budget-reprice model nothing prices is a usage error now, never a $0."""
    from pytest_tokenbudget.measure.reprice import unknown_model_message
    from pytest_tokenbudget.pricing.prices import PriceBook

    book = PriceBook(
        budget_config.pricing, fallback=lambda m: config.hook.pytest_tokenbudget_price(model=m)
    )
    message = unknown_model_message(model, book, budget_config.path.name)
    if message:
        raise pytest.UsageError(f"pytest-tokenbudget: {message}")


def _load_baseline(config: pytest.Config) -> dict[str, Any] | None:
    baseline = config.getoption("token_budget_baseline")
    if not baseline:
        return None
    from pytest_tokenbudget.report.reader import load_report

    try:
        return load_report(Path(config.invocation_params.dir, baseline))
    except TokenBudgetError as err:
        raise pytest.UsageError(f"pytest-tokenbudget: baseline {err}") from None


def _connect_hooks(config: pytest.Config, run: BudgetRun) -> None:
    """The built-in usage parsers registered, and the run given pytest's hooks as callables."""
    from pytest_tokenbudget.providers.parsers import BUILTIN

    for name, parser in BUILTIN.items():
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(parser(), name)
    hook = config.hook
    run.parse = lambda exchange: hook.pytest_tokenbudget_parse_usage(exchange=exchange) or []
    run.price_hook = lambda model: hook.pytest_tokenbudget_price(model=model)
    run.scrub_hook = lambda interaction: hook.pytest_tokenbudget_scrub(interaction=interaction)


def use_credentials(config: pytest.Config, run: BudgetRun) -> None:
    """Count online only with a real key; in replay, placeholders for the keys not set
    (removed again when pytest's config is cleaned up)."""
    from pytest_tokenbudget.capture.credentials import can_count_online, placeholder_credentials

    run.can_count_online = can_count_online(os.environ)
    if run.options.record_mode != "none":
        return
    for variable, value in placeholder_credentials(os.environ).items():
        os.environ[variable] = value
        config.add_cleanup(_unsetter(variable))


def _unsetter(variable: str) -> Callable[[], None]:
    def unset() -> None:
        os.environ.pop(variable, None)

    return unset
