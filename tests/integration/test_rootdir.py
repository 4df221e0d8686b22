"""Path options written as two arguments: pytest takes the value for a test path.

pytest picks the rootdir before plugins add options, so `--token-budget-baseline
/elsewhere/report.json` used to move the rootdir to /elsewhere and the run then
looked for token_budgets.yml there. Each form either works or stops with one
message naming the cause and the `=` form.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from project_files import record, report_of

from pytest_tokenbudget.plugin.rootdir import misplaced_rootdir

INI = "[pytest]\naddopts = -p no:cacheprovider\n"


def _baseline(project, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "report.json"
    shutil.copy(project.path / ".token-budget" / "report.json", target)
    return target


@pytest.fixture(params=["ini", "no-ini"])
def recorded(request, project, recording_env, monkeypatch):
    if request.param == "ini":
        project.makeini(INI)
    record(project).assert_outcomes(passed=4)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    return project


def test_detached_baseline_outside_the_project_names_cause_and_fix(recorded, tmp_path_factory):
    base = _baseline(recorded, tmp_path_factory.mktemp("base-report"))
    result = recorded.runpytest("--token-budget", "--token-budget-baseline", str(base))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"`--token-budget-baseline {base}` moved pytest's rootdir to" in err
    assert f"instead of {recorded.path}." in err
    assert f"Write the option with '=': --token-budget-baseline={base}" in err
    assert "Traceback" not in err and "no such file" not in err


def test_joined_baseline_outside_the_project_compares(recorded, tmp_path_factory):
    base = _baseline(recorded, tmp_path_factory.mktemp("base-report"))
    result = recorded.runpytest("--token-budget", f"--token-budget-baseline={base}")
    assert result.ret == 0, result.stdout.str()
    diff = report_of(recorded)["diff"]
    assert (
        json.loads(base.read_text())["endpoints"]["chat"]["metrics"]["input_tokens_p95"]
        == (diff["endpoints"]["chat"]["metrics"]["input_tokens_p95"]["base"])
    )


def test_detached_baseline_inside_the_project_works(recorded):
    """Inside the project the rootdir does not move: pytest takes the common ancestor."""
    _baseline(recorded, recorded.path / ".token-budget-base")
    result = recorded.runpytest(
        "--token-budget", "--token-budget-baseline", ".token-budget-base/report.json"
    )
    assert result.ret == 0, result.stdout.str()
    assert "diff" in report_of(recorded)


def test_detached_report_dir_that_exists_is_caught_too(recorded, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("reports")
    result = recorded.runpytest("--token-budget", "--token-budget-report", str(elsewhere))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--token-budget-report={elsewhere}*"])


def test_values_that_do_not_move_the_rootdir_are_left_alone(tmp_path):
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir(), outside.mkdir()
    args = ["--token-budget-baseline", str(outside)]
    assert misplaced_rootdir(args, project, rootdir=project, expected=project) is None
    assert misplaced_rootdir(args, project, rootdir=tmp_path, expected=None) is None
    missing = ["--token-budget-baseline", "missing.json"]
    assert misplaced_rootdir(missing, project, rootdir=tmp_path, expected=project) is None
    moved = misplaced_rootdir(args, project, rootdir=tmp_path, expected=project)
    assert moved.joined == f"--token-budget-baseline={outside}"
