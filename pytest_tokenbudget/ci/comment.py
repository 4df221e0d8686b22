"""The one sticky pull-request comment: found, created once, then only updated forward.

Our comment is the first one with the marker *written by the token's own identity*; it is
updated in place, the call skipped when nothing changed, and an older workflow run never
overwrites what a newer one wrote (the run stamp beside the marker). The API calls are
ci/github.py's; the command line around it is cli/comment.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_tokenbudget.ci.github import GitHub, GitHubError, is_int
from pytest_tokenbudget.report.markdown import MARKER, cap_markdown

GITHUB_LIMIT = 65_536
_STAMP = re.compile(r"<!-- pytest-tokenbudget run=(\d+)\.(\d+)(?: sha=([0-9A-Za-z]*))? -->\n?")


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
        if author.wrote(comment) and is_int(comment.get("id")):
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
