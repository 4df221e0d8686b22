"""Every case accounted for: the cases a run could not measure, why, and the fix.

In: what happened to each case (samples.CaseRun), what the capture learnt about its
recording (missing, stale, unreadable) and how many calls it made. Out: an
`UnmeasuredCase` per case that cannot count, grouped into one line per cause, and one
command that re-records every case whose recording is the cause. A case that cannot
count fails its endpoint: metrics over the others are not the endpoint's.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_tokenbudget.measure.samples import CaseRun

# Why a case was not measured. The first three are its recording's fault: re-recording fixes them.
MISSING, STALE, UNREADABLE, ERROR, FAILED = "missing", "stale", "unreadable", "error", "failed"
RECORDING_KINDS = (MISSING, STALE, UNREADABLE)
KINDS = (*RECORDING_KINDS, ERROR, FAILED)
NAMED = 10  # cases named in one line; report.json lists them all
# fixture.finish_case's error for requests with no recording: the kind says it already
_MISSES = re.compile(r"\d+ request\(s\) had no recording")


@dataclass(frozen=True)
class UnmeasuredCase:
    case: str
    test: str  # pytest node id
    kind: str  # one of KINDS
    message: str  # this case's own detail (the error, or what its test did)


def unmeasured(run: CaseRun, recording: str | None, calls: int) -> UnmeasuredCase | None:
    """Why this case cannot count, or None when it was measured whole.

    `recording` is what the capture said of its recording (MISSING, STALE or
    UNREADABLE), `calls` the API calls it made before it ended.
    """
    if run.outcome == "passed" and not run.errors and recording is None:
        return None
    detail = "; ".join(e for e in run.errors if not _MISSES.fullmatch(e))
    if recording in RECORDING_KINDS:
        return UnmeasuredCase(run.case_id, run.test_id, recording, detail)
    if run.errors:
        return UnmeasuredCase(run.case_id, run.test_id, ERROR, detail)
    if calls:
        what = f"failed after {calls} API call{'s' if calls != 1 else ''}"
    else:
        what = "failed before its first API call"
    return UnmeasuredCase(run.case_id, run.test_id, FAILED, what)


_CAUSE = {
    MISSING: "no recording",
    STALE: "a stale recording (a request changed since it was recorded)",
    UNREADABLE: "a recording that cannot be read",
    ERROR: "an error while measuring them",
    FAILED: "a failed test (its calls may be incomplete)",
}
_SHORT = {
    MISSING: "no recording",
    STALE: "stale recording",
    UNREADABLE: "unreadable recording",
    ERROR: "measurement error",
    FAILED: "failed test",
}


def _names(cases: Sequence[UnmeasuredCase]) -> str:
    """The cases, with the first line of each one's message when it says more than the kind
    (report.json's unmeasured_cases has the whole message)."""
    shown = [
        f"{c.case} ({c.message.splitlines()[0]})" if c.message.strip() else c.case
        for c in cases[:NAMED]
    ]
    more = f" and {len(cases) - NAMED} more" if len(cases) > NAMED else ""
    return ", ".join(shown) + more


def by_kind(cases: Iterable[UnmeasuredCase]) -> dict[str, list[UnmeasuredCase]]:
    out: dict[str, list[UnmeasuredCase]] = {}
    for case in cases:
        out.setdefault(case.kind, []).append(case)
    return {kind: out[kind] for kind in KINDS if kind in out}


def headline(cases: Sequence[UnmeasuredCase], ran: int) -> str:
    """'14 of 14 cases not measured: stale recording' (one cause), or its mix."""
    groups = by_kind(cases)
    if len(groups) == 1:
        cause = _SHORT[next(iter(groups))]
    else:
        cause = ", ".join(f"{len(found)} {_SHORT[kind]}" for kind, found in groups.items())
    return f"{len(cases)} of {ran} cases not measured ({cause})"


def cause_lines(cases: Sequence[UnmeasuredCase]) -> list[str]:
    """One line per cause, naming its cases (with their own message where it says more)."""
    lines = []
    for kind, found in by_kind(cases).items():
        n = len(found)
        lead = f"{n} case{'s' if n != 1 else ''} with {_CAUSE[kind]}"
        lines.append(f"{lead}: {_names(found)}")
    return lines


def fix_command(cases: Iterable[UnmeasuredCase]) -> str:
    """One command that re-records every case whose recording is the cause, or ''."""
    tests = list(dict.fromkeys(c.test for c in cases if c.kind in RECORDING_KINDS))
    if not tests:
        return ""
    only_missing = all(c.kind == MISSING for c in cases if c.kind in RECORDING_KINDS)
    mode = "once" if only_missing else "all"
    return f"pytest --token-budget --token-budget-record={mode} " + " ".join(
        shlex.quote(t) for t in tests
    )


def fix_what(cases: Sequence[UnmeasuredCase]) -> str:
    """What fix_command does, said once for the whole run."""
    recording = [c for c in cases if c.kind in RECORDING_KINDS]
    n = len(recording)
    if not n:
        return ""
    text = (
        f"re-record the {n} case{'s' if n != 1 else ''} whose recording is missing, stale or "
        "unreadable (needs ANTHROPIC_API_KEY)"
    )
    if any(c.kind == STALE for c in recording):
        text += (
            "; for stale ones only, --token-budget-count in place of --token-budget-record=all "
            "re-counts their input for free and keeps the recorded output"
        )
    return text
