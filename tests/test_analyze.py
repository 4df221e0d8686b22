"""`tokenbudget analyze`: budgets proposed from cassettes a team already has."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from pytest_tokenbudget.analyze import nice_ceiling
from pytest_tokenbudget.cli import main

CASSETTES = Path(__file__).parent / "data" / "cassettes"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "support_bot" / "cassettes"


def test_nice_ceiling_rounds_up_to_two_significant_digits():
    assert [nice_ceiling(v) for v in (3310, 87, 0.4, 1406.4, 0)] == [3400, 87, 1, 1500, 0]


def test_proposes_loadable_budgets_from_real_cassettes(capsys):
    assert main(["analyze", str(CASSETTES)]) == 0
    text = capsys.readouterr().out
    proposal = yaml.safe_load(text)["endpoints"]
    # whole-prompt inputs of the real Anthropic cassettes (tests/data/cassettes/README.md):
    # 310, 465, 1167 (4+1163), 1167 (4+0+1163), 721 -> nearest-rank p95 = 1167
    prompts = sorted([310, 465, 4 + 1163, 4 + 1163, 721])
    p95 = prompts[math.ceil(0.95 * len(prompts)) - 1]
    assert f"max_input_tokens_p95: {nice_ceiling(p95 * 1.2)}   # measured {p95}" in text
    assert proposal["anthropic"]["max_input_tokens_p95"] == nice_ceiling(p95 * 1.2)
    assert proposal["openai"]["target_model"] == "gpt-3.5-turbo-0125"


def test_headroom_and_example_layout(capsys):
    assert main(["analyze", str(EXAMPLE), "--headroom", "0"]) == 0
    proposal = yaml.safe_load(capsys.readouterr().out)["endpoints"]
    assert set(proposal) == {"chat_reply", "triage"}
    assert proposal["chat_reply"]["target_model"] == "claude-sonnet-4-6"


def test_corrupt_cassettes_are_skipped_with_their_name(tmp_path, capsys):
    (tmp_path / "ep").mkdir()
    (tmp_path / "ep" / "bad.yaml").write_text("interactions: [unclosed")
    assert main(["analyze", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "no API calls found" in err
