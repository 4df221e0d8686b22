"""The package's layers: each package imports only the packages below it.

The order is the data flow (docs: the package's `__init__` docstrings say what flows in and
out of each). An import against it, even a lazy one inside a function or one under
TYPE_CHECKING, is how an import cycle starts, so every import statement in the package
counts. A package or top-level module that is not in the order fails too: a new one is
placed on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

from paths import REPO

PACKAGE = REPO / "pytest_tokenbudget"
# Bottom first. Top-level modules are the floor; cli and plugin are the two front doors.
ORDER = [
    "errors",
    "formatting",
    "plain_text",
    "modes",
    "files",
    "providers",
    "usage",
    "config",
    "pricing",
    "hookspec",
    "cache",
    "capture",
    "measure",
    "report",
    "ci",
    "finish",
    "cli",
    "plugin",
]
NOT_LAYERS = {"__init__", "__main__", "__version__"}


def _imported_layers(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "pytest_tokenbudget":
                continue
            names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.split(".")[1])
                for a in node.names
                if a.name.startswith("pytest_tokenbudget.")
            ]
    return found


def upward_imports(package: Path) -> list[str]:
    """Each import against the order, as `path:line: importer imports imported`."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        shown = path.relative_to(package.parent)
        me = path.relative_to(package).with_suffix("").parts[0]
        if me in NOT_LAYERS:
            continue
        if me not in ORDER:
            problems.append(f"{shown}: {me!r} is not in ORDER")
            continue
        for line, other in _imported_layers(ast.parse(path.read_text(encoding="utf-8"))):
            if other in NOT_LAYERS or other == me:
                continue
            if other not in ORDER or ORDER.index(other) > ORDER.index(me):
                problems.append(f"{shown}:{line}: {me} imports {other}")
    return problems


def test_no_package_imports_a_package_above_it() -> None:
    assert upward_imports(PACKAGE) == []


def test_the_check_sees_lazy_and_type_checking_imports_and_unplaced_packages(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "pytest_tokenbudget"
    (fake / "report").mkdir(parents=True)
    (fake / "report" / "table.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from pytest_tokenbudget.measure import stats\n"  # below: fine
        "if TYPE_CHECKING:\n"
        "    from pytest_tokenbudget.ci.github import Client\n"
        "def render():\n"
        "    import pytest_tokenbudget.plugin.hooks\n"
        "    from pytest_tokenbudget import cli\n"
    )
    (fake / "extras").mkdir()
    (fake / "extras" / "x.py").write_text("")
    assert upward_imports(fake) == [
        "pytest_tokenbudget/extras/x.py: 'extras' is not in ORDER",
        "pytest_tokenbudget/report/table.py:4: report imports ci",
        "pytest_tokenbudget/report/table.py:6: report imports plugin",
        "pytest_tokenbudget/report/table.py:7: report imports cli",
    ]
