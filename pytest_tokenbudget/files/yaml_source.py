"""Where values in YAML files are: reading with line numbers, and problems that name them.

Shared by the config and the cases loaders, so a problem anywhere is reported the same
way: `file:line: key: message`, all of a file's problems at once.

Also the bounds every YAML file we read is held to (config, cases, cassettes): its
aliases may stand for at most ``MAX_ALIASED_VALUES`` values in all, a long string counting
as one per 64 characters (a "billion laughs" of nested aliases, or of one long string, is
refused before it is expanded), and it may nest at most ``MAX_DEPTH`` lists and mappings
deep.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from pytest_tokenbudget.errors import ConfigError
from pytest_tokenbudget.files.input_files import CONFIG_MAX_BYTES, read_bounded_text

MAX_CASE_ID_LENGTH = 200
_MERGE_TAG = "tag:yaml.org,2002:merge"

# Far beyond any real file: a config has hundreds of values, a cassette's aliases (vcrpy
# writes none) a few; nested aliases nine deep of nine items each stand for 387 million.
MAX_ALIASED_VALUES = 1_000_000
# A case's messages or a recorded body's JSON nest a few dozen deep at most; libyaml stops
# at 1,000, past what Python's recursion builds.
MAX_DEPTH = 100


class Problem(NamedTuple):
    path: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        key = f" {self.key}:" if self.key else ""
        return f"{self.path}:{self.line}:{key} {self.message}"


def problems_error(problems: Iterable[Problem]) -> ConfigError:
    """One ConfigError for all problems: by file (in order of appearance), then by line."""
    unique = list(dict.fromkeys(problems))
    files = {p.path: i for i, p in reversed(list(enumerate(unique)))}
    unique.sort(key=lambda p: (files[p.path], p.line, p.key, p.message))
    if len(unique) == 1:
        path, line, key, message = unique[0]
        err = ConfigError(message, path=path, line=line, key=key or None)
    else:
        where = " and ".join(files)
        listing = "\n".join(str(p) for p in unique)
        err = ConfigError(f"{len(unique)} problems in {where}:\n{listing}")
    err.problems = unique  # type: ignore[attr-defined]
    return err


def problems_of(err: ConfigError) -> list[Problem]:
    """The problems a ConfigError stands for (one, unless built by problems_error)."""
    found = getattr(err, "problems", None)
    if found is not None:
        return list(found)
    return [Problem(err.path or "", err.line or 1, err.key or "", err.message)]


# -- YAML with lines ------------------------------------------------------------------------
Lines = dict[tuple[Any, ...], int]


class YamlDoc(NamedTuple):
    data: Any
    node: Any  # the composed yaml node, None for an empty file
    lines: Lines  # JSON-style path -> 1-based line of that key or list item
    problems: list[Problem]  # duplicate keys (and non-string keys when asked)


def read_text(path: Path, shown: str, what: str = "config file") -> str:
    """A config or cases file as text (a BOM is dropped): a regular file of at most
    CONFIG_MAX_BYTES, else a ConfigError (a FIFO or /dev/zero is never read)."""
    return read_bounded_text(
        path,
        limit=CONFIG_MAX_BYTES,
        what=what,
        error=ConfigError,
        shown=shown,
        encoding="utf-8-sig",
    )


def read_yaml(
    path: Path,
    *,
    shown: str | Path | None = None,
    string_keys: bool = False,
    what: str = "config file",
) -> YamlDoc:
    """Plain data plus the line of every key and list item; malformed YAML raises ConfigError,
    and so does YAML past the bounds (its aliases' expansion, its depth)."""
    import yaml

    shown = str(shown if shown is not None else path)
    text = read_text(path, shown, what)
    lines: Lines = {}
    problems: list[Problem] = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            check_bounds(node)  # before anything walks the aliases' expansion
            # index first: constructing flattens `<<` merges in place
            _index(node, (), lines, problems, shown, string_keys, merged=False)
        data = node_value(loader, node, {}) if node is not None else None
    except TooLarge as err:
        raise ConfigError(err.message, path=shown, line=err.line) from None
    except yaml.MarkedYAMLError as err:
        raise _malformed(err, shown) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"malformed YAML: {err}", path=shown) from None
    except RecursionError:  # the pure-Python loader (no libyaml) recurses while it composes
        raise ConfigError(too_deep_message(), path=shown) from None
    finally:
        loader.dispose()
    return YamlDoc(data, node, lines, problems)


