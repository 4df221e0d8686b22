"""Why a recording no longer matches: a short diff of the request, and the commands that fix it."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_tokenbudget.capture.recording import Capture, Miss

SNIPPET = 60


class MissedCase(Protocol):
    """What the message reads of a case whose requests had no recording (the plugin's
    CaseCapture): its endpoint and case, its capture (for the cassette's path), its misses."""

    @property
    def endpoint(self) -> str: ...

    @property
    def case_id(self) -> str: ...

    @property
    def capture(self) -> Capture | None: ...

    @property
    def misses(self) -> Sequence[Miss]: ...


def _load(body: bytes | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _first_difference(a: str, b: str) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, i - 20)
    return f"at character {i}: {a[start : start + SNIPPET]!r} → {b[start : start + SNIPPET]!r}"


def _tool_names(tools: Any) -> list[str]:
    return [t.get("name", "?") for t in tools or [] if isinstance(t, dict)]


def describe_change(recorded: Any, sent: Any) -> list[str]:
    """One line per part of the request that changed: model, system, tools, messages, others."""
    if not isinstance(recorded, dict) or not isinstance(sent, dict):
        return ["the request body is not the recorded one"]
    lines = []
    for key in sorted(set(recorded) | set(sent), key=lambda k: (k != "model", k)):
        old, new = recorded.get(key), sent.get(key)
        if old == new:
            continue
        if key == "system" and isinstance(old, str) and isinstance(new, str):
            lines.append(f"system prompt changed {_first_difference(old, new)}")
        elif key == "tools":
            before, after = _tool_names(old), _tool_names(new)
            added = sorted(set(after) - set(before))
            removed = sorted(set(before) - set(after))
            detail = (
                ", ".join(
                    [f"added {', '.join(added)}"] * bool(added)
                    + [f"removed {', '.join(removed)}"] * bool(removed)
                )
                or "a tool definition changed"
            )
            lines.append(f"tools: {detail}")
        elif key == "messages" and isinstance(old, list) and isinstance(new, list):
            if len(old) != len(new):
                lines.append(f"messages: {len(old)} recorded, {len(new)} sent")
            else:
                index = next(i for i, (x, y) in enumerate(zip(old, new, strict=True)) if x != y)
                lines.append(f"messages[{index}] changed")
        elif isinstance(old, (str, int, float, bool)) and isinstance(new, (str, int, float, bool)):
            lines.append(f"{key}: {old!r} → {new!r}")
        elif old is None:
            lines.append(f"{key}: added")
        elif new is None:
            lines.append(f"{key}: removed")
        else:
            lines.append(f"{key} changed")
    return lines or ["only formatting differs"]


def describe_misses(state: MissedCase, nodeid: str) -> str:
    capture = state.capture
    assert capture is not None
    out = [
        f"pytest-tokenbudget: endpoint {state.endpoint!r}, case {state.case_id!r}: "
        f"{len(state.misses)} request(s) not in the recording {capture.path}"
    ]
    for miss in state.misses:
        out.append(f"  {miss.method} {miss.url}")
        if miss.closest is None:
            out.append("    no recorded request to compare with (missing cassette or extra call)")
            continue
        for line in describe_change(_load(miss.closest), _load(miss.body)):
            out.append(f"    {line}")
    exists = capture.path.exists()
    out.append("To fix it, either:")
    if exists:
        out.append(
            "  re-count its input (free, keeps the recorded output; needs ANTHROPIC_API_KEY):\n"
            f"    pytest --token-budget --token-budget-count {shlex.quote(nodeid)}"
        )
    out.append(
        "  re-record this case (real generation; needs ANTHROPIC_API_KEY):\n"
        f"    pytest --token-budget --token-budget-record={'all' if exists else 'once'} {shlex.quote(nodeid)}"
    )
    return "\n".join(out)
