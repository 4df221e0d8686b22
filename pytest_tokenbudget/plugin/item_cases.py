"""Which endpoint and which case each collected item is.

The endpoint comes from the item's `token_budget` marker; the case from the endpoint's
`cases:` (a `budget_case` parameter), a request case item, or the test itself. One case
per item: its cassette is named after it (capture/case_ids.py). Read by an inert run too
(a marked test is skipped only when nothing but the plugin can serve its calls), so the
module imports only pytest and the plugin's stash.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_tokenbudget.plugin.stash import CASE_ID_KEY, CASE_PROBLEM_KEY

if TYPE_CHECKING:
    from pytest_tokenbudget.measure.run import BudgetRun

MARKER_USAGE = (
    '@pytest.mark.token_budget takes one endpoint name: @pytest.mark.token_budget("chat_reply")'
)


def marked_endpoint(item: pytest.Item) -> str | None:
    """The endpoint an item's token_budget marker names; None when unmarked or malformed
    (a malformed marker is reported where the test runs, by `endpoint_of`)."""
    marker = item.get_closest_marker("token_budget")
    if marker is None or len(marker.args) != 1 or not isinstance(marker.args[0], str):
        return None
    return marker.args[0]


def endpoint_of(marker: pytest.Mark) -> str:
    """The endpoint a marker names; the test fails (without a traceback) when it names none."""
    if len(marker.args) != 1 or not isinstance(marker.args[0], str):
        pytest.fail(MARKER_USAGE, pytrace=False)
    return marker.args[0]


def parametrize_cases(metafunc: pytest.Metafunc, run: BudgetRun) -> None:
    """A marked test that asks for `budget_case` runs once per case of its endpoint."""
    marker = metafunc.definition.get_closest_marker("token_budget")
    if marker is None:
        return
    name = endpoint_of(marker)
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


def case_id(item: pytest.Item) -> str:
    """The item's case id, as collection settled it (`check_cases`)."""
    found = item.stash.get(CASE_ID_KEY, None)
    return found if found is not None else case_ids(item)[0]


def case_ids(item: pytest.Item) -> tuple[str, str | None]:
    """The item's case id, and where its cassette was before one case per item (None: the
    same place)."""
    from pytest_tokenbudget.capture.case_ids import budget_case_id, test_case_id
    from pytest_tokenbudget.plugin.request_cases import RequestCaseItem

    if isinstance(item, RequestCaseItem):
        return str(item.case["id"]), None
    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("budget_case"), dict):
        own = str(callspec.params["budget_case"]["id"])
        idlist = getattr(callspec, "_idlist", None) or [callspec.id]
        full = budget_case_id(own, idlist)
        return full, (own if full != own else None)
    return test_case_id(item.nodeid), getattr(item, "originalname", item.name)


def check_cases(run: BudgetRun, items: list[pytest.Item]) -> None:
    """One case per item: two items of one endpoint never share a case (and a cassette);
    cassettes still at their pre-per-item path are named with the command that moves them."""
    from pytest_tokenbudget.capture.case_ids import ItemCase, collisions, legacy_moves

    cases = []
    for item in items:
        endpoint = marked_endpoint(item)
        if endpoint is None:
            continue
        found, legacy = case_ids(item)
        item.stash[CASE_ID_KEY] = found
        cases.append(
            ItemCase(endpoint, found, item.nodeid, None if foreign_driven(item) else legacy)
        )
    # Failed at setup, item by item: an error raised here would be an INTERNALERROR
    # under xdist, whose workers collect too.
    assert run.options.cassettes is not None  # set by pytest_configure
    problems = {**legacy_moves(cases, run.options.cassettes), **collisions(cases)}
    for item in items:
        if item.nodeid in problems:
            item.stash[CASE_PROBLEM_KEY] = problems[item.nodeid]


def only_ours(item: pytest.Item, cassettes: Path) -> bool:
    """Whether only the plugin can serve a marked test's calls (its fixtures, or a
    cassette of its own): without --token-budget such a test is skipped."""
    fixtures = getattr(item, "fixturenames", ())
    if "budget_case" in fixtures or "token_budget" in fixtures:
        return True
    if foreign_driven(item):
        return False
    endpoint = marked_endpoint(item)
    if endpoint is None:
        return False
    from pytest_tokenbudget.capture.case_ids import cassette_path, test_case_id

    legacy = getattr(item, "originalname", item.name)  # where it was before one per item
    return any(
        cassette_path(cassettes, endpoint, found).is_file()
        for found in (test_case_id(item.nodeid), legacy)
    )


def foreign_driven(item: pytest.Item) -> bool:
    """Driven by pytest-recording or pytest-vcr, as far as collection can tell (their
    `vcr` marker, or pytest-vcr's fixture; pytest-recording's `vcr` fixture is autouse)."""
    fixtures = getattr(item, "fixturenames", ())
    return item.get_closest_marker("vcr") is not None or "vcr_cassette" in fixtures
