"""token_budgets.yml: load with line numbers, validate against the shipped JSON Schema.

A typo must never become a budget that cannot fail: unknown keys are errors with a
did-you-mean, and every error names the file, the line and the key.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_MIN_SAMPLES = 20
_SCHEMA = Path(__file__).with_name("config_schema.json")

# budget key -> (metric, kind)
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
    }
)


@dataclass(frozen=True)
class Budget:
    key: str
    metric: str
    limit: float
    kind: str  # "max": actual <= limit; "min": actual >= limit
    line: int


@dataclass(frozen=True)
class Endpoint:
    name: str
    line: int
    target_model: str | None
    escalation_models: tuple[str, ...] | None
    budgets: tuple[Budget, ...]
    requests_per_day: float | None
    batch: bool
    min_samples: int
    max_regression_pct: float | None
    cases: tuple[dict[str, Any], ...]
    cases_path: Path | None
    lines: dict[str, int]


@dataclass(frozen=True)
class Config:
    path: Path
    version: int
    endpoints: dict[str, Endpoint]
    pricing: dict[str, dict[str, float]]
    pricing_lines: dict[str, int]


def schema_path() -> Path:
    return _SCHEMA


# -- YAML with lines ---------------------------------------------------------------------
Lines = dict[tuple[Any, ...], int]


def _read_yaml(path: Path) -> tuple[Any, Lines]:
    """Plain data plus the 1-based line of every mapping key and list item, by JSON path."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "no budget file here. Create token_budgets.yml at the rootdir (see the "
            "configuration reference) or pass --token-budget-config PATH",
            path=path,
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read: {err}", path=path) from None
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        column = f", column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"malformed YAML{column}: {problem}", path=path, line=mark.line + 1 if mark else None
        ) from None
    finally:
        loader.dispose()
    lines: Lines = {}
    errors: list[tuple[int, str, str]] = []
    if node is not None:
        _index_lines(node, (), lines, errors)
    if errors:
        raise _combined(path, errors)
    return data, lines


def _index_lines(node: Any, at: tuple[Any, ...], lines: Lines, errors: list) -> None:
    """Record the line of every key and item; a key given twice is an error (YAML keeps the last)."""
    import yaml

    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            line = key_node.start_mark.line + 1
            if at + (key,) in lines:
                first = lines[at + (key,)]
                errors.append((line, str(key), f"duplicate key (first on line {first})"))
                continue
            lines[at + (key,)] = line
            _index_lines(value_node, at + (key,), lines, errors)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, at + (i,), lines, errors)


def _scalar(node: Any) -> Any:
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        return node.start_mark.line  # unhashable keys are rejected by the schema anyway
    return yaml.SafeLoader("").construct_scalar(node) if node.tag.endswith(":str") else yaml.safe_load(node.value)


def _combined(path: Path, errors: list[tuple[int, str, str]]) -> ConfigError:
    errors = sorted(set(errors))
    if len(errors) == 1:
        line, key, message = errors[0]
        return ConfigError(message, path=path, line=line, key=key)
    text = "\n".join(f"{path}:{line}: {key}: {message}" for line, key, message in errors)
    return ConfigError(f"{len(errors)} problems:\n{text}")


def _line_of(lines: Lines, at: tuple[Any, ...]) -> int:
    while at and at not in lines:
        at = at[:-1]
    return lines.get(at, 1)


# -- validation ---------------------------------------------------------------------------
def _unknown_keys(schema: dict, data: Any, at: tuple[Any, ...], lines: Lines, errors: list) -> None:
    """Unknown keys, with a suggestion; jsonschema would only say 'not allowed'."""
    if not isinstance(data, dict) or schema.get("type") != "object":
        return
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, value in data.items():
        if key in props:
            _unknown_keys(props[key], value, at + (key,), lines, errors)
        elif isinstance(extra, dict):
            _unknown_keys(extra, value, at + (key,), lines, errors)
        elif extra is False:
            close = difflib.get_close_matches(str(key), list(props), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(props)})"
            errors.append((lines.get(at + (key,), 1), str(key), f"unknown key {key!r}{hint}"))


