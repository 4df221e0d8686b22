"""The pull-request comment of the bundled example's prompt change, end to end: main's report
replayed from the committed cassettes, then the policies grown by 1,440 tokens and the cases
re-recorded against the emulator with main's report as the baseline. The comment says why
first (the system prompt), fits on one screen, names every metric as a person would, and is
snapshotted (tests/snapshots/example_pr_comment.md; refresh with
TOKENBUDGET_UPDATE_SNAPSHOTS=1 after looking at it). Its figures are recomputed here from the
requests themselves, by the emulator's tokenizer, and from the two reports' own numbers."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
import yaml
from emulator import Emulator, tokens
from paths import DATA, EXAMPLE, SNAPSHOTS
from project_files import copy_example, report_of

from pytest_tokenbudget import formatting as fmt
from pytest_tokenbudget.cli import main
from pytest_tokenbudget.measure.metrics import METRICS
from pytest_tokenbudget.pricing import source as price_source

ADDED = (DATA / "prompt_change" / "policies_added.md").read_text(encoding="utf-8")
GROWTH = 1440  # the emulator's tokens in ADDED, checked below
ONE_SCREEN = 30  # lines as GitHub shows them, folded sections closed


def cassette_requests(directory):
    """The Messages requests main's recordings hold, as they were sent."""
    found = []
    for cassette in sorted(directory.glob("*.yaml")):
        for interaction in yaml.safe_load(cassette.read_text())["interactions"]:
            found.append(json.loads(interaction["request"]["body"]))
    return found


def mean(values):
    return sum(values) / len(values)


def rendered_lines(markdown):
    """What a reader scrolls through: non-blank lines, a table's rule not counted, a closed
    <details> one line (its summary)."""
    folded = re.sub(r"<details><summary>(.*?)</summary>.*?</details>", r"\1", markdown, flags=re.S)
    return [
        line
        for line in folded.splitlines()
        if line.strip() and not re.fullmatch(r"\|[-:|]+\|", line) and not line.startswith("<!--")
    ]


@pytest.fixture
def pinned_prices(monkeypatch):
    # The footer names the price library's version: pinned, so the snapshot holds.
    label = "genai-prices bundled data, prices in force on 2026-12-01"
    monkeypatch.setattr(
        price_source,
        "describe",
        lambda: {"source": "genai-prices", "as_of": "2026-12-01", "label": label},
    )


def test_the_comment_of_a_grown_system_prompt_says_why_first(
    pytester, recording_env, pinned_prices, capsys
):
    emulator = recording_env
    assert tokens(ADDED) == GROWTH
    copy_example(pytester.path)
    pytester.syspathinsert()
    # main: CI replays the committed cassettes, offline
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=26)
    base_path = pytester.path / "base.json"
    shutil.copy(pytester.path / ".token-budget" / "report.json", base_path)
    # the pull request: a longer policy, its cases re-recorded, main's report as baseline
    policies = pytester.path / "policies.md"
    policies.write_text(policies.read_text(encoding="utf-8") + ADDED, encoding="utf-8")
    result = pytester.runpytest(
        "--token-budget",
        "--token-budget-record=all",
        f"--token-budget-baseline={base_path}",
        "--token-budget-max-regression=10",  # as README's pull-request loop runs it
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 1  # the grown prompt breaks max_input_tokens_p95
    result.stdout.fnmatch_lines(["change chat_reply: +1,440 input tokens per call*system prompt*"])
    comment = (pytester.path / ".token-budget" / "report.md").read_text(encoding="utf-8")

    # the figures, from the requests: main's in its cassettes, the PR's as the emulator got them
    counter = Emulator()
    before = cassette_requests(EXAMPLE / "cassettes" / "chat_reply")  # the PR re-recorded its own
    after = [
        s.request for s in emulator.served if s.path == "/v1/messages" and "system" in s.request
    ]
    assert len(before) == len(after) == 22
    system = mean([counter.anatomy(r)["system"] for r in after]) - mean(
        [counter.anatomy(r)["system"] for r in before]
    )
    assert system == GROWTH
    whole = [mean([counter.count(r) for r in side]) for side in (before, after)]
    pct = (whole[1] - whole[0]) / whole[0] * 100
    base, head = json.loads(base_path.read_text()), report_of(pytester)
    monthly = [r["endpoints"]["chat_reply"]["metrics"]["monthly_cost_usd"] for r in (base, head)]
    dollars = fmt.usd(monthly[1] - monthly[0])
    why = (
        f"- **chat\\_reply**: +{whole[1] - whole[0]:,.0f} input tokens per call ({pct:+.1f}%), "
        f"all in the system prompt (estimated); +{dollars}/month"
    )

    lines = comment.splitlines()
    assert lines[2].startswith("Projected monthly cost")  # the headline, then why
    assert lines[4] == why
    assert "triage" not in "\n".join(lines[:6])  # unchanged: no line of its own
    assert len(rendered_lines(comment)) <= ONE_SCREEN
    # a person's names for the metrics: no report.json key, raw or escaped, outside the
    # budget keys of token_budgets.yml that failures quote
    text = re.sub(r"(max|min)(\\?_[a-z0-9]+)+", "", comment)
    for key in METRICS:
        assert key not in text and key.replace("_", "\\_") not in text, key
    open_table = comment.split("<details>")[0]
    assert "input tokens p50" not in open_table and "input tokens p95" in open_table
    assert "system prompt tokens p95" in open_table

    # `tokenbudget diff` renders the same why from the two files
    assert main(["diff", str(base_path), str(pytester.path / ".token-budget" / "report.json")]) == 1
    assert why in capsys.readouterr().out.splitlines()

    snapshot = SNAPSHOTS / "example_pr_comment.md"
    if os.environ.get("TOKENBUDGET_UPDATE_SNAPSHOTS"):
        snapshot.write_text(comment, encoding="utf-8")
    assert comment == snapshot.read_text(encoding="utf-8")
