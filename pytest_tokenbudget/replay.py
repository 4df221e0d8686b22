"""Replay without vcrpy: a case's cassette read once and indexed by request key.

In replay (`--token-budget-record=none`, the CI mode) the plugin answers each request
from the cassette itself: the file is parsed once with libyaml, every interaction is
indexed by its request as recorded byte for byte (matching.exact_key), and each recording
plays once, in order, as vcrpy plays it. A request not recorded byte for byte is then
looked up by the key vcrpy matches on (matching.request_key: canonical JSON), an index
built only when the first such request comes. Cassettes stay vcrpy's format, and vcrpy
still records them; replay only skips its per-request machinery.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CassetteError
from .gc_pause import gc_paused
from .matching import exact_key, request_key
from .yaml_source import node_value


@dataclass
class RecordedRequest:
    """The parts of a recorded request that matching and diagnostics read (not frozen:
    request_key caches its key on the object)."""

    method: str
    uri: str
    body: bytes | None


@functools.cache  # one class per process: building it costs more than a small cassette
def _loader() -> type:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class CassetteLoader(base):  # type: ignore[misc, valid-type]
        """libyaml's safe loader, plus the plain-string tags old vcrpy cassettes carry."""

    for tag in ("tag:yaml.org,2002:python/unicode", "tag:yaml.org,2002:python/str"):
        CassetteLoader.add_constructor(tag, lambda loader, node: loader.construct_scalar(node))
    return CassetteLoader


# What reading a YAML document that is not vcrpy's layout raises.
NOT_A_CASSETTE = (KeyError, TypeError, ValueError, AttributeError)


def unreadable(err: Exception, path: Path) -> CassetteError:
    """The one message for a cassette that is not YAML (with its line), or not vcrpy's."""
    import yaml

    if isinstance(err, yaml.YAMLError):
        mark = getattr(err, "problem_mark", None)
        return CassetteError(
            f"corrupt cassette (YAML: {getattr(err, 'problem', None) or err}); "
            "delete it and re-record",
            path=path,
            line=mark.line + 1 if mark is not None else None,
        )
    return CassetteError(
        f"not a vcrpy cassette ({type(err).__name__}: {err}); delete it and re-record", path=path
    )


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


class Recording:
    """One cassette's interactions; `data` and `play_counts` read like vcrpy's Cassette."""

    def __init__(self, path: Path, data: list[tuple[RecordedRequest, dict[str, Any]]]) -> None:
        self.path = path
        self.data = data
        self.play_counts: Counter[int] = Counter()
        self._exact: dict[tuple[str, str, str, bytes], deque[int]] = {}
        self._canonical: dict[tuple[str, str, str, str], deque[int]] | None = None
        for index, (request, _) in enumerate(data):
            self._exact.setdefault(exact_key(request), deque()).append(index)

    @classmethod
    def load(cls, path: Path) -> Recording:
        """The cassette at path; a missing or empty file is a cassette with no recording."""
        import yaml

        try:
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
        except (OSError, UnicodeDecodeError) as err:
            raise CassetteError(f"cannot read cassette: {err}", path=path) from None
        if not text.strip():
            return cls(path, [])
        lean = _without_request_headers(text)
        try:
            return cls(path, _parse(lean))
        except (yaml.YAMLError, *NOT_A_CASSETTE) as err:
            if lean == text:
                raise unreadable(err, path) from None
        try:  # the whole text: its own error, at its own line
            return cls(path, _parse(text))
        except (yaml.YAMLError, *NOT_A_CASSETTE) as err:
            raise unreadable(err, path) from None

    def play(self, request: RecordedRequest) -> int | None:
        """The first unplayed recording of this request, marked played: recorded byte for
        byte, else equal as canonical JSON (the same request, serialized differently)."""
        index = self._take(self._exact.get(exact_key(request)))
        if index is None:
            if self._canonical is None:
                self._canonical = {}
                for i, (recorded, _) in enumerate(self.data):
                    self._canonical.setdefault(request_key(recorded), deque()).append(i)
            index = self._take(self._canonical.get(request_key(request)))
        return index

    def _take(self, queue: deque[int] | None) -> int | None:
        while queue:
            index = queue.popleft()
            if index not in self.play_counts:  # played by the other index, or by a volatile
                self.play_counts[index] += 1  # or positional match (capture.py)
                return index
        return None


