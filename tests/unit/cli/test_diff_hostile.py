"""A regression gate that could never trip, given to `tokenbudget diff` and `merge` (the
pytest flag's: tests/integration/test_attack_today.py); all three read it with one function."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

import pytest_tokenbudget
from pytest_tokenbudget.cli import main
from pytest_tokenbudget.modes import MAX_GATE_PCT, parse_gate


@pytest.mark.parametrize(
    ("text", "pct"), [("0", 0.0), ("-0", 0.0), ("12.5", 12.5), ("10%", 10.0), ("1000000", 1e6)]
)
def test_a_gate_is_a_percentage_from_0_to_the_budget_files_bound(text, pct):
    read = parse_gate(text)
    assert read == pct and math.copysign(1, read) == 1  # -0 is shown as 0, never "-0%"


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-0.5", "1e300", "1000001", "5%%", ""])
def test_what_is_not_a_gate_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_gate(text)


def test_the_bound_is_the_budget_files():
    schema = Path(pytest_tokenbudget.__file__).parent / "config" / "config_schema.json"
    text = schema.read_text(encoding="utf-8")
    bounds = {prop["maximum"] for prop in _objects(json.loads(text))}
    assert bounds == {MAX_GATE_PCT}


def _objects(node):
    """Each `max_regression_pct` property's schema, wherever the schema declares one."""
    if isinstance(node, dict):
        if isinstance(node.get("max_regression_pct"), dict):
            yield node["max_regression_pct"]
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


@pytest.mark.parametrize("command", ["diff", "merge"])
@pytest.mark.parametrize("gate", ["nan", "NaN%", "inf", "Infinity", "1e300", "-1"])
def test_a_gate_of_nan_or_inf_is_refused(tmp_path, capsys, command, gate):
    # nan compares false with every growth: the gate would pass anything, silently
    report = tmp_path / "report.json"
    report.write_text("{}")
    args = [str(report), str(report)] if command == "diff" else [str(tmp_path), "--report", "r"]
    assert main([command, *args, "--max-regression", gate]) == 2
    err = capsys.readouterr().err
    assert f"a percentage of growth must be a number from 0 to 1,000,000, got {gate!r}" in err
    assert not (tmp_path / "r").exists()
