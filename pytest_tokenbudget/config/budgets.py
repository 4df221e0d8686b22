"""token_budgets.yml: load with line numbers, validate against the shipped JSON Schema.

A typo must never become a budget that cannot fail: unknown keys are errors with a
did-you-mean, and every error names the file, the line and the key. All problems of a
file are reported at once, so fixing a config is one round trip, not one per typo.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_tokenbudget.config.schema_proof import proven_valid
from pytest_tokenbudget.errors import ConfigError
from pytest_tokenbudget.files.yaml_source import (
    Lines,
    Problem,
    bad_case_id,
    describe_value,
    line_of,
    problems_error,
    problems_of,
    read_yaml,
)

CONFIG_FILE = "token_budgets.yml"
DEFAULT_MIN_SAMPLES = 20
_SCHEMA = Path(__file__).with_name("config_schema.json")

# budget key -> (report metric, kind); "max": actual <= limit, "min": actual >= limit
BUDGET_KEYS: dict[str, tuple[str, str]] = {
    f"max_{side}_tokens_{q}": (f"{side}_tokens_{q}", "max")
    for side in ("input", "output")
    for q in ("p50", "p90", "p95", "p99", "max")
}
BUDGET_KEYS.update(
    {
        "allowed_escalation_rate": ("escalation_rate", "max"),
        "min_cache_hit_rate": ("cache_hit_rate", "min"),
        "max_cost_per_request_usd": ("cost_per_request_usd", "max"),
        "monthly_budget_usd": ("monthly_cost_usd", "max"),
        # parts of the prompt, p95 per call (measure/anatomy.py)
        "max_system_tokens": ("system_tokens_p95", "max"),
        "max_tools_tokens": ("tools_tokens_p95", "max"),
    }
)
SETTING_KEYS = (
    "target_model",
    "escalation_models",
    "requests_per_day",
    "batch",
    "min_samples",
    "max_regression_pct",
    "cache_lint",
    "cases_without_calls",
)
DEFAULTS_KEYS = (*SETTING_KEYS, *BUDGET_KEYS)  # everything an endpoint takes but its cases
ENDPOINT_KEYS = (*DEFAULTS_KEYS, "cases")
TOP_KEYS = ("version", "defaults", "pricing", "cache_minimums", "endpoints")


@dataclass(frozen=True)
class Budget:
    key: str  # e.g. "max_input_tokens_p95"
    metric: str  # the report metric it limits, e.g. "input_tokens_p95"
    limit: float
    kind: str  # "max": actual <= limit; "min": actual >= limit
    line: int  # 1-based line of the key in the config (of `defaults:` when inherited)


@dataclass(frozen=True)
class Endpoint:
    name: str
    line: int
    target_model: str | None
    escalation_models: tuple[str, ...] | None  # None: any model other than target_model
    budgets: tuple[Budget, ...]
    requests_per_day: float | None
    batch: bool
    min_samples: int
    max_regression_pct: float | None  # overrides --token-budget-max-regression
    cases: tuple[dict[str, Any], ...]  # each has a str "id"
    cases_path: Path | None  # the cases file (None when inline or absent)
    lines: dict[str, int]  # key -> line, for every key of the (merged) endpoint
    cache_lint: str = "warn"  # off | warn | error: do prompt-cache findings fail it?
    # exclude | count: a case that made no API call is left out of the per-case metrics,
    # or counts as a $0 request (stats.CASES_WITHOUT_CALLS)
    cases_without_calls: str = "exclude"


@dataclass(frozen=True)
class Config:
    path: Path
    version: int
    endpoints: dict[str, Endpoint]  # in file order
    pricing: dict[str, dict[str, float]]  # model -> rates in $ per million tokens, as given
    pricing_lines: dict[str, int]
    defaults: dict[str, Any] = field(default_factory=dict)  # `defaults:` as given
    cache_minimums: dict[str, int] = field(default_factory=dict)  # model -> tokens
    lines: Lines = field(default_factory=dict, repr=False, compare=False)  # path -> line


def schema_path() -> Path:
    """The JSON Schema of token_budgets.yml, for editors (`# yaml-language-server: $schema=`)."""
    return _SCHEMA


# -- problems -------------------------------------------------------------------------------
def _schema_problems(data: Any, lines: Lines, shown: str) -> list[tuple[tuple[Any, ...], Problem]]:
    """Each problem with the path of the value it is about."""
    schema = json.loads(_SCHEMA.read_text(encoding="utf-8"))
    if proven_valid(data, schema):
        return []  # the common case, without importing jsonschema (~90 ms)
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    return [
        (tuple(err.absolute_path), problem)
        for err in validator.iter_errors(data)
        for problem in _explain(err, lines, shown)
    ]


MAX_ENDPOINT_NAME_LENGTH = 100
_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def _name_problems(data: dict[str, Any], lines: Lines, shown: str) -> list[Problem]:
    """Endpoint names that cannot name a cassette folder and a test id. Checked here, not
    only by the schema's pattern: Python's `$` (which jsonschema uses) matches before a
    final newline, and `chat\\n` would pass it."""
    endpoints = data.get("endpoints")
    found = []
    for name in endpoints if isinstance(endpoints, dict) else ():
        text = str(name)
        line = line_of(lines, ("endpoints", name))
        shown_name = text if len(text) <= 40 else text[:37] + "..."
        key = shown_name.encode("unicode_escape").decode("ascii")  # one line, always
        if len(text) > MAX_ENDPOINT_NAME_LENGTH:
            message = (
                f"endpoint name {shown_name!r} is longer than {MAX_ENDPOINT_NAME_LENGTH} "
                "characters (it names a cassette folder and test ids)"
            )
        elif not _ENDPOINT_NAME.fullmatch(text):
            message = (
                f"endpoint name {shown_name!r} names cassette folders and test ids: use "
                "letters, digits, '_', '-' and '.' only, not starting with '.'"
            )
        else:
            continue
        found.append(Problem(shown, line, key, message))
    return found


def _nan_problems(data: Any, lines: Lines, shown: str) -> list[Problem]:
    """`.nan` passes every minimum and maximum of the schema, and a budget or a price of
    NaN compares false with everything: it could never fail. Cases are the app's data."""
    found: list[Problem] = []
    seen: set[int] = set()  # an alias may make the document recursive
    todo: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while todo:
        at, value = todo.pop()
        if isinstance(value, float) and math.isnan(value):
            key = next((str(k) for k in reversed(at) if isinstance(k, str)), "")
            found.append(Problem(shown, line_of(lines, at), key, "is .nan: give a number"))
        elif isinstance(value, (dict, list)) and id(value) not in seen:
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            todo.extend(
                ((*at, k), v)
                for k, v in items
                if not (at[:1] == ("endpoints",) and len(at) == 2 and k == "cases")
            )
    return found


