"""The `tokenbudget` command: check a config (and, as they come, diff, comment, analyze).

Errors are rendered once, here, as a message and an exit code: never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import TokenBudgetError

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def cmd_check(args: argparse.Namespace) -> int:
    from .config import load_config

    config = load_config(args.config)
    cases = sum(len(e.cases) for e in config.endpoints.values())
    print(f"{args.config}: {len(config.endpoints)} endpoints, {cases} cases — OK")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenbudget", description="Token and dollar budgets for code that calls Claude."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="validate token_budgets.yml")
    check.add_argument("--config", type=Path, default=Path("token_budgets.yml"), metavar="PATH")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except TokenBudgetError as err:
        print(f"tokenbudget {args.command}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
