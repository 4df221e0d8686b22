"""CI shards (measure/shards.py): shard.json written and read back, merged exactly, and a
bad shard refused with one message naming the file and the place in it.

A run is fed here by hand (calls, case outcomes, prompts for the cache doctor, a recording
problem, repriced calls); the serial run holds every test, the shards each half of them.
"""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from project_files import faq_request

from pytest_tokenbudget.config.budgets import load_config
from pytest_tokenbudget.errors import ConfigError, ReportError, SecretError
from pytest_tokenbudget.files.input_files import REPORT_MAX_BYTES
from pytest_tokenbudget.measure.anatomy import INPUT, OUTPUT, CallAnatomy
from pytest_tokenbudget.measure.run import BudgetRun, Options
from pytest_tokenbudget.measure.samples import CaseRun, Row
from pytest_tokenbudget.measure.shards import (
    Shard,
    check_together,
    config_digest,
    current_commit,
    merged_run,
    read_shard,
    write_shard,
)
from pytest_tokenbudget.pricing import source
from pytest_tokenbudget.providers.usage import Call, Usage
from pytest_tokenbudget.report.build import report_of
from pytest_tokenbudget.report.json_io import report_json

CONFIG = """\
endpoints:
  faq:
    target_model: acme-large  # priced by the team's pytest_tokenbudget_price hook only
    max_input_tokens_p95: 100000
    requests_per_day: 100
    cases: cases.yml
  notes:
    max_output_tokens_p95: 100
"""
CASES = "- id: q0\n- id: q1\n"
PRICE_SOURCE = source.describe()["source"]


def hook(model: str) -> dict[str, Any] | None:
    """The team's price hook: a model no table knows, its rates as a Decimal and a float."""
    return {"input": Decimal("0.3"), "output": 1.5} if model == "acme-large" else None


def budget_file(folder: Path) -> Path:
    (folder / "cases.yml").write_text(CASES)
    path = folder / "token_budgets.yml"
    path.write_text(CONFIG)
    return path


def fed_run(path: Path, tests: range | list[int]) -> BudgetRun:
    """A run of some of eight tests: calls (one escalating, one fast and in the US), their
    prompts seen by the cache doctor, a test whose recording is missing, repriced calls."""
    config = load_config(path)
    run = BudgetRun(config, Options(path, path.parent, path.parent), price_hook=hook)
    for i in tests:
        endpoint = "faq" if i % 2 else "notes"
        case_id, test_id = f"c{i}", f"test_{endpoint}.py::test[c{i}]"
        usage = Usage(100 * i + 7, 10 + i, cache_read_tokens=50 * (i % 3))
        if i == 5:
            usage = Usage(900, 40, speed="fast", inference_geo="us")
        calls = [
            Call("anthropic", "messages", "acme-large" if i % 2 else "claude-haiku-4-5", usage)
        ]
        if i == 3:  # escalated
            calls.append(Call("anthropic", "messages", "claude-opus-4-7", Usage(2000, 300)))
        run.add_calls(calls, endpoint=endpoint, case_id=case_id, test_id=test_id)
        run.add_case_run(CaseRun(endpoint, case_id, test_id, "passed", recorders=("mock",)))
        request = faq_request(i, i + 1)
        run.diagnose_request(endpoint, case_id, request, 1000 + 40 * i, test_id)
        rows: list[Row] = [
            ("claude-haiku-4-5", 90 * i, 10, 0, 0, 0, "anthropic", False, True, False, "", 0, "")
        ]
        run.add_repriced(rows, endpoint=endpoint, case_id=case_id, test_id=test_id)
    if 6 in tests:
        run.note_recording("test_notes.py::test[c6]", "missing")
    return run


def report_text(run: BudgetRun) -> str:
    return json.dumps(report_json(report_of(run)), indent=2)


def shard_of(
    tmp_path: Path, name: str, tests: range | list[int], commit: str | None = "abc"
) -> Shard:
    path = tmp_path / "token_budgets.yml"
    run = fed_run(path if path.exists() else budget_file(tmp_path), tests)
    run.options.report_dir = tmp_path / name
    return read_shard(write_shard(run, commit=commit))


def document(tmp_path: Path) -> dict[str, Any]:
    """A valid shard.json's document, to corrupt."""
    shard = shard_of(tmp_path, "whole", range(8))
    return json.loads(shard.path.read_text())


