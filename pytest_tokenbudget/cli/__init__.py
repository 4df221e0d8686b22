"""The `tokenbudget` command: one module per subcommand, errors rendered once in `main`.

In: argv. Out: files the subcommand writes, one line per problem on stderr, and the exit code.
`main` is imported lazily so that `pytest_tokenbudget.cli:main`, the console script, stays
the public entry point while this package imports nothing at import time. The module it
comes from is `program`, not `main`: importing a submodule named `main` would replace this
function on the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The console script `tokenbudget`."""
    from pytest_tokenbudget.cli.program import main as run

    return run(argv)
