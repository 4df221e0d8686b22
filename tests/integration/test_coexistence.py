"""pytest-recording and this plugin in one environment: no clashes, both work."""

from __future__ import annotations

import pytest
from project_files import report_of

pytest.importorskip("pytest_recording")


def test_pytest_recording_tests_run_beside_budget_tests(project, recording_env, monkeypatch):
    # a test of the team's that uses pytest-recording's own marker, fixture and options
    project.makepyfile(
        test_vcr="""
        import anthropic
        import pytest

        @pytest.fixture(scope="module")
        def vcr_config():
            return {"filter_headers": ["authorization"], "match_on": ["method", "path"]}

        @pytest.mark.vcr
        def test_with_pytest_recording(vcr):
            anthropic.Anthropic().messages.create(
                model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
            assert vcr.play_count + len(vcr.data) >= 1
        """
    )
    first = project.runpytest(
        "--token-budget",
        "--token-budget-record=once",
        "--record-mode=once",
        "-p",
        "no:cacheprovider",
    )
    first.assert_outcomes(passed=5)
    assert (project.path / "cassettes" / "test_vcr" / "test_with_pytest_recording.yaml").exists()
    assert len(list((project.path / "cassettes" / "chat").iterdir())) == 4

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    served = len(recording_env.served)
    replay = project.runpytest(
        "--token-budget", "--record-mode=none", "--block-network", "-p", "no:cacheprovider"
    )
    replay.assert_outcomes(passed=5)
    assert len(recording_env.served) == served
    replay.stdout.fnmatch_lines(["*chat*5*4*PASS*"])
    # the budget tests are served by the plugin's cassettes; the vcr test is not measured
    assert report_of(project)["endpoints"]["chat"]["recorders"] == ["pytest-tokenbudget"]


def test_with_recording_disabled_a_vcr_marked_budget_test_is_ours(project, recording_env):
    # --disable-recording: pytest-recording opens no cassette, so the plugin owns the test
    project.makepyfile(
        test_chat="""
        import pytest
        from app import reply

        @pytest.mark.vcr
        @pytest.mark.token_budget("chat")
        def test_chat(budget_case):
            assert reply(budget_case["question"], escalate=budget_case.get("escalate", False))
        """
    )
    result = project.runpytest(
        "--token-budget",
        "--token-budget-record=once",
        "--disable-recording",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=4)
    assert len(list((project.path / "cassettes" / "chat").iterdir())) == 4
    assert report_of(project)["endpoints"]["chat"]["recorders"] == ["pytest-tokenbudget"]


def test_options_and_names_do_not_collide(pytester):
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    assert "--record-mode" in text and "--token-budget-record" in text
    assert "--block-network" in text
    markers = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.vcr" in markers and "@pytest.mark.token_budget" in markers
