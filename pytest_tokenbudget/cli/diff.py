"""`tokenbudget diff BASE HEAD`: two report.json files compared outside pytest.

The comparison itself is report/diff.py; this is the command line around it and the
formats it prints (markdown, json, GitHub annotations, GitLab Code Quality). In CI
either file may be a fork's artifact: they are read checked (report/reader.py) and every
format escapes what it prints for its reader and for the CI log it lands in.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from pytest_tokenbudget.cli.command import ExitCode
from pytest_tokenbudget.errors import TokenBudgetError
from pytest_tokenbudget.modes import parse_gate
from pytest_tokenbudget.plain_text import one_line, safe_json
from pytest_tokenbudget.report.diff import compare, diff_json
from pytest_tokenbudget.report.json_io import report_from_json
from pytest_tokenbudget.report.reader import load_report

if TYPE_CHECKING:
    from pytest_tokenbudget.cli.command import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    """Register `tokenbudget diff BASE HEAD` on the `tokenbudget` command's subparsers."""
    parser = subparsers.add_parser(
        "diff",
        help="compare two report.json files (baseline, then head)",
        description="Compare a baseline report.json with a head report.json. Exit 0; 1 when "
        "a budget is broken or the regression gate trips; 2 on bad input.",
    )
    parser.add_argument("base", metavar="BASE", help="baseline report.json (the base branch's)")
    parser.add_argument("head", metavar="HEAD", help="head report.json (this change's)")
    parser.add_argument(
        "--format",
        choices=("markdown", "json", "github", "gitlab"),
        default="markdown",
        help="markdown: the PR comment; json: the diff as data; github: workflow-command "
        "annotations (and the comment appended to $GITHUB_STEP_SUMMARY); gitlab: a Code "
        "Quality report",
    )
    parser.add_argument(
        "--max-regression",
        type=parse_gate,
        default=None,
        metavar="PCT",
        help="fail when a metric grows more than PCT%% over the baseline, even within budget",
    )
    parser.add_argument(
        "--warn",
        type=parse_gate,
        default=None,
        metavar="PCT",
        help="warn when a metric grows more than PCT%% (default: half of --max-regression)",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="PATH",
        help="token_budgets.yml as a path from the repository root, for annotations "
        "(default: the head report's config)",
    )
    return parser


def run(args: argparse.Namespace) -> ExitCode:
    try:
        base = report_from_json(load_report(args.base))
        head = report_from_json(load_report(args.head))
    except TokenBudgetError as err:
        # either file may be a fork's artifact: what it makes us say stays on one line
        raise TokenBudgetError(one_line(err)) from None
    diff = compare(base, head, max_regression_pct=args.max_regression, warn_pct=args.warn)
    config = args.config or diff.config or "token_budgets.yml"
    if args.format == "json":
        print(safe_json(diff_json(diff)))
    elif args.format == "github":
        from pytest_tokenbudget.ci.annotations import append_step_summary, github_annotations
        from pytest_tokenbudget.report.markdown import render_diff_markdown

        for line in github_annotations(diff, config):
            print(line)
        append_step_summary(render_diff_markdown(diff))
    elif args.format == "gitlab":
        from pytest_tokenbudget.ci.annotations import gitlab_code_quality

        print(safe_json(gitlab_code_quality(diff, config)))
    else:
        from pytest_tokenbudget.report.markdown import render_diff_markdown

        sys.stdout.write(render_diff_markdown(diff))
    return ExitCode.FAILED if diff.failed else ExitCode.OK
