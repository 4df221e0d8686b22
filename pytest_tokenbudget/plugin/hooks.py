"""pytest wiring: options, marker, fixtures and hooks. Logic lives in the other modules.

Without --token-budget the plugin is inert: nothing heavy (anthropic, vcrpy,
jsonschema) is imported, and marked tests are skipped with a reason that says
how to run them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_tokenbudget.modes import RECORD_MODES
from pytest_tokenbudget.plugin.stash import (
    BASELINE_KEY,
    CAPTURE_KEY,
    CASE_ID_KEY,
    CASE_PROBLEM_KEY,
    RUN_KEY,
    SUMMARY_KEY,
    run_of,
)

if TYPE_CHECKING:
    from pytest_tokenbudget.measure.run import BudgetRun, Options
    from pytest_tokenbudget.plugin.handle import CaseCapture, TokenBudget

PLACEHOLDER_KEY = "tokenbudget-replay-placeholder"
PLACEHOLDER_VARIABLES = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
AWS_CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
AWS_PLACEHOLDERS = {
    "AWS_ACCESS_KEY_ID": PLACEHOLDER_KEY,
    "AWS_SECRET_ACCESS_KEY": PLACEHOLDER_KEY,
    "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups from CI
}
MARKER_HELP = (
    "token_budget(endpoint): measure this test's Anthropic API calls against the budgets "
    "of `endpoint` in token_budgets.yml (runs with pytest --token-budget)"
)
SKIP_REASON = (
    "token budget test whose calls only pytest-tokenbudget can serve: run it with "
    "`pytest --token-budget`"
)
# Every --token-budget-* option and its default: any other value turns the plugin on.
OPTION_DEFAULTS: dict[str, Any] = {
    "token_budget_config": None,
    "token_budget_record": "none",
    "token_budget_count": False,
    "token_budget_count_concurrency": 4,
    "token_budget_cassettes": None,
    "token_budget_report": ".token-budget",
    "token_budget_baseline": None,
    "token_budget_max_regression": None,
    "token_budget_update": None,
    "token_budget_update_margin": None,
    "token_budget_reprice": None,
}


# -- options ---------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    from pytest_tokenbudget.modes import parse_margin, parse_mode

    group = parser.getgroup("token-budget", "token budgets (pytest-tokenbudget)")
    group.addoption(
        "--token-budget",
        action="store_true",
        default=False,
        help="measure token usage of token_budget-marked tests and gate on token_budgets.yml",
    )
    _add(
        group,
        "--token-budget-config",
        metavar="PATH",
        help="budget file (default: token_budgets.yml at the rootdir, or ini token_budget_config)",
    )
    _add(
        group,
        "--token-budget-record",
        choices=RECORD_MODES,
        help="recording: none = replay only, never touch the network (default); once = record "
        "missing cassettes; new_episodes = also record new requests; all = re-record",
    )
    _add(
        group,
        "--token-budget-count",
        action="store_true",
        help="input tokens of every Messages request from count_tokens on the request as sent "
        "now (free; cached in token_counts.json beside the cassettes); output from the recording",
    )
    _add(
        group,
        "--token-budget-count-concurrency",
        type=int,
        metavar="N",
        help="count_tokens requests in flight at once for request cases (default 4)",
    )
    _add(
        group,
        "--token-budget-cassettes",
        metavar="DIR",
        help="cassette directory (default: cassettes/ beside the config file)",
    )
    _add(
        group,
        "--token-budget-report",
        metavar="DIR",
        help="where report.json and report.md are written (default: .token-budget/)",
    )
    _add(
        group,
        "--token-budget-baseline",
        metavar="PATH",
        help="compare with this report.json (the base branch's); report.md becomes the diff",
    )
    _add(
        group,
        "--token-budget-max-regression",
        metavar="PCT",
        type=float,
        help="fail when a metric grows more than PCT%% over the baseline, even within budget",
    )
    _add(
        group,
        "--token-budget-update",
        nargs="?",
        const="tighten",
        type=parse_mode,
        metavar="loosen",
        help="rewrite measured budgets in token_budgets.yml to measured + "
        "margin, only tightening; =loosen also loosens broken budgets (written with '=')",
    )
    _add(
        group,
        "--token-budget-update-margin",
        metavar="PCT",
        type=parse_margin,
        help="headroom over the measured value for --token-budget-update (default 10)",
    )
    _add(
        group,
        "--token-budget-reprice",
        metavar="MODEL",
        help="also show what each endpoint's recorded traffic would cost on MODEL (input "
        "counted for MODEL in count mode, else assumed the same; output as recorded)",
    )
    parser.addini("token_budget_config", "path of token_budgets.yml, relative to the ini file")
    parser.addini("token_budget_cassettes", "cassette directory, relative to the ini file")


def _add(group: Any, flag: str, **kwargs: Any) -> None:
    from pytest_tokenbudget.modes import given

    action = given(kwargs.pop("action", "store"))
    group.addoption(
        flag, default=OPTION_DEFAULTS[flag[2:].replace("-", "_")], action=action, **kwargs
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_tokenbudget import hookspec

    pluginmanager.add_hookspecs(hookspec)


# -- configure -------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    _check_rootdir(config)
    if not _enabled(config):
        return
    config.option.token_budget = True
    from pytest_tokenbudget.config.budgets import load_config
    from pytest_tokenbudget.errors import TokenBudgetError
    from pytest_tokenbudget.files.yaml_source import problems_error
    from pytest_tokenbudget.measure.run import BudgetRun
    from pytest_tokenbudget.pricing.prices import model_problems

    options = _options(config)
    try:
        budget_config = load_config(options.config_path)
        # A configured model nothing prices is an error now, not a $0 at the end.
        unknown = model_problems(
            budget_config, hook=lambda model: config.hook.pytest_tokenbudget_price(model=model)
        )
        if unknown:
            raise problems_error(unknown)
        reprice = config.getoption("token_budget_reprice")
        if reprice is not None:
            _check_reprice(reprice, budget_config, config)
    except TokenBudgetError as err:
        raise pytest.UsageError(f"pytest-tokenbudget: {err}") from None
    baseline = config.getoption("token_budget_baseline")
    if baseline:
        from pytest_tokenbudget.report.reader import load_report

        try:
            config.stash[BASELINE_KEY] = load_report(Path(config.invocation_params.dir, baseline))
        except TokenBudgetError as err:
            raise pytest.UsageError(f"pytest-tokenbudget: baseline {err}") from None
    if (config.getoption("token_budget_max_regression") or 0) < 0:
        raise pytest.UsageError(
            "pytest-tokenbudget: --token-budget-max-regression must be 0 or more"
        )
    if options.cassettes is None:
        options.cassettes = budget_config.path.parent / "cassettes"
    from pytest_tokenbudget.capture.counting import CACHE_FILE, CountCache

    run = BudgetRun(budget_config, options, counts=CountCache(options.cassettes / CACHE_FILE))
    config.stash[RUN_KEY] = run
    _register_hooks(config, run)
    config.pluginmanager.register(Capturing(run), "tokenbudget-capture")
    run.can_count_online = bool(
        os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
    )
    if options.record_mode == "none":
        # CI on a pull request has no key; the team's code must still build its clients.
        placeholders = {variable: PLACEHOLDER_KEY for variable in PLACEHOLDER_VARIABLES}
        if not any(os.environ.get(v) for v in AWS_CREDENTIAL_SOURCES):
            # AnthropicBedrock signs every request before the cassette answers it.
            placeholders.update(AWS_PLACEHOLDERS)
        for variable, value in placeholders.items():
            if not os.environ.get(variable):
                os.environ[variable] = value
                config.add_cleanup(_unsetter(variable))


def _unsetter(variable: str) -> Callable[[], None]:
    def unset() -> None:
        os.environ.pop(variable, None)

    return unset


def _check_reprice(model: str, budget_config: Any, config: pytest.Config) -> None:
    """A --token-budget-reprice model nothing prices is a usage error now, never a $0."""
    from pytest_tokenbudget.measure.reprice import unknown_model_message
    from pytest_tokenbudget.pricing.prices import PriceBook

    book = PriceBook(
        budget_config.pricing, fallback=lambda m: config.hook.pytest_tokenbudget_price(model=m)
    )
    message = unknown_model_message(model, book, budget_config.path.name)
    if message:
        raise pytest.UsageError(f"pytest-tokenbudget: {message}")


def _enabled(config: pytest.Config) -> bool:
    """--token-budget, or any other --token-budget-* option: a CI line that forgets the
    flag must not be green having measured nothing (the ini keys do not turn it on)."""
    from pytest_tokenbudget.modes import GIVEN

    if config.getoption("token_budget") or getattr(config.option, GIVEN, False):
        return True
    return any(config.getoption(dest) != default for dest, default in OPTION_DEFAULTS.items())


def _check_rootdir(config: pytest.Config) -> None:
    from pytest_tokenbudget.plugin.rootdir import (
        detached_path_values,
        misplaced_rootdir,
        rootdir_message,
        rootdir_without_values,
    )

    params, option = config.invocation_params, config.option
    if not detached_path_values(params.args, params.dir):
        return  # the common case: nothing to re-derive, so every run stays cheap
    expected = rootdir_without_values(  # `pytest --help` parses no positional args
        args=getattr(option, "file_or_dir", None) or [],
        inifile=getattr(option, "inifilename", None),
        override_ini=getattr(option, "override_ini", None),
        rootdir_arg=getattr(option, "rootdir", None) or None,
        invocation_dir=params.dir,
    )
    detached = misplaced_rootdir(params.args, params.dir, config.rootpath, expected)
    if detached is not None and expected is not None:
        raise pytest.UsageError(
            rootdir_message(detached, config.rootpath, config.inipath, expected)
        )


def _register_hooks(config: pytest.Config, run: BudgetRun) -> None:
    from pytest_tokenbudget.providers.parsers import BUILTIN

    for name, parser in BUILTIN.items():
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(parser(), name)
    hook = config.hook
    run.parse = lambda exchange: hook.pytest_tokenbudget_parse_usage(exchange=exchange) or []
    run.price_hook = lambda model: hook.pytest_tokenbudget_price(model=model)
    run.scrub_hook = lambda interaction: hook.pytest_tokenbudget_scrub(interaction=interaction)


def _options(config: pytest.Config) -> Options:
    from pytest_tokenbudget.measure.run import Options

    path, cassette_dir = _paths(config)
    return Options(
        config_path=path,
        cassettes=cassette_dir,
        report_dir=Path(config.invocation_params.dir, config.getoption("token_budget_report")),
        record_mode=config.getoption("token_budget_record"),
        count=config.getoption("token_budget_count"),
        reprice=config.getoption("token_budget_reprice"),
    )


def _paths(config: pytest.Config) -> tuple[Path, Path | None]:
    """The config file, and the cassette directory when given (else beside the config)."""
    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    given = config.getoption("token_budget_config")
    if given:
        path = Path(config.invocation_params.dir, given)
    elif config.getini("token_budget_config"):
        path = ini_dir / config.getini("token_budget_config")
    else:
        path = config.rootpath / "token_budgets.yml"
    cassettes = config.getoption("token_budget_cassettes")
    if cassettes:
        cassette_dir: Path | None = Path(config.invocation_params.dir, cassettes)
    elif config.getini("token_budget_cassettes"):
        cassette_dir = ini_dir / config.getini("token_budget_cassettes")
    else:
        cassette_dir = None  # beside the config file, once it is loaded
    return path, cassette_dir


# -- collection ------------------------------------------------------------------------
def _marked_endpoint(item: pytest.Item) -> str | None:
    """The endpoint an item's token_budget marker names; None when unmarked or malformed
    (a malformed marker is reported where the test runs, by _endpoint_of)."""
    marker = item.get_closest_marker("token_budget")
    if marker is None or len(marker.args) != 1 or not isinstance(marker.args[0], str):
        return None
    return marker.args[0]


def _endpoint_of(marker: pytest.Mark) -> str:
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        pytest.fail(
            "@pytest.mark.token_budget takes one endpoint name: "
            '@pytest.mark.token_budget("chat_reply")',
            pytrace=False,
        )
    return marker.args[0]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("token_budget")
    run = run_of(metafunc.config)
    if marker is None or run is None:
        return
    name = _endpoint_of(marker)
    endpoint = run.config.endpoints.get(name)
    if endpoint is None:
        known = ", ".join(run.config.endpoints) or "none"
        pytest.fail(
            f"{metafunc.definition.nodeid}: endpoint {name!r} is not in {run.config.path} "
            f"(endpoints: {known})",
            pytrace=False,
        )
    if "budget_case" in metafunc.fixturenames:
        if not endpoint.cases:
            pytest.fail(
                f"{metafunc.definition.nodeid}: endpoint {name!r} has no cases; add `cases:` "
                f"to it in {run.config.path}",
                pytrace=False,
            )
        metafunc.parametrize(
            "budget_case", list(endpoint.cases), ids=[c["id"] for c in endpoint.cases]
        )


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection sees the items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    run = run_of(config)
    if run is not None:
        from pytest_tokenbudget.plugin.request_cases import make_items

        items.extend(make_items(session, run, items))
        _check_cases(run, items)
        return
    marked = [item for item in items if item.get_closest_marker("token_budget") is not None]
    if not marked:
        return
    # A plain run: a marked test runs as it did before the plugin was installed, unless
    # only the plugin can serve its calls (its fixtures, or a cassette of its own).
    config_path, cassettes = _paths(config)
    cassettes = cassettes or config_path.parent / "cassettes"
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in marked:
        if _only_ours(item, cassettes):
            item.add_marker(skip)


def _only_ours(item: pytest.Item, cassettes: Path) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    if "budget_case" in fixtures or "token_budget" in fixtures:
        return True
    if _foreign_driven(item):
        return False
    endpoint = _marked_endpoint(item)
    if endpoint is None:
        return False
    from pytest_tokenbudget.capture.case_ids import cassette_path, test_case_id

    legacy = getattr(item, "originalname", item.name)  # where it was before one per item
    return any(
        cassette_path(cassettes, endpoint, case_id).is_file()
        for case_id in (test_case_id(item.nodeid), legacy)
    )


def _foreign_driven(item: pytest.Item) -> bool:
    """Driven by pytest-recording or pytest-vcr, as far as collection can tell (their
    `vcr` marker, or pytest-vcr's fixture; pytest-recording's `vcr` fixture is autouse)."""
    fixtures = getattr(item, "fixturenames", ())
    return item.get_closest_marker("vcr") is not None or "vcr_cassette" in fixtures


def _check_cases(run: BudgetRun, items: list[pytest.Item]) -> None:
    """One case per item: two items of one endpoint never share a case (and a cassette);
    cassettes still at their pre-per-item path are named with the command that moves them."""
    from pytest_tokenbudget.capture.case_ids import ItemCase, collisions, legacy_moves

    cases = []
    for item in items:
        endpoint = _marked_endpoint(item)
        if endpoint is None:
            continue
        case_id, legacy = _case_ids(item)
        item.stash[CASE_ID_KEY] = case_id
        cases.append(
            ItemCase(endpoint, case_id, item.nodeid, None if _foreign_driven(item) else legacy)
        )
    # Failed at setup, item by item: an error raised here would be an INTERNALERROR
    # under xdist, whose workers collect too.
    assert run.options.cassettes is not None  # set by pytest_configure
    problems = {**legacy_moves(cases, run.options.cassettes), **collisions(cases)}
    for item in items:
        if item.nodeid in problems:
            item.stash[CASE_PROBLEM_KEY] = problems[item.nodeid]


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


# -- capture around each marked test ---------------------------------------------------
# On an item whose capture could not start: why (and, for its cassette, that it is unreadable).
SETUP_ERROR_KEY = pytest.StashKey[tuple[str, bool]]()


class Capturing:
    """The capture around each marked test: an autouse fixture and a report hook.

    Registered by pytest_configure only with --token-budget, so that without it no test
    of the project pays for either (an autouse fixture runs for every test).
    """

    def __init__(self, run: BudgetRun) -> None:
        self.run = run
        self.interrupted = False

    def pytest_keyboard_interrupt(self) -> None:
        # Called before the session tears down the interrupted test's fixtures.
        self.interrupted = True

    @pytest.fixture(autouse=True)
    def _token_budget_capture(self, request: pytest.FixtureRequest) -> Iterator[None]:
        marker = request.node.get_closest_marker("token_budget")
        if marker is None:
            yield
            return
        from pytest_tokenbudget.errors import CassetteError
        from pytest_tokenbudget.plugin.handle import foreign_recorder, open_case

        item = request.node
        problem = item.stash.get(CASE_PROBLEM_KEY, None)
        if problem is not None:
            item.stash[SETUP_ERROR_KEY] = (problem, False)
            pytest.fail(f"pytest-tokenbudget: {problem}", pytrace=False)
        driver = foreign_recorder(  # pytest-recording or pytest-vcr: measure what it serves
            item.get_closest_marker("vcr") is not None,
            request.fixturenames,
            request.config.pluginmanager.has_plugin,
            request.getfixturevalue,
        )
        try:
            state = open_case(self.run, _endpoint_of(marker), _case_id(item), item.nodeid, driver)
        except CassetteError as err:
            item.stash[SETUP_ERROR_KEY] = (str(err), True)
            pytest.fail(f"pytest-tokenbudget: {err}", pytrace=False)
        item.stash[CAPTURE_KEY] = state
        try:
            yield
        finally:
            state.close(interrupted=self.interrupted)  # Ctrl-C keeps the previous cassette

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        state = item.stash.get(CAPTURE_KEY, None)
        if state is None:
            if report.when == "setup" and report.failed:
                _setup_failed(self.run, item)
            return report
        if report.when == "setup" and not report.passed:
            _finish(self.run, item, state, "skipped" if report.skipped else "failed")
        elif report.when == "call":
            state.close()
            if (state.misses or state.errors) and not report.failed:
                report.outcome = "failed"
            if state.misses or state.errors:
                report.longrepr = _capture_failure(item, state)
            _finish(self.run, item, state, report.outcome)
        return report


def _case_id(item: pytest.Item) -> str:
    case_id = item.stash.get(CASE_ID_KEY, None)
    return case_id if case_id is not None else _case_ids(item)[0]


def _case_ids(item: pytest.Item) -> tuple[str, str | None]:
    """The item's case id, and where its cassette was before one case per item (None: the
    same place)."""
    from pytest_tokenbudget.capture.case_ids import budget_case_id, test_case_id
    from pytest_tokenbudget.plugin.request_cases import RequestCaseItem

    if isinstance(item, RequestCaseItem):
        return str(item.case["id"]), None
    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("budget_case"), dict):
        case_id = str(callspec.params["budget_case"]["id"])
        idlist = getattr(callspec, "_idlist", None) or [callspec.id]
        full = budget_case_id(case_id, idlist)
        return full, (case_id if full != case_id else None)
    case_id = test_case_id(item.nodeid)
    return case_id, getattr(item, "originalname", item.name)


def _setup_failed(run: BudgetRun, item: pytest.Item) -> None:
    """A marked test that failed before its capture started still counts: as a case not
    measured, with why (every case is accounted for in the report)."""
    from pytest_tokenbudget.measure.accounting import UNREADABLE
    from pytest_tokenbudget.measure.samples import CaseRun

    endpoint = _marked_endpoint(item)
    if endpoint is None:
        return
    # a capture that could not start says why; any other setup error is the test's own
    error, unreadable = item.stash.get(SETUP_ERROR_KEY, (None, False))
    errors = (error,) if error is not None else ()
    run.add_case_run(CaseRun(endpoint, _case_id(item), item.nodeid, "failed", errors))
    if unreadable:
        run.note_recording(item.nodeid, UNREADABLE)


def _finish(run: BudgetRun, item: pytest.Item, state: CaseCapture, outcome: str) -> None:
    from pytest_tokenbudget.measure.accounting import MISSING, STALE
    from pytest_tokenbudget.plugin.handle import finish_case

    if state.misses and state.capture is not None:  # its recording, not its test, is wrong
        run.note_recording(item.nodeid, STALE if state.capture.path.exists() else MISSING)
    finish_case(run, item.nodeid, state, outcome)
    # Free the cassette and its bodies now, not at the end of the session.
    del item.stash[CAPTURE_KEY]
    if state.closed:
        state.capture = None


def _capture_failure(item: pytest.Item, state: CaseCapture) -> str:
    from pytest_tokenbudget.capture.staleness import describe_misses

    lines = [f"pytest-tokenbudget: {error}" for error in state.errors]
    if state.misses:
        lines.append(describe_misses(state, item.nodeid))
    return "\n".join(lines)


# -- fixtures --------------------------------------------------------------------------
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
    if hasattr(config, "workerinput"):
        config.workeroutput["tokenbudget"] = run.to_wire()  # type: ignore[attr-defined]
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return

    from pytest_tokenbudget.capture.gc_pause import gc_paused
    from pytest_tokenbudget.plugin.finish import conclude

    workspace = os.environ.get("GITHUB_WORKSPACE") or str(config.rootpath)
    update = None
    if config.getoption("token_budget_update"):
        from pytest_tokenbudget.report.ratchet import update_budgets

        def update(report: dict[str, Any]) -> Any:
            return update_budgets(
                report,
                run.config,
                run.case_runs,
                margin_pct=config.getoption("token_budget_update_margin"),
                loosen=config.getoption("token_budget_update") == "loosen",
                shown=_display(run.config.path, config),
            )

    with gc_paused():
        conclusion = conclude(
            run,
            baseline=config.stash.get(BASELINE_KEY, None),
            max_regression_pct=config.getoption("token_budget_max_regression"),
            config_path=os.path.relpath(run.config.path, workspace),
            report_hook=lambda report: config.hook.pytest_tokenbudget_report(
                report=report, config=config
            ),
            github=os.environ.get("GITHUB_ACTIONS") == "true",
            display=lambda path: _display(path, config),
            update=update,
        )
    config.stash[SUMMARY_KEY] = conclusion.lines
    if not conclusion.failed:
        return
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    # pytest's last line says it too: "25 passed, 1 token budget failed in 0.52s" (an extra
    # key in the reporter's stats, as pytest-rerunfailures' "rerun").
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        failed = [ep.name for ep in conclusion.report.failed_endpoints] or [""]
        key = "token budget failed" if len(failed) == 1 else "token budgets failed"
        reporter.stats.setdefault(key, []).extend(BudgetFailed(name) for name in failed)


class BudgetFailed:
    """One entry of pytest's final line ("1 token budget failed"): shaped like a test report
    where plugins that walk every entry of the reporter's stats look (hypothesis does)."""

    count_towards_summary = True
    outcome = when = ""
    longrepr = None
    duration = 0.0
    sections: tuple[tuple[str, str], ...] = ()
    user_properties: tuple[tuple[str, object], ...] = ()

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.nodeid = f"token_budget::{endpoint}" if endpoint else "token_budget"
        self.location = ("token_budgets.yml", None, self.nodeid)
        self.keywords: dict[str, object] = {}


def _display(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.invocation_params.dir))
    except ValueError:
        return str(path)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: merge a worker's samples (as syrupy does)."""
    run = run_of(node.config)
    output = getattr(node, "workeroutput", {}).get("tokenbudget")
    if run is not None and output is not None:
        run.merge_wire(output)


VERDICT_FAIL, VERDICT_PASS = "token budget: FAIL", "token budget: PASS"  # table.render_verdict


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(SUMMARY_KEY, None)
    if not lines:
        return
    terminalreporter.section("token budget")
    for line in lines:
        markup = {"red": True} if line.startswith(("FAIL", "LOOSENED", VERDICT_FAIL)) else {}
        if line.startswith(VERDICT_PASS):
            markup = {"green": True}
        terminalreporter.line(line, **markup)
