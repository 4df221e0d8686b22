"""`tokenbudget analyze DIR`: propose budgets from the cassettes a team already has.

Every recorder's files under DIR are read (cli/cassette_scan.py) and their calls grouped
into the endpoints a team would write, each proposed its budgets (cli/budget_proposal.py):
by default one per cassette folder; ``--by file`` or ``--by model`` group otherwise. The
proposal is printed as a token_budgets.yml that `tokenbudget check` accepts; every file it
could not use is named on stderr with the reason. What a file or model name holds is
printed escaped (plain_text), so none can end its line and start another.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_tokenbudget.cli.command import ExitCode
from pytest_tokenbudget.errors import ConfigError
from pytest_tokenbudget.plain_text import one_line

if TYPE_CHECKING:
    from pytest_tokenbudget.cli.command import Subparsers

GROUPINGS = ("folder", "file", "model")  # --by
DEFAULT_HEADROOM = 20.0  # --headroom, and what `tokenbudget init --from-cassettes` proposes with


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "analyze",
        help="propose budgets from existing cassettes",
        description="Read the cassettes under DIR (vcrpy/pytest-recording YAML or JSON, "
        "pydantic-ai, Ruby VCR, R vcr, batch results JSONL) and print a token_budgets.yml "
        "with proposed budgets. Files it cannot use are listed on stderr with the reason.",
    )
    parser.add_argument("directory", type=Path, metavar="DIR")
    parser.add_argument(
        "--by",
        choices=GROUPINGS,
        default="folder",
        help="one endpoint per cassette folder (default: pytest-recording's test module, "
        "this plugin's endpoint), per cassette file (one test), or per model",
    )
    parser.add_argument(
        "--headroom",
        type=float,
        default=DEFAULT_HEADROOM,
        metavar="PCT",
        help="headroom over the measured values (default 20)",
    )
    return parser


def run(args: argparse.Namespace) -> ExitCode:
    directory: Path = args.directory
    text, notes = proposal(
        directory,
        by=args.by,
        headroom=args.headroom,
        header=f"# tokenbudget analyze {directory.as_posix()} --by {args.by}",
    )
    sys.stdout.write(text)
    for note in notes:
        print(f"# note: {one_line(note)}")
    return ExitCode.OK


def proposal(
    directory: Path,
    *,
    by: str = "folder",
    headroom: float = DEFAULT_HEADROOM,
    header: str,
    command: str = "analyze",
) -> tuple[str, list[str]]:
    """The token_budgets.yml proposed from the cassettes under `directory`, and notes on it.

    What was read and skipped is said on stderr (as `tokenbudget COMMAND: ...`); a directory
    with no usable call is a ConfigError. `tokenbudget init --from-cassettes` writes the same.
    """
    from pytest_tokenbudget.cli.budget_proposal import (
        endpoint_name,
        formats_by_endpoint,
        group,
        propose,
    )
    from pytest_tokenbudget.cli.cassette_scan import analyze, summary

    if not directory.is_dir():
        raise ConfigError(f"{one_line(directory)}: not a directory")
    if headroom < 0 or not math.isfinite(headroom):
        raise ConfigError("--headroom must be 0 or more")
    analysis = analyze(directory)
    err = sys.stderr
    print(
        f"tokenbudget {command}: {one_line(directory)}: {_count(analysis.files, 'file')} read, "
        f"{len(analysis.found)} with usage, {len(analysis.skipped)} skipped",
        file=err,
    )
    for skipped in analysis.skipped:
        print(f"  skipped {skipped}", file=err)  # Skipped writes itself on one line
    if not analysis.found:
        raise ConfigError(f"no API calls with usage found under {one_line(directory)}")
    samples = group(analysis, by=by, root=endpoint_name(directory.resolve().name))
    text, notes = propose(
        samples,
        headroom_pct=headroom,
        formats=formats_by_endpoint(samples, analysis),
        header=[one_line(header)],
    )
    for cassette in analysis.found:
        if cassette.left_out:
            notes.append(f"{cassette.path.as_posix()}: left out: {summary(cassette.left_out)}")
    return text, notes


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
