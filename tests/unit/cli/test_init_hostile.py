"""`tokenbudget init` on odd project folders: a CRLF .gitignore keeps its line endings."""

from __future__ import annotations

import pytest

from pytest_tokenbudget.cli import main


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
