"""Annotations on token_budgets.yml: GitHub workflow commands and GitLab Code Quality."""

from __future__ import annotations

import copy
import hashlib
import json

from reports import BASE, HEAD, budget, compared, report

from pytest_tokenbudget.ci.annotations import (
    append_step_summary,
    escape_data,
    escape_property,
    github_annotations,
    gitlab_code_quality,
)
from pytest_tokenbudget.report.json_io import report_from_json


def broken_report(n_endpoints=1, name="chat"):
    endpoints = {}
    for i in range(n_endpoints):
        endpoints[name if n_endpoints == 1 else f"{name}{i}"] = {
            "status": "fail",
            "line": 3,
            "metrics": {"input_tokens_p95": 1450},
            "budgets": [
                budget(
                    "max_input_tokens_p95",
                    "input_tokens_p95",
                    1300,
                    1450,
                    5 + i,
                    ok=False,
                    drivers=["long_one", "other"],
                ),
                budget("max_output_tokens_p95", "output_tokens_p95", 600, 100, 6 + i),
            ],
        }
    return report_from_json(report(endpoints, None))


def test_broken_budget_is_an_error_on_its_line():
    lines = github_annotations(broken_report(), "token_budgets.yml")
    assert lines == [
        (
            "::error file=token_budgets.yml,line=5,title=Token budget%3A chat max_input_tokens_p95"
            "::input_tokens_p95 = 1,450 breaks max_input_tokens_p95: 1,300; "
            "driven by cases: long_one, other"
        )
    ]


def test_diff_regressions_are_errors_and_warn_band_is_a_warning():
    lines = github_annotations(compared(BASE, HEAD, max_regression_pct=10), "app/token_budgets.yml")
    assert lines == [
        (
            "::error file=app/token_budgets.yml,line=5,title=Token budget%3A chat max_input_tokens_p95"
            "::input_tokens_p95 = 1,120 (1,000 on the baseline, +12.0%25) got worse by more than "
            "the 10%25 regression gate; driven by cases: e, b, d"
        ),
        (
            "::error file=app/token_budgets.yml,line=7,title=Token budget%3A chat min_cache_hit_rate"
            "::cache_hit_rate = 70.0%25 (80.0%25 on the baseline, -12.5%25) got worse by more than "
            "the 10%25 regression gate; driven by cases: e, b"
        ),
        # no budget on output_tokens_p95: on the endpoint's line, titled by the metric
        (
            "::warning file=app/token_budgets.yml,line=3,title=Token budget%3A chat output_tokens_p95"
            "::output_tokens_p95 = 212 (200 on the baseline, +6.0%25) got worse by more than 5%25 "
            "(the regression gate is 10%25); driven by cases: e, b, d"
        ),
    ]


def test_broken_budget_in_a_diff():
    head = copy.deepcopy(HEAD)
    head["endpoints"]["chat"]["budgets"][0].update(limit=1100, ok=False)
    lines = github_annotations(compared(BASE, head, max_regression_pct=None), "token_budgets.yml")
    assert lines == [
        (
            "::error file=token_budgets.yml,line=5,title=Token budget%3A chat max_input_tokens_p95"
            "::input_tokens_p95 = 1,120 breaks max_input_tokens_p95: 1,100 (1,000 on the baseline, "
            "+12.0%25); driven by cases: e, b, d"
        )
    ]


def test_escaping_follows_githubs_rules():
    assert escape_data("50% of\r\nit: a, b") == "50%25 of%0D%0Ait: a, b"
    assert escape_property("a:b,c%d\ne") == "a%3Ab%2Cc%25d%0Ae"
    line = github_annotations(broken_report(name="we,ird:name"), "dir,1/budgets.yml")[0]
    assert line.startswith(
        "::error file=dir%2C1/budgets.yml,line=5,title=Token budget%3A we%2Cird%3Aname "
    )


def test_at_most_ten_of_each_then_one_line_says_how_many_more():
    lines = github_annotations(broken_report(15), "token_budgets.yml")
    assert len(lines) == 11
    assert all(line.startswith("::error ") for line in lines[:10])
    assert lines[10] == (
        "::notice title=Token budget::5 more errors not annotated (GitHub shows 10 of each): "
        "see the job summary"
    )


def test_step_summary_is_appended_only_in_actions(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert append_step_summary("# hi") is False
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert append_step_summary("# hi") is True
    assert summary.read_text() == "earlier step\n# hi\n"


def test_gitlab_code_quality():
    issues = gitlab_code_quality(compared(BASE, HEAD, max_regression_pct=10), "token_budgets.yml")
    json.dumps(issues)
    assert [(i["check_name"], i["severity"], i["location"]) for i in issues] == [
        (
            "token-budget/max_input_tokens_p95",
            "major",
            {"path": "token_budgets.yml", "lines": {"begin": 5}},
        ),
        (
            "token-budget/output_tokens_p95",
            "minor",
            {"path": "token_budgets.yml", "lines": {"begin": 3}},
        ),
        (
            "token-budget/min_cache_hit_rate",
            "major",
            {"path": "token_budgets.yml", "lines": {"begin": 7}},
        ),
    ]
    expected = hashlib.sha256(b"pytest-tokenbudget\0chat\0max_input_tokens_p95").hexdigest()
    assert issues[0]["fingerprint"] == expected
    assert len({i["fingerprint"] for i in issues}) == 3
    assert issues[0]["description"].startswith("Token budget: chat max_input_tokens_p95: ")

    # the same finding keeps its fingerprint when the numbers move
    again = gitlab_code_quality(broken_report(), "token_budgets.yml")
    assert again[0]["fingerprint"] == expected
