"""CI shards: one run's measurement split across machines, written and merged exactly.

`pytest --token-budget-shard` writes shard.json instead of judging: the run's state as xdist
workers ship it to their controller (`BudgetRun.to_wire`), plus what the merge must agree on
or reproduce: the commit, a digest of token_budgets.yml and its cases files, the options that
change the figures, and the prices the pytest_tokenbudget_price hook gave (the merge runs
without the team's conftest). `tokenbudget merge` reads the shards (`read_shard`), checks
they belong together and merges them into one run (`merged_run`), which is then judged as a
serial run would be.

A shard is input from another CI job, in a fork's pull request from the fork's code: it is
read bounded, parsed as strict JSON, and every field the merge and the evaluation read is
type-checked, so a bad shard is one ReportError naming the file and the place in it
(`run.samples[3][4][0][1]: must be a whole number of 0 or more, not a number (-5)`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

from pytest_tokenbudget.cache.finding import CODES
from pytest_tokenbudget.config.budgets import Config
from pytest_tokenbudget.errors import ConfigError, PricingError, ReportError, kind_of
from pytest_tokenbudget.files.atomic import write_atomic
from pytest_tokenbudget.files.input_files import (
    CONFIG_MAX_BYTES,
    REPORT_MAX_BYTES,
    read_bounded_bytes,
    read_bounded_text,
)
from pytest_tokenbudget.files.yaml_source import problems_error
from pytest_tokenbudget.measure.accounting import RECORDING_KINDS
from pytest_tokenbudget.measure.run import BudgetRun, Options
from pytest_tokenbudget.plain_text import key_path, one_line
from pytest_tokenbudget.pricing.prices import (
    RATE_FIELDS,
    WEB_SEARCH,
    PriceBook,
    configured_models,
    model_problems,
)

SCHEMA = "pytest-tokenbudget/shard"
VERSION = 1
FILE_NAME = "shard.json"
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA")  # GitHub Actions, GitLab CI
PRICE_FIELDS = (*RATE_FIELDS, WEB_SEARCH)  # what pricing reads of a hook's answer
OUTCOMES = ("passed", "failed", "skipped")  # a case's, as pytest reports it
MAX_NUMBER = 10**18  # far past any token count; what a report can hold
MAX_DIGITS = 20  # longer integers are not even converted
MAX_DEPTH = 64  # a request prefix kept by the prompt-cache doctor (any JSON) nests this deep

Where = tuple[str | int, ...]
Check = Callable[[Any, Where], None]


@dataclass(frozen=True)
class Shard:
    """One shard.json, checked."""

    path: Path
    shown: str  # the path as the user gave it, for messages
    commit: str | None
    config: str  # config_digest() of the shard's token_budgets.yml
    count: bool  # --token-budget-count
    reprice: str | None  # --token-budget-reprice
    price_source: str  # the price library and version that priced it
    prices: dict[str, dict[str, str]]  # model -> rates, as the price hook gave them
    run: dict[str, Any]  # BudgetRun.to_wire()

    def test_ids(self) -> set[str]:
        """Every test the shard ran or measured."""
        run = self.run
        ids = {c["test_id"] for c in run["case_runs"]}
        ids.update(s[2] for s in run["samples"])
        ids.update(run["recordings"])
        return ids


# -- writing ---------------------------------------------------------------------------------
def current_commit(directory: Path, environ: Mapping[str, str]) -> str | None:
    """The commit measured: CI's variable for it, else git's HEAD in `directory`; None
    outside a repository."""
    for variable in COMMIT_VARIABLES:
        if environ.get(variable):
            return environ[variable]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def config_digest(config: Config) -> str:
    """sha256 over token_budgets.yml's bytes and every cases file it names (each by its path
    from the config's folder), so shards measured against other budgets or cases disagree."""
    digest = hashlib.sha256()
    files = [("", config.path)]
    for endpoint in config.endpoints.values():
        path = endpoint.cases_path
        if path is not None and all(path != p for _, p in files):
            files.append((Path(os.path.relpath(path, config.path.parent)).as_posix(), path))
    for name, path in files:
        data = read_bounded_bytes(
            path, limit=CONFIG_MAX_BYTES, what="budget or cases file", error=ConfigError
        )
        digest.update(f"{len(name)}:{name}:{len(data)}:".encode())
        digest.update(data)
    return "sha256:" + digest.hexdigest()


