"""`tokenbudget init`: a first token_budgets.yml, cases file and test that `tokenbudget check`
accepts, never over an existing file; with --from-cassettes, analyze's proposal."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import paths
import pytest
import yaml

from pytest_tokenbudget.cli import main

EXAMPLE_CASSETTES = paths.EXAMPLE / "cassettes"
WRITTEN = ["token_budgets.yml", "budget_cases/chat_reply.yml", "tests/test_token_budgets.py"]


def tree(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every file and folder under root: its bytes (None for a folder) and mtime."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = None if stat.S_ISDIR(info.st_mode) else path.read_bytes()
        found[path.relative_to(root).as_posix()] = (content, info.st_mtime_ns)
    return found


def init(*args: str) -> int:
    return main(["init", *args])


def check(config: Path) -> int:
    return main(["check", "--config", str(config)])


def test_an_empty_folder_gets_budgets_cases_a_test_and_the_gitignore_line(tmp_path, capsys):
    assert init(str(tmp_path)) == 0

    out, err = capsys.readouterr()
    assert err == ""
    assert sorted(tree(tmp_path)) == sorted([*WRITTEN, ".gitignore", "budget_cases", "tests"])
    for name in [*WRITTEN, ".gitignore"]:
        assert f"wrote {tmp_path / name}" in out
    assert ".token-budget/" in (tmp_path / ".gitignore").read_text().splitlines()
    assert check(tmp_path / "token_budgets.yml") == 0
    assert "1 endpoint, 3 cases — OK" in capsys.readouterr().out
    config = yaml.safe_load((tmp_path / "token_budgets.yml").read_text())
    assert config["endpoints"]["chat_reply"]["cases"] == "budget_cases/chat_reply.yml"
    compile((tmp_path / WRITTEN[2]).read_text(), WRITTEN[2], "exec")  # the test is Python


def test_the_current_directory_is_the_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert init() == 0
    assert "wrote token_budgets.yml\n" in capsys.readouterr().out
    assert check(Path("token_budgets.yml")) == 0


def test_a_second_run_changes_nothing_and_says_what_it_kept(tmp_path, capsys):
    assert init(str(tmp_path)) == 0
    before = tree(tmp_path)
    capsys.readouterr()

    assert init(str(tmp_path)) == 1

    assert tree(tmp_path) == before  # bytes and mtimes, folders included
    out = capsys.readouterr().out
    for name in WRITTEN:
        assert f"kept {tmp_path / name}: it exists (init never overwrites a file)" in out
    assert f"{tmp_path / '.gitignore'} already ignores .token-budget/" in out
    assert out.rstrip().endswith("nothing written")


def test_existing_budgets_are_kept_and_get_no_cases_or_test(tmp_path, capsys):
    mine = "endpoints:\n  search:\n    max_input_tokens_p95: 100\n    cases: [{id: a}]\n"
    (tmp_path / "token_budgets.yml").write_text(mine)

    assert init(str(tmp_path)) == 1

    assert (tmp_path / "token_budgets.yml").read_text() == mine
    assert not (tmp_path / "budget_cases").exists() and not (tmp_path / "tests").exists()
    out = capsys.readouterr().out
    assert "not written: " in out and "test_token_budgets.py" in out
    assert (tmp_path / ".gitignore").read_text().endswith(".token-budget/\n")


def test_an_existing_cases_file_is_kept_and_the_rest_written(tmp_path):
    (tmp_path / "budget_cases").mkdir()
    mine = "- id: mine\n  input: hello\n"
    (tmp_path / "budget_cases" / "chat_reply.yml").write_text(mine)

    assert init(str(tmp_path)) == 1

    assert (tmp_path / "budget_cases" / "chat_reply.yml").read_text() == mine
    assert (tmp_path / "token_budgets.yml").is_file() and (tmp_path / WRITTEN[2]).is_file()
    assert check(tmp_path / "token_budgets.yml") == 0


def test_a_dangling_symlink_is_an_existing_file(tmp_path):
    (tmp_path / "token_budgets.yml").symlink_to(tmp_path / "elsewhere.yml")

    assert init(str(tmp_path)) == 1

    assert not (tmp_path / "elsewhere.yml").exists()  # nothing written through the link


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("*.pyc", "*.pyc\n.token-budget/\n"),  # no newline at its end: one is added first
        ("*.pyc\n", "*.pyc\n.token-budget/\n"),
        ("", ".token-budget/\n"),
        ("build/\n/.token-budget/\n", None),  # already ignored: unchanged
        (".token-budget\n", None),
    ],
)
def test_the_gitignore_line_is_added_only_when_missing(tmp_path, before, after):
    (tmp_path / ".gitignore").write_text(before)
    init(str(tmp_path))
    assert (tmp_path / ".gitignore").read_text() == (before if after is None else after)


def bad(capsys) -> str:
    """The one line a bad input is, on stderr, with nothing on stdout."""
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("tokenbudget init: "), err
    return err


def test_a_project_that_is_not_a_folder_is_one_message(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert init(str(tmp_path / "file")) == 2
    assert "file: not a directory" in bad(capsys)
    assert init(str(tmp_path / "missing")) == 2
    assert "missing: not a directory" in bad(capsys)


def test_cassettes_that_are_not_a_folder_stop_init_before_it_writes(tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "cassettes.yaml").write_text("")

    assert init(str(project), "--from-cassettes", str(tmp_path / "cassettes.yaml")) == 2

    assert "cassettes.yaml: not a directory" in bad(capsys)
    assert tree(project) == {}


@pytest.mark.parametrize("blocker", ["tests", "budget_cases"])
def test_a_file_where_a_folder_goes_stops_init_before_it_writes(tmp_path, capsys, blocker):
    (tmp_path / blocker).write_text("a file, not a folder")

    assert init(str(tmp_path)) == 2

    assert f"{tmp_path / blocker}: not a directory, so " in bad(capsys)
    assert sorted(tree(tmp_path)) == [blocker]


def test_a_gitignore_that_is_not_a_file_stops_init_before_it_writes(tmp_path, capsys):
    (tmp_path / ".gitignore").mkdir()

    assert init(str(tmp_path)) == 2

    assert ".gitignore: cannot read .gitignore: it is a directory" in bad(capsys)
    assert sorted(tree(tmp_path)) == [".gitignore"]


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only one, or sysfs for root
    (who may write anywhere else)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        probe = candidate / "tokenbudget-probe"
        try:
            probe.touch(exist_ok=False)
        except OSError:
            return candidate
        probe.unlink()
    pytest.skip("no folder here refuses writes")


def test_an_unwritable_project_is_one_message(tmp_path, capsys):
    folder = unwritable_folder(tmp_path)
    try:
        assert init(str(folder)) == 2
        message = bad(capsys)
    finally:
        (tmp_path / "read-only").chmod(0o755)
    assert f"cannot write {folder / 'budget_cases' / 'chat_reply.yml'}: " in message
    assert not (folder / "token_budgets.yml").exists()


def test_from_cassettes_writes_the_budgets_analyze_proposes(tmp_path, capsys):
    assert main(["analyze", str(EXAMPLE_CASSETTES)]) == 0
    proposed = yaml.safe_load(capsys.readouterr().out)

    assert init(str(tmp_path), "--from-cassettes", str(EXAMPLE_CASSETTES)) == 0

    written = (tmp_path / "token_budgets.yml").read_text()
    assert yaml.safe_load(written) == proposed
    assert written.startswith("# Token budgets, checked by `pytest --token-budget`")
    assert "@pytest.mark.token_budget(" in written
    assert sorted(tree(tmp_path)) == [".gitignore", "token_budgets.yml"]  # no cases, no test
    out = capsys.readouterr().out
    assert "endpoints: chat_reply, triage" in out
    assert check(tmp_path / "token_budgets.yml") == 0


def test_from_cassettes_with_nothing_usable_writes_nothing(tmp_path, capsys):
    project, empty = tmp_path / "project", tmp_path / "empty"
    project.mkdir()
    empty.mkdir()

    assert init(str(project), "--from-cassettes", str(empty)) == 2

    assert "no API calls with usage found under" in capsys.readouterr().err
    assert tree(project) == {}


def test_every_file_is_written_with_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        assert init(str(tmp_path)) == 0
    finally:
        os.umask(old)
    for name in WRITTEN:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


# -- the generated test, run -------------------------------------------------------------
@pytest.fixture
def scaffolded(pytester):
    assert init(str(pytester.path)) == 0
    return pytester


@pytest.mark.slow
def test_the_generated_test_without_recordings_says_how_to_record(scaffolded, ci_env):
    result = scaffolded.runpytest("--token-budget", "-p", "no:cacheprovider")

    assert result.ret == 1
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert "case 'refund_question': 1 request(s) not in the recording" in out
    assert "pytest --token-budget --token-budget-record=once " in out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert not [line for line in out.splitlines() if line.startswith(("E   ", ">   "))]


@pytest.mark.slow
def test_the_generated_test_records_then_replays_within_its_budgets(
    scaffolded, recording_env, monkeypatch
):
    recorded = scaffolded.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    recorded.assert_outcomes(passed=3)
    assert len(recording_env.served) == 3

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    replay = scaffolded.runpytest("--token-budget", "-p", "no:cacheprovider")

    replay.assert_outcomes(passed=3)
    assert replay.ret == 0
    assert len(recording_env.served) == 3  # replayed offline
    replay.stdout.fnmatch_lines(["chat_reply*3*3*PASS"])
