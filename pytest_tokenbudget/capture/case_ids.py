"""Which case a test item is: one case, and one cassette path, per test item.

A test parametrized over `budget_case` is the case it was given (`refund_question`), with
any other parametrization of the test after it (`refund_question[haiku]`). Any other
marked test is its node id as a path: `tests/test_chat.py::TestReply::test_one[a]` is the
case `tests/test_chat/TestReply.test_one[a]`, whose cassette is
`<cassettes>/<endpoint>/tests/test_chat/TestReply.test_one[a].yaml`. Node ids are unique,
so parametrized items and same-named tests in other modules or classes never share a
cassette; what the file system cannot hold is replaced by `_`, and a collision that leaves
is an error that names both tests.

Before one case per test item, such a test was its function's name alone
(`test_one`); `legacy_moves` finds cassettes still at that path and writes the command
that moves them.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_tokenbudget.providers.scrub import replace_keys

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+,@\[\]-]")
_LONGEST = 120  # characters of one path segment; most file systems stop at 255 bytes


@dataclass(frozen=True)
class ItemCase:
    """One marked test item as a case of an endpoint."""

    endpoint: str
    case_id: str
    nodeid: str
    legacy_id: str | None  # where its cassette was before one case per item; None: same


def cassette_path(cassettes: Path, endpoint: str, case_id: str) -> Path:
    """Where the plugin keeps a case's own cassette."""
    return cassettes / endpoint / f"{case_id}.yaml"


def budget_case_id(case_id: str, idlist: Sequence[str]) -> str:
    """A `budget_case` item: its case, then the ids of the test's other parameters."""
    others = list(idlist)
    if case_id in others:
        others.remove(case_id)
    if not others:
        return case_id
    return f"{case_id}[{_segment('-'.join(others))}]"


def test_case_id(nodeid: str) -> str:
    """Any other marked item: its node id as a relative path, each segment file-safe."""
    module, _, rest = nodeid.partition("::")
    module = module.removesuffix(".py")
    parts = [p for p in module.split("/") if p] + [rest.replace("::", ".") or "test"]
    return "/".join(_segment(part) for part in parts)


def _segment(text: str) -> str:
    text = replace_keys(text, _redacted)  # a key in a parameter id: never in a file name
    safe = _UNSAFE.sub("_", text)
    if set(safe) <= {"."}:  # "." and ".." would leave the cassette directory
        safe = safe.replace(".", "_")
    if len(safe) > _LONGEST:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        safe = f"{safe[: _LONGEST - 13]}-{digest}"
    return safe


def _redacted(key: str) -> str:
    return "redacted-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def collisions(cases: Iterable[ItemCase]) -> dict[str, str]:
    """For each item whose case another item of its endpoint shares: the message."""
    seen: dict[tuple[str, str], list[ItemCase]] = {}
    for case in cases:  # casefolded: one file on macOS and Windows
        seen.setdefault((case.endpoint, case.case_id.casefold()), []).append(case)
    return {
        case.nodeid: (
            f"tests {' and '.join(c.nodeid for c in same)} are both case {case.case_id!r} of "
            f"endpoint {case.endpoint!r}: they would share one cassette and one line of the "
            "report. Give one of them an endpoint of its own (or a parameter id or test name "
            "that differs by more than case and punctuation)"
        )
        for same in seen.values()
        if len(same) > 1
        for case in same
    }


def legacy_moves(cases: Iterable[ItemCase], cassettes: Path) -> dict[str, str]:
    """For each item whose cassette is still at its pre-per-item path: the message (one
    for all of them, with the command that moves them).

    A legacy cassette claimed by one item is moved to that item's path; one that several
    items shared (parametrized, same-named) held only the last of them: it is removed and
    those items re-recorded.
    """
    cases = list(cases)
    live = {cassette_path(cassettes, case.endpoint, case.case_id) for case in cases}
    claims: dict[Path, list[ItemCase]] = {}
    for case in cases:
        if case.legacy_id is None:
            continue
        old = cassette_path(cassettes, case.endpoint, case.legacy_id)
        if old in live:  # another item's cassette today, not a leftover
            continue
        if old.is_file() and not cassette_path(cassettes, case.endpoint, case.case_id).exists():
            claims.setdefault(old, []).append(case)
    if not claims:
        return {}
    moves, shared = [], []
    for old, owners in claims.items():
        if len(owners) == 1:
            moves.append((old, cassette_path(cassettes, owners[0].endpoint, owners[0].case_id)))
        else:
            shared.append((old, owners))
    lines = [
        (
            f"{len(claims)} cassette(s) are at the path they had before each test item became "
            "its own case (parametrized items and same-named tests used to share one)."
        )
    ]
    if moves:
        folders = sorted({str(new.parent) for _, new in moves})
        command = " && ".join(
            [f"mkdir -p {' '.join(shlex.quote(f) for f in folders)}"]
            + [f"mv {shlex.quote(str(old))} {shlex.quote(str(new))}" for old, new in moves]
        )
        lines.append(f"Move them (then commit the result): {command}")
    for old, owners in shared:
        nodeids = " ".join(shlex.quote(o.nodeid) for o in owners)
        lines.append(
            f"{old} was shared by {len(owners)} tests and holds only the last one's calls: "
            f"rm {shlex.quote(str(old))} && pytest --token-budget --token-budget-record=once "
            f"{nodeids}"
        )
    message = "\n".join(lines)
    return {owner.nodeid: message for owners in claims.values() for owner in owners}
