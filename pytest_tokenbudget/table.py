"""The budget table printed in pytest's terminal summary."""

from __future__ import annotations

from typing import Any

from . import formatting as fmt

COLUMNS = (
    ("endpoint", "<"), ("calls", ">"), ("cases", ">"), ("p95 in", ">"), ("p95 out", ">"),
    ("escalation", ">"), ("cache hit", ">"), ("$/request", ">"), ("$/month", ">"), ("status", "<"),
)  # fmt: skip


def _row(name: str, ep: dict[str, Any]) -> list[str]:
    m = ep.get("metrics", {})
    return [
        name,
        str(ep.get("calls", 0)),
        str(ep.get("cases", 0)),
        *fmt.summary_cells(m),
        ep["status"].upper(),
    ]


def render_table(report: dict[str, Any]) -> list[str]:
    rows = [[c for c, _ in COLUMNS]] + [_row(n, ep) for n, ep in report["endpoints"].items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(w) if align == "<" else cell.rjust(w)
            for cell, w, (_, align) in zip(row, widths, COLUMNS)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render_findings(report: dict[str, Any]) -> list[str]:
    """Broken budgets (with the cases that drive them), then problems and warnings."""
    lines: list[str] = []
    config = report.get("config", "token_budgets.yml")
    for name, ep in report["endpoints"].items():
        for b in ep.get("budgets", []):
            if b["ok"] is False:
                lines.append(
                    f"FAIL {name}: {b['metric']} = {fmt.metric(b['metric'], b['actual'])} "
                    f"breaks {b['key']} {fmt.metric(b['metric'], b['limit'])} "
                    f"({config}:{b['line']})"
                )
                if b.get("drivers"):
                    lines.append(f"     driven by cases: {', '.join(b['drivers'])}")
        for problem in ep.get("problems", []):
            lines.append(f"FAIL {name}: {problem}")
    for name, ep in report["endpoints"].items():
        for b in ep.get("budgets", []):
            if b["ok"] is None and ep["status"] != "not-run":
                lines.append(f"note {name}: {b['key']} {b.get('note', '')}")
        for warning in ep.get("warnings", []):
            lines.append(f"warn {name}: {warning}")
    return lines


def render_cache_findings(report: dict[str, Any]) -> list[str]:
    """One line per prompt-cache finding, under the budgets."""
    lines = []
    for f in report.get("findings", []):
        cases = ", ".join(f["cases"][:5]) + (" ..." if len(f["cases"]) > 5 else "")
        fix = f" Fix: {f['fix']}." if f["fix"] else ""
        lines.append(
            f"{f['level']} {f['code']} {f['endpoint']} {f['where']}: {f['message']} "
            f"(cases: {cases}).{fix}"
        )
    return lines
