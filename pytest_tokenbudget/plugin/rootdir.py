"""Did pytest pick its rootdir from one of our option values?

pytest chooses the rootdir and the ini file from the command line *before* any
plugin adds its options, so in `--token-budget-baseline /tmp/base/report.json`
it takes the value for a test path: the rootdir moves towards that path,
the project's ini file (testpaths, pythonpath, our ini keys) is skipped and
token_budgets.yml is looked for in the wrong place. Nothing later can undo that
choice through pytest's public API, so the run stops with a message that names
the cause and the form that works (`--option=value`, which pytest never reads
as a path).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

PATH_OPTIONS = (
    "--token-budget-baseline",
    "--token-budget-config",
    "--token-budget-cassettes",
    "--token-budget-report",
)


@dataclass(frozen=True)
class DetachedValue:
    """A path option written as two arguments, whose value pytest took for a test path."""

    option: str
    value: str

    @property
    def joined(self) -> str:
        return f"{self.option}={self.value}"


def detached_path_values(args: Sequence[str], invocation_dir: Path) -> list[DetachedValue]:
    """Path options given as `--opt VALUE` where VALUE exists (pytest only uses those)."""
    found = []
    for option, value in pairwise(args):
        detached = option in PATH_OPTIONS and not value.startswith("-")
        if detached and Path(invocation_dir, value).exists():
            found.append(DetachedValue(option, value))
    return found


def rootdir_without_values(
    *,
    args: Sequence[str],
    inifile: str | None,
    override_ini: Sequence[str] | None,
    rootdir_arg: str | None,
    invocation_dir: Path,
) -> Path | None:
    """The rootdir pytest picks for these positional args (our values no longer among them).

    pytest's own `determine_setup`, so the answer is pytest's; None when this
    pytest's version of it has another shape (the check is then skipped).
    """
    try:
        from _pytest.config.findpaths import determine_setup

        # Keyword arguments, filtered by the signature of the pytest at hand: typed by it.
        wanted: dict[str, Any] = {
            "inifile": inifile,
            "override_ini": override_ini,
            "args": list(args),
            "rootdir_cmd_arg": rootdir_arg,
            "invocation_dir": invocation_dir,
        }
        accepted = inspect.signature(determine_setup).parameters
        return Path(determine_setup(**{k: v for k, v in wanted.items() if k in accepted})[0])
    except Exception:  # noqa: BLE001 - a private function: never let its changes break a run
        return None


def misplaced_rootdir(
    raw_args: Sequence[str], invocation_dir: Path, rootdir: Path, expected: Path | None
) -> DetachedValue | None:
    """The detached value that moved pytest's rootdir away from `expected`, if any."""
    if expected is None or expected.resolve() == rootdir.resolve():
        return None
    found = detached_path_values(raw_args, invocation_dir)
    return found[0] if found else None


def rootdir_message(
    detached: DetachedValue, rootdir: Path, inifile: Path | None, expected: Path
) -> str:
    ini = f"ini file {inifile}" if inifile else "no ini file"
    return (
        f"pytest-tokenbudget: `{detached.option} {detached.value}` moved pytest's rootdir to "
        f"{rootdir} ({ini}) instead of {expected}. pytest picks "
        f"its rootdir and ini file before plugins add their options, so it took the value "
        f"for a test path, and your project's ini options and token_budgets.yml would be "
        f"missed. Write the option with '=': {detached.joined}"
    )


def check_rootdir(config: pytest.Config) -> None:
    """A UsageError when one of our detached option values moved pytest's rootdir."""
    params, option = config.invocation_params, config.option
    if not detached_path_values(params.args, params.dir):
        return  # the common case: nothing to re-derive, so every run stays cheap
    expected = rootdir_without_values(  # `pytest --help` parses no positional args
        args=getattr(option, "file_or_dir", None) or [],
        inifile=getattr(option, "inifilename", None),
        override_ini=getattr(option, "override_ini", None),
        rootdir_arg=getattr(option, "rootdir", None) or None,
        invocation_dir=params.dir,
    )
    detached = misplaced_rootdir(params.args, params.dir, config.rootpath, expected)
    if detached is not None and expected is not None:
        raise pytest.UsageError(
            rootdir_message(detached, config.rootpath, config.inipath, expected)
        )
