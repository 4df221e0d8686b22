"""CI shards end to end: `pytest --token-budget-shard` on parts of the bundled example, then
`tokenbudget merge`, give the report, the terminal summary, the job summary and the exit
code of one serial run over all of it; the commands are docs/shards.md's recipes.

Every pytest run here is in process (pytester.runpytest) and the merge is `cli.main` called
in process: a shard differs from a serial run only in how it ends, not in what it imports.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from paths import DOCS
from project_files import copy_example

from pytest_tokenbudget import cli

RUN = ("-p", "no:cacheprovider")
REPORTS = ("report.json", "report.md", "report.html")
SECTION = "= token budget ="


def example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_example(pytester.path)
    pytester.syspathinsert()
    monkeypatch.chdir(pytester.path)
    for variable in ("GITHUB_SHA", "CI_COMMIT_SHA", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))


def summary(result: pytest.RunResult) -> list[str]:
    """The token budget section of a pytest run's terminal output."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if SECTION in line) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("token budget: "))
    return lines[start : end + 1]


def shard(pytester: pytest.Pytester, name: str, *args: str) -> pytest.RunResult:
    """A shard run writing `name`/shard.json: `args` are the whole command line when they
    ask for a shard, else what selects its tests."""
    if "--token-budget-shard" not in args:
        args = ("--token-budget-shard", "--token-budget-report", name, *args)
    result = pytester.runpytest(*args, *RUN)
    [line] = summary(result)
    assert line.startswith(f"token budget: shard written: {name}/shard.json (")
    assert line.endswith("); the verdict comes from `tokenbudget merge`")
    return result


def merge(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    return merged(capsys, ["merge", *args])


def reports(folder: Path) -> list[str]:
    """The report files' texts, removed: the next run's are its own."""
    texts = [(folder / name).read_text() for name in REPORTS]
    for name in REPORTS:
        (folder / name).unlink()
    return texts


def recipes() -> tuple[dict[str, Any], dict[str, Any]]:
    """docs/shards.md's GitHub workflow and GitLab pipeline, as written there."""
    github, gitlab = re.findall(r"```yaml\n(.*?)```", (DOCS / "shards.md").read_text(), re.S)
    return yaml.safe_load(github), yaml.safe_load(gitlab)


def command(line: str, expected: str) -> list[str]:
    """A recipe's command line as arguments, after its program: `python -m pytest` or
    `tokenbudget` (run in process here)."""
    words = shlex.split(line)
    program = expected.split()
    assert words[: len(program)] == program, line
    return words[len(program) :]


def merged(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, list[str], str]:
    """`tokenbudget ARGS`, its shell globs expanded."""
    expanded = [a for arg in args for a in (sorted(glob.glob(arg)) if "*" in arg else [arg])]
    capsys.readouterr()
    code = cli.main(expanded)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_the_recipes_shards_merge_into_the_serial_run(pytester, monkeypatch, capsys):
    """The shard and merge commands of docs/shards.md, as written there (pytest-split groups):
    the GitHub matrix on the example, then the GitLab `parallel:` job on it with a broken
    budget, a baseline gate and GitHub's annotations and job summary. Each merge is the
    serial run file for file, line for line, exit code for exit code; the shards themselves
    exit as their tests do."""
    example(pytester, monkeypatch)
    github, gitlab = recipes()
    serial = pytester.runpytest("--token-budget", *RUN)
    assert serial.ret == 0
    expected, expected_lines = reports(pytester.path / ".token-budget"), summary(serial)

    groups = github["jobs"]["shard"]["strategy"]["matrix"]["group"]
    [shard_run] = [
        s["run"] for s in github["jobs"]["shard"]["steps"] if "shard" in s.get("run", "")
    ]
    for group in groups:
        line = shard_run.replace("${{ strategy.job-total }}", str(len(groups)))
        args = command(line.replace("${{ matrix.group }}", str(group)), "python -m pytest")
        assert shard(pytester, ".token-budget", *args).ret == 0
        download = pytester.path / "shards" / f"token-budget-shard-{group}"  # download-artifact
        download.mkdir(parents=True)
        (pytester.path / ".token-budget" / "shard.json").rename(download / "shard.json")
    [merge_run] = [
        s["run"] for s in github["jobs"]["budget"]["steps"] if "merge" in s.get("run", "")
    ]
    code, lines, err = merged(capsys, command(merge_run, "tokenbudget"))
    assert (code, err) == (0, "")
    assert reports(pytester.path / ".token-budget") == expected
    assert lines == expected_lines

    # A budget broken and a regression gate, in GitHub Actions' environment.
    shutil.rmtree(pytester.path / "shards")
    baseline = pytester.path / "base.json"
    baseline.write_text(expected[0])
    config = pytester.path / "token_budgets.yml"
    config.write_text(
        config.read_text().replace("max_output_tokens_p95: 64", "max_output_tokens_p95: 29")
    )
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "serial.md"))
    gate = ("--token-budget-baseline", "base.json", "--token-budget-max-regression", "0")
    serial = pytester.runpytest("--token-budget", *gate, *RUN)
    assert serial.ret == 1
    expected, expected_lines = reports(pytester.path / ".token-budget"), summary(serial)
    assert '"status": "fail"' in expected[0]

    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "merged.md"))
    job = gitlab["token-budget-shard"]
    [shard_line] = [line for line in job["script"] if "shard" in line]
    for index in range(1, job["parallel"] + 1):
        monkeypatch.setenv("CI_NODE_INDEX", str(index))
        monkeypatch.setenv("CI_NODE_TOTAL", str(job["parallel"]))
        args = command(os.path.expandvars(shard_line), "python -m pytest")
        assert shard(pytester, f"shards/{index}", *args).ret == 0  # the tests passed
    [merge_line] = [line for line in gitlab["token-budget"]["script"] if "merge" in line]
    args = [*command(merge_line, "tokenbudget"), "--baseline", "base.json", "--max-regression", "0"]
    code, lines, err = merged(capsys, args)
    assert (code, err) == (1, "")
    assert reports(pytester.path / ".token-budget") == expected
    assert lines == expected_lines
    assert any(line.startswith("::error file=token_budgets.yml,line=") for line in lines)
    assert (pytester.path / "merged.md").read_text() == (pytester.path / "serial.md").read_text()


