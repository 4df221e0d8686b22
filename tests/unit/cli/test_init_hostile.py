"""`tokenbudget init` on odd input: a CRLF .gitignore keeps its line endings; a key read from a\ncassette is never written into token_budgets.yml."""

from __future__ import annotations

import paths
import pytest

from pytest_tokenbudget.cli import main

REAL = paths.DATA / "real_suites" / "llm-anthropic" / "test_anthropic"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b"node_modules\r\n.venv\r\n", b"node_modules\r\n.venv\r\n.token-budget/\r\n"),
        (b"node_modules\r\n.venv", b"node_modules\r\n.venv\r\n.token-budget/\r\n"),
    ],
)
def test_a_crlf_gitignore_gets_a_crlf_line(tmp_path, before, after):
    (tmp_path / ".gitignore").write_bytes(before)
    main(["init", str(tmp_path)])
    assert (tmp_path / ".gitignore").read_bytes() == after


def test_a_key_in_a_cassette_is_never_written_into_token_budgets_yml(tmp_path, capsys):
    # a recorded answer whose model field holds a key: the proposal names the model it read
    key = "sk-ant-api03-" + "B" * 90
    recorded = (REAL / "test_prompt.yaml").read_text()
    assert "claude-sonnet-4-5-20250929" in recorded
    cassettes = tmp_path / "cassettes"
    cassettes.mkdir()
    (cassettes / "test_prompt.yaml").write_text(recorded.replace("claude-sonnet-4-5-20250929", key))
    project = tmp_path / "project"
    project.mkdir()
    assert main(["init", str(project), "--from-cassettes", str(cassettes)]) == 2
    err = capsys.readouterr().err
    assert "token_budgets.yml" in err and "refusing to write" in err
    assert key not in err and "Traceback" not in err
    assert list(project.iterdir()) == []  # nothing written, .gitignore included