def hook_prices(run: BudgetRun) -> dict[str, dict[str, str]]:
    """The pytest_tokenbudget_price hook's answers for every model the run used or its config
    names, where nothing else prices it: rates as text, which pricing reads exactly."""
    hook = run.price_hook
    if hook is None:
        return {}
    answers: dict[str, Mapping[str, Any]] = {}

    def asked(model: str) -> Mapping[str, float] | None:
        rates = hook(model)
        if isinstance(rates, Mapping) and rates:
            answers[model] = rates
        return rates

    models = {row[0] for part in [*run.all_parts(), *run.reprice_parts] for row in part.rows}
    models.update(model for _, model in configured_models(run.config))
    if run.options.reprice:
        models.add(run.options.reprice)
    book = PriceBook(run.config.pricing, fallback=asked)
    for model in sorted(models):
        try:
            book.find(model)
        except PricingError:  # a bad answer: the merge then finds no price and says so
            answers.pop(model, None)
    return {
        model: {name: str(rates[name]) for name in PRICE_FIELDS if name in rates}
        for model, rates in sorted(answers.items())
    }


def shard_document(run: BudgetRun, *, commit: str | None) -> dict[str, Any]:
    """shard.json's document."""
    from pytest_tokenbudget.pricing import source

    return {
        "schema": SCHEMA,
        "version": VERSION,
        "commit": commit,
        "config": config_digest(run.config),
        "options": {
            "count": run.options.count,
            "reprice": run.options.reprice,
            "price_source": source.describe()["source"],
        },
        "prices": hook_prices(run),
        "run": run.to_wire(),
    }


def write_shard(run: BudgetRun, *, commit: str | None) -> Path:
    """<report dir>/shard.json, written whole or not at all, never holding a credential."""
    from pytest_tokenbudget.providers.scrub import refuse_if_secret

    path = run.options.report_dir / FILE_NAME
    text = json.dumps(shard_document(run, commit=commit), separators=(",", ":")) + "\n"
    refuse_if_secret(text, path=str(path))
    write_atomic(path, text)
    return path


def shard_summary(run: BudgetRun) -> tuple[int, int]:
    """(calls, cases run) of the shard: what its summary line says."""
    return sum(len(part.prompt) for part in run.all_parts()), len(run.case_runs)


