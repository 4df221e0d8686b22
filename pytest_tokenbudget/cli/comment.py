"""`tokenbudget comment`: post report.md as the sticky pull-request comment (ci/comment.py).

Everything comes from GitHub Actions' environment unless given: the token (GITHUB_TOKEN,
never an option), the API (GITHUB_API_URL), the repository, the pull request (from the
event), the run and commit. The body may come from a fork's artifact: it is read bounded
and refused if it holds a secret. Whatever goes wrong is said with the token masked.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_tokenbudget.ci.comment import Outcome, RunStamp, pr_number, upsert_comment
from pytest_tokenbudget.ci.github import DEFAULT_API, GitHub, GitHubError, api_url, shown
from pytest_tokenbudget.cli.command import ExitCode
from pytest_tokenbudget.errors import ReportError, TokenBudgetError
from pytest_tokenbudget.files.input_files import REPORT_MAX_BYTES, read_bounded_text
from pytest_tokenbudget.providers.scrub import refuse_if_secret

if TYPE_CHECKING:
    from pytest_tokenbudget.cli.command import Subparsers

DEFAULT_BODY = Path(".token-budget/report.md")


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
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
    return parser


def _run_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)(?:\.(\d+))?", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a run id (ID or ID.ATTEMPT): {text!r}")
    return int(match.group(1)), int(match.group(2) or 1)


def run(args: argparse.Namespace) -> ExitCode:
    token = os.environ.get("GITHUB_TOKEN", "").strip()
    try:
        outcome = _post(args)
    except TokenBudgetError as err:
        # main prints it: with the token, and anything shaped like one, masked
        raise TokenBudgetError(shown(str(err), token, limit=2000)) from None
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
    return ExitCode.OK


def _post(args: argparse.Namespace) -> Outcome:
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
