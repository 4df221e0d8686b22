"""Reading a report.json someone else may have written: the baseline, or a fork's artifact.

In CI the baseline or the head of `tokenbudget diff` can come from a fork's pull request,
so the file is untrusted input. It is read bounded (input_files: a regular file of at most
REPORT_MAX_BYTES), parsed as strict JSON (NaN, Infinity, 1e999 and numbers of more than
MAX_DIGITS digits refused), at most MAX_DEPTH deep, and every value the comparison and the
renderers read is type-checked. Each refusal is one ReportError naming the file and the
key path: `base.json: endpoints.chat.metrics.input_tokens_p95: not a finite number`.
Keys this version does not read are kept (a newer report's), only bounded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_tokenbudget.errors import ReportError, kind_of
from pytest_tokenbudget.files.input_files import REPORT_MAX_BYTES, read_bounded_text
from pytest_tokenbudget.plain_text import key_path, one_line

# The file's identity and an endpoint's statuses (report/build.py and json_io.py write them).
SCHEMA = "pytest-tokenbudget/report"
VERSION = 1
PASS, FAIL, NOT_RUN = "pass", "fail", "not-run"

LOAD_NOTES = "_load_notes"  # notes load_report attaches to the dict it returns
MAX_DEPTH = 32  # report.json nests 8 deep (diff.endpoints.<name>.metrics.<m>.drivers[i])
MAX_DIGITS = 20  # an int past 10^18 is refused anyway; longer ones are not even converted
MAX_NUMBER = 10**18  # far past any token count (10^12 at most) or dollar figure
MAX_NUMBER_CHARS = 40  # how long a float may be written
MAX_KEY_CHARS = 4096  # endpoint names, case ids, models, metrics
MAX_TEXT_CHARS = 100_000  # messages

Where = tuple[str | int, ...]
Check = Callable[[Any, Where], None]


class _Invalid(Exception):
    def __init__(self, where: Where, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


class _Refused:
    """A number json.loads read and we refuse; kept in place so the check names its key."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


