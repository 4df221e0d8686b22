"""A finding: what the prompt-cache doctor (cache/doctor.py) or the cost checklist
(cache/checklist.py) found wrong with an endpoint's requests, where, in which cases, and
the fix. Codes are stable: report.json, annotations and users' tooling key on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# code -> level, in the order findings are listed within an endpoint
PROMPT_CACHE_CODES = {
    "volatile-prefix": "error",
    "volatile-after-breakpoint": "note",
    "prefix-below-minimum": "error",
    "too-many-breakpoints": "error",
    "breakpoint-never-read": "warning",
}
# The cost checklist: never errors, so `cache_lint: error` fails no endpoint for them.
CHECKLIST_CODES = {
    "unused-tools": "warning",
    "history-unbounded": "warning",
    "duplicate-requests": "warning",
}
CODES = {**PROMPT_CACHE_CODES, **CHECKLIST_CODES}


@dataclass(frozen=True)
class CacheFinding:
    code: str
    endpoint: str
    where: str  # the path in the request: "system[0].text", "tools[3]"
    message: str  # one line, names the values and the cases
    fix: str
    cases: tuple[str, ...] = ()

    @property
    def level(self) -> str:
        return CODES[self.code]

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "level": self.level,
            "endpoint": self.endpoint,
            "where": self.where,
            "cases": list(self.cases),
            "message": self.message,
            "fix": self.fix,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheFinding:
        return cls(
            data["code"],
            data["endpoint"],
            data["where"],
            data["message"],
            data["fix"],
            tuple(data["cases"]),
        )
