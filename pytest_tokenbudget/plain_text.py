"""Values in the plain lines we print (terminal, stderr, CI logs): one line, never a command.

GitHub's runner reads every line of a step's output for workflow commands: `::name::`
at the start of a line (after spaces), and the older `##[name]` anywhere in it. A model
name, a case id or a key of a fork's report.json printed raw could end our line and start
its own (`\\n::add-mask::...`), or carry `##[stop-commands]x` mid-line and silence every
annotation after it. So line breaks and other control characters (ANSI escapes, bidi
overrides) are shown as escapes, `##[` is broken, and a line that would start with `::`
is prefixed. Annotations themselves are written by ci/annotations.py, escaped its own way.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 and C1 controls but tab, line and paragraph separators, bidi embeddings and isolates,
# lone surrogates (JSON can hold them; printing one raises) and the two noncharacters YAML
# refuses.
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r"}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _shown(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def controls_shown(value: Any) -> str:
    """The value with its control characters written as escapes (`\\n`, `\\x1b`)."""
    return _UNSAFE.sub(lambda m: _shown(m.group()), str(value))


def one_line(value: Any) -> str:
    """The value as text on one line that no CI runner reads as a command."""
    return controls_shown(value).replace("##[", "##\\[")


def safe_line(line: str) -> str:
    """A whole line we print: `one_line`, and never starting with `::`."""
    line = one_line(line)
    return "\\" + line if line.lstrip().startswith("::") else line


def safe_lines(lines: list[str]) -> list[str]:
    """Lines of a report that may hold a multi-line message (a pricing snippet): each of
    its lines kept as a line, and each `safe_line`, so none can be a command."""
    return [safe_line(part) for line in lines for part in line.split("\n")]


def quoted(value: Any) -> str:
    """A value in a message, quoted when it is not a plain word (JSON's escapes)."""
    text = str(value)
    if _PLAIN_KEY.fullmatch(text):
        return text
    return one_line(json.dumps(text))


def key_path(parts: tuple[str | int, ...]) -> str:
    """Where a value sits in a JSON document: `endpoints.chat.budgets[0].limit`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{quoted(part)}]"
    return out


def safe_json(data: Any, *, indent: int | None = 2) -> str:
    """JSON for stdout: ASCII, and `##[` inside a string written `##\\u005b` (the same value)."""
    return json.dumps(data, indent=indent, ensure_ascii=True).replace("##[", "##\\u005b")
