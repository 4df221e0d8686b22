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
type-checked (measure/shard_schema.py), so a bad shard is one ReportError naming the file and the place in it
(`run.samples[3][4][0][1]: must be a whole number of 0 or more, not a number (-5)`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pytest_tokenbudget.config.budgets import Config
from pytest_tokenbudget.errors import ConfigError, PricingError, ReportError
from pytest_tokenbudget.files.atomic import write_atomic
from pytest_tokenbudget.files.input_files import (
    CONFIG_MAX_BYTES,
    REPORT_MAX_BYTES,
    read_bounded_bytes,
    read_bounded_text,
)
from pytest_tokenbudget.files.yaml_source import problems_error
from pytest_tokenbudget.measure import shard_schema
from pytest_tokenbudget.measure.run import BudgetRun, Options
from pytest_tokenbudget.plain_text import key_path, one_line
from pytest_tokenbudget.pricing.prices import (
    RATE_FIELDS,
    WEB_SEARCH,
    PriceBook,
    configured_models,
    model_problems,
)

FILE_NAME = "shard.json"
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA")  # GitHub Actions, GitLab CI
PRICE_FIELDS = (*RATE_FIELDS, WEB_SEARCH)  # what pricing reads of a hook's answer


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
        "schema": shard_schema.SCHEMA,
        "version": shard_schema.VERSION,
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
def read_shard(path: str | os.PathLike[str], *, shown: str | None = None) -> Shard:
    """A shard.json, checked; one ReportError naming the file and the place for bad input."""
    where_shown = shown if shown is not None else os.fspath(path)
    text = read_bounded_text(
        path, limit=REPORT_MAX_BYTES, what="shard", error=ReportError, shown=where_shown
    )
    try:
        data = shard_schema.parse(text)
        shard_schema.check(data)
    except json.JSONDecodeError as err:
        raise ReportError(
            f"not JSON: {err.msg} at column {err.colno}", path=where_shown, line=err.lineno
        ) from None
    except RecursionError:
        raise ReportError("nested too deep to be a shard", path=where_shown) from None
    except shard_schema.Invalid as err:
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
        for where, endpoint in shard_schema.endpoints_named(shard.run):
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
