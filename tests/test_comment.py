"""`tokenbudget comment` against a loopback stand-in of the GitHub API."""

from __future__ import annotations

import argparse
import json

import pytest
from github_stub import BOT, TOKEN, GitHubStub

from pytest_tokenbudget.comment import (
    RunStamp,
    _next_link,
    add_comment_parser,
    pr_number,
    stamped,
)
from pytest_tokenbudget.errors import TokenBudgetError
from pytest_tokenbudget.markdown import MARKER

REPO, PR = "acme/shop", 7
REPORT = f"{MARKER}\n## Token budget\nProjected monthly cost **+$12 (+5%)**: $240 → $252\n"


@pytest.fixture
def github():
    with GitHubStub() as stub:
        stub.open_pull(REPO, PR)
        yield stub


@pytest.fixture
def env(github, monkeypatch, tmp_path):
    """A pull_request run of GitHub Actions, pointed at the stub."""
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"action": "synchronize", "number": PR, "pull_request": {"number": PR}})
    )
    for name in (
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    values = {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": github.url,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "500",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SHA": "abc123",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    body = tmp_path / ".token-budget" / "report.md"
    body.parent.mkdir()
    body.write_text(REPORT)
    return values


def run(*argv):
    parser = argparse.ArgumentParser(prog="tokenbudget")
    add_comment_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["comment", *argv])
    return args.func(args)


def ours(github):
    return [c for c in github.comments_of(REPO, PR) if MARKER in c["body"]]


def test_creates_one_comment_then_updates_it(github, env, monkeypatch, tmp_path, capsys):
    assert run() == 0
    assert "created the token-budget comment" in capsys.readouterr().out
    [comment] = ours(github)
    assert comment["body"].startswith(
        f"{MARKER}\n<!-- pytest-tokenbudget run=500.1 sha=abc123 -->\n## Token budget"
    )

    monkeypatch.setenv("GITHUB_RUN_ID", "501")
    (tmp_path / ".token-budget" / "report.md").write_text(REPORT.replace("+$12", "+$13"))
    assert run() == 0
    assert "updated the token-budget comment" in capsys.readouterr().out
    [comment] = ours(github)
    assert "+$13" in comment["body"] and "run=501.1" in comment["body"]
    assert len(github.calls("POST")) == 1
    assert len(github.calls("PATCH")) == 1


def test_finds_its_comment_on_page_three(github, env):
    for i in range(230):
        github.add_comment(REPO, PR, f"review comment {i}")
    mine = github.add_comment(REPO, PR, stamped("old report", RunStamp(400, 1)), user=BOT)
    for i in range(30):
        github.add_comment(REPO, PR, f"later comment {i}")
    assert run() == 0
    gets = github.calls("GET")
    assert [g.query.get("page", ["1"])[0] for g in gets] == ["1", "2", "3"]
    assert all(g.query["per_page"] == ["100"] for g in gets)
    assert github.calls("POST") == []
    [patch] = github.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{mine}"
    assert len(ours(github)) == 1


def test_unchanged_body_makes_no_patch(github, env, monkeypatch, capsys):
    assert run() == 0
    monkeypatch.setenv("GITHUB_RUN_ID", "502")  # a new run with the same report
    assert run() == 0
    assert "already up to date" in capsys.readouterr().out
    assert len(github.calls("POST")) == 1
    assert github.calls("PATCH") == []


@pytest.mark.parametrize("theirs, ours_run, kept", [
    ((600, 1), (500, 1), True),   # a newer run wrote it: an older run must not overwrite
    ((500, 2), (500, 1), True),   # a re-run (attempt 2) of the same run is newer
    ((500, 1), (500, 2), False),
    ((499, 3), (500, 1), False),
])  # fmt: skip
def test_older_run_does_not_overwrite_newer(
    github, env, monkeypatch, capsys, theirs, ours_run, kept
):
    existing = stamped(REPORT.replace("+$12", "+$99"), RunStamp(*theirs, sha="fff"))
    github.add_comment(REPO, PR, existing, user=BOT)
    monkeypatch.setenv("GITHUB_RUN_ID", str(ours_run[0]))
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", str(ours_run[1]))
    assert run() == 0
    [comment] = ours(github)
    if kept:
        assert comment["body"] == existing
        assert github.calls("PATCH") == []
        assert "a newer workflow run wrote it" in capsys.readouterr().out
    else:
        assert "+$12" in comment["body"]
        assert len(github.calls("PATCH")) == 1


def test_run_flag_stamps_the_triggering_run(github, env, monkeypatch):
    """A workflow_run job comments for another run: its own run id says nothing about order."""
    github.add_comment(REPO, PR, stamped("newer", RunStamp(700, 1)), user=BOT)
    monkeypatch.setenv("GITHUB_RUN_ID", "900")  # the comment job itself started later
    assert run("--run", "650", "--sha", "0ld") == 0
    assert github.calls("PATCH") == []
    assert run("--run", "701.2", "--sha", "n3w") == 0
    [comment] = ours(github)
    assert "<!-- pytest-tokenbudget run=701.2 sha=n3w -->" in comment["body"]


def test_body_without_marker_gets_one_and_is_found_again(github, env, tmp_path):
    body = tmp_path / "custom.md"
    body.write_text("hello")
    assert run("--body", str(body)) == 0
    assert run("--body", str(body)) == 0
    [comment] = ours(github)
    assert comment["body"].startswith(MARKER + "\n")
    assert len(github.calls("POST")) == 1


def test_explicit_repo_and_pr_override_the_environment(github, env, monkeypatch):
    github.repos.add("acme/other")
    github.open_pull("acme/other", 3)
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    assert run("--repo", "acme/other", "--pr", "3") == 0
    assert len(github.comments_of("acme/other", 3)) == 1


def test_oversized_body_is_cut_below_githubs_limit(github, env, tmp_path):
    (tmp_path / ".token-budget" / "report.md").write_text(REPORT + ("| row |\n" * 12_000))
    assert run() == 0
    [comment] = ours(github)
    assert len(comment["body"]) <= 65_536
    assert "This comment was cut" in comment["body"]


# -- errors: one line, exit 2 ----------------------------------------------------------
def error_of(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_missing_token(github, env, monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_TOKEN")
    assert run() == 2
    assert "no GitHub token: set GITHUB_TOKEN" in error_of(capsys)
    assert github.log == []


def test_no_pull_request_in_the_event(github, env, tmp_path, monkeypatch, capsys):
    push = tmp_path / "push.json"
    push.write_text(json.dumps({"ref": "refs/heads/main", "after": "abc"}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(push))
    assert run() == 2
    assert "no pull request number in the event" in error_of(capsys)
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    assert run() == 2
    assert "pass --pr N" in error_of(capsys)


def test_bad_token_is_401(github, env, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_wrong")
    assert run() == 2
    err = error_of(capsys)
    assert "GitHub rejected the token (HTTP 401)" in err and 'GitHub said: "Bad credentials"' in err


def test_read_only_token_is_403_naming_the_permission(github, env, capsys):
    github.forbid_writes = True
    assert run() == 2
    err = error_of(capsys)
    assert "(HTTP 403)" in err and "pull-requests: write" in err
    assert ours(github) == []


def test_wrong_repo_or_pr_is_404(github, env, capsys):
    assert run("--repo", "acme/nope") == 2
    assert "not found (HTTP 404): no repository acme/nope with a pull request #7" in error_of(
        capsys
    )
    assert run("--pr", "8") == 2
    assert "#8" in error_of(capsys)


def test_unreachable_api(github, env, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")
    assert run() == 2
    assert "cannot reach the GitHub API at http://127.0.0.1:9" in error_of(capsys)


def test_missing_body_and_secret_in_body(github, env, tmp_path, capsys):
    assert run("--body", "nope.md") == 2
    assert "nope.md: no comment body here" in error_of(capsys)
    leaky = tmp_path / "leaky.md"
    leaky.write_text(REPORT + "key: sk-ant-api03-" + "A" * 40 + "\n")
    assert run("--body", str(leaky)) == 2
    assert "refusing to write" in error_of(capsys)
    assert github.log == []


# -- pieces ----------------------------------------------------------------------------
def test_pr_number_from_either_event_shape(tmp_path):
    event = tmp_path / "e.json"
    event.write_text(json.dumps({"pull_request": {"number": 12}}))
    assert pr_number(str(event)) == 12
    event.write_text(json.dumps({"number": 13}))
    assert pr_number(str(event)) == 13
    event.write_text("{")
    with pytest.raises(TokenBudgetError, match="cannot read the event"):
        pr_number(str(event))


def test_next_link():
    header = (
        '<https://api.github.com/repositories/1/issues/7/comments?page=2>; rel="next", '
        '<https://api.github.com/repositories/1/issues/7/comments?page=5>; rel="last"'
    )
    assert _next_link(header) == "https://api.github.com/repositories/1/issues/7/comments?page=2"
    assert _next_link('<https://x/?page=1>; rel="prev"') is None
    assert _next_link("") is None
