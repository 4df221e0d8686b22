"""pytest wiring: options, marker, fixtures and hooks. Each hook says when; the modules
beside it (options, paths, item_cases, start, capturing, exit_status, sharding) and finish/
say what.

Without --token-budget the plugin is inert: nothing heavy (anthropic, vcrpy,
jsonschema) is imported, and marked tests are skipped with a reason that says
how to run them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from pytest_tokenbudget.plugin.options import add_options, enabled
from pytest_tokenbudget.plugin.rootdir import check_rootdir
from pytest_tokenbudget.plugin.stash import (
    BASELINE_KEY,
    CAPTURE_KEY,
    RUN_KEY,
    SUMMARY_KEY,
    run_of,
)

if TYPE_CHECKING:
    from pytest_tokenbudget.finish.conclusion import Conclusion
    from pytest_tokenbudget.measure.run import BudgetRun
    from pytest_tokenbudget.plugin.handle import TokenBudget
    from pytest_tokenbudget.report.model import Report, UpdateVerdict

MARKER_HELP = (
    "token_budget(endpoint): measure this test's Anthropic API calls against the budgets "
    "of `endpoint` in token_budgets.yml (runs with pytest --token-budget)"
)
SKIP_REASON = (
    "token budget test whose calls only pytest-tokenbudget can serve: run it with "
    "`pytest --token-budget`"
)


# -- options and configuration ---------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_tokenbudget import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    check_rootdir(config)
    if not enabled(config):
        return
    config.option.token_budget = True
    from pytest_tokenbudget.plugin.capturing import Capturing
    from pytest_tokenbudget.plugin.start import start_run, use_credentials

    run, baseline = start_run(config)
    if baseline is not None:
        config.stash[BASELINE_KEY] = baseline
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(Capturing(run), "tokenbudget-capture")
    use_credentials(config, run)


# -- collection ------------------------------------------------------------------------
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run = run_of(metafunc.config)
    if run is not None:
        from pytest_tokenbudget.plugin.item_cases import parametrize_cases

        parametrize_cases(metafunc, run)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection sees the items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    run = run_of(config)
    if run is not None:
        from pytest_tokenbudget.plugin.item_cases import check_cases
        from pytest_tokenbudget.plugin.request_cases import make_items

        items.extend(make_items(session, run, items))
        check_cases(run, items)
        return
    marked = [item for item in items if item.get_closest_marker("token_budget") is not None]
    if not marked:
        return
    # A plain run: a marked test runs as it did before the plugin was installed, unless
    # only the plugin can serve its calls (its fixtures, or a cassette of its own).
    from pytest_tokenbudget.plugin.item_cases import only_ours
    from pytest_tokenbudget.plugin.paths import budget_paths

    config_path, cassettes = budget_paths(config)
    cassettes = cassettes or config_path.parent / "cassettes"
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in marked:
        if only_ours(item, cassettes):
            item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    run = run_of(session.config)
    if run is None:
        return
    from pytest_tokenbudget.plugin.request_cases import precount

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str, last: bool) -> None:
        if reporter is not None:
            reporter.rewrite(line, erase=True)
            if last:
                reporter.line("")

    workers = session.config.getoption("token_budget_count_concurrency")
    precount(run, session.items, workers=workers, progress=progress)


# -- fixtures (the capture around each test is plugin/capturing.py) ----------------------
@pytest.fixture
def budget_case(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The current case of a token_budget test (parametrized by the plugin)."""
    pytest.skip(SKIP_REASON if run_of(request.config) is None else "no token_budget marker")


@pytest.fixture
def token_budget(request: pytest.FixtureRequest) -> TokenBudget:
    """Handle on the current budget test: .endpoint, .case, .calls, .count(), .record()."""
    from pytest_tokenbudget.plugin.handle import TokenBudget

    state = request.node.stash.get(CAPTURE_KEY, None)
    if state is None:
        pytest.skip(SKIP_REASON if run_of(request.config) is None else "no token_budget marker")
    case = (
        request.getfixturevalue("budget_case")
        if "budget_case" in request.fixturenames
        else {"id": state.case_id}
    )
    return TokenBudget(state, case)


# -- the end of the run ----------------------------------------------------------------
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    run = run_of(config)
    if run is None:
        return
    if run.counts is not None:
        run.counts.save()
    if hasattr(config, "workerinput"):  # an xdist worker: the controller concludes
        config.workeroutput["tokenbudget"] = run.to_wire()  # type: ignore[attr-defined]
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return
    if config.getoption("token_budget_shard"):  # part of a run: `tokenbudget merge` judges
        from pytest_tokenbudget.plugin.sharding import end_shard

        config.stash[SUMMARY_KEY] = end_shard(session, run)
        return
    from pytest_tokenbudget.capture.gc_pause import gc_paused
    from pytest_tokenbudget.plugin.exit_status import fail_session

    with gc_paused():
        conclusion = _conclude(config, run)
    config.stash[SUMMARY_KEY] = conclusion.lines
    if conclusion.failed:
        fail_session(session, conclusion.report)


def _conclude(config: pytest.Config, run: BudgetRun) -> Conclusion:
    """finish/conclusion.py's conclusion, given what it needs of pytest's options and hooks."""
    from pytest_tokenbudget.finish.conclusion import conclude
    from pytest_tokenbudget.plugin.paths import display_path

    workspace = os.environ.get("GITHUB_WORKSPACE") or str(config.rootpath)
    update = None
    if config.getoption("token_budget_update"):
        from pytest_tokenbudget.report.ratchet import update_budgets

        def update(report: Report) -> UpdateVerdict:
            return update_budgets(
                report,
                run.config,
                run.case_runs,
                margin_pct=config.getoption("token_budget_update_margin"),
                loosen=config.getoption("token_budget_update") == "loosen",
                shown=display_path(run.config.path, config),
            )

    return conclude(
        run,
        baseline=config.stash.get(BASELINE_KEY, None),
        max_regression_pct=config.getoption("token_budget_max_regression"),
        config_path=os.path.relpath(run.config.path, workspace),
        report_hook=lambda report: config.hook.pytest_tokenbudget_report(
            report=report, config=config
        ),
        github=os.environ.get("GITHUB_ACTIONS") == "true",
        display=lambda path: display_path(path, config),
        update=update,
    )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: merge a worker's samples (as syrupy does)."""
    run = run_of(node.config)
    output = getattr(node, "workeroutput", {}).get("tokenbudget")
    if run is not None and output is not None:
        run.merge_wire(output)


VERDICT_FAIL, VERDICT_PASS = "token budget: FAIL", "token budget: PASS"  # table.render_verdict


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    lines = config.stash.get(SUMMARY_KEY, None)
    if not lines:
        return
    terminalreporter.section("token budget")
    for line in lines:
        markup = {"red": True} if line.startswith(("FAIL", "LOOSENED", VERDICT_FAIL)) else {}
        if line.startswith(VERDICT_PASS):
            markup = {"green": True}
        terminalreporter.line(line, **markup)
