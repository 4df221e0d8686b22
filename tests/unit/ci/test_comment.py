"""`tokenbudget comment` against a loopback stand-in of the GitHub API."""

from __future__ import annotations

import json

import pytest
from github_stub import (
    APP_BOT,
    APP_TOKEN,
    BOT,
    PAT,
    PAT_USER,
    TOKEN,
    GitHubStub,
    known_user,
    without_proxies,
)

from pytest_tokenbudget.ci.comment import RunStamp, pr_number, stamped
from pytest_tokenbudget.ci.github import _next_link, api_url
from pytest_tokenbudget.cli import main
from pytest_tokenbudget.errors import TokenBudgetError
from pytest_tokenbudget.report.markdown import MARKER

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
    without_proxies(monkeypatch)
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
    return main(["comment", *argv])


def ours(github):
    return [c for c in github.comments_of(REPO, PR) if MARKER in c["body"]]


def created(github):
    """The comments POSTed (the GraphQL query is a POST too)."""
    return github.calls("POST", f"/repos/{REPO}/issues/{PR}/comments")


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
    assert len(created(github)) == 1
    assert len(github.calls("PATCH")) == 1


def test_finds_its_comment_on_page_three(github, env):
    for i in range(230):
        github.add_comment(REPO, PR, f"review comment {i}")
    mine = github.add_comment(REPO, PR, stamped("old report", RunStamp(400, 1)), user=BOT)
    for i in range(30):
        github.add_comment(REPO, PR, f"later comment {i}")
    assert run() == 0
    gets = github.calls("GET", f"/repos/{REPO}/issues/{PR}/comments")
    assert [g.query.get("page", ["1"])[0] for g in gets] == ["1", "2", "3"]
    assert all(g.query["per_page"] == ["100"] for g in gets)
    assert created(github) == []
    [patch] = github.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{mine}"
    assert len(ours(github)) == 1


def test_unchanged_body_makes_no_patch(github, env, monkeypatch, capsys):
    assert run() == 0
    monkeypatch.setenv("GITHUB_RUN_ID", "502")  # a new run with the same report
    assert run() == 0
    assert "already up to date" in capsys.readouterr().out
    assert len(created(github)) == 1
    assert github.calls("PATCH") == []


@pytest.mark.parametrize(
    "theirs, ours_run, kept",
    [
        ((600, 1), (500, 1), True),  # a newer run wrote it: an older run must not overwrite
        ((500, 2), (500, 1), True),  # a re-run (attempt 2) of the same run is newer
        ((500, 1), (500, 2), False),
        ((499, 3), (500, 1), False),
    ],
)
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
    assert len(created(github)) == 1


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


# -- the token stays home -----------------------------------------------------------------
LIST = f"/repos/{REPO}/issues/{PR}/comments"
KEY = "sk-ant-api03-" + "B" * 40


@pytest.fixture
def elsewhere():
    """Another host, where a redirect or a next-page link would take the token."""
    with GitHubStub() as stub:
        stub.open_pull(REPO, PR)
        yield stub


def host_url(stub):
    """The stub under another host name than the API's 127.0.0.1."""
    return stub.url.replace("127.0.0.1", "localhost")


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", LIST, 302),  # urllib followed this one, Authorization and all
        ("POST", LIST, 302),
        ("PATCH", "/repos/acme/shop/issues/comments/{mine}", 308),
        ("GET", "/user", 301),
    ],
)
def test_no_redirect_is_followed(github, env, elsewhere, capsys, method, path, status):
    if method == "PATCH":  # a comment of ours to update
        path = path.format(mine=github.add_comment(REPO, PR, stamped("old", None), user=BOT))
    github.respond(method, path, status, {}, headers={"Location": host_url(elsewhere) + path})
    assert run() == 2
    err = error_of(capsys)
    assert f"redirect (HTTP {status}) to {host_url(elsewhere)[7:]}: not followed" in err
    assert elsewhere.log == []
    assert [c.path for c in github.calls(method)][-1] == path