# -- reading ---------------------------------------------------------------------------------
class _Invalid(Exception):
    def __init__(self, where: Where, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Invalid((), f"a number of {len(text.lstrip('-')):,} digits (at most {MAX_DIGITS})")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise _Invalid((), f"not a finite number ({name})")


def read_shard(path: str | os.PathLike[str], *, shown: str | None = None) -> Shard:
    """A shard.json, checked; one ReportError naming the file and the place for bad input."""
    where_shown = shown if shown is not None else os.fspath(path)
    text = read_bounded_text(
        path, limit=REPORT_MAX_BYTES, what="shard", error=ReportError, shown=where_shown
    )
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
        _check_identity(data)
        _SHARD(data, ())
    except json.JSONDecodeError as err:
        raise ReportError(
            f"not JSON: {err.msg} at column {err.colno}", path=where_shown, line=err.lineno
        ) from None
    except RecursionError:
        raise ReportError("nested too deep to be a shard", path=where_shown) from None
    except _Invalid as err:
        raise ReportError(
            one_line(err.message), path=where_shown, key=key_path(err.where) or None
        ) from None
    options = data["options"]
    return Shard(
        path=Path(path),
        shown=where_shown,
        commit=data["commit"],
        config=data["config"],
        count=options["count"],
        reprice=options["reprice"],
        price_source=options["price_source"],
        prices=data["prices"],
        run=data["run"],
    )


def _check_identity(data: Any) -> None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = (
            f"it is {kind_of(data)}"
            if not isinstance(data, dict)
            else f'its "schema" is {kind_of(data.get("schema"))}'
        )
        raise _Invalid((), f'not a pytest-tokenbudget shard: {found}, expected "{SCHEMA}"')
    version = data.get("version")
    if version != VERSION or isinstance(version, bool):
        from pytest_tokenbudget import __version__

        shown = str(version) if type(version) is int else kind_of(version)
        raise _Invalid(
            ("version",),
            f"shard version {one_line(shown)}, and this pytest-tokenbudget ({__version__}) "
            f"merges version {VERSION}: run the shards and the merge with one version",
        )


# -- the checks: each names the place and what it must be --------------------------------------
def _fail(where: Where, expected: str, value: Any) -> _Invalid:
    return _Invalid(where, f"must be {expected}, not {kind_of(value)}")


def _count(value: Any, where: Where) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_NUMBER:
        raise _fail(where, "a whole number of 0 or more", value)


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
        except _Invalid as err:
            if err.where != where:
                raise
            raise _Invalid(where, err.message.replace("must be ", "must be null or ", 1)) from None

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
                raise _Invalid((*where, key), "missing")
        for key in value:
            if key not in fields:
                raise _Invalid((*where, key), "not a key of a shard")

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
            raise _Invalid(where, f"nested deeper than {MAX_DEPTH} levels")
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
    _list(_text),  # message digests
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
    _list(_count),  # tokens by part
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
    optional=("anatomy",),
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


def _endpoints_named(run: dict[str, Any]) -> Iterator[tuple[Where, str]]:
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


# -- merging ---------------------------------------------------------------------------------
def check_together(shards: Sequence[Shard], config: Config, *, price_source: str) -> None:
    """The shards are parts of one run of this config, priced as this merge prices: one
    ReportError naming the two files that differ, and what differs."""
    first = shards[0]
    for other in shards[1:]:
        what = _difference(first, other)
        if what:
            raise ReportError(
                f"{one_line(first.shown)} and {one_line(other.shown)} are not shards of one run: "
                f"{what}"
            )
    config_shown = one_line(config.path)
    if first.config != config_digest(config):
        raise ReportError(
            f"measured with another {one_line(config.path.name)} (or cases file) than "
            f"{config_shown} here: merge in a checkout of the commit the shards ran"
            + (f" ({one_line(first.commit)})" if first.commit else ""),
            path=first.shown,
        )
    if first.price_source != price_source:
        raise ReportError(
            f"priced with {one_line(first.price_source)}, this merge with {price_source}: "
            "install the same version where the shards run and where they are merged",
            path=first.shown,
        )
    for shard in shards:
        for where, endpoint in _endpoints_named(shard.run):
            if endpoint not in config.endpoints:
                raise ReportError(
                    f"endpoint {one_line(repr(endpoint))} is not in {config_shown}",
                    path=shard.shown,
                    key=key_path(where),
                )
    _check_disjoint(shards)
    problems = model_problems(config, hook=price_hook(shards))
    if problems:  # as pytest refuses a budget file naming a model nothing prices
        raise problems_error(problems)


def _difference(a: Shard, b: Shard) -> str:
    """What sets two shards apart, in words; "" for shards of one run."""
    if a.commit != b.commit:
        return f"measured at different commits ({_shown(a.commit)} and {_shown(b.commit)})"
    if a.config != b.config:
        return "measured with different budget files or cases files"
    if a.price_source != b.price_source:
        return f"priced with {_shown(a.price_source)} and {_shown(b.price_source)}"
    if a.count != b.count:
        return "one ran with --token-budget-count, the other without"
    if a.reprice != b.reprice:
        return f"--token-budget-reprice {_shown(a.reprice)} and {_shown(b.reprice)}"
    for model in sorted(set(a.prices) & set(b.prices)):
        if a.prices[model] != b.prices[model]:
            return f"the pytest_tokenbudget_price hook priced {one_line(repr(model))} differently"
    return ""


def _shown(value: str | None) -> str:
    return one_line(value) if value is not None else "none"


def _check_disjoint(shards: Sequence[Shard]) -> None:
    """A test in two shards would be counted twice: each test belongs to one shard."""
    seen: dict[str, Shard] = {}
    for shard in shards:
        for test_id in sorted(shard.test_ids()):
            other = seen.setdefault(test_id, shard)
            if other is not shard:
                raise ReportError(
                    f"{one_line(test_id)} ran in both {one_line(other.shown)} and "
                    f"{one_line(shard.shown)}: shards must split the tests, each test in one"
                )


def price_hook(shards: Sequence[Shard]) -> Callable[[str], Mapping[str, float] | None]:
    """The shards' pytest_tokenbudget_price answers, as the hook the merge has not got."""
    prices = {model: rates for shard in shards for model, rates in shard.prices.items()}

    def hook(model: str) -> Mapping[str, float] | None:
        # rates as text, which pricing reads exactly (its Fraction(str(rate)))
        return cast("Mapping[str, float] | None", prices.get(model))

    return hook


def merged_run(shards: Sequence[Shard], config: Config, report_dir: Path) -> BudgetRun:
    """One run holding every shard's measurement, priced as the shards were (their price
    hook's answers), to be judged as the serial run would be. Call check_together first."""
    first = shards[0]
    options = Options(config.path, None, report_dir, count=first.count, reprice=first.reprice)
    run = BudgetRun(config, options, price_hook=price_hook(shards))
    for shard in shards:
        run.merge_wire(shard.run)
    return run
