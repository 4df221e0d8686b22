"""The `tokenbudget` command: its subcommands wired together, errors rendered once, here.

Each subcommand is a module of this package with `add_parser(subparsers)` and
`run(args) -> ExitCode` (cli/command.py). Module level stays light (argparse and the
standard library): the config loader, jsonschema and friends are imported when a command
runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pytest_tokenbudget import __version__
from pytest_tokenbudget.cli.command import Command, ExitCode
from pytest_tokenbudget.errors import TokenBudgetError


def _commands() -> list[Command]:
    """Every subcommand, in the order `--help` lists them."""
    from pytest_tokenbudget.cli import analyze, check, comment, diff, init, merge, prices

    return [init, check, diff, comment, analyze, prices, merge]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenbudget",
        description="Token and dollar budgets for code that calls Claude.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _commands():
        # as `handler`: an option's dest may be `run` (`tokenbudget comment --run`)
        command.add_parser(subparsers).set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; the exit code, never a traceback for bad input."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # usage errors (2), --help and --version (0)
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or ExitCode.OK
        return ExitCode.BAD_INPUT
    try:
        code: ExitCode = args.handler(args)
    except TokenBudgetError as err:
        print(f"tokenbudget {args.command}: {err}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `tokenbudget analyze DIR | head`: the reader has gone
        # Python flushes stdout at exit; point it at devnull so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
