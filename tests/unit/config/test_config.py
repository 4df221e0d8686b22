"""token_budgets.yml: what loads, and what every bad file says (file, line, key)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
from paths import REPO

from pytest_tokenbudget.config.budgets import (
    BUDGET_KEYS,
    DEFAULTS_KEYS,
    ENDPOINT_KEYS,
    Budget,
    load_config,
    schema_path,
)
from pytest_tokenbudget.errors import ConfigError

# The field guide's example, exactly as DESIGN.md and the README show it.
FIELD_GUIDE = """\
endpoints:
  chat_reply:
    max_input_tokens_p95: 4000
    max_output_tokens_p95: 600
    target_model: claude-sonnet-4-6
    allowed_escalation_rate: 0.15  # Max 15% of calls may use frontier model
    monthly_budget_usd: 8000
"""

FULL_FORM = """\
version: 1
defaults:                      # merged under every endpoint
  min_samples: 20
pricing:                       # $ per million tokens; overrides and additions to the shipped table
  my-proxy-model: {input: 3.0, output: 15.0, cache_write_5m: 3.75, cache_write_1h: 6.0, cache_read: 0.30}
endpoints:
  chat_reply:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 4000       # also _p50, _p90, _p99, _max; and max_output_tokens_*
    max_output_tokens_p95: 600
    allowed_escalation_rate: 0.15
    escalation_models: [claude-opus-4-7]   # default: any model other than target_model
    min_cache_hit_rate: 0.6
    max_cost_per_request_usd: 0.05
    monthly_budget_usd: 8000
    requests_per_day: 10000          # for the monthly projection
    batch: false                     # priced with the Batch API discount when true
    cases: budget_cases/chat_reply.yml   # or an inline list
"""

CASES = """\
- id: refund_question
  input: When will I get my refund?
- id: long_complaint
  input: My order arrived broken and ...
"""


def write(tmp_path: Path, text: str, name: str = "token_budgets.yml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


# -- what loads -----------------------------------------------------------------------------
def test_field_guide_example_loads_unchanged(tmp_path):
    config = load_config(write(tmp_path, FIELD_GUIDE))

    assert config.version == 1
    assert list(config.endpoints) == ["chat_reply"]
    chat = config.endpoints["chat_reply"]
    assert chat.name == "chat_reply" and chat.line == 2
    assert chat.target_model == "claude-sonnet-4-6"
    assert chat.escalation_models is None  # any model other than the target
    assert chat.budgets == (
        Budget("max_input_tokens_p95", "input_tokens_p95", 4000, "max", 3),
        Budget("max_output_tokens_p95", "output_tokens_p95", 600, "max", 4),
        Budget("allowed_escalation_rate", "escalation_rate", 0.15, "max", 6),
        Budget("monthly_budget_usd", "monthly_cost_usd", 8000, "max", 7),
    )
    assert chat.requests_per_day is None and chat.batch is False
    assert chat.min_samples == 20 and chat.max_regression_pct is None
    assert chat.cases == () and chat.cases_path is None
    assert config.pricing == {} and config.pricing_lines == {}


def test_full_form_loads_with_cases_from_a_file(tmp_path):
    write(tmp_path, CASES, "budget_cases/chat_reply.yml")
    config = load_config(write(tmp_path, FULL_FORM))

    chat = config.endpoints["chat_reply"]
    assert chat.escalation_models == ("claude-opus-4-7",)
    assert {b.key: (b.metric, b.limit, b.kind) for b in chat.budgets} == {
        "max_input_tokens_p95": ("input_tokens_p95", 4000, "max"),
        "max_output_tokens_p95": ("output_tokens_p95", 600, "max"),
        "allowed_escalation_rate": ("escalation_rate", 0.15, "max"),
        "min_cache_hit_rate": ("cache_hit_rate", 0.6, "min"),
        "max_cost_per_request_usd": ("cost_per_request_usd", 0.05, "max"),
        "monthly_budget_usd": ("monthly_cost_usd", 8000, "max"),
    }
    assert chat.requests_per_day == 10000 and chat.batch is False and chat.min_samples == 20
    assert [c["id"] for c in chat.cases] == ["refund_question", "long_complaint"]
    assert chat.cases[0]["input"] == "When will I get my refund?"
    assert chat.cases_path == (tmp_path / "budget_cases/chat_reply.yml").resolve()
    assert config.pricing == {
        "my-proxy-model": {
            "input": 3.0,
            "output": 15.0,
            "cache_write_5m": 3.75,
            "cache_write_1h": 6.0,
            "cache_read": 0.30,
        }
    }
    assert config.pricing_lines == {"my-proxy-model": 5}


def test_inline_cases(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
            endpoints:
              triage:
                max_output_tokens_max: 64
                cases:
                  - id: t01
                    ticket: Refund not received
                  - {id: t02, request: {model: claude-haiku-4-5, max_tokens: 10, messages: []}}
            """,
        )
    )
    triage = config.endpoints["triage"]
    assert [c["id"] for c in triage.cases] == ["t01", "t02"]
    assert triage.cases[1]["request"]["model"] == "claude-haiku-4-5"
    assert triage.cases_path is None


