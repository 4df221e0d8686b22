"""`tokenbudget merge`: which files it reads for each SHARD argument, and a bad shard as one
line on stderr naming the file and the place, exit 2 (the merge itself, end to end, is
tests/integration/test_shards_e2e.py)."""

from __future__ import annotations

import json

import pytest

from pytest_tokenbudget import cli
from pytest_tokenbudget.cli.merge import shard_files
from pytest_tokenbudget.config.budgets import load_config
from pytest_tokenbudget.errors import ReportError
from pytest_tokenbudget.measure.run import BudgetRun, Options
from pytest_tokenbudget.measure.samples import CaseRun
from pytest_tokenbudget.measure.shards import write_shard
from pytest_tokenbudget.providers.usage import Call, Usage

CONFIG = "endpoints:\n  chat:\n    max_input_tokens_p95: 100\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """token_budgets.yml and two shards of it, each of one test."""
    monkeypatch.chdir(tmp_path)
    for variable in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(variable, raising=False)
    path = tmp_path / "token_budgets.yml"
    path.write_text(CONFIG)
    for i in (1, 2):
        run = BudgetRun(load_config(path), Options(path, tmp_path, tmp_path / "shards" / f"s{i}"))
        call = Call("anthropic", "messages", "claude-haiku-4-5", Usage(40 * i, 5))
        run.add_calls([call], endpoint="chat", case_id=f"c{i}", test_id=f"t.py::t[c{i}]")
        run.add_case_run(CaseRun("chat", f"c{i}", f"t.py::t[c{i}]"))
        write_shard(run, commit="abc")
    return tmp_path


def test_a_shard_is_a_file_a_folder_or_a_folder_of_folders(project):
    one, two = "shards/s1/shard.json", "shards/s2/shard.json"
    assert [shown for _, shown in shard_files([one])] == [one]
    assert [shown for _, shown in shard_files(["shards/s1"])] == [one]
    assert [shown for _, shown in shard_files(["shards"])] == [one, two]
    # the same file named twice (a glob and a folder) is read once
    assert [shown for _, shown in shard_files([one, "shards"])] == [one, two]
    (project / "empty").mkdir()
    with pytest.raises(ReportError, match="^empty: no shard.json in the folder or in a folder"):
        shard_files(["empty"])


def test_the_merge_reports_and_exits_as_the_gate(project, capsys):
    assert cli.main(["merge", "shards", "--report", "out"]) == 0
    report = json.loads((project / "out" / "report.json").read_text())
    assert report["endpoints"]["chat"]["calls"] == 2
    assert report["endpoints"]["chat"]["metrics"]["input_tokens_p95"] == 80
    (project / "token_budgets.yml").write_text(CONFIG.replace("100", "79"))
    capsys.readouterr()
    assert cli.main(["merge", "shards", "--report", "out"]) == 2  # another budget file now


def edit(path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def merge_fails(capsys) -> str:
    code = cli.main(["merge", "shards", "--report", "out"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    return err


def test_a_bad_shard_is_one_line_naming_it_and_the_place(project, capsys):
    edit(
        project / "shards/s1/shard.json", lambda d: d["run"]["samples"][0][4][0].__setitem__(2, -1)
    )
    assert merge_fails(capsys) == (
        "tokenbudget merge: shards/s1/shard.json: run.samples[0][4][0][2]: must be a whole "
        "number of 0 or more, not a number (-1)\n"
    )
    assert not (project / "out").exists()


def test_what_a_shard_names_stays_on_one_line(project, capsys):
    """A test id is the fork's text: control characters are shown escaped, never sent to the
    terminal or read by the CI runner as a command."""
    hostile = "t.py::t[\x1b[31m\n::error::owned]"
    for name in ("s1", "s2"):
        edit(
            project / "shards" / name / "shard.json",
            lambda d: d["run"]["case_runs"][0].__setitem__("test_id", hostile),
        )
    err = merge_fails(capsys)
    assert err.startswith("tokenbudget merge: t.py::t[\\x1b[31m\\n::error::owned] ran in both ")
    assert err.count("\n") == 1 and "\x1b" not in err
