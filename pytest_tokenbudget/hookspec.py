"""Hooks other plugins and conftest.py files can implement (registered via pytest_addhooks).

Define any of these functions in a conftest.py or a plugin; pytest finds them by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_tokenbudget.usage import Call, Exchange


@pytest.hookspec(firstresult=True)
def pytest_tokenbudget_parse_usage(exchange: Exchange) -> list[Call] | None:
    """Turn one recorded HTTP exchange into the API calls it made.

    Called for every exchange a budget test makes (replayed or recorded). ``exchange``
    holds both sides: ``method``, ``url``, ``request_body`` and the response's
    ``status``, ``headers`` (lower-cased names, lists of values) and ``body`` (bytes,
    possibly gzip; ``pytest_tokenbudget.usage.decode_body`` undoes it).

    Return a list of ``Call`` (an empty list for an exchange of your provider that
    carries no usage, such as an error), or None when the exchange is not your
    provider's: the next implementation is asked. The first non-None result wins; the
    built-in Anthropic and OpenAI parsers run last, so a conftest can override them.
    """


@pytest.hookspec(firstresult=True)
def pytest_tokenbudget_price(model: str) -> Mapping[str, float] | None:
    """A price for a model genai-prices (the price source) and ``pricing:`` do not know.

    Asked when pytest starts, for each configured model (``target_model``,
    ``escalation_models``) nothing else prices, so the model is not rejected as unknown;
    then once per run for each called model nothing else prices, before the unknown-model
    error. Only hooks loaded when pytest configures (plugins, the rootdir's and initial
    conftest.py files) can vouch for a configured model. Return dollar rates
    per million tokens: ``{"input": ..., "output": ...}`` and optionally
    ``cache_write_5m``, ``cache_write_1h``, ``cache_read`` (defaulting to 1.25x, 2x and
    0.1x input), or None to let the next implementation (or the error) answer.
    """


@pytest.hookspec
def pytest_tokenbudget_scrub(interaction: dict[str, Any]) -> None:
    """Extra scrubbing of one interaction before its cassette is written.

    ``interaction`` is ``{"request": {"method", "uri", "body", "headers"}, "response":
    {"status", "headers", "body": {"string": ...}}}`` after the built-in scrubbing;
    change it in place. All implementations are called. The written file is still
    scanned for key-shaped values afterwards, and refused if one survives.
    """


@pytest.hookspec
def pytest_tokenbudget_report(report: dict[str, Any], config: pytest.Config) -> str | None:
    """See the finished report, once per run, before report.json and report.md are written.

    Called on the controller only (under pytest-xdist). Use it to push the numbers to a
    metrics backend. ``report`` is the report.json document; treat it as read-only.
    Return a Markdown section to append to report.md, or None. All implementations are
    called; their sections are appended in order.
    """
