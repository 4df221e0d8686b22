"""One verdict: every kind of failure reads the same in the exit code, report.json,
report.md, report.html and pytest's terminal summary, whose last line says it too.

Each case records the small project against the emulator, breaks one thing, replays
offline and reads all five.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from project_files import APP, CONFIG, TEST, record, report_of

from pytest_tokenbudget.files import atomic

RUN = ("--token-budget", "-p", "no:cacheprovider")


def _broken_budget(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    project.makefile(".yml", token_budgets=CONFIG.format(input_p95=20))
    return []


def _regression_gate(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    base = report_of(project)
    base["endpoints"]["chat"]["metrics"]["input_tokens_p95"] //= 2  # the head grew 100%
    path = project.path / "base.json"
    path.write_text(json.dumps(base))
    return [f"--token-budget-baseline={path}", "--token-budget-max-regression=10"]


def _corrupt_cassette(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    (project.path / "cassettes" / "chat" / "medium.yaml").write_text("interactions: [{oops\n")
    return []


def _stale_cassette(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    project.makepyfile(app=APP.replace("Be brief.", "Be brief. Today is 2026-11-22."))
    return []


def _negative_usage(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    cassette = project.path / "cassettes" / "chat" / "short.yaml"
    text, n = re.subn(r'"input_tokens": ?\d+', '"input_tokens": -5', cassette.read_text(), count=1)
    assert n == 1
    cassette.write_text(text)
    return []


def _failed_update(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A read-only checkout: token_budgets.yml cannot be rewritten (root ignores chmod)."""
    real = atomic.write_atomic

    def read_only(path: Path, text: str) -> None:
        if Path(path).name == "token_budgets.yml":
            raise OSError(30, "Read-only file system")
        real(path, text)

    monkeypatch.setattr(atomic, "write_atomic", read_only)
    config = CONFIG.format(input_p95=4000).replace("    cases:", "    min_samples: 1\n    cases:")
    project.makefile(".yml", token_budgets=config)  # a budget loose enough to tighten
    return ["--token-budget-update"]


