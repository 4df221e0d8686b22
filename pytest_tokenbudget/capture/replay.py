"""Replay without vcrpy: a case's cassette read once and indexed by request key.

In replay (`--token-budget-record=none`, the CI mode) the plugin answers each request
from the cassette itself: the file is parsed once with libyaml, every interaction is
indexed by its request as recorded byte for byte (matching.exact_key), and each recording
plays once, in order, as vcrpy plays it. A request not recorded byte for byte is then
looked up by the key vcrpy matches on (matching.request_key: canonical JSON), an index
built only when the first such request comes. Cassettes stay vcrpy's format, and vcrpy
still records them; replay only skips its per-request machinery.

A cassette is read as untrusted input: a regular file of at most CASSETTE_MAX_BYTES, its
YAML aliases and depth bounded (yaml_source), and every recorded response checked, as it
loads, to be one httpx can build (status, headers, reason) and whose compressed body
decodes within MAX_DECODED_BODY. What is wrong is named with the interaction and its line,
never played as a response the app would fail on (its retry would then be blamed on the
request, as "not in the recording").
"""

from __future__ import annotations

import functools
import re
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_tokenbudget.capture.gc_pause import gc_paused
from pytest_tokenbudget.capture.matching import exact_key, request_key
from pytest_tokenbudget.errors import CassetteError, kind_of
from pytest_tokenbudget.files.input_files import CASSETTE_MAX_BYTES, read_bounded_text
from pytest_tokenbudget.files.yaml_source import Built, TooLarge, node_value


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


def _malformed(index: int, problem: str) -> str:
    return (
        f"interaction {index}: the recorded response is malformed: {problem}; "
        "delete the cassette and re-record it"
    )


class MalformedResponse(ValueError):
    """A recorded response replay cannot play: which interaction, where, and why."""

    def __init__(self, index: int, line: int | None, problem: str) -> None:
        self.message = _malformed(index, problem)
        super().__init__(self.message)
        self.line = line


def malformed_recorded_response(path: Path, exchange: Any, err: CassetteError) -> CassetteError:
    """`err`, a response replay played from the cassette at `path` that usage parsing
    cannot read (not JSON, no usage...), as the cassette's fault: the interaction that
    holds it and its line, never the request's. `err` itself when the cassette no longer
    holds that response. Only on this error path is the cassette read again."""
    from pytest_tokenbudget.providers.recorders import read_recording

    try:
        recording = read_recording(path)
    except CassetteError:
        return err
    for index, recorded in enumerate(recording.exchanges):
        if recorded.body == exchange.body and recorded.method == exchange.method.upper():
            return CassetteError(
                _malformed(index, err.message), path=path, line=recording.line_of(index)
            )
    return err


def unreadable(err: Exception, path: Path) -> CassetteError:
    """The one message for a cassette that is not YAML (with its line), or not vcrpy's."""
    import yaml

    if isinstance(err, (MalformedResponse, TooLarge)):  # already in the user's words
        return CassetteError(err.message, path=path, line=err.line)
    if isinstance(err, RecursionError):
        return CassetteError(
            "corrupt cassette (nested too deeply to read); delete it and re-record", path=path
        )
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
        """The cassette at path; a missing or empty file is a cassette with no recording.
        Anything else that is not a regular file (a FIFO, a device) is a CassetteError."""
        import yaml

        try:
            if not path.exists():
                return cls(path, [])
        except OSError as err:  # a name too long for the file system
            raise CassetteError(f"cannot read cassette: {err.strerror or err}", path=path) from None
        text = read_bounded_text(
            path, limit=CASSETTE_MAX_BYTES, what="cassette", error=CassetteError
        )
        if not text.strip():
            return cls(path, [])
        lean = _without_request_headers(text)
        try:
            return cls(path, _parse(lean))
        except (yaml.YAMLError, RecursionError, *NOT_A_CASSETTE) as err:
            if lean == text:
                raise unreadable(err, path) from None
        try:  # the whole text: its own error, at its own line
            return cls(path, _parse(text))
        except (yaml.YAMLError, RecursionError, *NOT_A_CASSETTE) as err:
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
                self.play_counts[index] += 1  # or positional match (capture/recording.py)
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
    requests are matched on method, URL and body).

    Aliases are bounded as they are met (a `Built` counts what each stands for), so a
    cassette without any, which is every one vcrpy writes, pays nothing for the bound."""
    found = []
    built = Built()  # node -> value, as the constructor keeps (aliases, recursion)
    for index, node in enumerate(_fields(loader.get_single_node())["interactions"].value):
        item = _fields(node)
        line = node.start_mark.line + 1
        if "<<" in item:  # a YAML merge key: the constructor resolves it
            built.reuse(node)
            found.append(_interaction(loader.construct_object(node, deep=True), index, line))
            continue
        request = _fields(item["request"])
        if "<<" in request:
            built.reuse(item["request"])
            fields = loader.construct_object(item["request"], deep=True)
        else:
            fields = {k: node_value(loader, v, built) for k, v in request.items() if k != "headers"}
        response = node_value(loader, item["response"], built)
        found.append(_interaction({"request": fields, "response": response}, index, line))
    return found


def _fields(node: Any) -> dict[str, Any]:
    """A mapping node's values by key, still as nodes."""
    if getattr(node, "id", None) != "mapping":
        raise TypeError(f"expected a mapping, found {getattr(node, 'tag', 'nothing')}")
    return {key.value: value for key, value in node.value}


