"""Cases: YAML or JSONL files, or inline lists, each a mapping with a unique `id`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError

# Ids become pytest ids and cassette file names.
_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


def load_cases(
    spec: Any, *, base_dir: Path, config_path: Path, line: int
) -> tuple[tuple[dict[str, Any], ...], Path | None]:
    if spec is None:
        return (), None
    if isinstance(spec, list):
        items = [(config_path, line, case) for case in spec]
        return _checked(items), None
    path = (base_dir / str(spec)).resolve()
    if not path.is_file():
        raise ConfigError(
            f"cases file not found: {path}", path=config_path, line=line, key="cases"
        )
    if path.suffix == ".jsonl":
        items = _read_jsonl(path)
    elif path.suffix in (".yml", ".yaml"):
        items = _read_yaml(path)
    else:
        raise ConfigError(
            f"cases file must be .yml, .yaml or .jsonl: {path}", path=config_path, line=line, key="cases"
        )
    return _checked(items), path


def _read_jsonl(path: Path) -> list[tuple[Path, int, Any]]:
    items = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            items.append((path, number, json.loads(text)))
        except ValueError as err:
            raise ConfigError(f"invalid JSON: {err}", path=path, line=number) from None
    return items


def _read_yaml(path: Path) -> list[tuple[Path, int, Any]]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(
            f"malformed YAML: {getattr(err, 'problem', None) or err}",
            path=path,
            line=mark.line + 1 if mark else None,
        ) from None
    if node is None:
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise ConfigError("a cases file is a list of mappings", path=path, line=node.start_mark.line + 1)
    return [
        (path, item.start_mark.line + 1, yaml.load(yaml.serialize(item), Loader=loader))
        for item in node.value
    ]


def _checked(items: list[tuple[Path, int, Any]]) -> tuple[dict[str, Any], ...]:
    seen: dict[str, int] = {}
    cases = []
    for path, line, case in items:
        if not isinstance(case, dict):
            raise ConfigError("each case is a mapping with an `id`", path=path, line=line)
        case_id = case.get("id")
        if not isinstance(case_id, str) or not case_id:
            raise ConfigError("a case needs a non-empty string `id`", path=path, line=line, key="id")
        if not _ID.match(case_id):
            raise ConfigError(
                f"case id {case_id!r} may only hold letters, digits, '_', '-' and '.' "
                "(it names a test and a cassette file)",
                path=path,
                line=line,
                key="id",
            )
        if case_id in seen:
            raise ConfigError(
                f"duplicate case id {case_id!r} (first on line {seen[case_id]})",
                path=path,
                line=line,
                key="id",
            )
        seen[case_id] = line
        cases.append(case)
    return tuple(cases)
