"""Request cases: budgets with no test code.

A case with a `request` key holds a Messages request body. For an endpoint that no
test is marked for, the plugin makes one item per such case, shown as
`token_budgets.yml::<endpoint>[<case_id>]`: it replays (or records) the request
when a recording exists or recording is on, and otherwise counts its input with
count_tokens (free, cached in token_counts.json).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from pytest_tokenbudget.errors import CassetteError

if TYPE_CHECKING:
    from pytest_tokenbudget.capture.counting import CountCache
    from pytest_tokenbudget.measure.run import BudgetRun

PROGRESS_ABOVE = 5  # show a progress line when counting more than a handful


class BudgetFile(pytest.File):
    """token_budgets.yml as a node, so its generated items get readable ids."""

    def collect(self) -> list[pytest.Item]:
        return []  # items are added after collection, once marked endpoints are known


class RequestCaseItem(pytest.Item):
    def __init__(self, *, endpoint: str, case: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.case = case
        self.add_marker(pytest.mark.token_budget(endpoint))

    def runtest(self) -> None:
        from pytest_tokenbudget.plugin.handle import open_case
        from pytest_tokenbudget.plugin.stash import CAPTURE_KEY, run_of
        from pytest_tokenbudget.providers.usage import Call, Usage

        run = run_of(self.config)
        assert run is not None
        request = dict(self.case["request"])
        state = open_case(run, self.endpoint, self.case["id"], self.nodeid)
        self.stash[CAPTURE_KEY] = state
        try:
            if state.capture is not None and (
                state.capture.path.exists() or run.options.record_mode != "none"
            ):
                _send(request)
                return
            tokens = count_request(run, request)
            run.diagnose_request(self.endpoint, self.case["id"], request, tokens, self.nodeid)
            state.manual.append(
                Call(
                    "anthropic",
                    "messages",
                    str(request.get("model", "")),
                    Usage(input_tokens=tokens),
                    input_only=True,
                )
            )
        finally:
            state.close()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CassetteError):
            return f"pytest-tokenbudget: {excinfo.value}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"{self.endpoint}[{self.case['id']}]"


def _send(request: dict[str, Any]) -> None:
    import anthropic

    client = anthropic.Anthropic()
    response = client.messages.create(**request)
    if request.get("stream"):
        for _ in response:  # a stream must be read for its usage to arrive
            pass


def count_request(run: BudgetRun, request: dict[str, Any]) -> int:
    from pytest_tokenbudget.capture.counting import (
        count_key,
        count_parts_sync,
        count_sync,
        counted_request,
        counter_client,
    )

    counts = _count_cache(run)
    if not run.can_count_online and counts.get(count_key(counted_request(request))) is None:
        raise CassetteError(
            f"no recording and no cached count for this request case ({counts.path}): "
            "count it (free) with ANTHROPIC_API_KEY=... pytest --token-budget, or record it with "
            "--token-budget-record=once"
        )
    send = counter_client()
    tokens = count_sync(counts, request, send).input_tokens
    if run.can_count_online:  # its parts too, exactly (report.md: anatomy)
        count_parts_sync(counts, request, send)
    return tokens


def _count_cache(run: BudgetRun) -> CountCache:
    assert run.counts is not None  # the plugin's run always has one (pytest_configure)
    return run.counts


def make_items(
    session: pytest.Session, run: BudgetRun, items: list[pytest.Item]
) -> list[pytest.Item]:
    """Items for request cases of endpoints that no collected test is marked for."""
    marked = {
        m.args[0]
        for item in items
        for m in item.iter_markers("token_budget")
        if m.args and isinstance(m.args[0], str)
    }
    config_path = run.config.path
    parent = BudgetFile.from_parent(session, path=config_path)
    made: list[pytest.Item] = []
    for name, endpoint in run.config.endpoints.items():
        if name in marked:
            continue
        for case in endpoint.cases:
            if isinstance(case.get("request"), dict):
                made.append(
                    RequestCaseItem.from_parent(
                        parent, name=f"{name}[{case['id']}]", endpoint=name, case=case
                    )
                )
    return made


def precount(
    run: BudgetRun, items: list[pytest.Item], *, workers: int, progress: Callable[[str, bool], None]
) -> None:
    """Count the request cases that will need it, concurrently, before they run."""
    from pytest_tokenbudget.capture.counting import count_key, counted_request

    if not run.can_count_online:
        return
    counts = _count_cache(run)
    pending = []
    for item in items:
        if isinstance(item, RequestCaseItem):
            request = item.case["request"]
            if counts.get(count_key(counted_request(request))) is None:
                pending.append(request)
    if not pending:
        return
    done = 0
    total = len(pending)
    from pytest_tokenbudget.capture.counting import count_parts_sync, count_sync, counter_client

    send = counter_client()

    def one(request: dict[str, Any]) -> None:
        count_sync(counts, request, send)
        count_parts_sync(counts, request, send)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(one, r) for r in pending]:
            with contextlib.suppress(CassetteError):  # the item that needs the count says it
                future.result()
            done += 1
            if total > PROGRESS_ABOVE:
                progress(f"token budget: counted {done}/{total} request cases", done == total)
