"""The pull-request loop through pytest: baseline diff, regression gate, annotations."""

from __future__ import annotations

import shutil

from project_files import APP, CONFIG, record, report_of

LONGER = APP.replace(
    "Be brief.", "Be brief. " + "Mention our refund policy and shipping times. " * 6
)


def test_prompt_growth_is_diffed_gated_and_annotated(project, recording_env, monkeypatch, tmp_path):
    record(project).assert_outcomes(passed=4)
    base = tmp_path / "base.json"
    shutil.copy(project.path / ".token-budget" / "report.json", base)
    base_p95 = report_of(project)["endpoints"]["chat"]["metrics"]["input_tokens_p95"]

    project.makepyfile(app=LONGER)
    project.runpytest(
        "--token-budget", "--token-budget-record=all", "-p", "no:cacheprovider"
    ).assert_outcomes(passed=4)
    head_p95 = report_of(project)["endpoints"]["chat"]["metrics"]["input_tokens_p95"]
    assert head_p95 > base_p95 * 1.1

    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = project.runpytest(
        "--token-budget",
        f"--token-budget-baseline={base}",
        "--token-budget-max-regression=10",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 1  # within budget, but over the regression gate
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["::error file=token_budgets.yml,line=4,*input*"])
    report = report_of(project)
    assert report["status"] == "fail" and "diff" in report
    markdown = (project.path / ".token-budget" / "report.md").read_text()
    assert markdown.startswith("<!-- pytest-tokenbudget -->")
    assert f"{base_p95:,}" in markdown and f"{head_p95:,}" in markdown
    assert summary.read_text() == markdown


def test_bad_baseline_is_one_clear_usage_error(project, ci_env, tmp_path):
    bogus = tmp_path / "base.json"
    bogus.write_text('{"not": "a report"}')
    result = project.runpytest("--token-budget", f"--token-budget-baseline={bogus}")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*pytest-tokenbudget: baseline*base.json*"])
    assert "Traceback" not in result.stderr.str()


def test_config_has_the_line_the_annotation_points_at():
    assert CONFIG.splitlines()[3].strip().startswith("max_input_tokens_p95")
