"""schema_proof: a valid budget file is proven valid without jsonschema, and nothing
jsonschema would refuse is ever called valid (jsonschema stays the judge of errors)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paths import REPO

from pytest_tokenbudget.config.budgets import load_config, schema_path
from pytest_tokenbudget.config.schema_proof import _ANNOTATIONS, _KEYWORDS, proven_valid

SCHEMA = json.loads(schema_path().read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _valid(doc: Any) -> bool:
    return not list(VALIDATOR.iter_errors(doc))


def _keywords(schema: Any, found: set[str], *, in_properties: bool = False) -> set[str]:
    """Every keyword the schema uses (the names under `properties` and `$defs` are not)."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if not in_properties:
                found.add(key)
            _keywords(
                value, found, in_properties=key in ("properties", "$defs") and not in_properties
            )
    elif isinstance(schema, list):
        for item in schema:
            _keywords(item, found)
    return found


def test_every_keyword_of_the_shipped_schema_is_known_to_the_proof():
    """A keyword the proof does not know sends every file to jsonschema (still right,
    but the ~90 ms are back): a schema edit that adds one must teach the proof too."""
    unknown = _keywords(SCHEMA, set()) - set(_KEYWORDS) - _ANNOTATIONS
    assert unknown == set()


def _repo_configs() -> list[Path]:
    found = [REPO / "token_budgets.yml", *sorted((REPO / "examples").rglob("token_budgets*.yml"))]
    return [p for p in found if p.is_file()]


