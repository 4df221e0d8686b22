"""Without --token-budget the plugin must stay light: every pytest run in a project
that installs it imports it, and anthropic + vcrpy + jsonschema cost about 1.5 s.

Both checks run in a fresh interpreter (this suite's conftest imports the heavy
modules itself), and look at sys.modules after the fact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

HEAVY = ("anthropic", "vcr", "jsonschema", "httpx2", "yaml")
LIGHT = (
    "plugin",
    "plugin.hooks",
    "modes",
    "plugin.stash",
    "hookspec",
    "plugin.rootdir",
    "plugin.options",
    "plugin.paths",  # with a marked test: where its cassette would be
    "plugin.item_cases",  # with a marked test: whether only the plugin can serve it
)  # an inert run


def _heavy(modules: list[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # Only this plugin is loaded (explicitly, below), so another installed plugin that
    # imports one of these modules cannot be mistaken for ours.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def test_importing_the_plugin_imports_nothing_heavy():
    code = (
        "import json, sys; import pytest_tokenbudget.plugin; print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert _heavy(json.loads(done.stdout)) == []


def test_the_entry_point_is_the_module_checked_here():
    found = [ep.value for ep in entry_points(group="pytest11") if ep.name == "tokenbudget"]
    assert found == ["pytest_tokenbudget.plugin"]


CONFTEST = """
import json, sys

def pytest_sessionfinish(session):
    plugin = session.config.pluginmanager.get_plugin("pytest_tokenbudget.plugin")
    fixtures = sorted({name for item in session.items for name in item.fixturenames})
    with open("modules.json", "w") as f:
        json.dump({"registered": plugin is not None, "modules": sorted(sys.modules),
                   "fixtures": fixtures}, f)
"""

TESTS = """
import pytest

@pytest.mark.parametrize("n", range(5))
def test_trivial(n):
    assert n >= 0

@pytest.mark.token_budget("chat")
def test_budget(budget_case, token_budget):
    raise AssertionError("must be skipped without --token-budget")
"""


def test_a_session_without_the_flag_imports_nothing_heavy(pytester, monkeypatch):
    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    for name in [k for k in os.environ if k.startswith("PYTEST_") and k not in _env()]:
        monkeypatch.delenv(name)
    # A budget file is present (as in any project using the plugin): it must not be read.
    pytester.makefile(".yml", token_budgets="endpoints:\n  chat:\n    max_input_tokens_p95: 10\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_light=TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "pytest_tokenbudget.plugin", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=5, skipped=1)
    seen = json.loads((pytester.path / "modules.json").read_text())
    assert seen["registered"]
    assert _heavy(seen["modules"]) == []
    # Of the plugin itself, only what registers its options, marker and hooks: no module
    # that measures, prices or reports (ratchet, config, session, ...) is loaded.
    ours = {m for m in seen["modules"] if m.split(".")[0] == "pytest_tokenbudget"}
    assert ours == {"pytest_tokenbudget", *(f"pytest_tokenbudget.{m}" for m in LIGHT)}
    # No autouse fixture of ours runs for the project's tests (the capture's is registered
    # only with --token-budget).
    assert seen["fixtures"] == ["budget_case", "n", "request", "token_budget"]
