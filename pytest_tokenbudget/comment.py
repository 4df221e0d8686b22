"""The one sticky pull-request comment, through GitHub's REST API (stdlib only).

`tokenbudget comment` finds our comment by its marker, updates it in place (or
creates it once), skips the call when nothing changed, and never lets an older
workflow run overwrite what a newer one wrote.
"""

from __future__ import annotations

import argparse
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

from .errors import ReportError, TokenBudgetError
from .markdown import MARKER, cap_markdown
from .scrub import refuse_if_secret

DEFAULT_API = "https://api.github.com"
DEFAULT_BODY = Path(".token-budget/report.md")
GITHUB_LIMIT = 65_536
MAX_PAGES = 100  # 10,000 comments: beyond that, something else is wrong
TIMEOUT_S = 30
EXIT_OK, EXIT_BAD_INPUT = 0, 2
_STAMP = re.compile(r"<!-- pytest-tokenbudget run=(\d+)\.(\d+)(?: sha=([0-9A-Za-z]*))? -->\n?")
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


class GitHubError(TokenBudgetError):
    """The GitHub API refused or could not be reached; the message says why in one line."""


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


def without_stamp(body: str) -> str:
    return _STAMP.sub("", body.replace("\r\n", "\n")).rstrip()


def stamped(body: str, stamp: RunStamp | None) -> str:
    """The body with our marker on its first line and the run stamp right after it."""
    body = _STAMP.sub("", body)
    if not any(line.strip() == MARKER for line in body.splitlines()):
        body = f"{MARKER}\n{body}"
    body = cap_markdown(body, GITHUB_LIMIT - 200)  # room for the stamp
    if stamp is None:
        return body
    lines = body.split("\n")
    at = next(i for i, line in enumerate(lines) if line.strip() == MARKER)
    lines.insert(at + 1, stamp.line())
    return "\n".join(lines)


def is_ours(comment: dict[str, Any]) -> bool:
    return any(line.strip() == MARKER for line in (comment.get("body") or "").splitlines())


# -- the API -----------------------------------------------------------------------------
class GitHub:
    """Just the three calls the sticky comment needs."""

    def __init__(self, token: str, *, api: str = DEFAULT_API, repo: str, pr: int) -> None:
        self.token = token
        self.api = api.rstrip("/")
        self.repo = repo
        self.pr = pr
        self._origin = urllib.parse.urlsplit(self.api)[:2]

    def comments(self) -> Iterator[dict[str, Any]]:
        """Every comment on the pull request, following the Link: rel="next" pages."""
        url: str | None = f"{self.api}/repos/{self.repo}/issues/{self.pr}/comments?per_page=100"
        for _ in range(MAX_PAGES):
            if url is None:
                return
            page, headers = self._call("GET", url)
            yield from page
            url = _next_link(headers.get("Link", ""))
            if url is not None and urllib.parse.urlsplit(url)[:2] != self._origin:
                raise GitHubError(f"refusing to follow a next-page link to another host: {url}")

    def create(self, body: str) -> dict[str, Any]:
        url = f"{self.api}/repos/{self.repo}/issues/{self.pr}/comments"
        return self._call("POST", url, {"body": body})[0]

    def update(self, comment_id: int, body: str) -> dict[str, Any]:
        url = f"{self.api}/repos/{self.repo}/issues/comments/{comment_id}"
        return self._call("PATCH", url, {"body": body})[0]

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
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read() or b"null"), response.headers
        except urllib.error.HTTPError as err:
            raise self._explain(err, method) from None
        except urllib.error.URLError as err:
            raise GitHubError(f"cannot reach the GitHub API at {self.api}: {err.reason}") from None
        except (TimeoutError, ConnectionError) as err:
            raise GitHubError(f"cannot reach the GitHub API at {self.api}: {err}") from None
        except json.JSONDecodeError:
            raise GitHubError(
                f"the GitHub API at {self.api} answered {method} with non-JSON"
            ) from None

    def _explain(self, err: urllib.error.HTTPError, method: str) -> GitHubError:
        try:
            message = json.loads(err.read() or b"{}").get("message", "")
        except (ValueError, AttributeError, OSError):
            message = ""
        said = f' (GitHub said: "{message}")' if message else ""
        where = f"{self.repo} pull request #{self.pr}"
        if err.code == 401:
            text = (
                "GitHub rejected the token (HTTP 401): GITHUB_TOKEN is invalid, expired or "
                "for another GitHub host (GITHUB_API_URL)"
            )
        elif err.code == 403 and err.headers.get("X-RateLimit-Remaining") == "0":
            text = "GitHub's API rate limit is exhausted (HTTP 403): try again later"
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
        return GitHubError(text + said)


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        match = _NEXT.search(part)
        if match:
            return match.group(1)
    return None