def _schema_errors(data: Any, lines: Lines) -> list[tuple[int, str, str]]:
    import jsonschema

    schema = json.loads(_SCHEMA.read_text(encoding="utf-8"))
    errors: list[tuple[int, str, str]] = []
    _unknown_keys(schema, data, (), lines, errors)
    validator = jsonschema.Draft202012Validator(schema)
    for err in validator.iter_errors(data):
        if err.validator == "additionalProperties":
            continue  # reported above, with a suggestion
        at = tuple(err.absolute_path)
        key = str(at[-1]) if at else "(top level)"
        errors.append((_line_of(lines, at), key, _plain(err)))
    return errors


def _plain(err: Any) -> str:
    if err.validator in ("minimum", "maximum"):
        bound = "at least" if err.validator == "minimum" else "at most"
        return f"{err.instance!r} is out of range: must be {bound} {err.validator_value}"
    if err.validator == "type":
        return f"{err.instance!r} is not of type {err.validator_value!r}"
    if err.validator == "required":
        return err.message
    if err.validator == "const":
        return f"must be {err.validator_value!r}, not {err.instance!r}"
    if err.validator == "oneOf":
        return f"{err.instance!r} must be a cases file path or a list of cases"
    return err.message


# -- loading -------------------------------------------------------------------------------
def load_config(path: str | Path) -> Config:
    from .cases import load_cases

    path = Path(path)
    data, lines = _read_yaml(path)
    if not isinstance(data, dict) or "endpoints" not in data:
        raise ConfigError(
            "no `endpoints:` mapping: a budget file needs at least one endpoint", path=path, line=1
        )
    errors = _schema_errors(data, lines)
    raw_endpoints = data.get("endpoints")
    if not isinstance(raw_endpoints, dict):
        raise _combined(path, errors)  # the schema has said what is wrong with it
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    endpoints: dict[str, Endpoint] = {}
    for name, raw in raw_endpoints.items():
        if not isinstance(raw, dict):
            continue  # the schema already said so
        merged = {**defaults, **raw}
        key_lines = {
            k: lines.get(("endpoints", name, k)) or lines.get(("defaults", k), 1) for k in merged
        }
        budgets = tuple(
            Budget(key, BUDGET_KEYS[key][0], merged[key], BUDGET_KEYS[key][1], key_lines[key])
            for key in merged
            if key in BUDGET_KEYS and isinstance(merged[key], (int, float))
        )
        line = lines.get(("endpoints", name), 1)
        if not budgets and not any(k in BUDGET_KEYS for k in merged):
            errors.append((line, str(name), "no budget: give at least one (e.g. max_input_tokens_p95)"))
        if "allowed_escalation_rate" in merged and not (
            merged.get("target_model") or merged.get("escalation_models")
        ):
            errors.append(
                (key_lines["allowed_escalation_rate"], "allowed_escalation_rate",
                 "needs target_model or escalation_models to know what escalation is")
            )  # fmt: skip
        if errors:
            continue
        cases, cases_path = load_cases(
            raw.get("cases"), base_dir=path.parent, config_path=path, line=key_lines.get("cases", line)
        )
        escalation = merged.get("escalation_models")
        endpoints[name] = Endpoint(
            name=name,
            line=line,
            target_model=merged.get("target_model"),
            escalation_models=tuple(escalation) if escalation is not None else None,
            budgets=budgets,
            requests_per_day=merged.get("requests_per_day"),
            batch=bool(merged.get("batch", False)),
            min_samples=int(merged.get("min_samples", DEFAULT_MIN_SAMPLES)),
            max_regression_pct=merged.get("max_regression_pct"),
            cases=cases,
            cases_path=cases_path,
            lines=key_lines,
        )
    if errors:
        raise _combined(path, errors)
    pricing = data.get("pricing") or {}
    return Config(
        path=path,
        version=int(data.get("version", 1)),
        endpoints=endpoints,
        pricing=pricing,
        pricing_lines={m: lines.get(("pricing", m), 1) for m in pricing},
    )
