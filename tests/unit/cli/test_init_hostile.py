"""`tokenbudget init` on odd input: a CRLF .gitignore keeps its line endings; a key read from a
cassette is never written into token_budgets.yml; an interrupted init run again completes the
project."""

from __future__ import annotations

import os

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


def test_init_interrupted_then_run_again_leaves_a_project_check_accepts(tmp_path, monkeypatch):
    # Ctrl-C after the first file: each file is whole, and the set is completed by a rerun
    real_link, links = os.link, []

    def link_then_interrupt(src, dst):
        if links:
            raise KeyboardInterrupt
        links.append(dst)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_then_interrupt)
    assert main(["init", str(tmp_path)]) != 0
    monkeypatch.setattr(os, "link", real_link)
    assert len(links) == 1
    main(["init", str(tmp_path)])
    assert main(["check", "--config", str(tmp_path / "token_budgets.yml")]) == 0
