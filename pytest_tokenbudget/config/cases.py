"""Cases: YAML or JSONL files, or inline lists, each a mapping with a unique string `id`.

A case id becomes a pytest id and a cassette file name (`<endpoint>/<id>.yaml`), so it
is checked here, where the file and line are still known.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_tokenbudget.errors import ConfigError
from pytest_tokenbudget.files.yaml_source import (
    MAX_CASE_ID_LENGTH,
    Problem,
    bad_case_id,
    describe_value,
    nested_too_deep,
    problems_error,
    read_text,
    read_yaml,
    too_deep_message,
)
from pytest_tokenbudget.providers.scrub import find_secret

CASE_SUFFIXES = (".yml", ".yaml", ".jsonl")
MAX_ID_LENGTH = MAX_CASE_ID_LENGTH
_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")

Item = tuple[str, int, Any]  # shown path, line, the case as loaded


def load_cases(
    spec: Any,
    *,
    base_dir: Path,
    config_path: Path,
    line: int,
    item_lines: Sequence[int] | None = None,
) -> tuple[tuple[dict[str, Any], ...], Path | None]:
    """The cases of one endpoint, and the file they came from (None when inline or absent).

    ``spec`` is a path (relative to ``base_dir``, the config file's folder) or an inline
    list; ``line`` is the line of the `cases` key, ``item_lines`` the line of each
    inline case. Every problem found raises one ConfigError.
    """
    if spec is None:
        return (), None
    config = str(config_path)
    if isinstance(spec, list):
        lines = list(item_lines) if item_lines is not None else [line] * len(spec)
        items = [(config, case_line, case) for case_line, case in zip(lines, spec, strict=True)]
        return _checked(items, empty=Problem(config, line, "cases", _EMPTY)), None
    if not isinstance(spec, (str, Path)) or not str(spec):
        raise ConfigError(
            "expected a cases file path or a list of cases", path=config, line=line, key="cases"
        )
    shown = base_dir / spec
    try:
        resolved = shown.resolve()
        exists, is_file = resolved.exists(), resolved.is_file()
    except (OSError, ValueError) as err:  # a NUL byte, a name too long for the file system
        raise ConfigError(
            f"not a usable cases file path: {err}", path=config, line=line, key="cases"
        ) from None
    if not exists:
        raise ConfigError(
            f"cases file not found: {resolved} (paths are relative to the folder of {config})",
            path=config,
            line=line,
            key="cases",
        )
    if not is_file:
        raise ConfigError(f"not a file: {resolved}", path=config, line=line, key="cases")
    suffix = resolved.suffix.lower()
    if suffix not in CASE_SUFFIXES:
        raise ConfigError(
            f"a cases file is .yml, .yaml (a list of mappings) or .jsonl (one JSON object per "
            f"line), not {resolved.name}",
            path=config,
            line=line,
            key="cases",
        )
    items = (
        _read_jsonl(resolved, str(shown))
        if suffix == ".jsonl"
        else _read_yaml(resolved, str(shown))
    )
    return _checked(items, empty=Problem(str(shown), 1, "", _EMPTY)), resolved


_EMPTY = "no cases: give at least one (a mapping with an `id`)"


def _read_jsonl(path: Path, shown: str) -> list[Item]:
    text = read_text(path, shown, "cases file")
    items: list[Item] = []
    problems: list[Problem] = []
    for number, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        try:
            case = json.loads(row)
        except ValueError as err:
            problems.append(Problem(shown, number, "", f"invalid JSON: {err}"))
            continue
        except RecursionError:
            problems.append(Problem(shown, number, "", too_deep_message()))
            continue
        if nested_too_deep(case):
            problems.append(Problem(shown, number, "", too_deep_message()))
            continue
        items.append((shown, number, case))
    if problems:
        raise problems_error(problems)
    return items


def _read_yaml(path: Path, shown: str) -> list[Item]:
    import yaml

    doc = read_yaml(path, shown=shown, what="cases file")
    if doc.node is None:
        return []
    if not isinstance(doc.node, yaml.SequenceNode):
        raise ConfigError(
            "a cases file is a list of mappings (`- id: ...`), one per case",
            path=shown,
            line=doc.node.start_mark.line + 1,
        )
    if doc.problems:  # duplicate keys inside a case would silently lose data
        raise problems_error(doc.problems)
    return [
        (shown, doc.lines.get((i, "id")) or doc.lines[(i,)], case)
        for i, case in enumerate(doc.data)
    ]


def _checked(items: list[Item], *, empty: Problem) -> tuple[dict[str, Any], ...]:
    """Every case a mapping with a usable, unique id; all problems at once."""
    if not items:
        raise problems_error([empty])
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    folded: dict[str, tuple[str, int]] = {}
    cases = []
    for shown, line, case in items:
        if not isinstance(case, dict):
            problems.append(
                Problem(
                    shown, line, "", f"a case is a mapping with an `id`, not {describe_value(case)}"
                )
            )
            continue
        message = _id_problem(case.get("id")) if "id" in case else "a case needs an `id`"
        if message:
            problems.append(Problem(shown, line, "id", message))
            continue
        case_id: str = case["id"]
        if case_id in seen:
            problems.append(
                Problem(
                    shown,
                    line,
                    "id",
                    f"duplicate case id {case_id!r} (first on line {seen[case_id]}, "
                    f"again on line {line})",
                )
            )
            continue
        other = folded.get(case_id.lower())
        if other is not None:
            problems.append(
                Problem(
                    shown,
                    line,
                    "id",
                    f"case ids {other[0]!r} (line {other[1]}) and {case_id!r} differ "
                    "only in case: their cassette files would collide on macOS and Windows",
                )
            )
            continue
        seen[case_id] = line
        folded[case_id.lower()] = (case_id, line)
        cases.append(case)
    if problems:
        raise problems_error(problems)
    return tuple(cases)


def _id_problem(case_id: Any) -> str | None:
    if isinstance(case_id, bool) or case_id is None:
        return f"a case id is a non-empty string, not {describe_value(case_id)}"
    if isinstance(case_id, (int, float)):
        return f"a case id is a string: write {json.dumps(str(case_id))} in quotes, not {case_id}"
    if not isinstance(case_id, str):
        return f"a case id is a string, not {describe_value(case_id)}"
    if not case_id:
        return "a case id must not be empty"
    if len(case_id) > MAX_ID_LENGTH or not _ID.fullmatch(case_id):
        return bad_case_id(case_id)
    if find_secret(case_id):  # it names a committed cassette file and every report
        return "a case id must not hold a credential-shaped value: name the case, not its key"
    return None
