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


def _from_names(node: ast.ImportFrom, me: tuple[str, ...]) -> list[str]:
    """What an import-from names, dotted; a relative one resolved against `me`, the dotted
    name of the importing module. `from pytest_tokenbudget import cli` names each import."""
    base = me[: len(me) - node.level] if node.level else ()
    module = [*base, *(node.module.split(".") if node.module else ())]
    if len(module) > 1:
        return [".".join(module)]
    return [".".join([*module, alias.name]) for alias in node.names]


def _imported_layers(tree: ast.Module, me: tuple[str, ...]) -> list[tuple[int, str]]:
    """Every layer a module names in an import: absolute, relative (`me` is the module's dotted
    name), or a literal string given to importlib.import_module or __import__."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        dotted: list[str] = []
        if isinstance(node, ast.ImportFrom):
            dotted = _from_names(node, me)
        elif isinstance(node, ast.Import):
            dotted = [a.name for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            called = getattr(node.func, "attr", getattr(node.func, "id", ""))
            first = node.args[0]
            if called in {"import_module", "__import__"} and isinstance(first, ast.Constant):
                dotted = [str(first.value)]
        found += [
            (node.lineno, parts[1])
            for parts in (d.split(".") for d in dotted)
            if parts[0] == "pytest_tokenbudget" and len(parts) > 1
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
        dotted = (package.name, *path.relative_to(package).with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, other in _imported_layers(tree, dotted):
            if other in NOT_LAYERS or other == me:
                continue
            if other not in ORDER or ORDER.index(other) > ORDER.index(me):
                problems.append(f"{shown}:{line}: {me} imports {other}")
    return problems


def test_no_package_imports_a_package_above_it() -> None:
    assert upward_imports(PACKAGE) == []


def test_the_check_sees_lazy_relative_dynamic_and_type_checking_imports_and_unplaced_packages(
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
        "    from . import markdown\n"  # its own package: fine
        "    from ..measure import run\n"  # below: fine
        "    from ..ci import comment\n"
        "    from .. import plugin\n"
        "    importlib.import_module('pytest_tokenbudget.finish.conclusion')\n"
        "    __import__('pytest_tokenbudget.cli')\n"
        "    importlib.import_module('json')\n"
    )
    (fake / "extras").mkdir()
    (fake / "extras" / "x.py").write_text("")
    assert upward_imports(fake) == [
        "pytest_tokenbudget/extras/x.py: 'extras' is not in ORDER",
        "pytest_tokenbudget/report/table.py:4: report imports ci",
        "pytest_tokenbudget/report/table.py:6: report imports plugin",
        "pytest_tokenbudget/report/table.py:7: report imports cli",
        "pytest_tokenbudget/report/table.py:10: report imports ci",
        "pytest_tokenbudget/report/table.py:11: report imports plugin",
        "pytest_tokenbudget/report/table.py:12: report imports finish",
        "pytest_tokenbudget/report/table.py:13: report imports cli",
    ]


# A package's face says what flows in and out and imports nothing, so that importing one module
# of a package costs only that module. The two front doors are the exceptions their docstrings
# explain: pytest looks the hooks up on `plugin`, and `cli` defines the lazy `main`.
FACES_THAT_IMPORT = {"plugin", "cli"}
MAX_LINES = 600


def _faces() -> list[Path]:
    return sorted(PACKAGE.glob("*/__init__.py"))


def test_every_package_face_says_what_flows_in_and_out_and_imports_nothing() -> None:
    assert len(_faces()) >= 5
    problems = []
    for face in _faces():
        tree = ast.parse(face.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree) or ""
        if "In:" not in doc or "Out:" not in doc:
            problems.append(f"{face.parent.name}: the docstring says no 'In:' and 'Out:'")
        top_level_imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        if face.parent.name not in FACES_THAT_IMPORT and top_level_imports:
            problems.append(f"{face.parent.name}: its face imports")
    assert problems == []


def test_no_module_is_longer_than_the_limit_and_the_top_level_stays_small() -> None:
    long = [
        f"{p.relative_to(REPO)}: {n} lines"
        for p in sorted(PACKAGE.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == []
    assert len(list(PACKAGE.glob("*.py"))) <= 12