@pytest.mark.parametrize("path", _repo_configs(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_repositorys_budget_files_are_proven_valid(path):
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert _valid(doc)
    assert proven_valid(doc, SCHEMA)


def test_the_design_example_and_the_full_form_are_proven_valid():
    short = {
        "endpoints": {
            "chat_reply": {
                "max_input_tokens_p95": 4000,
                "max_output_tokens_p95": 600,
                "target_model": "claude-sonnet-4-6",
                "allowed_escalation_rate": 0.15,
                "monthly_budget_usd": 8000,
            }
        }
    }
    full = {
        "version": 1,
        "defaults": {"min_samples": 20, "cache_lint": "warn"},
        "pricing": {
            "my-proxy-model": {
                "input": 3.0,
                "output": 15.0,
                "cache_write_5m": 3.75,
                "cache_write_1h": 6.0,
                "cache_read": 0.30,
            }
        },
        "cache_minimums": {"my-proxy-model": 1024},
        "endpoints": {
            "chat_reply": {
                "target_model": "claude-sonnet-4-6",
                "max_input_tokens_p95": 4000,
                "escalation_models": ["claude-opus-4-7"],
                "min_cache_hit_rate": 0.6,
                "max_cost_per_request_usd": 0.05,
                "requests_per_day": 10000,
                "batch": False,
                "cases": [{"id": "q1", "input": "hello"}],
            }
        },
    }
    for doc in (short, full):
        assert _valid(doc) and proven_valid(doc, SCHEMA)


@pytest.mark.parametrize(
    "doc",
    [
        {"endpoints": {"chat": {"max_input_token_p95": 10}}},  # a typo
        {"endpoints": {"chat": {"max_input_tokens_p95": -1}}},
        {"endpoints": {"chat": {"max_input_tokens_p95": True}}},  # a bool is no number
        {"endpoints": {"bad name": {"max_input_tokens_p95": 1}}},
        {"endpoints": {}},
        {"version": 2, "endpoints": {"chat": {"max_input_tokens_p95": 1}}},
        {"version": True, "endpoints": {"chat": {"max_input_tokens_p95": 1}}},
        {"endpoints": {"chat": {"escalation_models": ["a", "a"], "max_input_tokens_p95": 1}}},
        {"pricing": {"m": {"input": 1}}, "endpoints": {"chat": {"max_input_tokens_p95": 1}}},
    ],
)
def test_what_jsonschema_refuses_is_not_proven(doc):
    assert not _valid(doc)
    assert not proven_valid(doc, SCHEMA)


def test_nan_is_never_proven():
    """jsonschema lets NaN through minimum and maximum; the loader refuses it on its own
    (test_config.py), and the proof never vouches for it."""
    doc = {"endpoints": {"chat": {"allowed_escalation_rate": math.nan}}}
    assert _valid(doc)
    assert not proven_valid(doc, SCHEMA)


def test_a_keyword_it_does_not_know_is_never_proven():
    assert not proven_valid({"a": 1}, {"type": "object", "patternProperties": {"^a$": {}}})
    assert not proven_valid(1, {"oneOf": [{"type": "integer"}]})
    assert proven_valid({"a": 1}, {"type": "object", "properties": {"a": {"type": "integer"}}})


# -- soundness on generated documents ------------------------------------------------------
def _names(schema: Any, found: set[str]) -> set[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties" and isinstance(value, dict):
                found.update(value)
            _names(value, found)
        for word in ("enum", "const"):
            if isinstance(schema.get(word), list):
                found.update(str(v) for v in schema[word])
    elif isinstance(schema, list):
        for item in schema:
            _names(item, found)
    return found


NAMES = sorted(_names(SCHEMA, set()))
KEYS = st.sampled_from(NAMES + ["chat", "bad name", "", "max_input_token_p95", "a" * 130])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 10**7)
    | st.sampled_from([0, 1, 2, 1.0, 0.5])
    | st.floats(allow_nan=True, allow_infinity=True)
    | KEYS
    | st.sampled_from(["claude-sonnet-4-6", "off", "warn", "error", "x", "q1"])
)


def _near(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Documents shaped by the schema, mostly valid, with a wrong value at any node now
    and then (about one node in eight)."""
    while isinstance(schema, dict) and "$ref" in schema:
        target: Any = SCHEMA
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if not isinstance(schema, dict) or depth > 4:
        return SCALARS
    kind = schema.get("type")
    shaped: st.SearchStrategy[Any] = SCALARS
    if "enum" in schema:
        shaped = st.sampled_from(schema["enum"])
    elif "const" in schema:
        shaped = st.just(schema["const"])
    elif kind == "object" or "properties" in schema or "additionalProperties" in schema:
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        required = set(schema.get("required", ()))
        named = st.fixed_dictionaries(
            {k: _near(v, depth + 1) for k, v in props.items() if k in required},
            optional={k: _near(v, depth + 1) for k, v in props.items() if k not in required},
        )
        names = st.sampled_from(["chat", "m1", "claude-x", "chat", "m1", "bad name", ""])
        more = (
            st.dictionaries(names, _near(extra, depth + 1), max_size=2)
            if isinstance(extra, dict)
            else st.just({})
        )
        shaped = st.builds(lambda a, b: {**b, **a}, named, more)
    elif kind == "array":
        shaped = st.lists(_near(schema.get("items", True), depth + 1), max_size=3)
    elif kind in ("integer", "number"):
        low, high = schema.get("minimum", -5), schema.get("maximum", 10**6)
        shaped = st.integers(int(low), int(high))
        if kind == "number":
            shaped = shaped | st.floats(low, high)
    elif kind == "string":
        shaped = st.sampled_from(["claude-sonnet-4-6", "m1", "x"]) | st.text(max_size=4)
    if not depth:
        return shaped
    # one_of would pick its last branch far more often than one time in eight
    return st.sampled_from(range(8)).flatmap(lambda i: SCALARS if i == 3 else shaped)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_near(SCHEMA))
def test_nothing_jsonschema_refuses_is_ever_proven_valid(doc):
    if proven_valid(doc, SCHEMA):
        assert _valid(doc), doc


@pytest.mark.slow
def test_generated_documents_are_often_proven(tmp_path):
    """The property above is not vacuous: the generator gives valid documents too."""
    proven = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(_near(SCHEMA))
    def collect(doc):
        if proven_valid(doc, SCHEMA):
            proven.append(doc)

    collect()
    assert len(proven) >= 10


# -- the run ------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_with_a_valid_budget_file_does_not_import_jsonschema(tmp_path):
    """Loading a valid file leaves jsonschema unimported; a typo still gets its message."""
    good = tmp_path / "good.yml"
    good.write_text("endpoints:\n  chat:\n    max_input_tokens_p95: 10\n", encoding="utf-8")
    code = (
        "import sys; from pytest_tokenbudget.config.budgets import load_config; "
        f"load_config({str(good)!r}); print('jsonschema' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"

    bad = tmp_path / "bad.yml"
    bad.write_text("endpoints:\n  chat:\n    max_input_token_p95: 10\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"bad\.yml:3: max_input_token_p95: .*max_input_tokens_p95"):
        load_config(bad)
