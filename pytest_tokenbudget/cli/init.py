"""`tokenbudget init [DIR] [--from-cassettes CASSETTES]`: a project's first budget, scaffolded.

In a project without budgets it writes a commented token_budgets.yml, a cases file and a
test that runs each case (tests/test_token_budgets.py), and adds `.token-budget/` (the
reports) to .gitignore. With `--from-cassettes`, token_budgets.yml holds what `tokenbudget
analyze` proposes from the cassettes a team already has, and no cases file or test: the
tests that made those cassettes exist already and only need the marker.

It never overwrites a file: each file that exists is kept and said so. With an existing
token_budgets.yml the cases file and test are not written either (they belong to the
endpoint of a new one). Exit 0 when every file was written, 1 when a file was kept (a second
run keeps everything and changes nothing), 2 with one message, before anything is written,
when the input cannot be used. What it writes passes `tokenbudget check`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_tokenbudget.cli.command import ExitCode
from pytest_tokenbudget.errors import ConfigError
from pytest_tokenbudget.plain_text import one_line

if TYPE_CHECKING:
    from pytest_tokenbudget.cli.command import Subparsers

CONFIG = "token_budgets.yml"
CASES = "budget_cases/chat_reply.yml"
TEST = "tests/test_token_budgets.py"
GITIGNORE = ".gitignore"
REPORTS = ".token-budget/"  # pytest --token-budget's default report folder
# .gitignore lines that already ignore the report folder at the top of the repository
IGNORED = {".token-budget", ".token-budget/", "/.token-budget", "/.token-budget/"}

CONFIG_TEXT = f"""\
# Token budgets, checked by `pytest --token-budget` (written by `tokenbudget init`).
# One entry per endpoint: a feature of your app that calls Claude. Each budget is a limit
# the run fails when it is broken. Every key: docs/configuration.md of pytest-tokenbudget;
# `tokenbudget check` validates this file.
version: 1
endpoints:
  chat_reply:
    # The model this endpoint is meant to use; a call to another one is an escalation.
    target_model: claude-sonnet-4-6
    # 95th percentiles over the calls, in tokens: the whole prompt (cached parts
    # included) and the reply.
    max_input_tokens_p95: 4000
    max_output_tokens_p95: 600
    # The share of cases that may call a model other than target_model.
    allowed_escalation_rate: 0.15
    # The mean cost of one case (all of its calls), in US dollars.
    max_cost_per_request_usd: 0.05
    # With your traffic, the monthly cost is projected and checked too:
    # requests_per_day: 10000
    # monthly_budget_usd: 8000
    # The cases the marked test runs, one test item and one cassette each.
    cases: {CASES}
"""

CASES_TEXT = """\
# Cases of the chat_reply endpoint (token_budgets.yml): representative inputs, each with a
# unique id. The marked test (tests/test_token_budgets.py) runs once per case and gets the
# case as `budget_case`; every key besides `id` is yours. Put in the long and awkward
# inputs too: they drive the p95 and the escalations.
- id: refund_question
  input: When will I get my refund?
- id: broken_order
  input: >-
    My order arrived broken, the replacement is two weeks late and nobody answers my
    emails. What are my options, and how long will each take?
- id: two_questions
  input: Can I change my delivery address, and do you ship to Norway?
"""

TEST_TEXT = '''\
"""Token budgets: each case of budget_cases/chat_reply.yml runs through code that calls Claude.

Written by `tokenbudget init`. Replace the call below with your own code, the function your
app calls for this feature: every Anthropic API call made while the test runs is measured.

    ANTHROPIC_API_KEY=... pytest --token-budget --token-budget-record=once   # record, once
    pytest --token-budget                                 # replay offline and check the budgets