def refusal(tmp_path: Path, doc: Any, *, raw: str | None = None) -> str:
    bad = tmp_path / "bad" / "shard.json"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(raw if raw is not None else json.dumps(doc))
    with pytest.raises(ReportError) as caught:
        read_shard(bad)
    message = str(caught.value)
    assert message.startswith(str(bad)), message  # the file is named first
    assert "\n" not in message
    return message[len(str(bad)) + 2 :]


# -- round trip and the exact merge ----------------------------------------------------------
def test_two_shards_merge_into_the_serial_report(tmp_path):
    serial = fed_run(budget_file(tmp_path), range(8))
    halves = [shard_of(tmp_path, "odd", range(1, 8, 2)), shard_of(tmp_path, "even", range(0, 8, 2))]
    config = load_config(tmp_path / "token_budgets.yml")
    check_together(halves, config, price_source=PRICE_SOURCE)
    merged = merged_run(halves, config, tmp_path / "merged")
    assert report_text(merged) == report_text(serial)
    assert merged.count_stats == serial.count_stats
    # what makes it exact was in the shards: escalation, the fast US call, the doctor's
    # findings, the missing recording, and the hook's price of a model no table knows
    report = report_json(report_of(merged))
    assert report["endpoints"]["faq"]["price_sources"]["acme-large"] != PRICE_SOURCE
    assert report["findings"], "the cache doctor's findings came through"
    assert report["endpoints"]["notes"]["unmeasured_cases"][0]["case"] == "c6"


def test_the_hook_prices_travel_as_text_that_prices_exactly(tmp_path):
    shard = shard_of(tmp_path, "all", range(8))
    assert shard.prices == {"acme-large": {"input": "0.3", "output": "1.5"}}
    assert shard.commit == "abc" and shard.config == config_digest(shard_config(tmp_path))
    assert (shard.count, shard.reprice, shard.price_source) == (False, None, PRICE_SOURCE)


def shard_config(tmp_path: Path):
    return load_config(tmp_path / "token_budgets.yml")


def test_every_field_of_the_run_is_checked(tmp_path):
    """Each key a run ships (BudgetRun.to_wire), given a value of the wrong type, is refused
    by its name: a key added to the wire without a check fails here, or as unknown."""
    doc = document(tmp_path)
    for key in doc["run"]:
        broken = {**doc, "run": {**doc["run"], key: "oops"}}
        assert refusal(tmp_path, broken).startswith(f"run.{key}: must be "), key
    extra = {**doc, "run": {**doc["run"], "surprise": []}}
    assert refusal(tmp_path, extra) == "run.surprise: not a key of a shard"


def test_a_row_is_checked_field_by_field_as_samples_row_holds_it(tmp_path):
    doc = document(tmp_path)
    row = doc["run"]["samples"][0][4][0]
    assert len(row) == len(get_args(Row))
    for index, kind in enumerate(get_args(Row)):
        wrong: Any = "text" if kind is not str else 7
        broken = json.loads(json.dumps(doc))
        broken["run"]["samples"][0][4][0][index] = wrong
        assert refusal(tmp_path, broken).startswith(f"run.samples[0][4][0][{index}]: must be ")


