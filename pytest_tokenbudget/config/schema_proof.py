"""A proof that a document is valid against the shipped JSON Schema, without jsonschema.

Importing jsonschema costs about 90 ms (referencing, attrs, the format checkers) on every
`pytest --token-budget` run, for a budget file that is nearly always valid. This walks
the schema for the keywords it uses and answers only "valid" or "not proven": a keyword
it does not know, a value it is unsure of (a float where an integer goes, a bool in an
enum) and every violation go to jsonschema, which stays the judge of each error and its
message. It must never call valid what jsonschema would not: tests/unit/config/test_schema_proof.py
checks that on generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# Keywords that say nothing about validity.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
)


Schema = dict[str, Any]
# A keyword's check: the instance's value, the keyword's rule, the schema holding it, the root.
_Keyword = Callable[[Any, Any, Schema, Schema], None]


class _NotProven(Exception):
    pass


def proven_valid(instance: Any, schema: Schema) -> bool:
    """True only when `instance` is valid against `schema` (draft 2020-12)."""
    try:
        _check(instance, schema, schema)
    except (_NotProven, RecursionError):
        return False
    return True


def _check(value: Any, schema: Any, root: Schema) -> None:
    if schema is True:
        return
    if not isinstance(schema, dict):
        raise _NotProven
    for keyword, rule in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _KEYWORDS.get(keyword)
        if check is None:  # a keyword this walker does not know: jsonschema judges
            raise _NotProven
        check(value, rule, schema, root)


def _require(condition: bool) -> None:
    if not condition:
        raise _NotProven


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),  # 1.0: not proven
    "number": _number,
}


def _type(value: Any, rule: Any, _schema: Schema, _root: Schema) -> None:
    names = [rule] if isinstance(rule, str) else rule
    _require(isinstance(names, list) and all(n in _TYPES for n in names))
    _require(any(_TYPES[n](value) for n in names))


def _ref(value: Any, rule: Any, _schema: Schema, root: Schema) -> None:
    _require(isinstance(rule, str) and rule.startswith("#/"))
    target: Any = root
    for part in rule[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        _require(isinstance(target, dict) and part in target)
        target = target[part]
    _check(value, target, root)


def _properties(value: Any, rule: Any, _schema: Schema, root: Schema) -> None:
    _require(isinstance(rule, dict))
    if isinstance(value, dict):
        for key, sub in rule.items():
            if key in value:
                _check(value[key], sub, root)


def _additional(value: Any, rule: Any, schema: Schema, root: Schema) -> None:
    if not isinstance(value, dict):
        return
    named = schema.get("properties", {})
    for key, item in value.items():
        if key not in named:
            _require(rule is not False)
            _check(item, rule, root)


def _required(value: Any, rule: Any, _schema: Schema, _root: Schema) -> None:
    if isinstance(value, dict):
        _require(all(key in value for key in rule))


def _property_names(value: Any, rule: Any, _schema: Schema, root: Schema) -> None:
    if isinstance(value, dict):
        for key in value:
            _check(key, rule, root)


def _items(value: Any, rule: Any, _schema: Schema, root: Schema) -> None:
    _require(isinstance(rule, (dict, bool)))
    if isinstance(value, list):
        for item in value:
            _check(item, rule, root)


def _unique(value: Any, rule: Any, _schema: Schema, _root: Schema) -> None:
    if rule and isinstance(value, list):
        # strings only: jsonschema's equality (1 vs True vs 1.0) is its own to judge
        _require(all(isinstance(v, str) for v in value) and len(set(value)) == len(value))


def _one_of_these(value: Any, allowed: list[Any]) -> None:
    # the same type and value: 1 == True == 1.0 in Python, which jsonschema tells apart
    _require(any(type(a) is type(value) and a == value for a in allowed))
    _require(isinstance(value, (str, int, type(None))))


def _enum(value: Any, rule: Any, _schema: Schema, _root: Schema) -> None:
    _require(isinstance(rule, list))
    _one_of_these(value, rule)


def _const(value: Any, rule: Any, _schema: Schema, _root: Schema) -> None:
    _one_of_these(value, [rule])


def _bound(test: Callable[[Any, Any], bool], applies: Callable[[Any], bool]) -> _Keyword:
    def check(value: Any, rule: Any, _schema: Schema, _root: Schema) -> None:
        if applies(value):
            _require(_number(rule) and test(value, rule))

    return check


def _pattern(value: Any, rule: Any, _schema: Schema, _root: Schema) -> None:
    if isinstance(value, str):
        _require(re.search(rule, value) is not None)  # jsonschema searches, too


_KEYWORDS: dict[str, _Keyword] = {
    "type": _type,
    "$ref": _ref,
    "properties": _properties,
    "additionalProperties": _additional,
    "required": _required,
    "propertyNames": _property_names,
    "items": _items,
    "uniqueItems": _unique,
    "enum": _enum,
    "const": _const,
    "pattern": _pattern,
    # each test is False for NaN, so a NaN is never proven
    "minimum": _bound(lambda v, r: v >= r, _number),
    "maximum": _bound(lambda v, r: v <= r, _number),
    "exclusiveMinimum": _bound(lambda v, r: v > r, _number),
    "exclusiveMaximum": _bound(lambda v, r: v < r, _number),
    "minLength": _bound(lambda v, r: len(v) >= r, lambda v: isinstance(v, str)),
    "maxLength": _bound(lambda v, r: len(v) <= r, lambda v: isinstance(v, str)),
    "minItems": _bound(lambda v, r: len(v) >= r, lambda v: isinstance(v, list)),
    "maxItems": _bound(lambda v, r: len(v) <= r, lambda v: isinstance(v, list)),
    "minProperties": _bound(lambda v, r: len(v) >= r, lambda v: isinstance(v, dict)),
    "maxProperties": _bound(lambda v, r: len(v) <= r, lambda v: isinstance(v, dict)),
}