def _interaction(
    item: dict[str, Any], index: int = 0, line: int | None = None
) -> tuple[RecordedRequest, dict[str, Any]]:
    request = item["request"]
    recorded = RecordedRequest(
        str(request["method"]), str(request["uri"]), _as_bytes(request.get("body"))
    )
    try:
        return recorded, _playable(item["response"])
    except _Unplayable as err:
        raise MalformedResponse(index, line, str(err)) from None


class _Unplayable(ValueError):
    """What is wrong with a recorded response, for MalformedResponse to place."""


def _playable(response: Any) -> dict[str, Any]:
    """A recorded response as response_for plays it, or _Unplayable: what httpx and the
    usage parser would choke on mid-test is refused as the file loads."""
    if not isinstance(response, dict):
        raise _Unplayable(f"it is {kind_of(response)}, not a mapping of status, headers and body")
    body = response.get("body") or {}
    if not isinstance(body, dict):
        raise _Unplayable(f"its body is {kind_of(body)}, not a mapping with a `string`")
    status = response.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    if not isinstance(status, dict) or not _is_http_status(code):
        raise _Unplayable(f"status code {code!r} is not an HTTP status code")
    headers = _headers(response.get("headers"))
    string = body.get("string")
    if string is not None and not isinstance(string, (str, bytes)):
        raise _Unplayable(f"its body string is {kind_of(string)}, not text")
    string = _as_bytes(string) or b""
    if any(name.lower() == "content-encoding" for name in headers):
        _check_decoding(headers, string)
    reason = status.get("message")
    if isinstance(reason, str) and not reason.isascii():  # httpx takes ASCII only
        status = {**status, "message": reason.encode("ascii", "replace").decode("ascii")}
    return {"status": status, "headers": headers, "body": {"string": string}}


def _is_http_status(code: Any) -> bool:
    return isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599


def _headers(raw: Any) -> dict[str, list[str | bytes]]:
    """Recorded response headers as httpx takes them: text names, each with a list of text
    values (non-ASCII text as UTF-8 bytes, which httpx keeps as they are)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _Unplayable(f"its headers are {kind_of(raw)}, not a mapping")
    headers: dict[str, list[str | bytes]] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name.isascii():
            raise _Unplayable(f"header name {name!r} is not ASCII text")
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str):
                raise _Unplayable(f"header {name!r} holds {kind_of(v)}, not text")
        headers[name] = [v if v.isascii() else v.encode("utf-8") for v in values]
    return headers


def _check_decoding(headers: dict[str, Any], body: bytes) -> None:
    """A compressed body (hand-edited or another recorder's: vcrpy records decoded) must
    decode, within recorders.MAX_DECODED_BODY: httpx would decode it in the app, unbounded."""
    from pytest_tokenbudget.providers.bodies import decode_body

    try:
        decode_body(headers, body)
    except CassetteError as err:
        raise _Unplayable(err.message) from None


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
