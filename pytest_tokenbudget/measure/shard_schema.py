"""shard.json's structure, checked: every value the merge and the evaluation read.

A shard is input from another CI job (in a fork's pull request, from the fork's code), so
it is parsed as strict JSON (NaN, Infinity and overlong numbers refused), and each field of
the run it carries (`BudgetRun.to_wire`: samples.Row, CaseRun, the prompt-cache doctor's
wire, ...) is checked for its type and range here, field by field, with its place:
`run.samples[3][4][0][1]: must be a whole number of 0 or more, not a number (-5)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from typing import Any

from pytest_tokenbudget.cache.finding import CODES
from pytest_tokenbudget.errors import kind_of
from pytest_tokenbudget.measure.accounting import RECORDING_KINDS
from pytest_tokenbudget.measure.anatomy import INPUT, OUTPUT, UNATTRIBUTED
from pytest_tokenbudget.plain_text import one_line

SCHEMA = "pytest-tokenbudget/shard"
VERSION = 1
OUTCOMES = ("passed", "failed", "skipped")  # a case's, as pytest reports it
MAX_NUMBER = 10**18  # far past any token count; what a report can hold
MAX_DIGITS = 20  # longer integers are not even converted
MAX_DEPTH = 64  # a request prefix kept by the prompt-cache doctor (any JSON) nests this deep

Where = tuple[str | int, ...]
Check = Callable[[Any, Where], None]


class Invalid(Exception):
    """A value that is not what a shard holds there."""

    def __init__(self, where: Where, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise Invalid((), f"a number of {len(text.lstrip('-')):,} digits (at most {MAX_DIGITS})")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise Invalid((), f"not a finite number ({name})")


def parse(text: str) -> Any:
    """Strict JSON: json.JSONDecodeError, RecursionError or Invalid for what is not."""
    return json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)


def check(data: Any) -> None:
    """A shard of this version, every field the merge reads checked; else Invalid."""
    _check_identity(data)
    _SHARD(data, ())


def _check_identity(data: Any) -> None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = (
            f"it is {kind_of(data)}"
            if not isinstance(data, dict)
            else f'its "schema" is {kind_of(data.get("schema"))}'
        )
        raise Invalid((), f'not a pytest-tokenbudget shard: {found}, expected "{SCHEMA}"')
    version = data.get("version")
    if version != VERSION or isinstance(version, bool):
        from pytest_tokenbudget import __version__

        shown = str(version) if type(version) is int else kind_of(version)
        raise Invalid(
            ("version",),
            f"shard version {one_line(shown)}, and this pytest-tokenbudget ({__version__}) "
            f"merges version {VERSION}: run the shards and the merge with one version",
        )


# -- the checks: each names the place and what it must be ------------------------------------
def _fail(where: Where, expected: str, value: Any) -> Invalid:
    return Invalid(where, f"must be {expected}, not {kind_of(value)}")


def _count(value: Any, where: Where) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_NUMBER:
        raise _fail(where, "a whole number of 0 or more", value)


def _signed(value: Any, where: Where) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_NUMBER:
        raise _fail(where, "a whole number", value)


def _text(value: Any, where: Where) -> None:
    if not isinstance(value, str):
        raise _fail(where, "a string", value)


def _flag(value: Any, where: Where) -> None:
    if not isinstance(value, bool):
        raise _fail(where, "true or false", value)


def _nullable(check: Check) -> Check:
    def nullable(value: Any, where: Where) -> None:
        if value is None:
            return
        try:
            check(value, where)
        except Invalid as err:
            if err.where != where:
                raise
            raise Invalid(where, err.message.replace("must be ", "must be null or ", 1)) from None

    return nullable


def _one_of(allowed: Sequence[str]) -> Check:
    def one_of(value: Any, where: Where) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise _fail(where, "one of " + ", ".join(f'"{a}"' for a in allowed), value)

    return one_of


def _list(check: Check) -> Check:
    def listed(value: Any, where: Where) -> None:
        if not isinstance(value, list):
            raise _fail(where, "a list", value)
        for index, item in enumerate(value):
            check(item, (*where, index))

    return listed


def _tuple(*checks: Check) -> Check:
    """A list of exactly these items."""

    def fixed(value: Any, where: Where) -> None:
        if not isinstance(value, list) or len(value) != len(checks):
            raise _fail(where, f"a list of {len(checks)} items", value)
        for index, (item, check) in enumerate(zip(value, checks, strict=True)):
            check(item, (*where, index))

    return fixed


def _map(check: Check) -> Check:
    def mapped(value: Any, where: Where) -> None:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        for key, item in value.items():
            check(item, (*where, key))

    return mapped


def _object(fields: dict[str, Check], *, optional: tuple[str, ...] = ()) -> Check:
    """An object with these keys and no other (the writer is this version, and each key is
    read); each required unless `optional`."""

    def checked(value: Any, where: Where) -> None:
        if not isinstance(value, dict):
            raise _fail(where, "an object", value)
        for key, check in fields.items():
            if key in value:
                check(value[key], (*where, key))
            elif key not in optional:
                raise Invalid((*where, key), "missing")
        for key in value:
            if key not in fields:
                raise Invalid((*where, key), "not a key of a shard")

    return checked


_CONTEXT = re.compile(r"(?:(?:speed|inference_geo)=[^,=]*)(?:,(?:speed|inference_geo)=[^,=]*)*")


def _context(value: Any, where: Where) -> None:
    """A pricing context key (Usage.pricing_context): "" or "speed=fast,inference_geo=us"."""
    if not isinstance(value, str) or (value and not _CONTEXT.fullmatch(value)):
        raise _fail(where, 'a pricing context ("" or "speed=...,inference_geo=...")', value)


_RATE = re.compile(r"\d{1,30}(?:\.\d{0,30})?(?:[eE][-+]?\d{1,3})?|\d{1,30}/\d{1,30}")


def _rate(value: Any, where: Where) -> None:
    """A rate as text, which pricing reads as an exact fraction (its exponent bounded)."""
    if not isinstance(value, str) or not _RATE.fullmatch(value) or Fraction(value) < 0:
        raise _fail(where, "a rate in $ per million tokens, as text", value)


def _json_object(value: Any, where: Where) -> None:
    """Any JSON object (a request's cached prefix), nested at most MAX_DEPTH deep."""
    if not isinstance(value, dict):
        raise _fail(where, "an object", value)
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise Invalid(where, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


# samples.Row, field by field (tests/unit/measure/test_shards.py keeps the two in step)
_ROW = _tuple(
    _text,  # model
    _count,  # input tokens
    _count,  # output tokens
    _count,  # cache writes, 5 minutes
    _count,  # cache writes, 1 hour
    _count,  # cache reads
    _text,  # provider
    _flag,  # batch
    _flag,  # recounted
    _flag,  # input only
    _text,  # note
    _count,  # web searches
    _context,  # pricing context
)
_SAMPLES = _list(_tuple(_text, _text, _text, _count, _list(_ROW)))  # CaseSamples.to_wire
_CASE_RUN = _object(  # CaseRun.to_dict
    {
        "endpoint": _text,
        "case_id": _text,
        "test_id": _text,
        "outcome": _one_of(OUTCOMES),
        "errors": _list(_text),
        "recorders": _list(_text),
        "unmeasured": _list(_text),
    }
)
_FINDING = _object(  # CacheFinding.to_dict
    {
        "code": _one_of(tuple(CODES)),
        "level": _text,
        "endpoint": _text,
        "where": _text,
        "cases": _list(_text),
        "message": _text,
        "fix": _text,
    }
)
_PROMPT = _tuple(  # Doctor.to_wire's prompts: a PromptSeen
    _text,  # endpoint
    _text,  # case id
    _text,  # model
    _list(_tuple(_text, _text, _count, _nullable(_text), _text)),  # PromptBlocks
    _count,  # whole input tokens
    _text,  # test id
    _count,  # the call's place in its test
    _list(_text),  # block kinds
    _nullable(_tuple(_count, _count, _count)),  # recorded (read, 5m, 1h)
)
_VARIANT = _tuple(  # prefixes.Variant.to_wire
    _tuple(_text, _count, _text),  # first: (test id, index, case id)
    _list(_text),  # cases
    _nullable(_json_object),  # the request's prefix, while it is the only variant
    _nullable(_list(_tuple(_text, _flag, _list(_tuple(_count, _text))))),  # volatile values
    _text,  # its last breakpoint's path
)
_CALL_SEEN = _tuple(  # checklist.CallSeen.to_wire
    _text,  # endpoint
    _text,  # case id
    _text,  # test id
    _count,  # the call's place in its test
    _text,  # model
    _count,  # whole input tokens
    _tuple(*[_count] * 6, _text, _text),  # its Usage, field by field
    _flag,  # batch
    _flag,  # answered
    _list(_text),  # tools called
    _list(_tuple(_text, _count)),  # tools sent: (name, characters)
    _count,  # prompt characters
    _tuple(_count, _list(_text)),  # messages: how many shared with the call before, the rest
    _text,  # request digest
)
_DOCTOR = _object(
    {
        "findings": _list(_tuple(_tuple(_text, _count), _FINDING)),
        "prompts": _list(_PROMPT),
        "variants": _list(_tuple(_tuple(_text, _text, _text), _list(_text), _VARIANT)),
        "calls": _list(_CALL_SEEN),
    }
)


def _billed(value: Any, where: Where) -> None:
    """A billed token figure; output is -1 for a call counted, never generated."""
    if value != -1:
        _count(value, where)


_ANATOMY = _tuple(  # anatomy.CallAnatomy
    _text,  # endpoint
    _text,  # case id
    _text,  # test id
    _text,  # model
    _flag,  # batch
    _context,  # pricing context
    _tuple(_count, _count, _count, _count, _billed),  # billed: input, writes, reads, output
    # tokens by part, INPUT's then OUTPUT's; `unattributed` (what estimates leave of the
    # bill) may be negative
    _tuple(*[_signed if part == UNATTRIBUTED else _count for part in (*INPUT, *OUTPUT)]),
    _count,  # which figures are exact (bits)
    _flag,  # split by counted prefixes
)
_RUN = _object(  # BudgetRun.to_wire
    {
        "samples": _SAMPLES,
        "case_runs": _list(_CASE_RUN),
        "counts": _tuple(_count, _count),
        "doctor": _DOCTOR,
        "recordings": _map(_one_of(RECORDING_KINDS)),
        "reprice": _SAMPLES,
        "anatomy": _list(_ANATOMY),
    },
)
_SHARD = _object(
    {
        "schema": _text,
        "version": _count,
        "commit": _nullable(_text),
        "config": _text,
        "options": _object({"count": _flag, "reprice": _nullable(_text), "price_source": _text}),
        "prices": _map(_map(_rate)),
        "run": _RUN,
    }
)


def endpoints_named(run: dict[str, Any]) -> Iterator[tuple[Where, str]]:
    """Each endpoint the shard's run names, with where: the evaluation looks each one up."""
    for key in ("samples", "reprice"):
        for i, part in enumerate(run[key]):
            yield ("run", key, i, 0), part[0]
    for i, case in enumerate(run["case_runs"]):
        yield ("run", "case_runs", i, "endpoint"), case["endpoint"]
    doctor = run["doctor"]
    for i, (_, finding) in enumerate(doctor["findings"]):
        yield ("run", "doctor", "findings", i, 1, "endpoint"), finding["endpoint"]
    for i, prompt in enumerate(doctor["prompts"]):
        yield ("run", "doctor", "prompts", i, 0), prompt[0]
    for i, (group, _, _) in enumerate(doctor["variants"]):
        yield ("run", "doctor", "variants", i, 0, 0), group[0]
    for i, call in enumerate(doctor["calls"]):
        yield ("run", "doctor", "calls", i, 0), call[0]
    for i, anatomy in enumerate(run.get("anatomy", ())):
        yield ("run", "anatomy", i, 0), anatomy[0]
