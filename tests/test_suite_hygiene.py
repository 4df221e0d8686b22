"""The suite reads only files the repository ships, and every vendored data file has provenance.

A test that names a directory outside the repository passes on the machine it was written on
and fails (or, worse, is skipped) everywhere else. The scan below reads every Python file under
tests/ and reports, as file:line, each place that names such a path:

* an absolute path into a top-level directory that holds machine-specific data (a work tree,
  home folders, mount points, temp dirs: see ``_OUTSIDE_ROOTS``), a Windows drive or a home
  directory given as a tilde, in a string literal or a comment. System paths such as the
  ``env`` binary or the null device, and URL paths of the emulated APIs, are not flagged;
* a path derived from ``__file__`` (``Path(__file__).parents[N]``, ``.parent``, joining "..",
  ``os.path.dirname`` and ``os.path.join``, also through a variable assigned such a path)
  that climbs above the repository root, computed from the file's own location;
* any other relative path literal whose ".." segments climb above the repository root, the
  directory pytest runs from.

The detector is tested below on the paths this suite used to read. A line that really must
name such a path (say, a test of path validation) can say so with a ``# hygiene: allow``
comment.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest
import yaml
from paths import CASSETTES, DATA, REPO, TESTS

ALLOW = "hygiene: allow"

_OUTSIDE_ROOTS = ("work", "home", "root", "Users", "mnt", "opt", "srv", "tmp", "var", "private")
_OUTSIDE_ROOTS += ("Volumes", "media", "scratch")
# An absolute path starts the text or a word: a root from the list, a tilde, or a drive letter.
_ABSOLUTE = re.compile(
    r"(?:^|(?<=[\s\"'`=(,;]))"
    r"(?:/(?:" + "|".join(_OUTSIDE_ROOTS) + r")(?=[/\\\s\"'`]|$)"
    r"|~[/\\]"
    r"|[A-Za-z]:[\\/])"
)

_PATH_CALLS = {"Path", "PurePath", "PosixPath", "pathlib.Path", "pathlib.PurePath"}
_SAME_PLACE = {"os.path.abspath", "os.path.realpath", "os.path.normpath", "os.fspath", "str"}
_SAME_PLACE_METHODS = {"resolve", "absolute", "expanduser"}
OUT = "above the repository root"


def _climb(parts, relative: str):
    """``parts`` (a place under the root, as a tuple) moved by a relative path; OUT if it leaves."""
    if parts is None or parts == OUT:
        return parts
    for segment in re.split(r"[/\\]", relative):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                return OUT
            parts = parts[:-1]
        else:
            parts = (*parts, segment)
    return parts


def _up(parts, levels: int):
    return _climb(parts, "/".join([".."] * levels))


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


class _Places:
    """Where the expressions of one file that are built from ``__file__`` point."""

    def __init__(self, here: tuple[str, ...]):
        self.here = here
        self.names: dict[str, object] = {}
        self.joined: set[int] = set()  # ids of string literals already used as path segments

    def join(self, base, segments):
        for segment in segments:  # relative to base, not to the directory pytest runs from
            if isinstance(segment, ast.Constant) and isinstance(segment.value, str):
                self.joined.add(id(segment))
        if base is None:
            return None
        for segment in segments:
            if base == OUT:
                break
            if not (isinstance(segment, ast.Constant) and isinstance(segment.value, str)):
                return None  # somewhere under base, but not known where
            if re.match(r"[/\\]|[A-Za-z]:", segment.value):
                return None  # an absolute path starts afresh (checked as a literal below)
            base = _climb(base, segment.value)
        return base

    def of(self, node):
        """A tuple of parts under the root, OUT, or None when not derived from ``__file__``."""
        if isinstance(node, ast.Name):
            return self.here if node.id == "__file__" else self.names.get(node.id)
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            return _up(self.of(node.value), 1)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "parents"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, int)
        ):
            return _up(self.of(node.value.value), node.slice.value + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return self.join(self.of(node.left), [node.right])
        if isinstance(node, ast.Call) and node.args:
            name, first, rest = _dotted(node.func), node.args[0], node.args[1:]
            if name in _PATH_CALLS or name == "os.path.join":
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    return self.join((), node.args)  # from the directory pytest runs from
                return self.join(self.of(first), rest)
            if name == "os.path.dirname":
                return _up(self.of(first), 1)
            if name in _SAME_PLACE:
                return self.of(first)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _SAME_PLACE_METHODS:
                return self.of(node.func.value)
            if node.func.attr == "joinpath":
                return self.join(self.of(node.func.value), node.args)
        return None


def outside_paths(path: Path, root: Path = REPO) -> list[str]:
    """Every place in the Python file ``path`` that names a path outside ``root``."""
    source = path.read_text(encoding="utf-8")
    name = path.relative_to(root).as_posix()
    lines = source.splitlines()
    found: dict[int, str] = {}

    def report(line: int, what: str) -> None:
        if ALLOW not in (lines[line - 1] if 0 < line <= len(lines) else ""):
            found.setdefault(line, what)

    tree = ast.parse(source, filename=str(path))
    places = _Places(tuple(path.relative_to(root).parts))
    assignments = [n for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))]
    for node in sorted(assignments, key=lambda n: (n.lineno, n.col_offset)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if node.value is not None and len(targets) == 1 and isinstance(targets[0], ast.Name):
            place = places.of(node.value)
            if place is None:
                places.names.pop(targets[0].id, None)  # rebound to something else
            else:
                places.names[targets[0].id] = place

    escapes: dict[int, tuple[bool, int, str]] = {}
    for node in ast.walk(tree):
        stored = isinstance(getattr(node, "ctx", None), ast.Store)
        if isinstance(node, ast.expr) and not stored and places.of(node) == OUT:
            text = ast.unparse(node)
            # name the smallest expression that leaves; a variable only where it is used
            key = (isinstance(node, ast.Name), len(text), text)
            escapes[node.lineno] = min(escapes.get(node.lineno, key), key)
    for line, (_, _, text) in escapes.items():
        report(line, f"{text} climbs {OUT}")

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if _ABSOLUTE.search(node.value):
            report(node.lineno, f"{node.value[:60]!r} is an absolute path outside the repository")
        elif (
            id(node) not in places.joined
            and re.search(r"[/\\]", node.value)
            and _climb((), node.value) == OUT
        ):
            report(node.lineno, f"{node.value[:60]!r} climbs {OUT}")

    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and _ABSOLUTE.search(token.string):
            report(token.start[0], f"comment names a path outside the repository: {token.string}")
    return [f"{name}:{line}: {what}" for line, what in sorted(found.items())]


def test_no_test_file_names_a_path_outside_the_repository():
    files = sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)
    assert TESTS / "conftest.py" in files and Path(__file__).resolve() in files
    problems = [problem for path in files for problem in outside_paths(path)]
    assert not problems, "\n".join(problems)


# -- the detector on the code this suite used to have, and on code it must leave alone -------
def _spelled(code: str) -> str:
    """A detector case as Python: the data file writes no path out (see its header)."""
    home = "~/"  # hygiene: allow (the home folder of the detector's examples)
    return code.replace("<abs>", "/").replace("<home>", home).replace("<up>", "..")


_RAW_CASES = yaml.safe_load((TESTS / "data" / "hygiene" / "detector_cases.yaml").read_text())
DETECTOR_CASES = {
    "outside": [{**case, "code": _spelled(case["code"])} for case in _RAW_CASES["outside"]],
    "inside": _spelled(_RAW_CASES["inside"]),
}


def _write_test_file(root: Path, relative: str, code: str) -> Path:
    test_file = root / relative
    test_file.parent.mkdir(parents=True, exist_ok=True)
    test_file.write_text(code)
    return test_file


@pytest.mark.parametrize(
    ("line", "code"), [(case["line"], case["code"]) for case in DETECTOR_CASES["outside"]]
)
def test_the_detector_catches_paths_outside(tmp_path, line, code):
    root = tmp_path / "repo"
    test_file = _write_test_file(root, "tests/test_old.py", "from pathlib import Path\n" + code)
    (problem,) = outside_paths(test_file, root)
    assert problem.startswith(f"tests/test_old.py:{line}: ")


def test_the_detector_knows_the_paths_this_suite_used_to_read():
    codes = "".join(case["code"] for case in _RAW_CASES["outside"])
    # their shapes: a sibling folder of the checkout, by __file__ and by an absolute path
    assert 'parents[2] / "elsewhere" / "data" / "cassettes"' in codes
    assert "<abs>work/elsewhere/data/cassettes" in codes


def test_the_detector_leaves_paths_inside_alone(tmp_path):
    root = tmp_path / "repo"
    test_file = _write_test_file(root, "tests/sub/test_new.py", DETECTOR_CASES["inside"])
    assert outside_paths(test_file, root) == []


# -- vendored data ---------------------------------------------------------------------------
def _data_files() -> list[str]:
    return sorted(
        p.relative_to(CASSETTES).as_posix()
        for p in CASSETTES.rglob("*")
        if p.is_file() and p.name != "README.md"
    )


def test_every_vendored_cassette_is_listed_in_the_readme_with_its_commit():
    readme = (CASSETTES / "README.md").read_text(encoding="utf-8").splitlines()
    files = _data_files()
    assert files, f"nothing vendored under {CASSETTES}"
    unlisted = [f for f in files if not any(f"| {f} |" in line for line in readme)]
    assert not unlisted, f"not listed in {CASSETTES / 'README.md'}: {unlisted}"
    full_commit = re.compile(r"\b[0-9a-f]{40}\b")
    no_commit = [
        f for f in files if not any(f"| {f} |" in ln and full_commit.search(ln) for ln in readme)
    ]
    assert not no_commit, f"listed without a full 40-hex commit: {no_commit}"
    rows = {m.group(1) for line in readme if (m := re.match(r"\| ([^|\s]+\.ya?ml) \|", line))}
    assert rows <= set(files), f"listed but not here: {sorted(rows - set(files))}"


def test_test_modules_have_unique_basenames():
    """The suite's folders are not packages: pytest imports each test module by its basename,
    so two files of one name in different folders fail collection ('import file mismatch')
    depending on which an xdist worker imports first."""
    seen: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        if DATA not in path.parents:
            seen.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