# -- bounds -----------------------------------------------------------------------------------
class TooLarge(ValueError):
    """A YAML document past the bounds: its aliases stand for too much, or it nests too deep.
    `line`: the line of the value it is about (an aliased value: where its anchor is)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def too_deep_message() -> str:
    return (
        f"lists and mappings nested more than {MAX_DEPTH} deep: no budget file or cassette "
        "needs that"
    )


def _too_many(node: Any) -> TooLarge:
    return TooLarge(
        f"YAML aliases (*name) expand to more than {MAX_ALIASED_VALUES:,} values (this line's "
        "anchor among them): no budget file or cassette needs that many",
        node.start_mark.line + 1,
    )


def _children(node: Any) -> list[Any]:
    if node.id == "mapping":
        return [part for pair in node.value for part in pair]
    return node.value if node.id == "sequence" else []


# A long string counts as one value per this many characters: aliases of a 2 MiB string
# repeated 250,000 times are 500 GB, however few values they are.
SCALAR_CHARS_PER_VALUE = 64


def _scalar_weight(node: Any) -> int:
    return 1 + len(node.value) // SCALAR_CHARS_PER_VALUE


def expanded(node: Any, memo: dict[int, tuple[int, int]]) -> tuple[int, int]:
    """(values, depth) a node stands for with every alias in it expanded: what yaml.load
    builds, and what walking or printing that builds costs. Nodes an alias shares are
    measured once (`memo`, by node id, kept per document); a recursive alias counts as one
    value. Iterative: a document nested past Python's recursion limit is measured too."""
    if node.id == "scalar":
        return _scalar_weight(node), 0
    stack, opened = [node], set()
    while stack:
        top = stack[-1]
        if id(top) in memo:
            stack.pop()
            continue
        children = _children(top)
        if id(top) not in opened:
            opened.add(id(top))
            pending = [
                c
                for c in children
                if c.id != "scalar" and id(c) not in memo and id(c) not in opened
            ]
            if pending:
                stack.extend(pending)
                continue
        stack.pop()
        opened.discard(id(top))
        values, depth = 1, 1
        for child in children:
            if child.id == "scalar":
                values += _scalar_weight(child)
            else:
                # not measured yet: the alias of a value still being built (recursion)
                v, d = memo.get(id(child), (1, 1))
                values, depth = values + v, max(depth, d + 1)
        # capped: a billion laughs of 100 levels would otherwise add 100-digit numbers
        memo[id(top)] = (min(values, MAX_ALIASED_VALUES + 1), depth)
    return memo[id(node)]


class Built(dict):  # type: ignore[type-arg]
    """node -> value for one document (what aliases share), and the values aliases have
    stood for so far: past MAX_ALIASED_VALUES, TooLarge."""

    def __init__(self) -> None:
        super().__init__()
        self.aliased = 0
        self._memo: dict[int, tuple[int, int]] = {}

    def reuse(self, node: Any) -> None:
        """A value built again (an alias), or built whole by the constructor (a merge key):
        what it stands for counts against the bound."""
        self.aliased += self.measure(node)[0]
        if self.aliased > MAX_ALIASED_VALUES:
            raise _too_many(node)

    def measure(self, node: Any) -> tuple[int, int]:
        """`expanded` of a node of this document."""
        return expanded(node, self._memo)


def nested_too_deep(value: Any) -> bool:
    """True when plain data (a JSON case) nests lists and mappings more than MAX_DEPTH deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def check_bounds(root: Any) -> None:
    """TooLarge unless the document nests at most MAX_DEPTH deep (with its aliases expanded)
    and its aliases stand for at most MAX_ALIASED_VALUES values in all. One pass over the
    document's nodes; an aliased value is measured once, however often it is repeated."""
    built = Built()
    seen: set[int] = set()
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if node.id == "scalar":
            if id(node) in seen:  # an aliased string: one object when loaded, but every
                built.reuse(node)  # request or report that holds it writes it out again
            seen.add(id(node))
            continue
        if id(node) in seen:  # an alias: its values again, at this depth
            built.reuse(node)
            if depth - 1 + built.measure(node)[1] > MAX_DEPTH:
                raise TooLarge(too_deep_message(), node.start_mark.line + 1)
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise TooLarge(too_deep_message(), node.start_mark.line + 1)
        stack.extend((child, depth + 1) for child in _children(node))


_STR, _INT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int"
_SEQ, _MAP = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"


