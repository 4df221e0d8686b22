"""Hostile input found by using today's features as a careless user would, through pytest."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("gate", ["nan", "inf", "-1", "1e300", "1000001"])
def test_a_regression_gate_that_could_never_trip_is_a_usage_error(project, ci_env, gate):
    # nan compares false with every growth: the gate would pass anything, silently
    result = project.runpytest("--token-budget", f"--token-budget-max-regression={gate}")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "*argument --token-budget-max-regression: a percentage of growth must be a number "
            f"from 0 to 1,000,000, got '{gate}'"
        ]
    )
    assert "Traceback" not in result.stderr.str()


def test_the_flag_takes_a_gate_as_the_commands_do(project, ci_env):
    """ "10%" is a gate for `tokenbudget diff` and `merge`; the action passes its input to the
    flag, so the flag takes it too."""
    result = project.runpytest("--token-budget", "--token-budget-max-regression=10%")
    assert result.ret == 1  # the cases have no recording; not a usage error (4)
    report = json.loads((project.path / ".token-budget" / "report.json").read_text())
    assert "--token-budget-max-regression needs --token-budget-baseline" in report["notes"][0]
