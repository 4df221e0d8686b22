"""Property-based: whatever is thrown at the parsers gives a valid result or a clear error."""

from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_tokenbudget.config.budgets import BUDGET_KEYS, load_config
from pytest_tokenbudget.errors import TokenBudgetError
from pytest_tokenbudget.providers.exchanges import load_cassette_file

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
keys = st.sampled_from(
    [
        *BUDGET_KEYS,
        "target_model",
        "cases",
        "batch",
        "min_samples",
        "requests_per_day",
        "escalation_models",
        "bogus",
        "max_input_token_p95",
    ]
)
endpoint = st.dictionaries(keys, st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=6)
configs = st.one_of(
    st.dictionaries(
        st.sampled_from(["endpoints", "defaults", "pricing", "version", "extra"]),
        st.one_of(scalars, st.dictionaries(st.text(min_size=1, max_size=8), endpoint, max_size=3)),
        max_size=4,
    ),
    st.lists(scalars),
    scalars,
)


def _clear(err: TokenBudgetError, path) -> None:
    text = str(err)
    assert text and "Traceback" not in text
    assert str(path) in text or (err.path and str(path) in err.path), text


@SETTINGS
@given(data=configs)
def test_any_config_loads_or_names_its_problem(tmp_path, data):
    path = tmp_path / "token_budgets.yml"
    path.write_text(yaml.safe_dump(data))
    try:
        config = load_config(path)
    except TokenBudgetError as err:
        _clear(err, path)
        return
    for ep in config.endpoints.values():
        assert ep.budgets


@SETTINGS
@given(text=st.text(max_size=300))
def test_any_text_as_config_loads_or_names_its_problem(tmp_path, text):
    path = tmp_path / "token_budgets.yml"
    path.write_text(text)
    try:
        load_config(path)
    except TokenBudgetError as err:
        _clear(err, path)


json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
interaction = st.fixed_dictionaries(
    {
        "request": st.fixed_dictionaries(
            {
                "method": st.sampled_from(["POST", "GET"]),
                "uri": st.sampled_from(
                    [
                        "https://api.anthropic.com/v1/messages",
                        "https://api.openai.com/v1/chat/completions",
                        "https://api.anthropic.com/v1/messages/count_tokens",
                        "https://x/y",
                    ]
                ),
                "body": st.one_of(st.none(), st.text(max_size=40), json_like.map(json.dumps)),
            }
        ),
        "response": st.fixed_dictionaries(
            {
                "status": st.one_of(
                    st.fixed_dictionaries({"code": st.sampled_from([200, 400, 529])}), scalars
                ),
                "headers": st.one_of(
                    st.just({}), st.just({"content-type": ["text/event-stream"]}), json_like
                ),
                "body": st.one_of(
                    st.fixed_dictionaries(
                        {"string": st.one_of(st.text(max_size=60), json_like.map(json.dumps))}
                    ),
                    scalars,
                ),
            }
        ),
    }
)


@SETTINGS
@given(interactions=st.lists(interaction, max_size=3), version=st.sampled_from([1, None]))
def test_any_cassette_parses_or_names_the_file(tmp_path, interactions, version):
    path = tmp_path / "c.yaml"
    document = {"interactions": interactions}
    if version:
        document["version"] = version
    path.write_text(yaml.safe_dump(document))
    try:
        exchanges = load_cassette_file(path)
    except TokenBudgetError as err:
        _clear(err, path)
        return
    assert len(exchanges) == len(interactions)


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_as_cassette_parses_or_names_the_file(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        load_cassette_file(path)
    except TokenBudgetError as err:
        _clear(err, path)


@SETTINGS
@given(
    data=st.one_of(
        json_like,
        st.fixed_dictionaries(
            {
                "schema": st.just("pytest-tokenbudget/report"),
                "version": st.one_of(st.integers(0, 3), scalars),
                "endpoints": json_like,
            }
        ),
    )
)
def test_any_baseline_loads_or_names_the_file(tmp_path, data):
    from pytest_tokenbudget.report.reader import load_report

    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    try:
        load_report(path)
    except TokenBudgetError as err:
        _clear(err, path)
