"""Hostile input found by using today's features as a careless user would, through pytest."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("gate", ["nan", "inf", "-1"])
def test_a_regression_gate_that_could_never_trip_is_a_usage_error(project, ci_env, gate):
    # nan compares false with every growth: the gate would pass anything, silently
    result = project.runpytest("--token-budget", f"--token-budget-max-regression={gate}")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--token-budget-max-regression must be a number, 0 or more*"])
    assert "Traceback" not in result.stderr.str()