def _explain(err: Any, lines: Lines, shown: str) -> Iterator[Problem]:
    """A jsonschema error as problems in the user's words, at the line of the key."""
    at = tuple(err.absolute_path)
    validator = err.validator
    if validator == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        for key in err.instance:
            if key not in allowed:
                line = line_of(lines, at + (key,))
                yield Problem(shown, line, str(key), _unknown_key(at, key, allowed))
        return
    if validator == "required":
        for key in err.validator_value:
            if isinstance(err.instance, dict) and key not in err.instance:
                yield _missing(at, key, lines, shown)
        return
    if "propertyNames" in err.absolute_schema_path:  # the error is about a key, not a value
        name = err.instance
        at = at + (name,)
        if at[:1] == ("endpoints",):
            return  # _name_problems says what is wrong with an endpoint's name
        yield Problem(shown, line_of(lines, at), str(name), "a model name must not be empty")
        return
    yield Problem(shown, line_of(lines, at), _key_name(at), _message(err, at))


def _unknown_key(at: tuple[Any, ...], key: Any, allowed: list[str]) -> str:
    text = str(key)
    if at and at[0] == "defaults" and text == "cases":
        return "unknown key 'cases': cases belong to an endpoint, not to defaults"
    if at and at[0] == "endpoints" and text in TOP_KEYS and len(at) == 2:
        return f"unknown key {text!r}: {text} goes at the top level of the file, not in an endpoint"
    close = difflib.get_close_matches(text.lower(), allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key {text!r} (did you mean {close[0]!r}?)"
    if not at and text in ENDPOINT_KEYS:
        return (
            f"unknown key {text!r}: budgets go under an endpoint name in `endpoints:` "
            "(or under `defaults:`)"
        )
    return f"unknown key {text!r} (allowed here: {', '.join(allowed)})"


def _missing(at: tuple[Any, ...], key: str, lines: Lines, shown: str) -> Problem:
    if not at and key == "endpoints":
        return Problem(
            shown,
            1,
            "endpoints",
            "missing: a budget file needs `endpoints:` with at least one endpoint and its budgets",
        )
    if len(at) == 2 and at[0] == "pricing":
        return Problem(
            shown,
            line_of(lines, at),
            str(at[1]),
            f"price has no {key!r} rate: a pricing entry needs at least input and output "
            "($ per million tokens)",
        )
    if key == "id":
        return Problem(shown, line_of(lines, at), _key_name(at), "a case needs an `id`")
    return Problem(shown, line_of(lines, at), _key_name(at), f"missing {key!r}")


_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}


