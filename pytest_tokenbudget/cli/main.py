"""The `tokenbudget` command: one subcommand per module, errors rendered once, here.

Each subcommand lives beside the logic it drives and registers itself with an
``add_<name>_parser(subparsers)`` function that sets ``func``; this module only wires
them together. Module level stays light (argparse and the standard library): the
config loader, jsonschema and friends are imported when a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_tokenbudget import __version__
from pytest_tokenbudget.errors import TokenBudgetError

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


# -- check ----------------------------------------------------------------------------------
def add_check_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `tokenbudget check [--config PATH]`."""
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
    parser.set_defaults(func=cmd_check)
    return parser


def cmd_check(args: argparse.Namespace) -> int:
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
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# -- wiring ---------------------------------------------------------------------------------
def _registrars() -> list[
    Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], argparse.ArgumentParser]
]:
    """Every subcommand's `add_*_parser`, in the order `--help` lists them."""
    from pytest_tokenbudget.ci.comment import add_comment_parser
    from pytest_tokenbudget.cli.analyze import add_analyze_parser
    from pytest_tokenbudget.cli.diff import add_diff_parser
    from pytest_tokenbudget.cli.prices import add_prices_parser

    return [
        add_check_parser,
        add_diff_parser,
        add_comment_parser,
        add_analyze_parser,
        add_prices_parser,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenbudget",
        description="Token and dollar budgets for code that calls Claude.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registrars():
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; the exit code, never a traceback for bad input."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # usage errors (2), --help and --version (0)
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or EXIT_OK
        return EXIT_BAD_INPUT
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except TokenBudgetError as err:
        print(f"tokenbudget {args.command}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tokenbudget analyze DIR | head`: the reader has gone
        # Python flushes stdout at exit; point it at devnull so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