# -- create or update --------------------------------------------------------------------
def upsert_comment(client: GitHub, body: str, stamp: RunStamp | None) -> Outcome:
    """Create the sticky comment once, then only ever update it, and only forward in time."""
    ours = next((c for c in client.comments() if is_ours(c)), None)
    new_body = stamped(body, stamp)
    if ours is None:
        created = client.create(new_body)
        return Outcome("created", created.get("id", 0), created.get("html_url", ""))
    existing = ours.get("body") or ""
    theirs = RunStamp.find(existing)
    url = ours.get("html_url", "")
    if stamp is not None and theirs is not None and theirs.order > stamp.order:
        return Outcome("kept-newer", ours["id"], url)
    if without_stamp(existing) == without_stamp(new_body):
        return Outcome("unchanged", ours["id"], url)
    updated = client.update(ours["id"], new_body)
    return Outcome("updated", ours["id"], updated.get("html_url", url))


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
def add_comment_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `tokenbudget comment` on the `tokenbudget` command's subparsers."""
    parser = subparsers.add_parser(
        "comment",
        help="create or update the sticky token-budget comment on a pull request",
        description="Create or update the one token-budget comment on a pull request. Token "
        "from GITHUB_TOKEN; API at GITHUB_API_URL (default https://api.github.com).",
    )
    parser.add_argument(
        "--body", type=Path, default=DEFAULT_BODY, metavar="PATH",
        help=f"Markdown to post (default: {DEFAULT_BODY})",
    )  # fmt: skip
    parser.add_argument(
        "--repo", default=None, metavar="OWNER/NAME", help="default: GITHUB_REPOSITORY"
    )
    parser.add_argument(
        "--pr", type=int, default=None, metavar="N",
        help="pull request number (default: from the event at GITHUB_EVENT_PATH)",
    )  # fmt: skip
    parser.add_argument(
        "--run", type=_run_arg, default=None, metavar="ID[.ATTEMPT]",
        help="the workflow run this report comes from, so an older run never overwrites a "
        "newer one (default: GITHUB_RUN_ID.GITHUB_RUN_ATTEMPT; in a workflow_run job pass "
        "the triggering run's)",
    )  # fmt: skip
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
    try:
        outcome = _comment(args)
    except TokenBudgetError as err:
        print(f"tokenbudget comment: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    said = {
        "created": "created the token-budget comment",
        "updated": "updated the token-budget comment",
        "unchanged": "the token-budget comment is already up to date",
        "kept-newer": "kept the token-budget comment: a newer workflow run wrote it",
    }[outcome.action]
    print(f"tokenbudget comment: {said} {outcome.url}".rstrip())
    return EXIT_OK


def _comment(args: argparse.Namespace) -> Outcome:
    env = os.environ
    token = env.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise GitHubError(
            "no GitHub token: set GITHUB_TOKEN (in a workflow: "
            "`env: {GITHUB_TOKEN: ${{ github.token }}}`)"
        )
    repo = args.repo or env.get("GITHUB_REPOSITORY", "")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise GitHubError(
            f"not a repository: {repo!r}; pass --repo OWNER/NAME or set GITHUB_REPOSITORY"
            if repo
            else "no repository: pass --repo OWNER/NAME or set GITHUB_REPOSITORY"
        )
    pr = args.pr if args.pr is not None else pr_number(env.get("GITHUB_EVENT_PATH"))
    body_path: Path = args.body
    try:
        body = body_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(
            "no comment body here: run `pytest --token-budget` first (it writes "
            ".token-budget/report.md) or pass --body PATH",
            path=body_path,
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"cannot read the comment body: {err}", path=body_path) from None
    refuse_if_secret(body, path=str(body_path))
    client = GitHub(token, api=env.get("GITHUB_API_URL") or DEFAULT_API, repo=repo, pr=pr)
    run = getattr(args, "run", None)
    sha = getattr(args, "sha", None)
    stamp = RunStamp(*run, sha or env.get("GITHUB_SHA", "")) if run else RunStamp.from_env(env)
    if stamp is not None and sha:
        stamp = RunStamp(stamp.run_id, stamp.attempt, sha)
    return upsert_comment(client, body, stamp)