def _test_error(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    project.makepyfile(
        test_chat=TEST.replace(
            "    assert reply(",
            '    if budget_case["id"] == "hard":\n'
            '        raise RuntimeError("the app broke before calling the API")\n'
            "    assert reply(",
        )
    )
    return []


def _setup_error(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    project.makeconftest(
        """
        import pytest

        @pytest.fixture(autouse=True)
        def database(request):
            if "streamed" in request.node.name:
                raise RuntimeError("no database")
        """
    )
    return []


# (what breaks, what the verdict must name in every sink)
FAILURES: dict[str, tuple[Callable[..., list[str]], str]] = {
    "broken budget": (_broken_budget, "breaks max_input_tokens_p95"),
    "regression gate": (_regression_gate, "regression gate"),
    "corrupt cassette": (_corrupt_cassette, "unreadable recording"),
    "stale cassette": (_stale_cassette, "stale recording"),
    "negative usage": (_negative_usage, "measurement error"),
    "failed update": (_failed_update, "budget update failed"),
    "test error": (_test_error, "failed test"),
    "setup error": (_setup_error, "failed test"),
}


@pytest.fixture
def recorded(project, recording_env, monkeypatch):
    record(project).assert_outcomes(passed=4)
    monkeypatch.delenv("ANTHROPIC_API_KEY")  # CI: replay only, no key
    return project


def _sinks(project: pytest.Pytester) -> tuple[dict, str, str]:
    out = project.path / ".token-budget"
    return (
        json.loads((out / "report.json").read_text()),
        (out / "report.md").read_text(),
        (out / "report.html").read_text(),
    )


def _markdown_verdict(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(("❌", "✅")))


def _terminal(result: pytest.RunResult) -> tuple[str, str]:
    """The verdict line of the token budget section, and pytest's very last line."""
    lines = [line for line in result.outlines if line.strip()]
    verdict = next(line for line in lines if line.startswith("token budget: "))
    return verdict, lines[-1]


@pytest.mark.parametrize("kind", list(FAILURES))
def test_every_failure_is_one_verdict_everywhere(recorded, monkeypatch, kind):
    breaks, cause = FAILURES[kind]
    args = breaks(recorded, monkeypatch)
    result = recorded.runpytest(*RUN, *args)

    data, markdown, html = _sinks(recorded)
    verdict, last = _terminal(result)
    shown = {
        "exit code": result.ret,
        "report.json": data["status"],
        "report.md": _markdown_verdict(markdown)[:1],
        "report.html": re.search(r'<h1>Token budget <span class="badge status-(\w+)"', html)[1],
        "terminal": verdict.split(":")[1].strip(),
        "last line": "token budget failed" in last or "token budgets failed" in last,
    }
    assert shown == {
        "exit code": pytest.ExitCode.TESTS_FAILED,
        "report.json": "fail",
        "report.md": "❌",
        "report.html": "fail",
        "terminal": "FAIL",
        "last line": True,
    }, result.stdout.str()
    # and each names the cause, not a symptom of it
    failures = " ".join(f["message"] for f in data["failures"])
    assert cause in failures, failures
    assert cause in markdown.replace("\\", "")
    assert cause in html
    assert cause in verdict, verdict
    assert "Traceback" not in result.stdout.str()


def test_nothing_broken_is_a_pass_everywhere(recorded):
    result = recorded.runpytest(*RUN)
    data, markdown, html = _sinks(recorded)
    verdict, last = _terminal(result)
    assert result.ret == pytest.ExitCode.OK
    assert data["status"] == "pass" and data["failures"] == [] and data["fixes"] == []
    assert _markdown_verdict(markdown).startswith("✅ **All 1 endpoint within budget**")
    assert '<h1>Token budget <span class="badge status-pass">' in html
    assert verdict == "token budget: PASS: All 1 endpoint within budget"
    assert re.match(r"=+ 4 passed in ", last)


# -- every case accounted for --------------------------------------------------------------
def test_a_stale_run_headlines_its_cause_and_gives_one_command_for_every_case(recorded):
    recorded.makepyfile(app=APP.replace("Be brief.", "Be brief. Today is 2026-11-22."))
    result = recorded.runpytest(*RUN)
    result.assert_outcomes(failed=4)
    data = report_of(recorded)
    chat = data["endpoints"]["chat"]
    assert chat["headline"] == "4 of 4 cases not measured (stale recording)"
    assert chat["complete"] is False
    assert [c["kind"] for c in chat["unmeasured_cases"]] == ["stale"] * 4
    # no figure from a partial set is the endpoint's, and nothing is projected from it
    assert set(chat["metrics"].values()) == {None}
    assert data["totals"]["monthly_cost_usd"] is None
    assert all(b["ok"] is None and b["actual"] is None for b in chat["budgets"])
    # one command for all four, said once in each sink
    (fix,) = data["fixes"]
    assert fix["command"] == (
        "pytest --token-budget --token-budget-record=all "
        + " ".join(
            f"'test_chat.py::test_chat[{c}]'" for c in ("hard", "medium", "short", "streamed")
        )
    )
    out = result.stdout.str()
    section = out[out.index("= token budget =") :].split("short test summary info")[0]
    command = "pytest --token-budget --token-budget-record=all"
    assert section.count(command) == 1  # (CI=true also prints each failure in the summary)
    markdown = (recorded.path / ".token-budget" / "report.md").read_text()
    assert markdown.count(command) == 1
    # the headline is the cause, not a budget on what was left
    assert "breaks" not in chat["headline"] and "cache_hit_rate" not in out.split("FAIL")[1]


def test_a_partial_replay_is_incomplete_not_cheaper(recorded):
    """Only `hard` escalates: a change to the escalation leaves three cases replaying."""
    escalation = '        kwargs["model"] = "claude-opus-4-7"\n'
    assert escalation in APP
    recorded.makepyfile(
        app=APP.replace(escalation, escalation + '        kwargs["system"] += " Think hard."\n')
    )
    result = recorded.runpytest(*RUN)
    result.assert_outcomes(failed=1, passed=3)
    chat = report_of(recorded)["endpoints"]["chat"]
    assert chat["status"] == "fail"
    assert chat["headline"] == "1 of 4 cases not measured (stale recording)"
    assert chat["cases"] == 4 and sorted(chat["per_case"]) == ["medium", "short", "streamed"]
    assert chat["metrics"]["cost_per_request_usd"] is None
    partial = chat["partial_metrics"]
    assert partial["cost_per_request_usd"] is not None and partial["monthly_cost_usd"] is None
    # the case left out is no $0 request: the partial figures are over the other three
    assert partial["escalation_rate"] == 0.0
    assert "hard" not in chat["no_call_cases"]


def test_a_bad_file_never_stops_the_report_of_the_others(recorded):
    (recorded.path / "cassettes" / "chat" / "medium.yaml").write_bytes(b"\xff\xfe\x00 not text")
    (recorded.path / "cassettes" / "chat" / "short.yaml").write_text("interactions: [{oops\n")
    result = recorded.runpytest(*RUN)
    result.assert_outcomes(passed=2, errors=2)
    chat = report_of(recorded)["endpoints"]["chat"]
    assert sorted((c["case"], c["kind"]) for c in chat["unmeasured_cases"]) == [
        ("medium", "unreadable"),
        ("short", "unreadable"),
    ]
    assert sorted(chat["per_case"]) == ["hard", "streamed"]
    html = (recorded.path / ".token-budget" / "report.html").read_text()
    assert html.count('data-kind="unreadable"') == 2


def test_annotations_and_the_job_summary_say_the_same(recorded, monkeypatch, tmp_path):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (recorded.path / "cassettes" / "chat" / "medium.yaml").write_text("interactions: [{oops\n")
    result = recorded.runpytest(*RUN)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (annotation,) = [line for line in result.outlines if line.startswith("::error ")]
    assert annotation.startswith(
        "::error file=token_budgets.yml,line=2,title=Token budget%3A chat cases::"
        "1 of 4 cases not measured (unreadable recording); 1 case with a recording that "
        "cannot be read: medium ("
    )
    assert annotation.endswith(
        ". Fix: pytest --token-budget --token-budget-record=all 'test_chat.py::test_chat[medium]'"
    )
    assert summary.read_text() == (recorded.path / ".token-budget" / "report.md").read_text()
