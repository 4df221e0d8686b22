"""The --token-budget-* options and ini keys, and whether they turn the plugin on.

Imported by every pytest run of a project that installs the plugin, so it imports only
pytest and modes.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_tokenbudget.modes import (
    GIVEN,
    RECORD_MODES,
    given,
    parse_gate,
    parse_margin,
    parse_mode,
)

# Every --token-budget-* option and its default: any other value turns the plugin on.
OPTION_DEFAULTS: dict[str, Any] = {
    "token_budget_config": None,
    "token_budget_record": "none",
    "token_budget_count": False,
    "token_budget_count_concurrency": 4,
    "token_budget_cassettes": None,
    "token_budget_report": ".token-budget",
    "token_budget_baseline": None,
    "token_budget_max_regression": None,
    "token_budget_update": None,
    "token_budget_update_margin": None,
    "token_budget_reprice": None,
    "token_budget_shard": False,
}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("token-budget", "token budgets (pytest-tokenbudget)")
    group.addoption(
        "--token-budget",
        action="store_true",
        default=False,
        help="measure token usage of token_budget-marked tests and gate on token_budgets.yml",
    )
    _add(
        group,
        "--token-budget-config",
        metavar="PATH",
        help="budget file (default: token_budgets.yml at the rootdir, or ini token_budget_config)",
    )
    _add(
        group,
        "--token-budget-record",
        choices=RECORD_MODES,
        help="recording: none = replay only, never touch the network (default); once = record "
        "missing cassettes; new_episodes = also record new requests; all = re-record",
    )
    _add(
        group,
        "--token-budget-count",
        action="store_true",
        help="input tokens of every Messages request from count_tokens on the request as sent "
        "now (free; cached in token_counts.json beside the cassettes); output from the recording",
    )
    _add(
        group,
        "--token-budget-count-concurrency",
        type=int,
        metavar="N",
        help="count_tokens requests in flight at once for request cases (default 4)",
    )
    _add(
        group,
        "--token-budget-cassettes",
        metavar="DIR",
        help="cassette directory (default: cassettes/ beside the config file)",
    )
    _add(
        group,
        "--token-budget-report",
        metavar="DIR",
        help="where report.json and report.md are written (default: .token-budget/)",
    )
    _add(
        group,
        "--token-budget-baseline",
        metavar="PATH",
        help="compare with this report.json (the base branch's); report.md becomes the diff",
    )
    _add(
        group,
        "--token-budget-max-regression",
        metavar="PCT",
        type=parse_gate,
        help="fail when a metric grows more than PCT%% over the baseline, even within budget",
    )
    _add(
        group,
        "--token-budget-update",
        nargs="?",
        const="tighten",
        type=parse_mode,
        metavar="loosen",
        help="rewrite measured budgets in token_budgets.yml to measured + "
        "margin, only tightening; =loosen also loosens broken budgets (written with '=')",
    )
    _add(
        group,
        "--token-budget-update-margin",
        metavar="PCT",
        type=parse_margin,
        help="headroom over the measured value for --token-budget-update (default 10)",
    )
    _add(
        group,
        "--token-budget-reprice",
        metavar="MODEL",
        help="also show what each endpoint's recorded traffic would cost on MODEL (input "
        "counted for MODEL in count mode, else assumed the same; output as recorded)",
    )
    _add(
        group,
        "--token-budget-shard",
        action="store_true",
        help="this run is one CI shard of the suite: measure and write shard.json to the report "
        "folder, without a verdict; `tokenbudget merge` judges all shards as one run",
    )
    parser.addini("token_budget_config", "path of token_budgets.yml, relative to the ini file")
    parser.addini("token_budget_cassettes", "cassette directory, relative to the ini file")


def _add(group: pytest.OptionGroup, flag: str, **kwargs: Any) -> None:
    """An option whose default is in OPTION_DEFAULTS, and that records it was given."""
    action = given(kwargs.pop("action", "store"))
    group.addoption(
        flag, default=OPTION_DEFAULTS[flag[2:].replace("-", "_")], action=action, **kwargs
    )


def enabled(config: pytest.Config) -> bool:
    """--token-budget, or any other --token-budget-* option: a CI line that forgets the
    flag must not be green having measured nothing (the ini keys do not turn it on)."""
    if config.getoption("token_budget") or getattr(config.option, GIVEN, False):
        return True
    return any(config.getoption(dest) != default for dest, default in OPTION_DEFAULTS.items())
