"""`tokenbudget diff` and `merge` given a regression gate that could never trip."""

from __future__ import annotations

import pytest

from pytest_tokenbudget.cli import main


@pytest.mark.parametrize("command", ["diff", "merge"])
@pytest.mark.parametrize("gate", ["nan", "NaN%", "inf", "Infinity"])
def test_a_gate_of_nan_or_inf_is_refused(tmp_path, capsys, command, gate):
    # nan compares false with every growth: the gate would pass anything, silently
    report = tmp_path / "report.json"
    report.write_text("{}")
    args = [str(report), str(report)] if command == "diff" else [str(tmp_path), "--report", "r"]
    assert main([command, *args, "--max-regression", gate]) == 2
    assert "a percentage of growth must be a number, 0 or more" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
