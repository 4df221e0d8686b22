"""Where the budget file and the cassettes are, from the options, the ini file or the rootdir.

An option's path is relative to where pytest was invoked, an ini key's to the ini file.
Read by an inert run too (which marked tests only the plugin can serve), so it imports
only pytest.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def budget_paths(config: pytest.Config) -> tuple[Path, Path | None]:
    """The config file, and the cassette directory when given (else beside the config)."""
    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    given = config.getoption("token_budget_config")
    if given:
        path = Path(config.invocation_params.dir, given)
    elif config.getini("token_budget_config"):
        path = ini_dir / config.getini("token_budget_config")
    else:
        path = config.rootpath / "token_budgets.yml"
    cassettes = config.getoption("token_budget_cassettes")
    if cassettes:
        cassette_dir: Path | None = Path(config.invocation_params.dir, cassettes)
    elif config.getini("token_budget_cassettes"):
        cassette_dir = ini_dir / config.getini("token_budget_cassettes")
    else:
        cassette_dir = None  # beside the config file, once it is loaded
    return path, cassette_dir


def report_dir(config: pytest.Config) -> Path:
    return Path(config.invocation_params.dir, config.getoption("token_budget_report"))


def display_path(path: Path, config: pytest.Config) -> str:
    """A path as the user would type it: relative to where pytest was invoked, if inside."""
    try:
        return str(path.relative_to(config.invocation_params.dir))
    except ValueError:
        return str(path)