# -- reading -----------------------------------------------------------------------------
def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report.json (usually a baseline) or say, in one line, why it cannot be used."""
    p = Path(path)
    try:
        missing = not p.exists() and not p.is_symlink()
    except OSError as err:  # a name too long for the file system, say
        raise ReportError(f"not a usable path: {err.strerror or err}", path=p) from None
    if missing:
        raise ReportError(
            "no such file. A baseline is the report.json of a `pytest --token-budget` run on "
            "the base branch (docs/ci.md shows how CI fetches it)",
            path=p,
        )
    if p.is_dir():
        raise ReportError("is a directory: pass the report.json inside it", path=p)
    text = read_bounded_text(p, limit=REPORT_MAX_BYTES, what="report", error=ReportError)
    return check_report(parse_report(text, path=p), path=p)


def parse_report(text: str, *, path: str | Path | None = None) -> Any:
    """Strict JSON: non-finite and overlong numbers are kept as refusals for the check."""
    try:
        return json.loads(
            text,
            parse_constant=lambda name: _Refused(f"not a finite number ({name})"),
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except json.JSONDecodeError as err:
        raise ReportError(
            f"not JSON: {err.msg} at column {err.colno}", path=path, line=err.lineno
        ) from None
    except RecursionError:
        raise ReportError(f"nested deeper than {MAX_DEPTH} levels", path=path) from None


def _parse_int(text: str) -> int | _Refused:
    digits = len(text) - text.startswith("-")
    if digits > MAX_DIGITS:  # int() of 5,000 digits raises; of 4,000 it is slow and useless
        return _Refused(f"a number of {digits:,} digits (at most {MAX_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float | _Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(f"a number written with {len(text):,} characters")
    value = float(text)
    return value if math.isfinite(value) else _Refused(f"not a finite number ({text})")


def check_report(data: Any, *, path: str | Path | None = None) -> dict[str, Any]:
    """The document as a report this version reads, with its load notes, or a ReportError."""
    try:
        _bounded(data, ())
        _check_schema(data)
        _REPORT(data, ())
    except _Invalid as err:
        where = key_path(err.where) or None
        raise ReportError(one_line(err.message), path=path, key=where) from None
    notes = []
    version = data["version"]
    if version < VERSION:
        where = f"{Path(path).name} is" if path is not None else "a report is"
        notes.append(
            f"{one_line(where)} report version {version}, read as version {VERSION}: "
            "values added since then are missing from the comparison"
        )
    return {**data, LOAD_NOTES: notes}


def _check_schema(data: Any) -> None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = (
            f'its "schema" is {_shown(data.get("schema"))}'
            if isinstance(data, dict) and "schema" in data
            else 'it has no "schema" key'
            if isinstance(data, dict)
            else f"it is a JSON {_json_type(data)}, not an object"
        )
        raise _Invalid((), f'not a pytest-tokenbudget report: {found}, expected "{SCHEMA}"')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Invalid((), f'report "version" must be an integer, not {_shown(version)}')
    if version > VERSION:
        from pytest_tokenbudget import __version__

        raise _Invalid(
            (),
            f"report version {version} is newer than this pytest-tokenbudget ({__version__}) "
            f"reads (version {VERSION}): upgrade pytest-tokenbudget where you run the comparison",
        )


def _json_type(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else kind_of(value)


def _bounded(value: Any, where: Where) -> None:
    """Everywhere, read or not: depth, refused numbers, sizes of numbers and text."""
    if len(where) > MAX_DEPTH:
        raise _Invalid(where[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, _Refused):
        raise _Invalid(where, value.why)
    if isinstance(value, float | int) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):  # a dict, not our parse
            raise _Invalid(where, f"not a finite number ({value})")
        if abs(value) > MAX_NUMBER:
            raise _Invalid(where, "a number out of range (beyond ±10^18)")
    elif isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise _Invalid(where, f"text of {len(value):,} characters (at most {MAX_TEXT_CHARS:,})")
    elif isinstance(value, dict):
        for key, item in value.items():
            if len(key) > MAX_KEY_CHARS:
                raise _Invalid(
                    where, f"a key of {len(key):,} characters (at most {MAX_KEY_CHARS:,})"
                )
            _bounded(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _bounded(item, (*where, index))


# -- the structure the comparison and the renderers read ---------------------------------
def _fail(where: Where, expected: str, value: Any) -> _Invalid:
    return _Invalid(where, f"must be {expected}, not {kind_of(value)}")


def _number(value: Any, where: Where) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(where, "a number", value)


def _count(value: Any, where: Where) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(where, "a whole number of 0 or more", value)


def _line(value: Any, where: Where) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(where, "a line number (1 or more)", value)


def _percent(value: Any, where: Where) -> None:
    _number(value, where)
    if value < 0:
        raise _fail(where, "a percentage of 0 or more", value)


def _text(value: Any, where: Where) -> None:
    if not isinstance(value, str):
        raise _fail(where, "a string", value)


def _flag(value: Any, where: Where) -> None:
    if not isinstance(value, bool):
        raise _fail(where, "true or false", value)


def _anything(value: Any, where: Where) -> None:
    """Not read here; bounded by _bounded."""


def _nullable(check: Check) -> Check:
    def nullable(value: Any, where: Where) -> None:
        if value is not None:
            check(value, where)

    return nullable


def _one_of(*allowed: str) -> Check:
    def one_of(value: Any, where: Where) -> None:
        if value not in allowed:
            shown = ", ".join(f'"{a}"' for a in allowed)
            raise _fail(where, f"one of {shown}", value)

    return one_of


def _list(check: Check) -> Check:
    def listed(value: Any, where: Where) -> None:
        if not isinstance(value, list):
            raise _fail(where, "a list", value)
        for index, item in enumerate(value):
            check(item, (*where, index))

    return listed


def _map(check: Check) -> Check:
    def mapped(value: Any, where: Where) -> None:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        for key, item in value.items():
            check(item, (*where, key))

    return mapped


def _object(fields: dict[str, Check], *, required: tuple[str, ...] = ()) -> Check:
    """An object with these keys (each optional unless required); others are left alone."""

    def checked(value: Any, where: Where) -> None:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        for key in required:
            if key not in value:
                raise _Invalid((*where, key), "missing")
        for key, check in fields.items():
            if key in value:
                check(value[key], (*where, key))

    return checked


_VALUE = _nullable(_number)
_BUDGET = _object(
    {
        "key": _text,
        "metric": _text,
        "limit": _number,
        "actual": _VALUE,
        "ok": _nullable(_flag),
        "line": _nullable(_line),
        "drivers": _list(_text),
        "note": _text,
        "estimated": _flag,
    },
    required=("key", "metric", "limit"),
)
_CASE = _object(
    {
        "calls": _count,
        "input_tokens": _VALUE,
        "output_tokens": _VALUE,
        "cost_usd": _VALUE,
        "escalated": _flag,
        "models": _list(_text),
    }
)
_REGRESSION = _object(
    {
        "metric": _text,
        "key": _nullable(_text),
        "line": _nullable(_line),
        "base": _VALUE,
        "head": _VALUE,
        "delta": _VALUE,
        "pct": _VALUE,
        "gate_pct": _percent,
        "drivers": _list(_text),
    },
    required=("metric",),
)
_UNMEASURED = _object(
    {"case": _text, "test": _text, "kind": _text, "message": _text}, required=("case",)
)
_CACHE = _object(
    {
        "recorded": _nullable(_map(_VALUE)),
        "predicted": _nullable(_map(_VALUE)),
        "min_cache_hit_rate_checks": _text,
        "note": _text,
    }
)
_REPRICE = _object(
    {
        "model": _text,
        "cost_per_request_usd": _VALUE,
        "monthly_cost_usd": _VALUE,
        "input_tokens_p95": _VALUE,
        "input_exact": _flag,
        "output": _text,
    },
    required=("model",),
)
_PART = _object({"mean": _VALUE, "p95": _VALUE, "cost_share": _VALUE, "exact": _flag})
_ANATOMY = _object(
    {"calls": _count, "counted_calls": _count, "input": _map(_PART), "output": _map(_PART)}
)
_ENDPOINT = _object(
    {
        "status": _one_of(PASS, FAIL, NOT_RUN),
        "headline": _nullable(_text),
        "line": _nullable(_line),
        "max_regression_pct": _nullable(_percent),
        "calls": _count,
        "cases": _count,
        "complete": _flag,
        "unmeasured_cases": _list(_UNMEASURED),
        "no_call_cases": _list(_text),
        "cases_without_calls": _text,
        "metrics": _map(_VALUE),
        "partial_metrics": _nullable(_map(_VALUE)),
        "budgets": _list(_BUDGET),
        "per_case": _map(_CASE),
        "models": _map(_count),
        "price_sources": _map(_text),
        "unpriced_models": _map(_list(_text)),
        "recounted_calls": _count,
        "cache": _nullable(_CACHE),
        "recorders": _list(_text),
        "warnings": _list(_text),
        "problems": _list(_text),
        "regressions": _nullable(_list(_REGRESSION)),
        "reprice": _nullable(_REPRICE),
        "anatomy": _nullable(_ANATOMY),  # absent from reports before it was measured
    }
)
_FINDING = _object(
    {
        "code": _text,
        "level": _one_of("error", "warning", "note"),
        "endpoint": _text,
        "where": _text,
        "message": _text,
        "fix": _nullable(_text),
        "cases": _list(_text),
    },
    required=("code", "level", "endpoint", "where", "message", "fix", "cases"),
)
_REPORT = _object(
    {
        "config": _text,
        "percentile_method": _text,
        "status": _text,
        "headline": _text,
        "prices": _object(
            {
                "table_date": _text,
                "source": _text,
                "as_of": _text,
                "label": _text,
                "overrides_note": _text,
            }
        ),
        "failures": _list(
            _object(
                {
                    "endpoint": _nullable(_text),
                    "kind": _text,
                    "message": _text,
                    "key": _nullable(_text),
                    "line": _nullable(_line),
                }
            )
        ),
        "fixes": _list(_object({"what": _text, "command": _text}, required=("what", "command"))),
        "endpoints": _map(_ENDPOINT),
        "totals": _object({"calls": _count, "cost_usd": _VALUE, "monthly_cost_usd": _VALUE}),
        "findings": _list(_FINDING),
        "update": _object({"status": _one_of(PASS, FAIL), "error": _text}),
        "notes": _list(_text),
        "diff": _anything,  # this run's comparison; nothing reads it back
    },
    required=("endpoints",),
)
