"""`tokenbudget merge SHARD... --report DIR`: CI shards judged as one run.

Each `pytest --token-budget-shard` job wrote a shard.json (measure/shards.py); this reads
them all, checks they are shards of one run of the token_budgets.yml here, merges them and
concludes exactly as a serial `pytest --token-budget` would (finish/conclusion.py):
report.json, .md and .html, the terminal summary, the GitHub annotations and job summary,
and the gate's exit code. Shards come from other jobs, a fork's among them: each is read
checked, and a bad one is one message naming it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_tokenbudget.cli.command import ExitCode
from pytest_tokenbudget.errors import ReportError, TokenBudgetError
from pytest_tokenbudget.modes import parse_gate
from pytest_tokenbudget.plain_text import one_line

if TYPE_CHECKING:
    from pytest_tokenbudget.cli.command import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Register `tokenbudget merge` on the `tokenbudget` command's subparsers."""
    parser = subparsers.add_parser(
        "merge",
        help="judge the shard.json files of `pytest --token-budget-shard` jobs as one run",
        description="Merge the shard.json files of a sharded run into the report one run of "
        "the whole suite would have written, and gate on it. Exit 0; 1 when a budget is "
        "broken or the regression gate trips; 2 on bad input.",
    )
    parser.add_argument(
        "shards",
        nargs="+",
        metavar="SHARD",
        help="a shard.json, or a folder holding one (or folders holding one each, as "
        "downloaded CI artifacts nest them)",
    )
    parser.add_argument(
        "--config",
        default="token_budgets.yml",
        metavar="PATH",
        help="the budget file the shards ran with (default: token_budgets.yml here)",
    )
    parser.add_argument(
        "--report",
        required=True,
        metavar="DIR",
        help="where report.json, report.md and report.html are written",
    )
    parser.add_argument(
        "--baseline", default=None, metavar="PATH", help="the base branch's report.json"
    )
    parser.add_argument(
        "--max-regression",
        type=parse_gate,
        default=None,
        metavar="PCT",
        help="fail when a metric grows more than PCT%% over the baseline, even within budget",
    )
    return parser


def shard_files(given: list[str]) -> list[tuple[Path, str]]:
    """Each SHARD argument as its shard.json (path, as shown): the file itself, the one in the
    folder, or those one folder down (`shards/` holding one folder per downloaded artifact)."""
    from pytest_tokenbudget.measure.shards import FILE_NAME

    found: dict[Path, str] = {}
    for text in given:
        path = Path(text)
        if not path.is_dir():
            found.setdefault(path.resolve(), text)
            continue
        inside = path / FILE_NAME
        nested = [inside] if inside.exists() else sorted(path.glob(f"*/{FILE_NAME}"))
        if not nested:
            raise ReportError(f"no {FILE_NAME} in the folder or in a folder inside it", path=text)
        for file in nested:
            found.setdefault(file.resolve(), str(file))
    return [(path, shown) for path, shown in found.items()]


def run(args: argparse.Namespace) -> ExitCode:
    from pytest_tokenbudget.config.budgets import load_config
    from pytest_tokenbudget.finish.conclusion import conclude
    from pytest_tokenbudget.measure.shards import check_together, merged_run, read_shard
    from pytest_tokenbudget.pricing import source

    try:
        shards = [read_shard(path, shown=shown) for path, shown in shard_files(args.shards)]
    except TokenBudgetError as err:  # a fork's file: what it makes us say stays on one line
        raise ReportError(one_line(err)) from None
    shards.sort(key=lambda shard: shard.shown)  # the same report whatever order they came in
    config = load_config(args.config)
    check_together(shards, config, price_source=source.describe()["source"])
    baseline = None
    if args.baseline is not None:
        from pytest_tokenbudget.report.reader import load_report

        try:
            baseline = load_report(args.baseline)
        except TokenBudgetError as err:
            raise ReportError(f"baseline {one_line(err)}") from None
    merged = merged_run(shards, config, Path(args.report))
    workspace = os.environ.get("GITHUB_WORKSPACE") or os.getcwd()
    conclusion = conclude(
        merged,
        baseline=baseline,
        max_regression_pct=args.max_regression,
        config_path=os.path.relpath(config.path, workspace),
        report_hook=lambda report: [],  # the team's conftest is not loaded here
        github=os.environ.get("GITHUB_ACTIONS") == "true",
        display=_shown,
    )
    for line in conclusion.lines:  # rendered for the terminal and CI as the plugin prints them
        print(line)
    return ExitCode.FAILED if conclusion.failed else ExitCode.OK


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to here, if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