def test_every_budget_key_maps_to_its_metric(tmp_path):
    body = "".join(f"    {key}: {0.5 if 'rate' in key else 7}\n" for key in BUDGET_KEYS)
    config = load_config(write(tmp_path, "endpoints:\n  all:\n    target_model: m\n" + body))
    budgets = config.endpoints["all"].budgets
    assert [b.key for b in budgets] == list(BUDGET_KEYS)
    assert [b.line for b in budgets] == list(range(4, 4 + len(BUDGET_KEYS)))
    by_key = {b.key: b for b in budgets}
    assert by_key["max_output_tokens_p99"].metric == "output_tokens_p99"
    assert by_key["max_input_tokens_max"].metric == "input_tokens_max"
    assert by_key["min_cache_hit_rate"].kind == "min"
    assert {b.kind for b in budgets if b.key != "min_cache_hit_rate"} == {"max"}


def test_budget_lines_point_at_their_keys(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
            # yaml-language-server: $schema=pytest_tokenbudget/config/config_schema.json

            endpoints:
              first:
                max_input_tokens_p95: 10

              second:
                target_model: claude-haiku-4-5
                # a comment line
                max_output_tokens_p50: 5
                min_cache_hit_rate: 0.5
            """,
        )
    )
    first, second = config.endpoints.values()
    assert first.line == 4 and [(b.key, b.line) for b in first.budgets] == [
        ("max_input_tokens_p95", 5)
    ]
    assert second.line == 7
    assert [(b.key, b.line) for b in second.budgets] == [
        ("max_output_tokens_p50", 10),
        ("min_cache_hit_rate", 11),
    ]
    assert second.lines == {
        "target_model": 8,
        "max_output_tokens_p50": 10,
        "min_cache_hit_rate": 11,
    }


def test_endpoints_keep_file_order(tmp_path):
    text = "endpoints:\n" + "".join(f"  {n}: {{max_input_tokens_p95: 1}}\n" for n in "zyxab")
    assert list(load_config(write(tmp_path, text)).endpoints) == list("zyxab")


def test_defaults_merge_under_every_endpoint_and_the_endpoint_wins(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
            defaults:
              min_samples: 5
              requests_per_day: 2000
              max_output_tokens_p95: 300
              batch: true
              max_regression_pct: 10
            endpoints:
              a:
                max_input_tokens_p95: 100
              b:
                max_output_tokens_p95: 50
                min_samples: 40
            """,
        )
    )
    a, b = config.endpoints["a"], config.endpoints["b"]
    assert (a.min_samples, a.requests_per_day, a.batch, a.max_regression_pct) == (5, 2000, True, 10)
    assert [(x.key, x.limit, x.line) for x in a.budgets] == [
        ("max_input_tokens_p95", 100, 9),
        ("max_output_tokens_p95", 300, 4),  # inherited: the line of the defaults key
    ]
    assert a.lines["min_samples"] == 2 and a.lines["max_input_tokens_p95"] == 9
    assert b.min_samples == 40 and b.lines["min_samples"] == 12
    assert [(x.key, x.limit, x.line) for x in b.budgets] == [("max_output_tokens_p95", 50, 11)]


def test_a_budget_in_defaults_is_enough(tmp_path):
    config = load_config(
        write(tmp_path, "defaults:\n  max_input_tokens_p95: 9\nendpoints:\n  a:\n    batch: true\n")
    )
    assert [(b.key, b.line) for b in config.endpoints["a"].budgets] == [("max_input_tokens_p95", 2)]