def node_value(loader: Any, node: Any, built: dict[Any, Any]) -> Any:
    """A composed node's value as yaml.load builds it. Strings, decimal ints, lists and
    mappings with string keys (nearly all of a cassette or a cases file) are built here, at
    a third of the constructor's cost; anything else (null, binary, a merge key, ...) by
    the loader's constructor. `built`: one dict per document, node -> value (aliases); a
    `Built` also bounds what the aliases stand for (TooLarge), for a document no
    check_bounds has measured.

    A number too long for Python to read (over 4,300 digits) is a ConstructorError at its
    line, as any other value YAML cannot build."""
    tag = node.tag
    if tag == _STR:
        return node.value
    value = node.value
    # ASCII digits only (isdigit takes any script's); YAML 1.1 reads 010 as octal
    if tag == _INT and value.isascii() and value.isdigit() and (value[0] != "0" or value == "0"):
        try:
            return int(value)
        except ValueError:
            raise _unreadable_number(node) from None
    if node in built:
        if isinstance(built, Built):
            built.reuse(node)
        return built[node]
    if tag == _SEQ:
        items = built[node] = []
        items.extend(node_value(loader, item, built) for item in node.value)
        return items
    if tag == _MAP and all(key.tag == _STR for key, _ in node.value):  # no `<<`, no odd keys
        mapping = built[node] = {}
        for key, value in node.value:
            mapping[key.value] = node_value(loader, value, built)
        return mapping
    if isinstance(built, Built) and node.id != "scalar":
        built.reuse(node)  # the constructor expands what aliases it holds unseen
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as err:  # int() of too many digits, a 13th month: the constructor's
        raise _unbuildable(node, f"cannot build this value ({str(err).split(';')[0]})") from None


def _unreadable_number(node: Any) -> Exception:
    return _unbuildable(node, "a number too long to read (more than 4,300 digits)")


def _unbuildable(node: Any, problem: str) -> Exception:
    """A value YAML cannot build, as the constructor's own errors are: at its line."""
    import yaml

    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


def _malformed(err: Any, shown: str) -> ConfigError:
    mark = err.problem_mark or err.context_mark
    problem = err.problem or err.context or "cannot parse"
    if err.context and err.context_mark and err.problem:
        problem += f" ({err.context} that starts on line {err.context_mark.line + 1})"
    if mark is None:
        return ConfigError(f"malformed YAML: {problem}", path=shown)
    return ConfigError(
        f"malformed YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}",
        path=shown,
        line=mark.line + 1,
    )


def _index(
    node: Any,
    at: tuple[Any, ...],
    lines: Lines,
    problems: list[Problem],
    shown: str,
    string_keys: bool,
    *,
    merged: bool,
    active: frozenset[int] = frozenset(),
) -> None:
    """Record the line of every key and item; a key given twice is a problem (YAML keeps the last).

    Keys a mapping inherits through `<<: *anchor` come after its own (its own win) and
    are never duplicates; ``active`` guards against recursive aliases (`&a [*a]`).
    """
    import yaml

    if id(node) in active:
        return
    active = active | {id(node)}
    lines.setdefault(at, node.start_mark.line + 1)
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(
                item, at + (i,), lines, problems, shown, string_keys, merged=merged, active=active
            )
        return
    if not isinstance(node, yaml.MappingNode):
        return
    own = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
    for key_node, value_node in own:
        line = key_node.start_mark.line + 1
        key = _key(key_node)
        if string_keys and not isinstance(key, str):
            problems.append(
                Problem(shown, line, str(key), f"key {key!r} is not a string: quote it")
            )
        if at + (key,) in lines:
            if not merged:
                first = lines[at + (key,)]
                message = f"duplicate key (first on line {first}; YAML keeps only the last)"
                problems.append(Problem(shown, line, str(key), message))
            continue
        lines[at + (key,)] = line
        _index(
            value_node,
            at + (key,),
            lines,
            problems,
            shown,
            string_keys,
            merged=merged,
            active=active,
        )
    for _, value_node in (pair for pair in node.value if pair[0].tag == _MERGE_TAG):
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        for source in sources:
            _index(source, at, lines, problems, shown, string_keys, merged=True, active=active)


def _key(node: Any) -> Any:
    """A mapping key as the loader constructs it (so paths match the data)."""
    import yaml

    if node.tag == _STR:
        return node.value
    if not isinstance(node, yaml.ScalarNode):
        return node.start_mark.line  # a list or mapping as a key: construction will refuse it
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except yaml.YAMLError:
        return node.value  # construction will say what is wrong, with its mark


def line_of(lines: Lines, at: tuple[Any, ...]) -> int:
    """The line of a path, or of its nearest ancestor that has one."""
    while at and at not in lines:
        at = at[:-1]
    return lines.get(at, 1)


# -- validation -----------------------------------------------------------------------------


def bad_case_id(case_id: str) -> str:
    """Why a string is not a usable case id (shared with the cases loader)."""
    if len(case_id) > MAX_CASE_ID_LENGTH:
        return (
            f"case id {case_id[:40]!r}... is longer than {MAX_CASE_ID_LENGTH} characters "
            "(it names a file)"
        )
    return (
        f"case id {case_id!r} names a test and a cassette file: use letters, digits, "
        "'_', '-' and '.' only, not starting with '.'"
    )


def describe_value(value: Any) -> str:
    """A short, readable description of a YAML value for an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