def _message(err: Any, at: tuple[Any, ...]) -> str:
    validator, value, instance = err.validator, err.validator_value, err.instance
    key = at[-1] if at else None
    if validator == "type":
        if key == "cases":
            return f"expected a cases file path or a list of cases, got {describe_value(instance)}"
        if len(at) == 2 and at[0] == "endpoints":
            budgets = "its budgets (e.g. max_input_tokens_p95: 4000)"
            if str(key) in ENDPOINT_KEYS:
                return f"{key} goes under an endpoint name, not directly under `endpoints:`"
            return f"an endpoint is a mapping of {budgets}, got {describe_value(instance)}"
        types: list[str] = value if isinstance(value, list) else [value]
        expected = " or ".join(_WORDS.get(t, t) for t in types)
        return f"expected {expected}, got {describe_value(instance)}"
    if validator in ("minimum", "maximum"):
        schema = err.schema
        if schema.get("minimum") == 0 and schema.get("maximum") == 1:
            return f"{describe_value(instance)} is out of range: a rate is between 0 and 1 (0.15 means 15%)"
        bound = "at least" if validator == "minimum" else "at most"
        return f"{describe_value(instance)} is out of range: must be {bound} {value:,}"
    if validator == "enum":
        allowed = [str(v) for v in value]
        close = difflib.get_close_matches(str(instance).lower(), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{describe_value(instance)} is not allowed: use one of {', '.join(allowed)}{hint}"
    if validator == "const" and key == "version":
        return f"unsupported version {describe_value(instance)}: this pytest-tokenbudget reads version 1"
    if validator == "minProperties":
        return "no endpoints: give at least one, with at least one budget"
    if validator == "minItems":
        if key == "escalation_models":
            return (
                "an empty list would make allowed_escalation_rate a budget that cannot fail; "
                "leave the key out to count any model other than target_model"
            )
        return "must not be empty"
    if validator == "uniqueItems":
        return "lists the same entry twice"
    if validator == "minLength":
        return "must not be empty"
    if key == "id" and validator in ("pattern", "maxLength"):
        return bad_case_id(instance)
    message: str = err.message  # jsonschema's own words, for what has none of ours
    return message


def _key_name(at: tuple[Any, ...]) -> str:
    """`max_input_tokens_p95`, `escalation_models[1]`, `id`: the key a problem is about."""
    if not at:
        return ""
    index = ""
    while at and isinstance(at[-1], int):
        index = f"[{at[-1]}]{index}"
        at = at[:-1]
    return f"{at[-1]}{index}" if at else index


# -- loading --------------------------------------------------------------------------------
def load_config(path: str | Path) -> Config:
    """Read, validate and merge token_budgets.yml; any problem raises one ConfigError."""
    from pytest_tokenbudget.config.cases import load_cases

    path = Path(path)
    shown = str(path)
    try:
        exists = path.exists()
    except (OSError, ValueError) as err:  # a name too long for the file system, a NUL byte
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(f"not a usable config file path: {reason}", path=shown) from None
    if not exists:
        raise ConfigError(
            "no such file. Create it with at least one endpoint and a budget, e.g.\n"
            "  endpoints:\n"
            "    chat_reply:\n"
            "      max_input_tokens_p95: 4000\n"
            "or point to yours with --token-budget-config PATH (tokenbudget check --config PATH)",
            path=shown,
        )
    if path.is_dir():
        raise ConfigError(f"is a directory: expected a YAML file such as {CONFIG_FILE}", path=shown)
    doc = read_yaml(path, string_keys=True)
    data, lines = doc.data, doc.lines
    if data is None:
        raise ConfigError(
            "the file is empty: a budget file needs `endpoints:` with at least one endpoint",
            path=shown,
            line=1,
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping with `endpoints:` at the top level, got {describe_value(data)}",
            path=shown,
            line=1,
        )
    found = _schema_problems(data, lines, shown)
    problems = [
        *doc.problems,
        *(problem for _, problem in found),
        *_nan_problems(data, lines, shown),
        *_name_problems(data, lines, shown),
    ]
    given_defaults = data.get("defaults")
    defaults: dict[str, Any] = given_defaults if isinstance(given_defaults, dict) else {}
    endpoints: dict[str, Endpoint] = {}
    raw_endpoints = data.get("endpoints")
    for name, raw in raw_endpoints.items() if isinstance(raw_endpoints, dict) else ():
        if not isinstance(raw, dict):
            continue  # the schema already said so
        merged = {**raw, **{k: v for k, v in defaults.items() if k not in raw}}
        key_lines = {
            k: lines.get(("endpoints", name, k)) or lines.get(("defaults", k)) or 1 for k in merged
        }
        line = lines.get(("endpoints", name), 1)
        problems.extend(_endpoint_problems(str(name), merged, key_lines, line, shown))
        cases_at = ("endpoints", name, "cases")
        spec = raw.get("cases")
        cases: tuple[dict[str, Any], ...] = ()
        cases_path: Path | None = None
        if spec is not None and not any(at[:3] == cases_at for at, _ in found):
            item_lines = None
            if isinstance(spec, list):  # each case at the line of its id
                item_lines = [
                    lines.get((*cases_at, i, "id")) or line_of(lines, (*cases_at, i))
                    for i in range(len(spec))
                ]
            try:
                cases, cases_path = load_cases(
                    spec,
                    base_dir=path.parent,
                    config_path=path,
                    line=key_lines["cases"],
                    item_lines=item_lines,
                )
            except ConfigError as err:
                problems.extend(problems_of(err))
        if problems:
            continue  # keep looking for more, but build nothing
        escalation = merged.get("escalation_models")
        endpoints[str(name)] = Endpoint(
            name=str(name),
            line=line,
            target_model=merged.get("target_model"),
            escalation_models=tuple(escalation) if escalation is not None else None,
            budgets=tuple(
                Budget(key, BUDGET_KEYS[key][0], merged[key], BUDGET_KEYS[key][1], key_lines[key])
                for key in merged
                if key in BUDGET_KEYS
            ),
            requests_per_day=merged.get("requests_per_day"),
            batch=bool(merged.get("batch", False)),
            min_samples=int(merged.get("min_samples", DEFAULT_MIN_SAMPLES)),
            max_regression_pct=merged.get("max_regression_pct"),
            cases=cases,
            cases_path=cases_path,
            lines=key_lines,
            cache_lint=str(merged.get("cache_lint", "warn")),
            cases_without_calls=str(merged.get("cases_without_calls", "exclude")),
        )
    if problems:
        raise problems_error(problems)
    pricing = data.get("pricing") or {}
    return Config(
        path=path,
        version=int(data.get("version", 1)),
        endpoints=endpoints,
        pricing={model: dict(rates) for model, rates in pricing.items()},
        pricing_lines={model: lines.get(("pricing", model), 1) for model in pricing},
        defaults=dict(defaults),
        cache_minimums=dict(data.get("cache_minimums") or {}),
        lines=lines,
    )


def _endpoint_problems(
    name: str, merged: dict[str, Any], key_lines: dict[str, int], line: int, shown: str
) -> Iterator[Problem]:
    """What the schema cannot say: rules across keys, after defaults are merged."""
    if not any(key in BUDGET_KEYS for key in merged):
        yield Problem(
            shown,
            line,
            name,
            "no budget: give at least one (e.g. max_input_tokens_p95: 4000), here or in defaults",
        )
    target, escalation = merged.get("target_model"), merged.get("escalation_models")
    if "allowed_escalation_rate" in merged and not target and not escalation:
        yield Problem(
            shown,
            key_lines["allowed_escalation_rate"],
            "allowed_escalation_rate",
            "needs target_model (or escalation_models) to know which calls escalate",
        )
    if isinstance(escalation, list) and isinstance(target, str) and target in escalation:
        yield Problem(
            shown,
            key_lines["escalation_models"],
            "escalation_models",
            f"lists target_model {target!r}: every call would count as escalated",
        )


def notes(config: Config) -> list[Problem]:
    """Budgets that load but cannot be checked as written: worth a warning, not an error."""
    found = []
    for endpoint in config.endpoints.values():
        keys = {b.key for b in endpoint.budgets}
        if "monthly_budget_usd" in keys and endpoint.requests_per_day is None:
            found.append(
                Problem(
                    str(config.path),
                    endpoint.lines["monthly_budget_usd"],
                    "monthly_budget_usd",
                    f"{endpoint.name}: not checked until requests_per_day is set "
                    "(the projection is mean cost per request x requests_per_day x 30)",
                )
            )
    return found
