"""Findings on the lines of token_budgets.yml: GitHub workflow commands, GitLab Code Quality.

Both take a report dict (broken budgets only) or a `Diff` (broken budgets,
tripped regression gates and warn-band growth). A finding sits on the line of
the budget key of its metric, or on the endpoint's line when the metric has no
budget.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from . import formatting as fmt
from .diff import BUDGET, REGRESSION, WARN, Diff

MAX_PER_KIND = 10  # GitHub shows at most 10 error and 10 warning annotations per step


@dataclass(frozen=True)
class Finding:
    kind: str  # budget | regression | warn
    severity: str  # error | warning
    endpoint: str
    key: str  # the budget key, or the metric when it has no budget
    line: int | None
    message: str


def findings(report_or_diff: dict[str, Any] | Diff) -> list[Finding]:
    if isinstance(report_or_diff, Diff):
        return _diff_findings(report_or_diff)
    return _report_findings(report_or_diff)


def _report_findings(report: dict[str, Any]) -> list[Finding]:
    out = []
    for name, ep in report.get("endpoints", {}).items():
        for b in ep.get("budgets", []):
            if b.get("ok") is False:
                message = (
                    f"{b['metric']} = {fmt.metric(b['metric'], b['actual'])} breaks "
                    f"{b['key']}: {fmt.metric(b['metric'], b['limit'])}"
                    + _cases(b.get("drivers", []))
                )
                out.append(Finding(BUDGET, "error", name, b["key"], b.get("line"), message))
    return out


def _diff_findings(diff: Diff) -> list[Finding]:
    out = []
    for endpoint, m in diff.rows():
        if m.status not in (BUDGET, REGRESSION, WARN):
            continue
        key = m.budget.key if m.budget is not None else m.metric
        line = m.budget.line if m.budget is not None and m.budget.line else endpoint.line
        head = fmt.metric(m.metric, m.head)
        was = ""
        if m.base is not None and m.pct is not None:
            was = f" ({fmt.metric(m.metric, m.base)} on the baseline, {m.pct:+.1f}%)"
        elif m.base is not None:
            was = f" ({fmt.metric(m.metric, m.base)} on the baseline)"
        cases = [d.case_id for d in m.drivers] or (list(m.budget.drivers) if m.budget else [])
        if m.status == BUDGET and m.budget is not None:
            message = (
                f"{m.metric} = {head} breaks {key}: {fmt.metric(m.metric, m.budget.limit)}{was}"
            )
        elif m.status == REGRESSION:
            message = (
                f"{m.metric} = {head}{was} got worse by more than the "
                f"{endpoint.max_regression_pct:g}% regression gate"
            )
        else:
            message = f"{m.metric} = {head}{was} got worse by more than {endpoint.warn_pct:g}%" + (
                f" (the regression gate is {endpoint.max_regression_pct:g}%)"
                if endpoint.max_regression_pct is not None
                else ""
            )
        severity = "warning" if m.status == WARN else "error"
        out.append(Finding(m.status, severity, endpoint.name, key, line, message + _cases(cases)))
    return out


def _cases(case_ids: list[str] | tuple[str, ...]) -> str:
    return f"; driven by cases: {', '.join(case_ids[:3])}" if case_ids else ""


# -- GitHub Actions ----------------------------------------------------------------------
def escape_data(text: str) -> str:
    """Message text of a workflow command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (file=, title=) of a workflow command."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(
    report_or_diff: dict[str, Any] | Diff,
    config_path: str,
    cache_findings: list[dict[str, Any]] | None = None,
) -> list[str]:
    """`::error`/`::warning` workflow commands on the budget lines of config_path.

    config_path is token_budgets.yml as a path from the repository root, which is
    what GitHub needs to place the annotation on the file in the pull request. A
    broken min_cache_hit_rate also names the prompt-cache finding that explains it.
    """
    found = [_with_cause(f, cache_findings or []) for f in findings(report_or_diff)]
    lines: list[str] = []
    left: dict[str, int] = {}
    for severity in ("error", "warning"):
        mine = [f for f in found if f.severity == severity]
        for f in mine[:MAX_PER_KIND]:
            props = [f"file={escape_property(config_path)}"]
            if f.line:
                props.append(f"line={f.line}")
            props.append(f"title={escape_property(f'Token budget: {f.endpoint} {f.key}')}")
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


def _with_cause(finding: Finding, cache_findings: list[dict[str, Any]]) -> Finding:
    if finding.key != "min_cache_hit_rate" or finding.severity != "error":
        return finding
    causes = [
        c for c in cache_findings if c["endpoint"] == finding.endpoint and c["level"] == "error"
    ]
    if not causes:
        return finding
    cause = causes[0]
    message = f"{finding.message}. Prompt cache: {cause['message']}. Fix: {cause['fix']}"
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


def gitlab_code_quality(
    report_or_diff: dict[str, Any] | Diff, config_path: str
) -> list[dict[str, Any]]:
    """A GitLab Code Quality report (artifacts:reports:codequality) for the same findings."""
    return [
        {
            "description": f"Token budget: {f.endpoint} {f.key}: {f.message}",
            "check_name": f"token-budget/{f.key}",
            "fingerprint": fingerprint(f.endpoint, f.key),
            "severity": "major" if f.severity == "error" else "minor",
            "location": {"path": config_path, "lines": {"begin": f.line or 1}},
        }
        for f in findings(report_or_diff)
    ]


# -- the terminal ------------------------------------------------------------------------
def terminal_lines(diff: Diff, config_path: str) -> list[str]:
    """Regressions and warnings for pytest's summary (broken budgets are printed already)."""
    lines = []
    for f in _diff_findings(diff):
        if f.kind == BUDGET:
            continue  # the report's own findings name broken budgets
        where = f" ({config_path}:{f.line})" if f.line else ""
        tag = "FAIL" if f.severity == "error" else "warn"
        lines.append(f"{tag} {f.endpoint}: {f.message}{where}")
    return lines