# -- bad shards: one message naming the file and the place ------------------------------------
def test_negative_tokens_are_named_by_their_place(tmp_path):
    doc = document(tmp_path)
    doc["run"]["samples"][3][4][0][1] = -5
    assert (
        refusal(tmp_path, doc)
        == "run.samples[3][4][0][1]: must be a whole number of 0 or more, not a number (-5)"
    )


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda d, t: t[: len(t) // 2], "not JSON: "),
        (lambda d, t: "[]", 'not a pytest-tokenbudget shard: it is a list, expected "'),
        (lambda d, t: {**d, "schema": "pytest-tokenbudget/report"}, "not a pytest-tokenbudget"),
        (lambda d, t: {**d, "version": 2}, "version: shard version 2, and this"),
        (lambda d, t: {**d, "version": True}, "version: shard version a boolean"),
        (lambda d, t: t.replace('"counts":[0,0]', '"counts":[NaN,0]'), "not a finite number"),
        (lambda d, t: t.replace('"counts":[0,0]', f'"counts":[{"9" * 30},0]'), "30 digits"),
        (lambda d, t: {**d, "commit": 7}, "commit: must be null or a string, not a number (7)"),
        (lambda d, t: {**d, "options": {**d["options"], "count": "yes"}}, "options.count:"),
        (lambda d, t: {**d, "prices": {"m": {"input": "1e99999"}}}, "prices.m.input: must be a"),
        (lambda d, t: {**d, "prices": {"m": {"input": -1}}}, "prices.m.input: must be a rate"),
        (lambda d, t: {k: v for k, v in d.items() if k != "run"}, "run: missing"),
        (lambda d, t: t.replace('"outcome":"passed"', '"outcome":"won"'), "must be one of"),
        (lambda d, t: t.replace(',""]]]', ',"fast"]]]', 1), "must be a pricing context"),
        (lambda d, t: t.replace('"missing"}', '"lost"}', 1), "run.recordings"),
        (lambda d, t: "[" * 100_000 + "]" * 100_000, "nested too deep"),
    ],
)
def test_corrupt_shards_are_refused(tmp_path, corrupt, expected):
    doc = document(tmp_path)
    text = json.dumps(doc, separators=(",", ":"))
    bad = corrupt(doc, text)
    message = refusal(tmp_path, None, raw=bad if isinstance(bad, str) else json.dumps(bad))
    assert expected in message


def test_a_shard_claiming_two_gib_is_refused_before_a_byte_is_read(tmp_path):
    big = tmp_path / "shard.json"
    with big.open("wb") as f:
        f.truncate(2 * 1024**3)  # sparse: no disk used
    with pytest.raises(ReportError, match=f"shard is too large to read .*{REPORT_MAX_BYTES:,}"):
        read_shard(big)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_shard_read_without_complaint_merges_without_a_traceback(tmp_path_factory, data):
    """A leaf of a valid shard replaced by any JSON value: refused with a ReportError, or
    read, merged and judged like any shard."""
    folder = tmp_path_factory.mktemp("fuzz")
    doc = document(folder)
    leaves = list(_leaves(doc["run"], ("run",)))
    where = data.draw(st.sampled_from(leaves))
    value = data.draw(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-3, 10**6),
            st.text(max_size=8),
            st.lists(st.integers(0, 3), max_size=3),
        )
    )
    target: Any = doc
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    path = folder / "fuzzed.json"
    path.write_text(json.dumps(doc))
    try:
        shard = read_shard(path)
    except ReportError:
        return
    config = shard_config(folder)
    try:
        check_together([shard], config, price_source=PRICE_SOURCE)
    except (ReportError, ConfigError):
        return
    report_of(merged_run([shard], config, folder / "merged"))


def _leaves(value: Any, where: tuple[Any, ...]):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*where, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value[:3]):
            yield from _leaves(item, (*where, index))
    else:
        yield where


# -- shards of one run, or not ---------------------------------------------------------------
def test_shards_of_other_commits_are_refused_naming_both(tmp_path):
    a = shard_of(tmp_path, "a", [0, 1], commit="abc")
    b = shard_of(tmp_path, "b", [2, 3], commit="def")
    with pytest.raises(ReportError) as caught:
        check_together([a, b], shard_config(tmp_path), price_source=PRICE_SOURCE)
    assert str(caught.value) == (
        f"{a.shown} and {b.shown} are not shards of one run: measured at different commits "
        "(abc and def)"
    )


def test_shards_of_another_config_are_refused(tmp_path):
    a = shard_of(tmp_path, "a", [0, 1])
    (tmp_path / "cases.yml").write_text(CASES + "- id: q2\n")  # a cases file changed
    b = shard_of(tmp_path, "b", [2, 3])
    config = shard_config(tmp_path)
    with pytest.raises(ReportError, match="not shards of one run: measured with different budget"):
        check_together([a, b], config, price_source=PRICE_SOURCE)
    with pytest.raises(ReportError) as caught:  # the one left, against the files on disk
        check_together([a], config, price_source=PRICE_SOURCE)
    assert str(caught.value).startswith(
        f"{a.shown}: measured with another token_budgets.yml (or cases file) than "
    )
    check_together([b], config, price_source=PRICE_SOURCE)


