"""The findings of a run in CI: GitHub workflow commands and job summary, GitLab Code Quality.

Both take the run's `Report` (every failure: cases not measured, problems, broken
budgets and, with a baseline, the comparison's regressions and warn-band growth) or a
`Diff` alone (`tokenbudget diff`); what is wrong and on which line of token_budgets.yml
is report/findings.py's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from pytest_tokenbudget.plain_text import one_line
from pytest_tokenbudget.report.findings import Finding, Source, findings, line_number
from pytest_tokenbudget.report.model import PromptCacheFinding, Report

MAX_PER_KIND = 10  # GitHub shows at most 10 error and 10 warning annotations per step
MAX_DESCRIPTION = 2000  # characters of a GitLab finding's description; the rest is in the report
MAX_NAME = 200  # characters of an endpoint or key in a title or check name


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- GitHub Actions ----------------------------------------------------------------------
# Every value in a workflow command is escaped (GitHub's rules: the message as data, the
# file and title as properties) and the line is an int we checked, so a value from a
# fork's report.json cannot end the command and start another (`::add-mask::`).
def escape_data(text: str) -> str:
    """Message text of a workflow command (other control characters and `##[` as
    plain_text writes them: nothing in an annotation's text is read as a command)."""
    return one_line(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def escape_property(text: str) -> str:
    """A property value (file=, title=) of a workflow command."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(
    report_or_diff: Source,
    config_path: str,
    cache_findings: Sequence[PromptCacheFinding] | None = None,
) -> list[str]:
    """`::error`/`::warning` workflow commands on the budget lines of config_path.

    config_path is token_budgets.yml as a path from the repository root, which is
    what GitHub needs to place the annotation on the file in the pull request. A
    broken min_cache_hit_rate also names the prompt-cache finding that explains it.
    """
    if cache_findings is None and isinstance(report_or_diff, Report):
        cache_findings = report_or_diff.findings
    found = [_with_cause(f, cache_findings or ()) for f in findings(report_or_diff)]
    lines: list[str] = []
    left: dict[str, int] = {}
    for severity in ("error", "warning"):
        mine = [f for f in found if f.severity == severity]
        for f in mine[:MAX_PER_KIND]:
            props = [f"file={escape_property(config_path)}"]
            line = line_number(f.line)
            if line is not None:
                props.append(f"line={line}")
            title = " ".join(
                filter(
                    None, ("Token budget:", _short(f.endpoint, MAX_NAME), _short(f.key, MAX_NAME))
                )
            )
            props.append(f"title={escape_property(title)}")
            lines.append(f"::{severity} {','.join(props)}::{escape_data(f.message)}")
        if len(mine) > MAX_PER_KIND:
            left[severity] = len(mine) - MAX_PER_KIND
    if left:
        more = " and ".join(
            f"{n} more {'errors' if kind == 'error' else 'warnings'}" for kind, n in left.items()
        )
        lines.append(
            f"::notice title={escape_property('Token budget')}::"
            + escape_data(f"{more} not annotated (GitHub shows 10 of each): see the job summary")
        )
    return lines


def _with_cause(finding: Finding, cache_findings: Sequence[PromptCacheFinding]) -> Finding:
    if finding.key != "min_cache_hit_rate" or finding.severity != "error":
        return finding
    causes = [c for c in cache_findings if c.endpoint == finding.endpoint and c.level == "error"]
    if not causes:
        return finding
    cause = causes[0]
    message = f"{finding.message}. Prompt cache: {cause.message}. Fix: {cause.fix}"
    return Finding(
        finding.kind, finding.severity, finding.endpoint, finding.key, finding.line, message
    )


def append_step_summary(markdown: str) -> bool:
    """Add markdown to the job summary page when running in GitHub Actions."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return True


# -- GitLab ------------------------------------------------------------------------------
def fingerprint(endpoint: str, key: str) -> str:
    """Stable across runs, so GitLab can tell a finding that persists from a new one."""
    return hashlib.sha256(f"pytest-tokenbudget\0{endpoint}\0{key}".encode()).hexdigest()


def gitlab_code_quality(report_or_diff: Source, config_path: str) -> list[dict[str, Any]]:
    """A GitLab Code Quality report (artifacts:reports:codequality) for the same findings.

    JSON escapes the text; the fields keep the types GitLab's schema wants (a line of 1
    or more) and names and descriptions a length GitLab's widget shows."""
    return [
        {
            "description": _short(
                f"Token budget: {f.endpoint} {f.key}: {f.message}", MAX_DESCRIPTION
            ),
            "check_name": f"token-budget/{_short(f.key, MAX_NAME)}",
            "fingerprint": fingerprint(f.endpoint, f.key),
            "severity": "major" if f.severity == "error" else "minor",
            "location": {"path": str(config_path), "lines": {"begin": line_number(f.line) or 1}},
        }
        for f in findings(report_or_diff)
    ]
