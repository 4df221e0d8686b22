"""--token-budget-reprice MODEL: each endpoint's recorded traffic priced again on MODEL."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from project_files import APP, record, report_of

HAIKU = "claude-haiku-4-5"
# Haiku 4.5's published rates, $ per million tokens: the expected figures are computed from
# these and the emulator's usage, never from the plugin's price machinery.
HAIKU_INPUT, HAIKU_OUTPUT = Fraction(1), Fraction(5)
HAIKU_WRITE_5M, HAIKU_READ = HAIKU_INPUT * Fraction(125, 100), HAIKU_INPUT / 10
REQUESTS_PER_DAY = 1000  # project_files.CONFIG
REPRICE = ("--token-budget", "--token-budget-reprice", HAIKU, "-p", "no:cacheprovider")

# A long cached system prompt: later cases read what the first one wrote.
CACHED_APP = APP.replace(
    "system=SYSTEM,",
    'system=[{"type": "text", "text": SYSTEM + " Policy: be exact." * 400, '
    '"cache_control": {"type": "ephemeral"}}],',
)


def p95(values):
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def generations(served):
    return [s for s in served if s.path == "/v1/messages"]


def haiku_cost(usage):
    return (
        usage["input_tokens"] * HAIKU_INPUT
        + usage["output_tokens"] * HAIKU_OUTPUT
        + usage.get("cache_creation_input_tokens", 0) * HAIKU_WRITE_5M
        + usage.get("cache_read_input_tokens", 0) * HAIKU_READ
    ) / 1_000_000


def prompt(usage):
    return (
        usage["input_tokens"]
        + usage.get("cache_creation_input_tokens", 0)
        + usage.get("cache_read_input_tokens", 0)
    )


def test_replay_reprices_recorded_usage_at_the_other_models_rates(project, recording_env):
    project.makepyfile(app=CACHED_APP)
    record(project).assert_outcomes(passed=4)
    usages = [s.usage for s in generations(recording_env.served)]
    assert any(u.get("cache_read_input_tokens") for u in usages)  # the cache tiers take part
    assert any(u.get("cache_creation_input_tokens") for u in usages)

    result = project.runpytest(*REPRICE)
    result.assert_outcomes(passed=4)
    reprice = report_of(project)["endpoints"]["chat"]["reprice"]
    per_request = sum(haiku_cost(u) for u in usages) / 4  # 4 cases, each a request
    assert reprice == {
        "model": HAIKU,
        "cost_per_request_usd": float(round(per_request, 9)),
        "monthly_cost_usd": float(round(per_request * REQUESTS_PER_DAY * 30, 9)),
        "input_tokens_p95": p95([prompt(u) for u in usages]),
        "input_exact": False,  # nothing counted for Haiku: the recorded input is assumed
        "output": "as recorded",
    }
    text = "\n".join(result.outlines)
    assert f"chat on {HAIKU}: $" in text
    assert "(input estimated: same tokens; output as recorded)" in text
    assert "tokenizers differ" in text
    markdown = (project.path / ".token-budget" / "report.md").read_text()
    assert "### On another model" in markdown
    assert "chat on claude-haiku-4-5: \\$" in markdown  # `$` escaped for GitHub's math


def test_count_mode_counts_input_for_the_other_model_and_replay_reuses_it(
    project, recording_env, monkeypatch
):
    record(project).assert_outcomes(passed=4)
    start = len(recording_env.served)

    counted = project.runpytest("--token-budget-count", *REPRICE)
    counted.assert_outcomes(passed=4)
    sent = recording_env.served[start:]
    assert {s.path for s in sent} == {"/v1/messages/count_tokens"}
    for_haiku = [s for s in sent if s.request.get("model") == HAIKU]
    # every Messages request counted again on Haiku: 5 calls, 4 prompts (the escalated
    # case's two calls differ only in the model, so on Haiku they are one count, cached)
    assert len(for_haiku) == 4
    # 5 calls and 4 on Haiku, and the prefixes that split the 5 into their parts
    counted.stdout.fnmatch_lines(
        [f"count_tokens: {len(sent)} requests sent, 1 answered from the count cache"]
    )
    reprice = report_of(project)["endpoints"]["chat"]["reprice"]
    assert reprice["input_exact"] is True
    # p95 of 5 calls is their largest prompt
    assert reprice["input_tokens_p95"] == max(s.usage["input_tokens"] for s in for_haiku)
    counted.stdout.fnmatch_lines(
        [f"chat on {HAIKU}: *(input counted for {HAIKU}; output as recorded)"]
    )
    cache = json.loads((project.path / "cassettes" / "token_counts.json").read_text())
    assert sum(e["model"] == HAIKU for e in cache["counts"].values()) == 4

    # CI: replay without a key reuses the committed counts, offline
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    again = len(recording_env.served)
    project.runpytest(*REPRICE).assert_outcomes(passed=4)
    assert len(recording_env.served) == again
    assert report_of(project)["endpoints"]["chat"]["reprice"] == reprice


def test_an_unknown_model_is_a_usage_error_at_start(project, ci_env):
    result = project.runpytest(
        "--token-budget-reprice", "claude-haiku-9-9", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.count("pytest-tokenbudget:") == 1
    assert "--token-budget-reprice: unknown model 'claude-haiku-9-9'" in err
    assert "pricing:" in err and "Traceback" not in err


def test_the_option_changes_no_verdict(project, recording_env):
    record(project).assert_outcomes(passed=4)
    project.makefile(
        ".yml",
        token_budgets=(project.path / "token_budgets.yml")
        .read_text()
        .replace("max_output_tokens_p95: 600", "max_output_tokens_p95: 1"),
    )
    plain = project.runpytest("--token-budget", "-p", "no:cacheprovider")
    without = report_of(project)
    repriced = project.runpytest(*REPRICE)
    with_it = report_of(project)
    assert plain.ret == repriced.ret == pytest.ExitCode.TESTS_FAILED
    assert with_it["endpoints"]["chat"].pop("reprice")["model"] == HAIKU
    assert with_it == without


def test_a_report_reader_type_checks_reprice_and_renders_it_escaped():
    from pytest_tokenbudget.errors import ReportError
    from pytest_tokenbudget.report.json_io import report_from_json
    from pytest_tokenbudget.report.markdown import render_markdown
    from pytest_tokenbudget.report.reader import check_report

    reprice = {
        "model": "claude-haiku-4-5",
        "cost_per_request_usd": 0.0012,
        "monthly_cost_usd": 72.0,
        "input_tokens_p95": 900,
        "input_exact": False,
        "output": "as recorded",
    }
    endpoint = {"status": "pass", "calls": 1, "cases": 1, "reprice": reprice}
    data = {
        "schema": "pytest-tokenbudget/report",
        "version": 1,
        "endpoints": {"chat_reply": endpoint},
    }
    markdown = render_markdown(report_from_json(check_report(data)))
    assert (
        "- chat\\_reply on claude-haiku-4-5: \\$0.00120/request, \\$72.00/month "
        "\\(input estimated: same tokens; output as recorded\\)" in markdown
    )
    for key, bad in (("input_exact", "yes"), ("cost_per_request_usd", "1"), ("model", None)):
        broken = {**endpoint, "reprice": {**reprice, key: bad}}
        with pytest.raises(ReportError, match=f"endpoints.chat_reply.reprice.{key}"):
            check_report({**data, "endpoints": {"chat_reply": broken}})


# under xdist: test_xdist.py's report comparison runs with --token-budget-reprice