def test_shards_priced_by_another_library_version_are_refused(tmp_path):
    a = shard_of(tmp_path, "a", [0, 1])
    with pytest.raises(ReportError, match=f"priced with {PRICE_SOURCE}, this merge with x 9"):
        check_together([a], shard_config(tmp_path), price_source="x 9")


def test_a_test_in_two_shards_is_refused_by_name(tmp_path):
    a = shard_of(tmp_path, "a", [0, 1])
    b = shard_of(tmp_path, "b", [1, 2])
    with pytest.raises(ReportError) as caught:
        check_together([a, b], shard_config(tmp_path), price_source=PRICE_SOURCE)
    assert str(caught.value) == (
        f"test_faq.py::test[c1] ran in both {a.shown} and {b.shown}: shards must split the "
        "tests, each test in one"
    )


def test_an_endpoint_the_config_has_not_is_refused(tmp_path):
    doc = document(tmp_path)
    doc["run"]["case_runs"][2]["endpoint"] = "gone"
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(
        ReportError, match=r"run.case_runs\[2\].endpoint: endpoint 'gone' is not in"
    ):
        check_together([read_shard(path)], shard_config(tmp_path), price_source=PRICE_SOURCE)


def test_the_config_digest_covers_the_budget_file_and_its_cases(tmp_path):
    before = config_digest(load_config(budget_file(tmp_path)))
    (tmp_path / "cases.yml").write_text(CASES.replace("q1", "q9"))
    after_cases = config_digest(shard_config(tmp_path))
    path = tmp_path / "token_budgets.yml"
    path.write_text(path.read_text().replace("100000", "99999"))
    after_budget = config_digest(shard_config(tmp_path))
    assert len({before, after_cases, after_budget}) == 3


# -- the commit --------------------------------------------------------------------------------
def test_the_commit_is_ci_s_then_git_s_then_none(tmp_path):
    assert current_commit(tmp_path, {"GITHUB_SHA": "g", "CI_COMMIT_SHA": "l"}) == "g"
    assert current_commit(tmp_path, {"CI_COMMIT_SHA": "l"}) == "l"
    assert current_commit(tmp_path, {}) is None  # not a repository
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    assert current_commit(tmp_path, {}) == head.stdout.strip()


def test_the_shard_is_written_atomically_and_never_with_a_key(tmp_path):
    run = fed_run(budget_file(tmp_path), [0])
    run.options.report_dir = tmp_path / "out"
    run.case_runs[0] = run.case_runs[0]._replace(errors=("sk-ant-api03-" + "k3yMaterial" * 6,))
    with pytest.raises(SecretError):
        write_shard(run, commit=None)
    assert not (tmp_path / "out" / "shard.json").exists()


# -- the anatomy's figures: what the estimates leave of the bill may be negative ---------------
def _with_anatomy(tmp_path: Path, unattributed: int) -> Path:
    run = fed_run(budget_file(tmp_path), [0, 2])
    tokens = [0] * (len(INPUT) + len(OUTPUT))
    tokens[INPUT.index("system")] = 700
    tokens[len(INPUT) - 1] = unattributed  # input's `unattributed`
    billed = (7, 0, 0, 0, 10)
    test_id = "test_notes.py::test[c0]"
    call = CallAnatomy("notes", "c0", test_id, "claude-haiku-4-5", False, "", billed, (), 0, False)
    run.anatomy.append(call._replace(tokens=tuple(tokens)))
    run.options.report_dir = tmp_path / "with-anatomy"
    return write_shard(run, commit="abc")


def test_an_anatomy_whose_estimates_overshoot_the_bill_is_a_valid_shard(tmp_path):
    path = _with_anatomy(tmp_path, unattributed=5)
    doc = json.loads(path.read_text())
    doc["run"]["anatomy"][0][7][len(INPUT) - 1] = -3
    path.write_text(json.dumps(doc))
    assert read_shard(path).run["anatomy"][0][7][len(INPUT) - 1] == -3


def test_an_anatomy_with_a_part_missing_is_refused_by_its_place(tmp_path):
    path = _with_anatomy(tmp_path, unattributed=5)
    doc = json.loads(path.read_text())
    doc["run"]["anatomy"][0][7].pop()
    expected = f"run.anatomy[0][7]: must be a list of {len(INPUT) + len(OUTPUT)} items"
    assert refusal(tmp_path, doc).startswith(expected)
