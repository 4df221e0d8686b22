"""The `tokenbudget` command: one module per subcommand, errors rendered once in `main`.

In: argv. Out: files the subcommand writes, one line per problem on stderr, and the exit code.
`main` is imported lazily so that `pytest_tokenbudget.cli:main`, the console script, stays
the public entry point while this package imports nothing at import time.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """The console script `tokenbudget`."""
    from pytest_tokenbudget.cli.main import main as run

    return run(argv)