def test_a_redirect_on_the_same_host_is_not_followed_either(github, env, capsys):
    github.respond("GET", LIST, 301, {}, headers={"Location": "/repositories/1/issues/7/comments"})
    assert run() == 2
    assert "to another path on the same host" in (err := error_of(capsys)) and "--repo" in err
    assert github.calls(path="/repositories/1/issues/7/comments") == []


def test_next_page_link_to_another_host_is_not_followed(github, env, elsewhere, capsys):
    link = f'<{host_url(elsewhere)}{LIST}?page=2&token={TOKEN}>; rel="next"'
    github.respond("GET", LIST, 200, [], headers={"Link": link})
    assert run() == 2
    err = error_of(capsys)
    assert "refusing to follow a next-page link to another host" in err
    assert TOKEN not in err and "page=2" not in err  # the host only
    assert elsewhere.log == []


@pytest.mark.parametrize(
    "value, said",
    [
        ("file:///etc/passwd", "must be an https:// URL (its scheme: 'file')"),
        ("ftp://api.github.com", "must be an https:// URL (its scheme: 'ftp')"),
        ("api.github.com", "must be an https:// URL (its scheme: none)"),
        ("http://api.github.com", "must be https: http://api.github.com would carry the token"),
        ("http://10.0.0.5/api/v3", "must be https"),
        ("{url}\r\nX-Injected: 1", "holds whitespace, a control or a non-ASCII character ('\\r')"),
        ("https://api.github.com /x", "holds whitespace"),
        ("https://api.gïthub.com", "non-ASCII character ('\\xef')"),
        ("https://octo:s3cr3t@api.github.com", "must not hold a user name or password"),
        ("https://x-access-token@api.github.com", "must not hold a user name or password"),
        ("https://", "has no host"),
        ("https://api.github.com:", "has no host or no port"),
        ("https://api.github.com:99999", "is not a well-formed URL"),
        ("https://[::1", "is not a well-formed URL"),
        ("https://api_github.com", "has an invalid host (api_github.com)"),
        ("https://api.github.com/?per_page=1", "must not have a query"),
        ("https://api.github.com/#x", "must not have a query"),
        ("https://api.github.com/%2e%2e/x", "has an invalid path"),
        ("https://api.github.com/api/../v3", "has an invalid path"),
    ],
)
def test_api_url_must_be_https_and_well_formed(github, env, monkeypatch, capsys, value, said):
    monkeypatch.setenv("GITHUB_API_URL", value.format(url=github.url))
    assert run() == 2
    err = error_of(capsys)
    assert err.startswith("tokenbudget comment: GITHUB_API_URL ") and said in err, err
    assert "s3cr3t" not in err
    assert github.log == []


@pytest.mark.parametrize(
    "value",
    [
        "https://api.github.com",
        "https://ghe.example.com/api/v3/",
        "https://api.acme.ghe.com",
        "http://127.0.0.1:8080",
        "http://[::1]:9",
        "http://localhost:1234",
        "https://10.0.0.5:8443",
    ],
)
def test_api_urls_that_are_fine(value):
    assert api_url(value) == value.rstrip("/")