# The request headers of vcrpy's layout (keys sorted: body, headers, method, uri): never read
# by replay, which matches on method, URL and body, and 40% of the time libyaml takes to
# build a small cassette's nodes, so their lines are cut before parsing. Only the lines
# indented past a `    headers:` key that `    method:` follows; any other layout is parsed
# whole. Found with str.find: a regular expression anchored at every line start scans a
# 30 MB agent cassette ten times slower.
_HEADERS_KEY = "\n    headers:\n"
_HEADER_LINES = re.compile(r"(?:      .*\n)*(?=    method: )")


def _without_request_headers(text: str) -> str:
    kept, start = [], 0
    at = text.find(_HEADERS_KEY)
    while at >= 0:
        lines = at + len(_HEADERS_KEY)
        found = _HEADER_LINES.match(text, lines)
        if found is not None:
            kept.append(text[start : at + 1])  # up to, not including, `    headers:`
            start = found.end()
        at = text.find(_HEADERS_KEY, found.end() if found is not None else lines)
    kept.append(text[start:])
    return "".join(kept)


def _parse(text: str) -> list[tuple[RecordedRequest, dict[str, Any]]]:
    loader = _loader()(text)  # CassetteLoader is a safe loader
    try:
        with gc_paused():  # the nodes are freed as they are read
            return _interactions(loader)
    finally:
        loader.dispose()


def _interactions(loader: Any) -> list[tuple[RecordedRequest, dict[str, Any]]]:
    """The document's interactions, built from libyaml's nodes: every field replay reads,
    as yaml.load builds it, but not the request headers (a third of the work, never read:
    requests are matched on method, URL and body)."""
    found = []
    built: dict[Any, Any] = {}  # node -> value, as the constructor keeps (aliases, recursion)
    for node in _fields(loader.get_single_node())["interactions"].value:
        item = _fields(node)
        if "<<" in item:  # a YAML merge key: the constructor resolves it
            found.append(_interaction(loader.construct_object(node, deep=True)))
            continue
        request = _fields(item["request"])
        if "<<" in request:
            fields = loader.construct_object(item["request"], deep=True)
        else:
            fields = {k: node_value(loader, v, built) for k, v in request.items() if k != "headers"}
        response = node_value(loader, item["response"], built)
        found.append(_interaction({"request": fields, "response": response}))
    return found


def _fields(node: Any) -> dict[str, Any]:
    """A mapping node's values by key, still as nodes."""
    if getattr(node, "id", None) != "mapping":
        raise TypeError(f"expected a mapping, found {getattr(node, 'tag', 'nothing')}")
    return {key.value: value for key, value in node.value}


def _interaction(item: dict[str, Any]) -> tuple[RecordedRequest, dict[str, Any]]:
    request, response = item["request"], item["response"]
    recorded = RecordedRequest(
        str(request["method"]), str(request["uri"]), _as_bytes(request.get("body"))
    )
    body = response.get("body") or {}
    code = (response["status"] or {}).get("code")
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
        # what httpx and the usage parser would choke on mid-test: refused as the file loads
        raise ValueError(f"response status code {code!r} is not an HTTP status code")
    response = {
        "status": response["status"],
        "headers": {
            k: list(v) if isinstance(v, list) else [v]
            for k, v in (response.get("headers") or {}).items()
        },
        "body": {"string": _as_bytes(body.get("string")) or b""},
    }
    return recorded, response


def response_for(httpx: Any, request: Any, recorded: dict[str, Any]) -> Any:
    """The recorded response as httpx builds one, as vcrpy's stub does."""
    message = recorded["status"].get("message")
    return httpx.Response(
        recorded["status"]["code"],
        headers=[(k, v) for k, values in recorded["headers"].items() for v in values],
        stream=httpx.ByteStream(recorded["body"]["string"]),
        extensions={"reason_phrase": str(message).encode("ascii")} if message else None,
        request=request,
    )