def test_pricing_entries_need_input_and_output_only(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
            pricing:
              proxy-a: {input: 1, output: 2}
              proxy-b:
                input: 0.8
                output: 4
                cache_read: 0.08
            endpoints:
              a: {max_input_tokens_p95: 1}
            """,
        )
    )
    assert config.pricing == {
        "proxy-a": {"input": 1, "output": 2},
        "proxy-b": {"input": 0.8, "output": 4, "cache_read": 0.08},
    }
    assert config.pricing_lines == {"proxy-a": 2, "proxy-b": 3}


def test_the_repository_config_loads():
    config = load_config(REPO / "token_budgets.yml")
    assert list(config.endpoints) == ["chat_reply", "triage"]
    assert config.endpoints["triage"].min_samples == 5
    assert config.endpoints["chat_reply"].requests_per_day == 2000  # from defaults
    assert all(e.cases for e in config.endpoints.values())


# -- what each mistake says -----------------------------------------------------------------
def test_typo_gets_a_did_you_mean_at_its_line(tmp_path):
    message = error_of(
        tmp_path,
        """\
        endpoints:
          chat_reply:
            max_input_token_p95: 4000
            max_output_tokens_p95: 600
        """,
    )
    assert message == (
        f"{tmp_path / 'token_budgets.yml'}:3: max_input_token_p95: unknown key "
        "'max_input_token_p95' (did you mean 'max_input_tokens_p95'?)"
    )


@pytest.mark.parametrize(
    ("text", "line", "key", "suggestion"),
    [
        ("endpoint:\n  a: {max_input_tokens_p95: 1}\n", 1, "endpoint", "'endpoints'"),
        ("defualts: {}\nendpoints:\n  a: {max_input_tokens_p95: 1}\n", 1, "defualts", "'defaults'"),
        (
            "endpoints:\n  a:\n    max_input_tokens_p95: 1\n    targt_model: x\n",
            4,
            "targt_model",
            "'target_model'",
        ),
        (
            "defaults:\n  min_sample: 3\nendpoints:\n  a: {max_input_tokens_p95: 1}\n",
            2,
            "min_sample",
            "'min_samples'",
        ),
        (
            "pricing:\n  m: {input: 1, ouput: 2, output: 2}\nendpoints:\n  a: {max_input_tokens_p95: 1}\n",
            2,
            "ouput",
            "'output'",
        ),
        (
            "endpoints:\n  a:\n    Max_Input_Tokens_P95: 1\n",
            3,
            "Max_Input_Tokens_P95",
            "'max_input_tokens_p95'",
        ),
    ],
)
def test_unknown_keys_everywhere_suggest_the_close_one(tmp_path, text, line, key, suggestion):
    message = error_of(tmp_path, text)
    assert (
        f"token_budgets.yml:{line}: {key}: unknown key {key!r} (did you mean {suggestion}?)"
        in message
    )


def test_unknown_key_without_a_close_match_lists_the_allowed_ones(tmp_path):
    message = error_of(tmp_path, "version: 1\nendpoints:\n  a: {max_input_tokens_p95: 1}\nfoo: 1\n")
    assert (
        "token_budgets.yml:4: foo: unknown key 'foo' (allowed here: version, defaults, pricing, cache_minimums, endpoints)"
        in message
    )


def test_cases_are_not_a_default(tmp_path):
    message = error_of(
        tmp_path, "defaults:\n  cases: x.yml\nendpoints:\n  a: {max_input_tokens_p95: 1}\n"
    )
    assert ":2: cases: unknown key 'cases': cases belong to an endpoint, not to defaults" in message


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        (
            "max_input_tokens_p95: '4000'",
            "max_input_tokens_p95",
            "expected a whole number, got '4000'",
        ),
        ("max_input_tokens_p95: 40.5", "max_input_tokens_p95", "expected a whole number, got 40.5"),
        ("max_input_tokens_p95: true", "max_input_tokens_p95", "expected a whole number, got true"),
        ("monthly_budget_usd: lots", "monthly_budget_usd", "expected a number, got 'lots'"),
        ("batch: maybe", "batch", "expected true or false, got 'maybe'"),
        ("target_model: [a, b]", "target_model", "expected a string, got a list"),
        (
            "escalation_models: claude-opus-4-7",
            "escalation_models",
            "expected a list, got 'claude-opus-4-7'",
        ),
        ("escalation_models: [1]", "escalation_models[0]", "expected a string, got 1"),
        ("min_samples: 2.5", "min_samples", "expected a whole number, got 2.5"),
        ("requests_per_day:", "requests_per_day", "expected a number, got nothing"),
        ("cases: 3", "cases", "expected a cases file path or a list of cases, got 3"),
    ],
)
def test_wrong_types_name_file_line_and_key(tmp_path, line, key, expected):
    message = error_of(tmp_path, f"endpoints:\n  chat:\n    max_output_tokens_p95: 1\n    {line}\n")
    assert message == f"{tmp_path / 'token_budgets.yml'}:4: {key}: {expected}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "allowed_escalation_rate: 15",
            "15 is out of range: a rate is between 0 and 1 (0.15 means 15%)",
        ),
        (
            "min_cache_hit_rate: -0.1",
            "-0.1 is out of range: a rate is between 0 and 1 (0.15 means 15%)",
        ),
        ("max_input_tokens_p95: -1", "-1 is out of range: must be at least 0"),
        ("monthly_budget_usd: -5", "-5 is out of range: must be at least 0"),
        ("min_samples: 0", "0 is out of range: must be at least 1"),
        ("max_regression_pct: -3", "-3 is out of range: must be at least 0"),
    ],
)
def test_out_of_range_values(tmp_path, line, expected):
    message = error_of(
        tmp_path,
        f"endpoints:\n  chat:\n    target_model: m\n    max_output_tokens_p95: 1\n    {line}\n",
    )
    assert message.endswith(f":5: {line.split(':')[0]}: {expected}")


def test_nan_budgets_and_prices_are_errors(tmp_path):
    """`.nan` passes the schema's minimum and maximum (jsonschema says valid), and a NaN
    budget compares false with every measurement: it could never fail."""
    message = error_of(
        tmp_path,
        """\
        pricing:
          proxy: {input: .nan, output: 1}
        endpoints:
          chat:
            target_model: m
            allowed_escalation_rate: .nan
            cases: [{id: q1, score: .nan}]
        """,
    )
    assert message.splitlines()[1:] == [
        f"{tmp_path / 'token_budgets.yml'}:2: input: is .nan: give a number",
        f"{tmp_path / 'token_budgets.yml'}:6: allowed_escalation_rate: is .nan: give a number",
    ]


def test_zero_budgets_are_allowed(tmp_path):
    config = load_config(
        write(tmp_path, "endpoints:\n  a: {max_output_tokens_max: 0, min_cache_hit_rate: 1}\n")
    )
    assert [b.limit for b in config.endpoints["a"].budgets] == [0, 1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ":1: the file is empty"),
        ("# only a comment\n", ":1: the file is empty"),
        ("version: 1\n", ":1: endpoints: missing: a budget file needs `endpoints:`"),
        ("endpoints:\n", ":1: endpoints: expected a mapping, got nothing"),
        ("endpoints: {}\n", ":1: endpoints: no endpoints: give at least one"),
        ("- endpoints\n", ":1: expected a mapping with `endpoints:` at the top level, got a list"),
    ],
)
def test_missing_endpoints(tmp_path, text, expected):
    assert expected in error_of(tmp_path, text)


def test_endpoint_without_budgets_is_named(tmp_path):
    message = error_of(
        tmp_path,
        """\
        defaults:
          min_samples: 5
        endpoints:
          fine:
            max_input_tokens_p95: 1
          chat_reply:
            target_model: claude-sonnet-4-6
            requests_per_day: 100
        """,
    )
    assert message.endswith(
        ":6: chat_reply: no budget: give at least one (e.g. max_input_tokens_p95: 4000), here or in defaults"
    )


def test_endpoint_that_is_not_a_mapping(tmp_path):
    assert "2: chat: an endpoint is a mapping of its budgets" in error_of(
        tmp_path, "endpoints:\n  chat:\n"
    )
    assert "2: max_input_tokens_p95: max_input_tokens_p95 goes under an endpoint name" in error_of(
        tmp_path, "endpoints:\n  max_input_tokens_p95: 4000\n"
    )


def test_bad_endpoint_name(tmp_path):
    message = error_of(tmp_path, "endpoints:\n  chat/reply: {max_input_tokens_p95: 1}\n")
    assert ":2: chat/reply: endpoint name 'chat/reply' names cassette folders" in message


def test_non_string_keys_must_be_quoted(tmp_path):
    message = error_of(tmp_path, "endpoints:\n  2024: {max_input_tokens_p95: 1}\n")
    assert ":2: 2024: key 2024 is not a string: quote it" in message


def test_duplicate_keys_name_both_lines(tmp_path):
    message = error_of(
        tmp_path,
        """\
        endpoints:
          chat:
            max_input_tokens_p95: 4000
            max_output_tokens_p95: 600
            max_input_tokens_p95: 9000
        """,
    )
    assert message.endswith(
        ":5: max_input_tokens_p95: duplicate key (first on line 3; YAML keeps only the last)"
    )


def test_duplicate_endpoint(tmp_path):
    message = error_of(
        tmp_path,
        "endpoints:\n  chat: {max_input_tokens_p95: 1}\n  chat: {max_input_tokens_p95: 2}\n",
    )
    assert ":3: chat: duplicate key (first on line 2" in message


def test_malformed_yaml_names_line_and_column(tmp_path):
    message = error_of(
        tmp_path,
        """\
        endpoints:
          chat:
            max_input_tokens_p95: 4000
           max_output_tokens_p95: 600
        """,
    )
    path = tmp_path / "token_budgets.yml"
    assert message.startswith(f"{path}:4: malformed YAML at line 4, column 4: ")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.path, info.value.line) == (str(path), 4)


def test_malformed_yaml_tab_indent(tmp_path):
    message = error_of(tmp_path, "endpoints:\n\tchat: {}\n")
    assert ":2: malformed YAML at line 2, column 1" in message


def test_version_must_be_1(tmp_path):
    message = error_of(tmp_path, "version: 2\nendpoints:\n  a: {max_input_tokens_p95: 1}\n")
    assert message.endswith(
        ":1: version: unsupported version 2: this pytest-tokenbudget reads version 1"
    )
    config = load_config(
        write(tmp_path, "version: 1\nendpoints:\n  a: {max_input_tokens_p95: 1}\n")
    )
    assert config.version == 1


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "{input: 3}",
            "m: price has no 'output' rate: a pricing entry needs at least input and output",
        ),
        ("{output: 3}", "m: price has no 'input' rate"),
        ("{input: 3, output: -1}", "output: -1 is out of range: must be at least 0"),
        ("{input: 3, output: 15, cache_read: free}", "cache_read: expected a number, got 'free'"),
        ("3.0", "m: expected a mapping, got 3.0"),
    ],
)
def test_bad_pricing_entries(tmp_path, entry, expected):
    message = error_of(
        tmp_path, f"pricing:\n  m: {entry}\nendpoints:\n  a: {{max_input_tokens_p95: 1}}\n"
    )
    assert f"token_budgets.yml:2: {expected}" in message


def test_escalation_needs_a_target(tmp_path):
    message = error_of(tmp_path, "endpoints:\n  a:\n    allowed_escalation_rate: 0.1\n")
    assert message.endswith(
        ":3: allowed_escalation_rate: needs target_model (or escalation_models) to know which calls escalate"
    )
    config = load_config(
        write(
            tmp_path,
            "endpoints:\n  a:\n    allowed_escalation_rate: 0.1\n    escalation_models: [big]\n",
        )
    )
    assert config.endpoints["a"].escalation_models == ("big",)


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        ("[]", "an empty list would make allowed_escalation_rate a budget that cannot fail"),
        (
            "[claude-sonnet-4-6]",
            "lists target_model 'claude-sonnet-4-6': every call would count as escalated",
        ),
        ("[big, big]", "lists the same entry twice"),
    ],
)
def test_escalation_models_that_cannot_work(tmp_path, models, expected):
    message = error_of(
        tmp_path,
        "endpoints:\n  a:\n    target_model: claude-sonnet-4-6\n    allowed_escalation_rate: 0.1\n"
        f"    escalation_models: {models}\n",
    )
    assert f":5: escalation_models: {expected}" in message


def test_all_problems_at_once_sorted_by_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(
            write(
                tmp_path,
                """\
                endpoints:
                  b:
                    max_input_tokens_p95: 4000
                    allowed_escalation_rate: 1.5
                    target_model: m
                  a:
                    max_output_token_p95: 600
                    batch: nope
                  c:
                    target_model: m
                """,
            )
        )
    path = tmp_path / "token_budgets.yml"
    lines = str(info.value).splitlines()
    assert lines == [
        f"5 problems in {path}:",
        f"{path}:4: allowed_escalation_rate: 1.5 is out of range: a rate is between 0 and 1 (0.15 means 15%)",
        f"{path}:6: a: no budget: give at least one (e.g. max_input_tokens_p95: 4000), here or in defaults",
        f"{path}:7: max_output_token_p95: unknown key 'max_output_token_p95' (did you mean 'max_output_tokens_p95'?)",
        f"{path}:8: batch: expected true or false, got 'nope'",
        f"{path}:9: c: no budget: give at least one (e.g. max_input_tokens_p95: 4000), here or in defaults",
    ]
    assert [p.line for p in info.value.problems] == [4, 6, 7, 8, 9]


def test_missing_file_says_how_to_create_one(tmp_path):
    path = tmp_path / "nowhere" / "token_budgets.yml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: no such file. Create it")
    assert "endpoints:" in message and "--token-budget-config PATH" in message


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_case_problems_come_with_the_config_problems(tmp_path):
    write(tmp_path, "- id: a\n- id: a\n", "cases.yml")
    with pytest.raises(ConfigError) as info:
        load_config(
            write(
                tmp_path,
                "endpoints:\n  x:\n    max_input_tokens_p95: 1\n    cases: cases.yml\n    batch: 1\n",
            )
        )
    lines = str(info.value).splitlines()
    assert lines[1].endswith("token_budgets.yml:5: batch: expected true or false, got 1")
    assert lines[2].endswith(
        "cases.yml:2: id: duplicate case id 'a' (first on line 1, again on line 2)"
    )


# -- the schema -----------------------------------------------------------------------------
def test_schema_is_valid_json_schema_2020_12():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema_path().parent.parent.name == "pytest_tokenbudget"  # shipped inside the package


def test_schema_knows_exactly_the_keys_the_loader_knows():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    props = schema["properties"]
    endpoint = props["endpoints"]["additionalProperties"]
    assert set(endpoint["properties"]) == set(ENDPOINT_KEYS)
    assert set(props["defaults"]["properties"]) == set(DEFAULTS_KEYS)
    assert list(props["pricing"]["additionalProperties"]["properties"]) == [
        "input",
        "output",
        "cache_write_5m",
        "cache_write_1h",
        "cache_read",
        "web_search",
    ]


def test_schema_forbids_unknown_keys_at_every_fixed_level():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    props = schema["properties"]
    fixed = [
        schema,
        props["defaults"],
        props["endpoints"]["additionalProperties"],
        props["pricing"]["additionalProperties"],
    ]
    assert all(level["additionalProperties"] is False for level in fixed)


def test_schema_accepts_the_documented_examples(tmp_path):
    import yaml

    validator = jsonschema.Draft202012Validator(
        json.loads(schema_path().read_text(encoding="utf-8"))
    )
    for text in (FIELD_GUIDE, FULL_FORM):
        assert list(validator.iter_errors(yaml.safe_load(text))) == []


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """\
            defaults: &base
              max_input_tokens_p95: 100
            endpoints:
              a:
                <<: *base
                max_input_tokens_p95: 200
              b: {<<: *base, batch: true}
            """,
        )
    )
    a, b = config.endpoints["a"], config.endpoints["b"]
    assert [(x.limit, x.line) for x in a.budgets] == [(200, 6)]
    assert [(x.limit, x.line) for x in b.budgets] == [(100, 2)]


def test_recursive_alias_does_not_hang(tmp_path):
    message = error_of(tmp_path, "endpoints: &e\n  a: {max_input_tokens_p95: 1, x: *e}\n")
    assert ":2: x: unknown key 'x'" in message


def test_yaml_that_safe_load_refuses(tmp_path):
    message = error_of(tmp_path, "endpoints: !!python/object:os.system x\n")
    assert ":1: malformed YAML at line 1, column 12: could not determine a constructor" in message
    assert "but found another document" in error_of(tmp_path, "endpoints: {}\n---\nb: 2\n")
