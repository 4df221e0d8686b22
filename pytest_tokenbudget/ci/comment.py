"""The one sticky pull-request comment, through GitHub's REST API (stdlib only).

`tokenbudget comment` finds our comment by its marker *and its author* (the identity
behind the token), updates it in place (or creates it once), skips the call when
nothing changed, and never lets an older workflow run overwrite what a newer one
wrote. The token only ever goes to the API host: GITHUB_API_URL is checked, no
redirect is followed, answers are read up to a size limit, and what the server says
is printed with the token masked.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_tokenbudget.errors import ReportError, TokenBudgetError
from pytest_tokenbudget.files.input_files import REPORT_MAX_BYTES, read_bounded_text
from pytest_tokenbudget.providers.scrub import refuse_if_secret, replace_keys
from pytest_tokenbudget.report.markdown import MARKER, cap_markdown

DEFAULT_API = "https://api.github.com"
DEFAULT_BODY = Path(".token-budget/report.md")
GITHUB_LIMIT = 65_536
MAX_PAGES = 100  # 10,000 comments: beyond that, something else is wrong
TIMEOUT_S = 30
MAX_ANSWER_BYTES = 10 * 1024 * 1024  # a page of 100 comments is at most ~7 MiB
MAX_ERROR_BYTES = 64 * 1024  # an error answer: only its message is read
EXIT_OK, EXIT_BAD_INPUT = 0, 2
# The identity GitHub Actions' GITHUB_TOKEN writes as, on github.com and on Enterprise
# Server: `[bot]` logins belong to GitHub Apps, no user can take one.
ACTIONS_BOT = "github-actions[bot]"
_STAMP = re.compile(r"<!-- pytest-tokenbudget run=(\d+)\.(\d+)(?: sha=([0-9A-Za-z]*))? -->\n?")
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(?:\[bot\])?")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
_URL_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]*)*")
# GitHub's own token shapes (classic, fine-grained, OAuth, app, refresh): masked in what
# the server says, beside the token itself and the key shapes of providers/scrub.py.
_GITHUB_TOKEN_SHAPE = re.compile(r"\b(?:gh[opsur]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")
MASK = "***"


class GitHubError(TokenBudgetError):
    """The GitHub API refused or could not be reached; the message says why in one line."""

    def __init__(
        self, message: str, *, status: int | None = None, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status GitHub answered, when it answered one
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class RunStamp:
    """Which workflow run wrote a comment: ordered by run id, then attempt."""

    run_id: int
    attempt: int
    sha: str = ""

    def line(self) -> str:
        return f"<!-- pytest-tokenbudget run={self.run_id}.{self.attempt} sha={self.sha} -->"

    @property
    def order(self) -> tuple[int, int]:
        return (self.run_id, self.attempt)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunStamp | None:
        run_id = env.get("GITHUB_RUN_ID", "")
        if not run_id.isdigit():
            return None
        attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
        return cls(int(run_id), int(attempt) if attempt.isdigit() else 1, env.get("GITHUB_SHA", ""))

    @classmethod
    def find(cls, body: str) -> RunStamp | None:
        match = _STAMP.search(body)
        if match is None:
            return None
        return cls(int(match.group(1)), int(match.group(2)), match.group(3) or "")


@dataclass(frozen=True)
class Outcome:
    action: str  # created | updated | unchanged | kept-newer
    comment_id: int
    url: str = ""
    author: str = ""  # the login the token writes as
    ignored: int = 0  # comments with the marker by someone else


def _unstamped(body: str) -> str:
    """Every run stamp removed, until none is left: one pass over a nested forgery
    (`<!-- … run=<!-- … run=1.1 -->999999999.1 -->`) leaves a new stamp behind."""
    while True:
        body, removed = _STAMP.subn("", body)
        if not removed:
            return body


def without_stamp(body: str) -> str:
    return _unstamped(body.replace("\r\n", "\n")).rstrip()


def stamped(body: str, stamp: RunStamp | None) -> str:
    """The body with our marker on its first line and the run stamp right after it."""
    body = _unstamped(body)
    if not any(line.strip() == MARKER for line in body.splitlines()):
        body = f"{MARKER}\n{body}"
    body = cap_markdown(body, GITHUB_LIMIT - 200)  # room for the stamp
    if stamp is None:
        return body
    lines = body.split("\n")
    at = next(i for i, line in enumerate(lines) if line.strip() == MARKER)
    lines.insert(at + 1, stamp.line())
    return "\n".join(lines)


def is_ours(comment: Mapping[str, Any]) -> bool:
    """Whether a comment carries our marker (who wrote it is `Author.wrote`)."""
    body = comment.get("body")
    return isinstance(body, str) and any(line.strip() == MARKER for line in body.splitlines())


# -- what the server says, made safe to print --------------------------------------------
def shown(text: str, token: str = "", limit: int = 300) -> str:
    """Server-chosen text as one printable line: the token and key shapes masked, cut.

    Line breaks and tabs become spaces and other unprintable characters are dropped
    before masking (a token with a NUL inside is still the token); no line break
    survives to forge a workflow command or a second line.
    """
    text = "".join(c if c.isprintable() else " " if c.isspace() else "" for c in text)
    text = " ".join(text.split())
    if token:
        text = text.replace(token, MASK)
    text = _GITHUB_TOKEN_SHAPE.sub(MASK, text)
    text = replace_keys(text, lambda _: MASK)
    return text if len(text) <= limit else text[:limit] + "…"


def _host_of(url: str, token: str) -> str:
    """Just the host[:port] of a server-chosen URL, for a message: never its user name,
    password, path or query, and its case kept so that a token in it is masked."""
    try:
        host = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
    except ValueError:  # "http://[::1": not even a host
        host = ""
    return shown(host, token, limit=100) or "an unnamed host"


# -- where the token may go ----------------------------------------------------------------
def api_url(text: str) -> str:
    """GITHUB_API_URL as a base URL the token may be sent to, else a GitHubError why not.

    https only (http for a loopback host, which tests use); a host, an optional port
    and path (GitHub Enterprise Server's /api/v3), nothing else: no user name or
    password, query, fragment, whitespace or control character.
    """
    problem = _api_url_problem(text)
    if problem:
        raise GitHubError(f"GITHUB_API_URL {problem}; it is where the token is sent")
    return text.rstrip("/")


def _api_url_problem(text: str) -> str | None:
    """What is wrong with an API URL, never quoting more of it than the part at fault
    (the whole value may hold a password)."""
    odd = next((c for c in text if not c.isascii() or c.isspace() or not c.isprintable()), "")
    if odd:
        return f"holds whitespace, a control or a non-ASCII character ({odd!a})"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return "is not a well-formed URL"
    if "@" in parts.netloc:
        return "must not hold a user name or password (user@host)"
    if parts.scheme not in ("https", "http"):
        shown_scheme = f"{shown(parts.scheme, limit=20)!r}" if parts.scheme else "none"
        return f"must be an https:// URL (its scheme: {shown_scheme})"
    host = parts.hostname or ""
    if not host or (port is None and parts.netloc.endswith(":")):
        return "has no host or no port after its colon"
    if not (_HOST_NAME.fullmatch(host) or _is_ip(host)):
        return f"has an invalid host ({shown(host, limit=100)})"
    if parts.scheme == "http" and not _is_loopback(host):
        return (
            f"must be https: http://{host} would carry the token unencrypted (http is "
            "accepted only for a loopback host: 127.0.0.1, ::1, localhost)"
        )
    if parts.query or parts.fragment or "?" in text or "#" in text:
        return "must not have a query (?) or fragment (#)"
    if not _URL_PATH.fullmatch(parts.path) or "/../" in f"{parts.path}/":
        return f"has an invalid path ({shown(parts.path, limit=100)})"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _graphql_url(api: str) -> str:
    """GitHub's GraphQL endpoint beside a REST base: /graphql, or /api/graphql on GHES."""
    if api.endswith("/api/v3"):
        return api[: -len("v3")] + "graphql"
    return api + "/graphql"


def _opener() -> urllib.request.OpenerDirector:
    """Only the handlers a JSON API needs: no redirect handler (a 3xx is an error, so no
    redirect can take the token anywhere), no file:, ftp: or data: handler."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),  # HTTPS_PROXY and friends, read now
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


# -- whose comment it is -------------------------------------------------------------------
@dataclass(frozen=True)
class Author:
    """The identity the token writes as: the only author whose marked comment is ours."""

    login: str
    user_id: int | None = None  # None when only the login is known (the Actions fallback)

    def wrote(self, comment: Mapping[str, Any]) -> bool:
        user = comment.get("user")
        if not isinstance(user, dict) or user.get("login") != self.login:
            return False
        if self.login.endswith("[bot]") and user.get("type") != "Bot":
            return False
        # The id as well as the login: a renamed account's old login can be taken.
        return self.user_id is None or (_is_int(user.get("id")) and user["id"] == self.user_id)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- the API -----------------------------------------------------------------------------
class GitHub:
    """Just the calls the sticky comment needs, to the API host and nowhere else."""

    def __init__(self, token: str, *, api: str = DEFAULT_API, repo: str, pr: int) -> None:
        self.token = token
        self.api = api_url(api)
        self.repo = repo
        self.pr = pr
        self._origin = urllib.parse.urlsplit(self.api)[:2]
        self._opener = _opener()

    def author(self) -> Author:
        """Who the token writes as.

        A personal access token is a user: `GET /user` names it. A GitHub App's
        installation token (Actions' GITHUB_TOKEN is one) gets a 403 there ("Resource
        not accessible by integration"); GraphQL's `viewer` names its bot, and when
        GraphQL does not answer, it is Actions' own bot.
        """
        try:
            user = _object(self._call("GET", f"{self.api}/user")[0])
        except GitHubError as err:
            if err.status != 403 or err.rate_limited:
                raise
            return self._viewer() or Author(ACTIONS_BOT)
        login, user_id = user.get("login"), user.get("id")
        if not isinstance(login, str) or not _LOGIN.fullmatch(login) or not _is_int(user_id):
            raise GitHubError(
                f"the GitHub API at {self.api} answered GET /user without a login and id"
            )
        return Author(login, user_id)

    def _viewer(self) -> Author | None:
        query = {"query": "query { viewer { login databaseId } }"}
        try:
            answer = _object(self._call("POST", _graphql_url(self.api), query)[0])
        except GitHubError:
            return None
        viewer = _object(_object(answer.get("data")).get("viewer"))
        login, user_id = viewer.get("login"), viewer.get("databaseId")
        if not isinstance(login, str) or not _LOGIN.fullmatch(login):
            return None
        return Author(login, user_id if _is_int(user_id) else None)

    def comments(self) -> Iterator[dict[str, Any]]:
        """Every comment on the pull request, following the Link: rel="next" pages."""
        url: str | None = f"{self.api}/repos/{self.repo}/issues/{self.pr}/comments?per_page=100"
        for _ in range(MAX_PAGES):
            if url is None:
                return
            page, headers = self._call("GET", url)
            if not isinstance(page, list):
                raise GitHubError(
                    f"the GitHub API at {self.api} answered the list of comments with "
                    "something that is not a list"
                )
            yield from (c for c in page if isinstance(c, dict))
            url = _next_link(headers.get("Link", ""))
            if url is not None and not self._same_origin(url):
                raise GitHubError(
                    "refusing to follow a next-page link to another host "
                    f"({_host_of(url, self.token)}): the token is only sent to {self.api}"
                )

    def create(self, body: str) -> dict[str, Any]:
        url = f"{self.api}/repos/{self.repo}/issues/{self.pr}/comments"
        return _object(self._call("POST", url, {"body": body})[0])

    def update(self, comment_id: int, body: str) -> dict[str, Any]:
        url = f"{self.api}/repos/{self.repo}/issues/comments/{comment_id}"
        return _object(self._call("PATCH", url, {"body": body})[0])

    def _same_origin(self, url: str) -> bool:
        try:
            return urllib.parse.urlsplit(url)[:2] == self._origin
        except ValueError:
            return False

    def _call(
        self, method: str, url: str, payload: dict[str, Any] | None = None
    ) -> tuple[Any, Any]:
        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", "pytest-tokenbudget")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=TIMEOUT_S) as response:
                raw = response.read(MAX_ANSWER_BYTES + 1)
                headers = response.headers
        except urllib.error.HTTPError as err:
            raise self._explain(err, method, url) from None
        except urllib.error.URLError as err:
            raise GitHubError(
                f"cannot reach the GitHub API at {self.api}: {shown(str(err.reason), self.token)}"
            ) from None
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise GitHubError(
                f"cannot reach the GitHub API at {self.api}: {shown(str(err), self.token)}"
            ) from None
        if len(raw) > MAX_ANSWER_BYTES:
            raise GitHubError(
                f"the GitHub API at {self.api} answered {method} with more than "
                f"{MAX_ANSWER_BYTES // (1024 * 1024)} MiB: not read further"
            )
        try:
            return json.loads(raw or b"null"), headers
        except (ValueError, RecursionError):
            raise GitHubError(
                f"the GitHub API at {self.api} answered {method} with non-JSON"
            ) from None

    def _explain(self, err: urllib.error.HTTPError, method: str, url: str) -> GitHubError:
        try:
            message = json.loads(err.read(MAX_ERROR_BYTES) or b"{}").get("message", "")
        except (ValueError, AttributeError, OSError, RecursionError, http.client.HTTPException):
            message = ""
        message = shown(message, self.token) if isinstance(message, str) else ""
        said = f' (GitHub said: "{message}")' if message else ""
        where = f"{self.repo} pull request #{self.pr}"
        if 300 <= err.code < 400:
            target = err.headers.get("Location") or ""
            with contextlib.suppress(ValueError):  # not a URL: said to be elsewhere
                target = urllib.parse.urljoin(url, target) if target else ""
            if not target:
                to, hint = "without a Location", ""
            elif self._same_origin(target):
                to = "to another path on the same host"
                hint = " (a renamed or moved repository? pass its current OWNER/NAME with --repo)"
            else:
                to, hint = f"to {_host_of(target, self.token)}", ""
            return GitHubError(
                f"the GitHub API at {self.api} answered {method} with a redirect "
                f"(HTTP {err.code}) {to}: not followed, the token is only ever sent to "
                f"{self.api}{hint}",
                status=err.code,
            )
        if err.code == 401:
            text = (
                "GitHub rejected the token (HTTP 401): GITHUB_TOKEN is invalid, expired or "
                "for another GitHub host (GITHUB_API_URL)"
            )
        elif err.code == 403 and err.headers.get("X-RateLimit-Remaining") == "0":
            return GitHubError(
                "GitHub's API rate limit is exhausted (HTTP 403): try again later",
                status=403,
                rate_limited=True,
            )
        elif err.code == 403:
            text = (
                f"GitHub refused to {'read' if method == 'GET' else 'write'} comments on {where} "
                "(HTTP 403): the token lacks the `pull-requests: write` permission. Add "
                "`permissions: {pull-requests: write}` to the job; a pull_request run from a "
                "fork only ever gets a read-only token (use the workflow_run recipe in docs/ci.md)"
            )
        elif err.code == 404:
            text = (
                f"not found (HTTP 404): no repository {self.repo} with a pull request "
                f"#{self.pr} that this token can see: check --repo and --pr"
            )
        elif err.code == 422:
            text = "GitHub did not accept the comment (HTTP 422)"
        else:
            text = f"the GitHub API answered HTTP {err.code} to {method}"
        return GitHubError(text + said, status=err.code)


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        match = _NEXT.search(part)
        if match:
            return match.group(1)
    return None


# -- create or update --------------------------------------------------------------------
def upsert_comment(client: GitHub, body: str, stamp: RunStamp | None) -> Outcome:
    """Create the sticky comment once, then only ever update it, and only forward in time.

    Ours is the first comment with the marker written by the token's own identity: a
    marked comment by anyone else is never edited and its run stamp never believed.
    """
    author = client.author()
    ours, ignored = None, 0
    for comment in client.comments():
        if not is_ours(comment):
            continue
        if author.wrote(comment) and _is_int(comment.get("id")):
            ours = comment
            break
        ignored += 1
    new_body = stamped(body, stamp)
    if ours is None:
        created = client.create(new_body)
        return Outcome("created", _id(created), _url(created), author.login, ignored)
    existing = ours.get("body") or ""
    theirs = RunStamp.find(existing)
    url = _url(ours)
    if stamp is not None and theirs is not None and theirs.order > stamp.order:
        return Outcome("kept-newer", ours["id"], url, author.login, ignored)
    if without_stamp(existing) == without_stamp(new_body):
        return Outcome("unchanged", ours["id"], url, author.login, ignored)
    updated = client.update(ours["id"], new_body)
    return Outcome("updated", ours["id"], _url(updated) or url, author.login, ignored)


def _id(comment: Mapping[str, Any]) -> int:
    value = comment.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _url(comment: Mapping[str, Any]) -> str:
    value = comment.get("html_url")
    return value if isinstance(value, str) else ""


def pr_number(event_path: str | None) -> int:
    if not event_path:
        raise GitHubError(
            "no pull request number: pass --pr N (GITHUB_EVENT_PATH is not set, so this is "
            "not a GitHub Actions run)"
        )
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise GitHubError(
            f"cannot read the event at GITHUB_EVENT_PATH ({event_path}): {err}"
        ) from None
    number = (event.get("pull_request") or {}).get("number", event.get("number"))
    if not isinstance(number, int) or isinstance(number, bool):
        raise GitHubError(
            "no pull request number in the event at GITHUB_EVENT_PATH: this workflow was not "
            "triggered by a pull request (push? workflow_run?); pass --pr N"
        )
    return number


# -- command line ----------------------------------------------------------------------
def add_comment_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register `tokenbudget comment` on the `tokenbudget` command's subparsers."""
    parser = subparsers.add_parser(
        "comment",
        help="create or update the sticky token-budget comment on a pull request",
        description="Create or update the one token-budget comment on a pull request. Token "
        "from GITHUB_TOKEN; API at GITHUB_API_URL (default https://api.github.com).",
    )
    parser.add_argument(
        "--body",
        type=Path,
        default=DEFAULT_BODY,
        metavar="PATH",
        help=f"Markdown to post (default: {DEFAULT_BODY})",
    )
    parser.add_argument(
        "--repo", default=None, metavar="OWNER/NAME", help="default: GITHUB_REPOSITORY"
    )
    parser.add_argument(
        "--pr",
        type=int,
        default=None,
        metavar="N",
        help="pull request number (default: from the event at GITHUB_EVENT_PATH)",
    )
    parser.add_argument(
        "--run",
        type=_run_arg,
        default=None,
        metavar="ID[.ATTEMPT]",
        help="the workflow run this report comes from, so an older run never overwrites a "
        "newer one (default: GITHUB_RUN_ID.GITHUB_RUN_ATTEMPT; in a workflow_run job pass "
        "the triggering run's)",
    )
    parser.add_argument(
        "--sha", default=None, metavar="SHA", help="commit of the report (default: GITHUB_SHA)"
    )
    parser.set_defaults(func=cmd_comment)
    return parser


def _run_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a run id (ID or ID.ATTEMPT): {text!r}")
    return int(match.group(1)), int(match.group(2) or 1)


def cmd_comment(args: argparse.Namespace) -> int:
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    try:
        outcome = _comment(args)
    except TokenBudgetError as err:
        print(f"tokenbudget comment: {shown(str(err), token, limit=2000)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    said = {
        "created": "created the token-budget comment",
        "updated": "updated the token-budget comment",
        "unchanged": "the token-budget comment is already up to date",
        "kept-newer": "kept the token-budget comment: a newer workflow run wrote it",
    }[outcome.action]
    line = f"{said} {shown(outcome.url, token)}".rstrip()
    if outcome.ignored:
        line += (
            f" (ignored {outcome.ignored} other comment{'s' * (outcome.ignored > 1)} with the "
            f"marker: not written by {outcome.author}, the token's identity)"
        )
    print(f"tokenbudget comment: {line}")
    return EXIT_OK


def _comment(args: argparse.Namespace) -> Outcome:
    env = os.environ
    token = env.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise GitHubError(
            "no GitHub token: set GITHUB_TOKEN (in a workflow: "
            "`env: {GITHUB_TOKEN: ${{ github.token }}}`)"
        )
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise GitHubError("GITHUB_TOKEN holds whitespace, a control or a non-ASCII character")
    api = api_url(env.get("GITHUB_API_URL") or DEFAULT_API)
    repo = args.repo or env.get("GITHUB_REPOSITORY", "")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo, re.ASCII) or ".." in repo.split("/"):
        raise GitHubError(
            f"not a repository: {repo!r}; pass --repo OWNER/NAME or set GITHUB_REPOSITORY"
            if repo
            else "no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY"
        )
    pr = args.pr if args.pr is not None else pr_number(env.get("GITHUB_EVENT_PATH"))
    body_path: Path = args.body
    if not body_path.exists():
        raise ReportError(
            "no comment body here: run `pytest --token-budget` first (it writes "
            ".token-budget/report.md) or pass --body PATH",
            path=body_path,
        )
    # The body may come from a fork's artifact: a regular file of bounded size only.
    body = read_bounded_text(
        body_path, limit=REPORT_MAX_BYTES, what="the comment body", error=ReportError
    )
    refuse_if_secret(body, path=str(body_path))
    client = GitHub(token, api=api, repo=repo, pr=pr)
    run: tuple[int, int] | None = getattr(args, "run", None)
    sha: str | None = getattr(args, "sha", None)
    stamp = RunStamp(*run, sha or env.get("GITHUB_SHA", "")) if run else RunStamp.from_env(env)
    if stamp is not None and sha:
        stamp = RunStamp(stamp.run_id, stamp.attempt, sha)
    return upsert_comment(client, body, stamp)
