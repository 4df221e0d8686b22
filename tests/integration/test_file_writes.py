"""Files as a user expects: the umask's mode, token_budgets.yml's own mode and symlink kept,
one run's report in the report folder, never a mix of two."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import ruamel.yaml  # noqa: F401  (loaded out here: pytester's in-process runs drop modules)
from conftest import FAKE_KEY
from project_files import copy_example

from pytest_tokenbudget.files.atomic import write_atomic
from pytest_tokenbudget.report.json_io import write_report

RUN = ("--token-budget", "-p", "no:cacheprovider")
LOOSE = ("    max_input_tokens_p95: 1300\n", "    max_input_tokens_p95: 8000\n")

posix_modes = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def loose_example(pytester: pytest.Pytester) -> Path:
    """The example project with one budget loose enough for --token-budget-update to move."""
    text = copy_example(pytester.path)
    assert text.count(LOOSE[0]) == 1
    config = pytester.path / "token_budgets.yml"
    config.write_text(text.replace(*LOOSE))
    pytester.syspathinsert()
    return config


# -- modes ---------------------------------------------------------------------------------
@posix_modes
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, mask):
    with umask(mask):
        write_atomic(tmp_path / "token_counts.json", "{}\n")
        write_report(tmp_path / "report", {"run": 1}, "# run 1\n", html="<p>run 1</p>")
    expected = 0o666 & ~mask
    assert mode_of(tmp_path / "token_counts.json") == expected
    for name in ("report.json", "report.md", "report.html"):
        assert mode_of(tmp_path / "report" / name) == expected, name


@posix_modes
def test_a_regenerated_file_gets_the_umask_mode_back(tmp_path):
    """A report or cassette an older version wrote 0600 is the user's mode again once
    rewritten: only files the user edits keep their own."""
    path = tmp_path / "report.json"
    path.write_text("{}")
    path.chmod(0o600)
    with umask(0o022):
        write_atomic(path, '{"run": 2}\n')
    assert mode_of(path) == 0o644 and path.read_text() == '{"run": 2}\n'


@posix_modes
def test_keep_mode_keeps_an_existing_files_mode(tmp_path):
    path = tmp_path / "token_budgets.yml"
    path.write_text("endpoints: {}\n")
    path.chmod(0o640)
    with umask(0o077):
        write_atomic(path, "endpoints: {}  # edited\n", keep_mode=True)
        write_atomic(tmp_path / "new.yml", "x\n", keep_mode=True)  # no file yet: the umask
    assert mode_of(path) == 0o640 and path.read_text().endswith("# edited\n")
    assert mode_of(tmp_path / "new.yml") == 0o600


@posix_modes
def test_the_budget_update_keeps_the_configs_mode(pytester):
    config = loose_example(pytester)
    config.chmod(0o644)
    with umask(0o077):  # a strict umask must not narrow the user's file
        result = pytester.runpytest(*RUN, "--token-budget-update")
    assert result.ret == 0
    assert "max_input_tokens_p95: 8000\n" not in config.read_text()  # it was rewritten
    assert mode_of(config) == 0o644
    # and the run's own files, new, follow that umask
    assert mode_of(pytester.path / ".token-budget" / "report.json") == 0o600


# -- symlinks ------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "symlink") or os.name != "posix", reason="symlinks")
def test_a_symlinked_config_is_updated_through_the_link(pytester):
    target = pytester.path / "token_budgets.real.yml"
    loose_example(pytester).rename(target)
    target.chmod(0o640)
    link = pytester.path / "token_budgets.yml"
    link.symlink_to(target.name)
    result = pytester.runpytest(*RUN, "--token-budget-update")
    assert result.ret == 0
    assert link.is_symlink() and os.readlink(link) == target.name
    assert "max_input_tokens_p95: 8000\n" not in target.read_text()
    assert mode_of(target) == 0o640
    assert not [p.name for p in pytester.path.glob(".*.tmp")]


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name != "posix", reason="symlinks")
def test_a_symlink_the_plugin_did_not_ask_to_follow_is_replaced_not_written_through(tmp_path):
    """A count cache or cassette committed as a symlink (a fork's pull request) never
    steers a write outside the project: the link is replaced by the file."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    project = tmp_path / "project"
    project.mkdir()
    link = project / "token_counts.json"
    link.symlink_to(outside)
    write_atomic(link, "{}\n")
    assert not link.is_symlink() and link.read_text() == "{}\n"
    assert outside.read_text() == "keep me\n"


# -- one run's report ----------------------------------------------------------------------
def runs_in(folder: Path) -> set[str]:
    """The run each report file in the folder says it is from."""
    return {
        str(json.loads((folder / "report.json").read_text())["run"]),
        (folder / "report.md").read_text().removeprefix("# run ").split("\n")[0],
        (folder / "report.html").read_text().removeprefix("<p>run ").split("<")[0],
    }


def write_run(folder: Path, run: str) -> None:
    body = f"{run} " * 20_000  # big enough that writing a file takes a while
    write_report(
        folder, {"run": run, "body": body}, f"# run {run}\n{body}\n", html=f"<p>run {run}</p>{body}"
    )


def test_two_runs_sharing_a_report_folder_leave_one_runs_files(tmp_path):
    folder = tmp_path / ".token-budget"

    def run(start: threading.Barrier, name: str) -> None:
        start.wait()  # all at once, as runs that finish together
        write_run(folder, name)

    for round_ in range(25):
        start = threading.Barrier(3)
        threads = [threading.Thread(target=run, args=(start, f"{round_}.{i}")) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(runs_in(folder)) == 1, f"round {round_}: {runs_in(folder)}"
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json", "report.md"]


def test_other_files_in_the_folder_are_left_and_an_older_html_is_removed(tmp_path):
    folder = tmp_path / ".token-budget"
    write_run(folder, "1")
    (folder / "pr-number").write_text("42\n")  # as the CI recipe writes beside the report
    write_report(folder, {"run": "2"}, "# run 2\n")  # no html this time
    assert sorted(p.name for p in folder.iterdir()) == ["pr-number", "report.json", "report.md"]
    assert (folder / "pr-number").read_text() == "42\n"


def test_a_report_refused_for_a_secret_leaves_the_previous_one_whole(tmp_path):
    folder = tmp_path / ".token-budget"
    write_run(folder, "1")
    with pytest.raises(Exception, match="refusing to write"):
        write_report(folder, {"run": "2"}, f"# run 2\n{FAKE_KEY}\n", html="<p>run 2</p>")
    assert runs_in(folder) == {"1"}
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json", "report.md"]


REPORT_HOOK = f"""
def pytest_tokenbudget_report(report, config):
    return "## extra\\n{FAKE_KEY}\\n"
"""


def test_the_job_summary_gets_no_report_that_was_refused_for_a_secret(
    project, recording_env, monkeypatch, tmp_path
):
    """The job summary is report.md as written: a section a report hook adds with a key in
    it is refused for both, never published on the job's page."""
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    project.makeconftest(REPORT_HOOK)
    result = project.runpytest(*RUN, "--token-budget-record=once")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*could not write the report*refusing to write*"])
    assert not summary.exists() or FAKE_KEY not in summary.read_text()
    assert not (project.path / ".token-budget" / "report.md").exists()