def test_shards_of_different_commits_are_refused(pytester, monkeypatch, capsys):
    example(pytester, monkeypatch)
    for name, commit in (("a", "1111111"), ("b", "2222222")):
        monkeypatch.setenv("GITHUB_SHA", commit)
        select = "triage and (t01 or t02)" if name == "a" else "triage and t03"
        shard(pytester, name, "-k", select).assert_outcomes(passed=2 if name == "a" else 1)
    code, lines, err = merge(capsys, "a/shard.json", "b", "--report", "merged")
    assert (code, lines) == (2, [])
    assert err == (
        "tokenbudget merge: a/shard.json and b/shard.json are not shards of one run: measured "
        "at different commits (1111111 and 2222222)\n"
    )
    assert not (pytester.path / "merged").exists()


def test_shards_of_another_config_are_refused(pytester, monkeypatch, capsys):
    example(pytester, monkeypatch)
    shard(pytester, "a", "-k", "triage and t01")
    config = pytester.path / "token_budgets.yml"
    config.write_text(config.read_text().replace("min_samples: 5", "min_samples: 4"))
    code, _, err = merge(capsys, "a", "--report", "merged")
    assert code == 2
    assert err == (
        "tokenbudget merge: a/shard.json: measured with another token_budgets.yml (or cases "
        "file) than token_budgets.yml here: merge in a checkout of the commit the shards ran\n"
    )


@pytest.mark.parametrize(
    ("flag", "instead"),
    [
        (("--token-budget-baseline", "base.json"), "`tokenbudget merge --baseline`"),
        (("--token-budget-max-regression", "5"), "`tokenbudget merge --max-regression`"),
        (("--token-budget-update",), "a run of the whole suite"),
    ],
)
def test_a_shard_does_not_judge(pytester, monkeypatch, flag, instead):
    example(pytester, monkeypatch)
    result = pytester.runpytest("--token-budget-shard", *flag, *RUN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        f"ERROR: pytest-tokenbudget: {flag[0]} judges the whole run, and a --token-budget-shard "
        f"run measures part of it: use {instead} instead"
    ) in result.errlines
    assert not (pytester.path / ".token-budget").exists()
