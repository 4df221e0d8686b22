"""`tokenbudget check`: token_budgets.yml and its cases files validated, without running pytest.

Every problem is listed (file:line: key: message); a model nothing prices is one of them,
unless a pytest_tokenbudget_price hook is said to price it (check runs no hooks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_tokenbudget.cli.command import ExitCode

if TYPE_CHECKING:
    from pytest_tokenbudget.cli.command import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Register `tokenbudget check [--config PATH] [--hook-priced MODEL]`."""
    parser = subparsers.add_parser(
        "check",
        help="validate token_budgets.yml and its cases files",
        description="Validate token_budgets.yml and its cases files. Exit 0 when valid, 2 "
        "with every problem (file:line: key: message) when not.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("token_budgets.yml"),
        metavar="PATH",
        help="the budget file (default: token_budgets.yml in the current directory)",
    )
    parser.add_argument(
        "--hook-priced",
        action="append",
        default=[],
        metavar="MODEL",
        help="a model a pytest_tokenbudget_price hook prices (check runs no hooks; "
        "pytest --token-budget asks them); repeat for several",
    )
    return parser


def run(args: argparse.Namespace) -> ExitCode:
    from pytest_tokenbudget.config.budgets import load_config, notes
    from pytest_tokenbudget.files.yaml_source import problems_error
    from pytest_tokenbudget.pricing.prices import PriceBook, configured_models, model_problems

    config = load_config(args.config)
    unknown = model_problems(config, hook_priced=args.hook_priced)
    if unknown:
        raise problems_error(unknown)
    book = PriceBook(config.pricing)
    for model in dict.fromkeys(m for _, m in configured_models(config)):
        if model in args.hook_priced and book.lookup(model) is None:
            print(
                f"tokenbudget check: note: {model}: left to a pytest_tokenbudget_price hook "
                "(pytest --token-budget asks it when it starts)",
                file=sys.stderr,
            )
    endpoints = len(config.endpoints)
    cases = sum(len(e.cases) for e in config.endpoints.values())
    print(f"{args.config}: {_count(endpoints, 'endpoint')}, {_count(cases, 'case')} — OK")
    for note in notes(config):
        print(f"tokenbudget check: warning: {note}", file=sys.stderr)
    return ExitCode.OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
