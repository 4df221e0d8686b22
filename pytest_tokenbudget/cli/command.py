"""What every `tokenbudget` subcommand is, and the exit codes they all end with.

A subcommand is a module with two functions: `add_parser(subparsers)` registers its name,
help and arguments and returns its parser; `run(args)` does the work and returns an
ExitCode. Input it cannot use is a TokenBudgetError (errors.py) raised out of `run`:
`main` (cli/program.py) renders it once, as `tokenbudget COMMAND: message` on stderr, and
exits BAD_INPUT.
The pytest plugin keeps pytest's own exit codes (plugin/exit_status.py).
"""

from __future__ import annotations

import argparse
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from typing import TypeAlias

    # What `add_subparsers()` returns: typeshed names its class, argparse does not export it.
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a budget is broken or the gate tripped; init kept a file; or our reader went away
    BAD_INPUT = 2  # a usage error, or a file, model or directory that cannot be used
    INTERRUPTED = 130  # Ctrl-C: what a shell reports for SIGINT


class Command(Protocol):
    """A subcommand module (modules satisfy protocols by their functions)."""

    def add_parser(self, subparsers: Subparsers) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> ExitCode: ...