"""

import anthropic
import pytest


@pytest.mark.token_budget("chat_reply")
def test_chat_reply(budget_case):
    # Replace with your own code, e.g. `assert reply(budget_case["input"])`.
    client = anthropic.Anthropic()
    message = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=600,
        messages=[{"role": "user", "content": budget_case["input"]}],
    )
    assert message.content
'''


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "init",
        help="write a first token_budgets.yml, cases file and test",
        description=f"Write a commented {CONFIG}, a cases file ({CASES}) and a test ({TEST}) "
        f"in DIR, and add {REPORTS} to {GITIGNORE}. Never overwrites a file: exit 0 when "
        "every file was written, 1 when one existed and was kept, 2 when nothing could be "
        "written.",
    )
    parser.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=Path("."),
        metavar="DIR",
        help="the project: your pytest rootdir (default: the current directory)",
    )
    parser.add_argument(
        "--from-cassettes",
        type=Path,
        metavar="CASSETTES",
        help=f"propose the budgets from the cassettes under this folder, as `tokenbudget "
        f"analyze` does, and write only {CONFIG} (and the {GITIGNORE} line)",
    )
    return parser


@dataclass(frozen=True)
class Planned:
    """One file init writes: where, relative to the project, and its text."""

    name: str
    text: str


def run(args: argparse.Namespace) -> ExitCode:
    project: Path = args.directory
    if not project.is_dir():
        raise ConfigError(f"{one_line(project)}: not a directory (give the project's folder)")
    if args.from_cassettes is not None:
        config_text, endpoints = _from_cassettes(args.from_cassettes)
        planned = [Planned(CONFIG, config_text)]
    else:
        endpoints = []
        # token_budgets.yml last: interrupted before it, init run again writes the rest (an
        # existing token_budgets.yml gets no cases file, which it names)
        planned = [
            Planned(CASES, CASES_TEXT),
            Planned(TEST, TEST_TEXT),
            Planned(CONFIG, CONFIG_TEXT),
        ]
    from pytest_tokenbudget.providers.scrub import refuse_if_secret

    for item in planned:  # a file meant to be committed: a key read from a cassette stops init
        refuse_if_secret(item.text, path=_shown(project, item.name))
    ignore = _gitignore_addition(project)
    kept = [p.name for p in planned if _exists(project / p.name)]
    # Cases and a test for the endpoint of a new token_budgets.yml only.
    left_out = [p.name for p in planned if p.name not in kept] if CONFIG in kept else []
    to_write = [p for p in planned if p.name not in kept and p.name not in left_out]
    for item in to_write:
        _check_writable(project, item.name)
    written = _write(project, to_write)
    added = _append(project, ignore, written) if ignore is not None else False

    for name in written:
        print(f"wrote {_shown(project, name)}")
    if added:
        print(f"added {REPORTS} to {_shown(project, GITIGNORE)}")
    for name in kept:
        print(f"kept {_shown(project, name)}: it exists (init never overwrites a file)")
    if left_out:
        names = " and ".join(_shown(project, n) for n in left_out)
        print(f"not written: {names} (they go with a new {CONFIG}, and {CONFIG} exists)")
    if ignore is None:
        print(f"{_shown(project, GITIGNORE)} already ignores {REPORTS}")
    if not written and not added:
        print("nothing written")
    _next_steps(project, written, endpoints)
    return ExitCode.FAILED if kept else ExitCode.OK


def _from_cassettes(directory: Path) -> tuple[str, list[str]]:
    """token_budgets.yml as analyze proposes it from `directory`, and its endpoints."""
    import yaml

    from pytest_tokenbudget.cli.analyze import proposal

    shown = one_line(directory.as_posix())
    text, notes = proposal(
        directory,
        header=f"# Token budgets, checked by `pytest --token-budget` (written by "
        f"`tokenbudget init --from-cassettes {shown}`).",
        command="init",
    )
    marker = [
        "# Mark the tests that made these cassettes with their endpoint's name, a test with",
        '# @pytest.mark.token_budget("NAME") or a whole module with',
        '# pytestmark = [pytest.mark.token_budget("NAME")]. A test that takes `budget_case`',
        "# needs its endpoint's `cases:` too. Every key: docs/configuration.md.",
    ]
    header, _, rest = text.partition("\n")
    notes_text = "".join(f"# note: {one_line(note)}\n" for note in notes)
    config_text = "\n".join([header, *marker, rest]) + notes_text
    endpoints = list(yaml.safe_load(config_text)["endpoints"])
    return config_text, endpoints


def _exists(path: Path) -> bool:
    """A file, folder or link (a dangling one too) is there: init leaves it alone."""
    return path.exists() or path.is_symlink()


def _gitignore_addition(project: Path) -> str | None:
    """What to append to .gitignore so the reports are ignored; None when they already are."""
    from pytest_tokenbudget.files.input_files import CONFIG_MAX_BYTES, read_bounded_text

    path = project / GITIGNORE
    if not _exists(path):
        return f"# pytest --token-budget's reports\n{REPORTS}\n"
    text = read_bounded_text(
        path, limit=CONFIG_MAX_BYTES, what=GITIGNORE, error=ConfigError, shown=one_line(path)
    )
    if any(line.strip() in IGNORED for line in text.splitlines()):
        return None
    # A CRLF file keeps one line ending (a lone LF line would show as a mixed-endings diff).
    eol = "\r\n" if "\r\n" in text else "\n"
    return ("" if text.endswith("\n") or not text else eol) + f"{REPORTS}{eol}"


def _check_writable(project: Path, name: str) -> None:
    """A folder on the way to a file that is not a folder stops init before it writes."""
    folder = project
    for part in Path(name).parts[:-1]:
        folder = folder / part
        if _exists(folder) and not folder.is_dir():
            raise ConfigError(
                f"{one_line(folder)}: not a directory, so {name} cannot be written there"
            )


def _write(project: Path, planned: list[Planned]) -> list[str]:
    """Create each file, never over an existing one; the names written."""
    from pytest_tokenbudget.files.atomic import temp_beside

    written: list[str] = []
    for item in planned:
        path = project / item.name
        try:
            tmp = temp_beside(path, item.text)  # whole or not at all, even if interrupted
            try:
                os.link(tmp, path)  # refused if the file appeared meanwhile: never replaced
            finally:
                tmp.unlink()
        except OSError as err:
            raise _write_error(project, item.name, err, written) from None
        written.append(item.name)
    return written


def _append(project: Path, text: str, written: list[str]) -> bool:
    """Add the report folder to .gitignore (a new one, or the end of the existing one).

    True when .gitignore existed (the line was added), False when init created it."""
    path = project / GITIGNORE
    existed = _exists(path)
    try:
        with open(path, "a", encoding="utf-8", newline="") as f:  # the ending as chosen
            f.write(text)
    except OSError as err:
        raise _write_error(project, GITIGNORE, err, written) from None
    if not existed:
        written.append(GITIGNORE)
    return existed


def _write_error(project: Path, name: str, err: OSError, written: list[str]) -> ConfigError:
    """One message: the file that could not be written, why, and what was written before."""
    before = f" (written before it: {', '.join(written)})" if written else ""
    reason = err.strerror or type(err).__name__
    return ConfigError(f"cannot write {_shown(project, name)}: {reason}{before}")


def _shown(project: Path, name: str) -> str:
    return one_line(project / name)


def _next_steps(project: Path, written: list[str], endpoints: list[str]) -> None:
    if endpoints and CONFIG in written:
        names = ", ".join(endpoints)
        print(f"next: mark the tests that made the cassettes (endpoints: {names}), then run")
        print("  pytest --token-budget")
    elif TEST in written:
        print(f"next: put your own code in {_shown(project, TEST)}, then record once and check:")
        print("  ANTHROPIC_API_KEY=... pytest --token-budget --token-budget-record=once")
        print("  pytest --token-budget")
