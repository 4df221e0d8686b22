"""What a person reads — the terminal table and report.md — snapshotted from a fixed run.

Refresh with TOKENBUDGET_UPDATE_SNAPSHOTS=1 after looking at the new output.
"""

from __future__ import annotations

import os

import pytest
from paths import SNAPSHOTS

from pytest_tokenbudget.config.budgets import load_config
from pytest_tokenbudget.measure.run import BudgetRun, Options
from pytest_tokenbudget.measure.samples import CaseRun, Sample
from pytest_tokenbudget.pricing import source as price_source
from pytest_tokenbudget.providers.usage import Usage
from pytest_tokenbudget.report.build import report_of
from pytest_tokenbudget.report.markdown import render_markdown
from pytest_tokenbudget.report.table import render_findings, render_table, render_verdict

CONFIG = """\
pricing:
  "acme|<proxy>": {input: 2.0, output: 6.0}
endpoints:
  chat_reply:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 1500
    max_output_tokens_p95: 300
    allowed_escalation_rate: 0.2
    min_cache_hit_rate: 0.5
    requests_per_day: 5000
    monthly_budget_usd: 900
    min_samples: 5
  summarize:
    max_input_tokens_p95: 100000
  untouched:
    max_input_tokens_p95: 10
"""


@pytest.fixture
def report(tmp_path, monkeypatch):
    # The footer names the price source and the day priced: pinned, so the snapshot holds.
    label = "genai-prices bundled data, prices in force on 2026-12-01"
    monkeypatch.setattr(
        price_source,
        "describe",
        lambda: {"source": "genai-prices", "as_of": "2026-12-01", "label": label},
    )
    path = tmp_path / "token_budgets.yml"
    path.write_text(CONFIG)
    run = BudgetRun(load_config(path), Options(path, tmp_path, tmp_path))
    rows = [
        ("refund", "claude-sonnet-4-6", Usage(120, 80, 0, 0, 1100)),
        ("angry_long", "claude-sonnet-4-6", Usage(900, 300, 0, 0, 1100)),
        ("angry_long", "claude-opus-4-7", Usage(900, 420, 1100, 0, 0)),
        ("tracking", "claude-sonnet-4-6", Usage(60, 40, 0, 0, 1100)),
        ("multi_part*", "claude-opus-4-7", Usage(1400, 390, 0, 0, 0)),
    ]
    for index, (case, model, usage) in enumerate(rows):
        run.samples.append(Sample("chat_reply", case, f"t::{case}", index, model, usage))
    for case in dict.fromkeys(r[0] for r in rows):
        run.case_runs.append(CaseRun("chat_reply", case, f"t::{case}"))
    run.samples.append(
        Sample("summarize", "doc_1", "t::doc_1", 0, "acme|<proxy>", Usage(40000, 500))
    )
    run.case_runs.append(CaseRun("summarize", "doc_1", "t::doc_1"))
    return report_of(run)


def check(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("TOKENBUDGET_UPDATE_SNAPSHOTS"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_terminal_summary(report):
    check(
        "terminal_summary.txt",
        "\n".join(render_table(report) + [""] + render_findings(report) + [render_verdict(report)])
        + "\n",
    )


def test_report_markdown(report):
    check("report.md", render_markdown(report))