def test_localhost_is_a_loopback_api(github, env, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", host_url(github))
    assert run() == 0
    assert len(ours(github)) == 1


def test_a_token_that_would_split_a_header_is_refused(github, env, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_abc\r\nX-Injected: 1")
    assert run() == 2
    assert "GITHUB_TOKEN holds whitespace" in error_of(capsys)
    assert github.log == []


@pytest.mark.parametrize(
    "method, path, status, message",
    [
        ("GET", "/user", 401, f"Bad credentials: you sent Bearer {TOKEN}"),
        ("GET", LIST, 404, f"Not Found for {TOKEN.upper()} and {TOKEN}"),
        ("POST", LIST, 422, f"body refused, it holds {KEY}"),
        ("GET", LIST, 500, f"boom\n::error::forged annotation\r\n{TOKEN[:8]}\x00{TOKEN[8:]}"),
        ("GET", LIST, 502, "a stranger's token ghp_" + "Z" * 36),
    ],
)
def test_what_the_server_says_is_printed_masked_on_one_line(
    github, env, capsys, method, path, status, message
):
    github.respond(method, path, status, {"message": message})
    assert run() == 2
    err = error_of(capsys)
    assert "GitHub said:" in err
    for secret in (TOKEN, KEY[:20], TOKEN[8:], "Z" * 36):
        assert secret not in err
    assert "::error::" not in err.split("GitHub said:")[0] and "\n::" not in err


def test_a_redirect_to_a_host_named_after_the_token_is_masked(github, env, capsys):
    github.respond("GET", LIST, 302, {}, headers={"Location": f"https://{TOKEN}.evil.test/x"})
    assert run() == 2
    err = error_of(capsys)
    assert "redirect (HTTP 302) to ***.evil.test" in err and TOKEN not in err


def test_the_comment_url_is_printed_masked(github, env, capsys):
    url = f"https://github.test/c?t={TOKEN}\n::add-mask::x"
    github.respond("POST", LIST, 201, {"id": 5, "html_url": url})
    assert run() == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and TOKEN not in out and "\n::" not in out


def endless(wfile):
    """A JSON list that never ends (well: 64 MiB, then the stub gives up)."""
    wfile.write(b"[")
    for _ in range(1024):
        wfile.write(b" " * 65536)


@pytest.mark.parametrize(
    "raw, said",
    [
        (endless, "answered GET with more than 10 MiB"),
        (b"[" * 200_000, "answered GET with non-JSON"),  # nested past Python's recursion limit
        (b"\xff\xfe not json", "answered GET with non-JSON"),
    ],
)
def test_hostile_answers_are_read_bounded(github, env, capsys, raw, said):
    github.respond("GET", LIST, 200, raw=raw)
    assert run() == 2
    assert said in error_of(capsys)


def test_answers_of_the_wrong_shape_are_errors_or_skipped(github, env, capsys):
    github.respond("GET", LIST, 200, {"message": "not a list"}, times=1)
    assert run() == 2
    assert "answered the list of comments with something that is not a list" in error_of(capsys)
    hostile_id = "1/../../x"  # hygiene: allow (a hostile id, never a path)
    junk = [1, "x", None, [], {"body": 5}, {"body": MARKER, "user": "x", "id": hostile_id}]
    github.respond("GET", LIST, 200, junk, times=1)
    assert run() == 0
    assert len(created(github)) == 1 and github.calls("PATCH") == []


def test_body_must_be_a_regular_file(github, env, capsys):
    assert run("--body", "/dev/null") == 2
    assert "not a regular file" in error_of(capsys)
    assert github.log == []


# -- our comment is ours ---------------------------------------------------------------------
FORGED = stamped(REPORT.replace("+$12", "+$0 — all within budget"), RunStamp(999_999, 9))


@pytest.mark.parametrize(
    "forger",
    [
        "mallory",
        "dependabot[bot]",  # another app's bot
        {"login": BOT, "id": 41898282, "type": "User"},  # the bot's login, not a bot
    ],
)
def test_a_marked_comment_by_someone_else_is_never_ours(github, env, capsys, forger):
    forged = github.add_comment(REPO, PR, FORGED, user=forger)
    assert run() == 0
    out = capsys.readouterr().out
    assert "created the token-budget comment" in out
    assert f"ignored 1 other comment with the marker: not written by {BOT}" in out
    theirs, mine = ours(github)
    assert theirs["id"] == forged and theirs["body"] == FORGED  # never edited
    assert mine["user"]["login"] == BOT and "+$12" in mine["body"]
    assert github.calls("PATCH") == []


def test_a_forged_stamp_does_not_keep_our_comment_stale(github, env, capsys):
    github.add_comment(REPO, PR, FORGED, user="mallory")
    mine = github.add_comment(REPO, PR, stamped("old", RunStamp(400, 1)), user=BOT)
    assert run() == 0
    assert "updated the token-budget comment" in capsys.readouterr().out
    [patch] = github.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{mine}"
    assert ours(github)[0]["body"] == FORGED


def test_a_nested_stamp_in_a_posted_body_cannot_freeze_the_comment(github, env, tmp_path):
    """A fork's report.md nests a stamp in a stamp: removing the inner one in one pass left
    `run=999999999.1` above ours, and every later run was refused as older."""
    forged = tmp_path / "forged.md"
    forged.write_text(
        "<!-- pytest-tokenbudget run=<!-- pytest-tokenbudget run=1.1 -->999999999.1 -->\n"
        f"{MARKER}\nall within budget\n"
    )
    assert run("--body", str(forged), "--run", "100.1") == 0
    [comment] = ours(github)
    assert "999999999" not in comment["body"]
    real = tmp_path / "real.md"
    real.write_text("a real report")
    assert run("--body", str(real), "--run", "101.1") == 0
    [comment] = ours(github)
    assert "a real report" in comment["body"]


def test_a_personal_access_token_writes_as_its_user(github, env, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", PAT)
    github.add_comment(REPO, PR, stamped("by the bot", RunStamp(400, 1)), user=BOT)
    renamed = known_user(PAT_USER) | {"id": 7}  # the login, once someone else's
    github.add_comment(REPO, PR, stamped("by a former octo-dev", RunStamp(400, 1)), user=renamed)
    assert run() == 0
    assert [c["user"]["login"] for c in ours(github)] == [BOT, PAT_USER, PAT_USER]
    [mine] = [c for c in ours(github) if c["user"] == known_user(PAT_USER)]
    monkeypatch.setenv("GITHUB_RUN_ID", "501")
    mine["body"] = stamped("stale", RunStamp(400, 1))
    assert run() == 0  # finds its own again: an update, not a second comment
    [patch] = github.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{mine['id']}"
    assert len(created(github)) == 1
    assert github.calls("POST", "/graphql") == []  # GET /user answered


def test_an_app_token_writes_as_its_bot(github, env, monkeypatch):
    """GET /user is a 403 for an installation token; GraphQL's viewer names the app's bot."""
    monkeypatch.setenv("GITHUB_TOKEN", APP_TOKEN)
    github.add_comment(REPO, PR, stamped("by actions", RunStamp(400, 1)), user=BOT)
    assert run() == 0
    monkeypatch.setenv("GITHUB_RUN_ID", "501")
    (github.comments_of(REPO, PR)[-1])["body"] = stamped("stale", RunStamp(400, 1))
    assert run() == 0
    assert [c["user"]["login"] for c in ours(github)] == [BOT, APP_BOT]
    assert len(created(github)) == 1 and len(github.calls("PATCH")) == 1
    assert ours(github)[0]["body"].endswith("by actions")


@pytest.mark.parametrize("graphql", ["absent", "redirected", "errors"])
def test_without_graphql_the_actions_token_is_the_actions_bot(
    github, env, elsewhere, capsys, graphql
):
    if graphql == "absent":
        github.graphql = False
    elif graphql == "redirected":
        github.respond("POST", "/graphql", 307, {}, headers={"Location": host_url(elsewhere)})
    else:
        github.respond("POST", "/graphql", 200, {"errors": [{"message": "no"}], "data": None})
    github.add_comment(REPO, PR, FORGED, user="mallory")
    mine = github.add_comment(REPO, PR, stamped("old", RunStamp(400, 1)), user=BOT)
    assert run() == 0
    [patch] = github.calls("PATCH")
    assert patch.path == f"/repos/{REPO}/issues/comments/{mine}"
    assert elsewhere.log == []


def test_rate_limit_while_asking_who_the_token_is(github, env, capsys):
    github.respond(
        "GET",
        "/user",
        403,
        {"message": "API rate limit exceeded"},
        headers={"X-RateLimit-Remaining": "0"},
    )
    assert run() == 2
    assert "rate limit is exhausted" in error_of(capsys)


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
