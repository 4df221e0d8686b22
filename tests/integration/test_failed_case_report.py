"""A case whose recording failed is reported by its message alone: pytest is never asked to
format the test's own exception (a traceback through the SDK and httpx, every file of it
parsed, about half a second per failing case), except for a debugger under --pdb."""

from __future__ import annotations

import pytest

# The inner run's conftest: which exception a failure hands to pytest_exception_interact,
# the hook --pdb's debugger is called from (any failure calls it, with or without --pdb).
SEEN = """\
import pytest


def pytest_addoption(parser):
    parser.addoption("--pretend-pdb", action="store_true")


def pytest_configure(config):
    if config.getoption("pretend_pdb"):
        config.option.usepdb = True  # what --pdb sets, without a debugger reading stdin


def pytest_exception_interact(node, call, report):
    with open("seen.txt", "a") as f:
        f.write(type(call.excinfo.value).__name__ + "\\n")
"""


@pytest.fixture
def formatted(monkeypatch):
    """(exception, style) of each exception pytest formats from here on."""
    seen = []
    real = pytest.ExceptionInfo.getrepr

    def recorded(self, *args, **kwargs):
        seen.append((type(self.value).__name__, kwargs.get("style", "long")))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pytest.ExceptionInfo, "getrepr", recorded)
    return seen


def test_a_case_without_its_recording_is_its_message_alone(project, ci_env, formatted):
    project.makeconftest(SEEN)
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider", "-p", "no:debugging")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*pytest-tokenbudget: endpoint *not in the recording*"])
    assert formatted == [("Failed", "value")] * 4  # the message: no traceback, no source
    assert (project.path / "seen.txt").read_text().split() == ["Failed"] * 4


def test_a_debugger_still_gets_the_tests_own_exception(project, ci_env):
    project.makeconftest(SEEN)
    result = project.runpytest(
        "--token-budget", "-p", "no:cacheprovider", "-p", "no:debugging", "--pretend-pdb"
    )
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*pytest-tokenbudget: endpoint *not in the recording*"])
    seen = (project.path / "seen.txt").read_text().split()
    assert len(seen) == 4 and "Failed" not in seen, seen
