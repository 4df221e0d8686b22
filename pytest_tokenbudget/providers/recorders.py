"""Cassette files of every recorder -> the HTTP exchanges they hold.

In: a file written by one of the recorders teams already use — vcrpy (pytest-recording,
pytest-vcr; YAML or JSON), pydantic-ai's serialisers (``parsed_body``; cassetter's typed
``body: {type, content}``), Ruby VCR, R vcr and Betamax (``http_interactions``), or a
batch results file (JSONL, one request per line). Out: a ``Recording``: which format it
was, one ``Exchange`` per interaction (bodies as bytes, as the recorder stored them,
possibly still compressed) and the line each interaction starts on. Nothing here reads
token usage: providers/exchanges.py parses each exchange.

A file is read as untrusted input: a regular file of at most CASSETTE_MAX_BYTES, its YAML
aliases and depth bounded (yaml_source.check_bounds), JSON nested too deep refused, and a
compressed body (R vcr's ``raw_gzip``, or any body providers/bodies.py decodes) inflated to at most
MAX_DECODED_BODY bytes: each is one CassetteError naming the file.

Stdlib only at import (yaml is imported when a file is read): providers/exchanges.py imports
this module, and every pytest run imports providers/exchanges.py.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.files.input_files import CASSETTE_MAX_BYTES, MiB, read_bounded_text

# What a compressed body may decode to: what a cassette may hold (and where scrubbing a
# body before it is written stops), far past any API answer. A gzip "bomb" of 1.4 MB
# (1.4 GB of zeros) is refused after this much, a chunk at a time.
MAX_DECODED_BODY = CASSETTE_MAX_BYTES
_INFLATE_CHUNK = 1 * MiB
GZIP_WBITS, ZLIB_WBITS, RAW_DEFLATE_WBITS = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS


class BodyTooLarge(CassetteError):
    """A compressed body that decodes to more than MAX_DECODED_BODY bytes."""


def inflate(data: bytes, wbits: int, *, limit: int = MAX_DECODED_BODY) -> bytes:
    """`data` decompressed (``wbits``: GZIP_WBITS, ZLIB_WBITS or RAW_DEFLATE_WBITS), one
    chunk at a time, refused with BodyTooLarge past `limit` bytes. Concatenated gzip
    members are read as gzip.decompress reads them. Corrupt data raises zlib.error; data
    cut short, EOFError."""
    out: list[bytes] = []
    size = 0
    while True:
        inflater = zlib.decompressobj(wbits)
        chunk = inflater.decompress(data, _INFLATE_CHUNK)
        while True:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(
                    f"the compressed body decodes to more than {limit // MiB} MiB: "
                    "no API response is that large"
                )
            out.append(chunk)
            if inflater.eof or not inflater.unconsumed_tail:
                break
            chunk = inflater.decompress(inflater.unconsumed_tail, _INFLATE_CHUNK)
        if not inflater.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        data = inflater.unused_data
        if wbits != GZIP_WBITS or not data.startswith(b"\x1f\x8b"):
            return b"".join(out)  # trailing bytes after the stream are ignored, as zlib does


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its response, bodies as bytes (possibly still compressed)."""

    method: str
    url: str
    request_body: bytes
    status: int
    headers: dict[str, list[str]]  # response headers, any case
    body: bytes

    @functools.cached_property
    def request_json(self) -> Any:
        """The request body as JSON (None if it is not), parsed once: usage parsing and
        the prompt-cache doctor both read it, and an agent's bodies hold its history."""
        try:
            return json.loads(self.request_body) if self.request_body.strip() else None
        except (ValueError, UnicodeDecodeError):
            return None


# What each format is called where a user reads it (analyze's output).
FORMATS = {
    "vcrpy": "vcrpy",
    "pydantic-ai": "pydantic-ai (parsed_body)",
    "cassetter": "pydantic-ai (cassetter)",
    "ruby-vcr": "Ruby VCR",
    "r-vcr": "R vcr",
    "betamax": "Betamax",
    "vcr": "VCR",
    "batch-results": "batch results",
}


@dataclass(frozen=True)
class Recording:
    """The exchanges of one file, and where each came from in it."""

    path: str
    format: str  # a key of FORMATS
    exchanges: tuple[Exchange, ...]
    lines: tuple[int | None, ...] = ()  # 1-based line each interaction starts on
    request_ids: tuple[str, ...] = ()  # batch results: the custom_id of each line

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if index < len(self.lines) else None


class NotACassetteError(CassetteError):
    """The file reads fine, but holds no recorded interactions (a config file, a fixture)."""


def read_recording(path: str | os.PathLike[str]) -> Recording:
    """The recording in a file, whatever wrote it.

    Every problem is a ``CassetteError`` naming the file, and the line where the file
    says which (YAML and JSON syntax, a malformed interaction, a bad batch line).
    """
    path = os.fspath(path)
    text = _read_text(path)
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _batch_results(text, path)
    if suffix == ".json":
        return exchanges_from_document(_load_json(text, path), path=path)
    data, lines = _load_yaml(text, path)
    return exchanges_from_document(data, path=path, lines=lines)


def exchanges_from_document(
    data: Any,
    *,
    path: str | os.PathLike[str] | None = None,
    lines: Sequence[int | None] = (),
) -> Recording:
    """The recording in a loaded cassette: ``interactions`` (vcrpy and pydantic-ai) or
    ``http_interactions`` (Ruby VCR, R vcr, Betamax)."""
    where = os.fspath(path) if path is not None else None
    if isinstance(data, list) and data and isinstance(data[0], dict) and "request" in data[0]:
        raise CassetteError("cassette is in the pre-1.0 vcrpy format; re-record it", path=where)
    if isinstance(data, dict) and isinstance(data.get("http_interactions"), list):
        if "recorded_with" not in data:
            # VCR writes `recorded_with` after the interactions: a file cut short loses it.
            raise CassetteError(
                "cassette has no `recorded_with`: the file looks truncated", path=where
            )
        interactions, fmt = data["http_interactions"], _vcr_flavour(data["recorded_with"])
    elif isinstance(data, dict) and isinstance(data.get("interactions"), list):
        # `version` may come anywhere: vcrpy writes it last, cassetter and others first.
        if "version" not in data and list(data)[-1] == "interactions":
            # Nothing after the interactions, where vcrpy writes `version`: a file cut
            # short loses it first. (vcrpy itself never reads it: with other keys after
            # the interactions, the file is whole and is read as vcrpy reads it.)
            raise CassetteError(
                "cassette has no `version` after its interactions, where vcrpy writes it: "
                "the file looks truncated",
                path=where,
            )
        if data.get("version", 1) != 1:
            raise CassetteError(f"unsupported cassette version {data['version']!r}", path=where)
        interactions = data["interactions"]
        fmt = _vcrpy_flavour(interactions)
    else:
        raise NotACassetteError(
            "not a vcrpy cassette (no `interactions` list), nor a VCR one "
            "(no `http_interactions` list)",
            path=where,
        )
    exchanges = []
    for index, interaction in enumerate(interactions):
        line = lines[index] if index < len(lines) else None
        try:
            exchanges.append(_exchange(interaction))
        except KeyError as err:
            raise CassetteError(
                f"interaction {index} has no {err.args[0]!r} (truncated or hand-edited?)",
                path=where,
                line=line,
            ) from None
        except (TypeError, ValueError, AttributeError, OSError, EOFError, zlib.error) as err:
            raise CassetteError(
                f"interaction {index} is malformed: {err}", path=where, line=line
            ) from None
        except BodyTooLarge as err:
            raise CassetteError(
                f"interaction {index}: {err.message}", path=where, line=line
            ) from None
        except RecursionError:
            raise CassetteError(
                f"interaction {index} is nested too deeply to read", path=where, line=line
            ) from None
    return Recording(where or "", fmt, tuple(exchanges), tuple(lines))


# -- reading files ----------------------------------------------------------------------
def _read_text(path: str) -> str:
    text = read_bounded_text(path, limit=CASSETTE_MAX_BYTES, what="cassette", error=CassetteError)
    if not text.strip():
        raise CassetteError("cassette is empty", path=path)
    return text


@functools.cache
def _loader_class() -> type:
    """libyaml's safe loader, plus the plain-string tags old vcrpy cassettes carry
    (``!!python/unicode``, ``!!python/str``: vcrpy and replay read them as strings)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    class CassetteLoader(base):  # type: ignore[misc, valid-type]
        """The safe loader with the two string tags."""

    for tag in ("tag:yaml.org,2002:python/unicode", "tag:yaml.org,2002:python/str"):
        CassetteLoader.add_constructor(tag, lambda loader, node: loader.construct_scalar(node))
    return CassetteLoader


def _load_yaml(text: str, path: str) -> tuple[Any, tuple[int | None, ...]]:
    """The document, and the line each interaction starts on (from the same parse)."""
    import yaml

    from pytest_tokenbudget.files.yaml_source import TooLarge, check_bounds

    loader = _loader_class()(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            check_bounds(node)  # before the constructor builds what the aliases stand for
        data = loader.construct_document(node) if node is not None else None
    except TooLarge as err:
        raise CassetteError(err.message, path=path, line=err.line) from None
    except RecursionError:  # the pure-Python loader (no libyaml) recurses while it composes
        raise CassetteError(
            "corrupt cassette (nested too deeply to read); delete it and re-record", path=path
        ) from None
    except ValueError as err:  # a number of more than 4,300 digits, which int() refuses
        raise CassetteError(
            f"corrupt cassette ({err}); delete it and re-record", path=path
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise CassetteError(
            f"corrupt cassette (YAML: {problem}); delete it and re-record",
            path=path,
            # a problem at the end of the file is marked on the line after the last one
            line=min(mark.line + 1, len(text.splitlines()) or 1) if mark is not None else None,
        ) from None
    finally:
        loader.dispose()
    return data, _interaction_lines(node, yaml)


def _interaction_lines(node: Any, yaml: Any) -> tuple[int | None, ...]:
    if not isinstance(node, yaml.MappingNode):
        return ()
    for key, value in node.value:
        if key.value in ("interactions", "http_interactions") and isinstance(
            value, yaml.SequenceNode
        ):
            return tuple(item.start_mark.line + 1 for item in value.value)
    return ()


def _load_json(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CassetteError(
            f"corrupt cassette (JSON: {err.msg}); delete it and re-record",
            path=path,
            line=err.lineno,
        ) from None
    except RecursionError:
        raise CassetteError(
            "corrupt cassette (JSON nested too deeply to read); delete it and re-record",
            path=path,
        ) from None
    except ValueError as err:  # a number of more than 4,300 digits, which int() refuses
        raise CassetteError(
            f"corrupt cassette ({err}); delete it and re-record", path=path
        ) from None


# -- formats ----------------------------------------------------------------------------
def _vcr_flavour(recorded_with: Any) -> str:
    """Ruby VCR writes `VCR 6.1.0`; R vcr `vcr/1.2.2, webmockr/0.9.0` or `VCR-vcr/2.1.0`."""
    text = str(recorded_with or "")
    if text.startswith("VCR "):
        return "ruby-vcr"
    if "vcr/" in text:
        return "r-vcr"
    if text.lower().startswith("betamax"):
        return "betamax"
    return "vcr"


def _vcrpy_flavour(interactions: list[Any]) -> str:
    for interaction in interactions:
        if not isinstance(interaction, dict):
            continue
        for part in (interaction.get("request"), interaction.get("response")):
            if not isinstance(part, dict):
                continue
            if "parsed_body" in part:
                return "pydantic-ai"
            if _is_typed(part.get("body")):
                return "cassetter"
    return "vcrpy"


_TYPED = frozenset({"json", "text", "binary", "none"})


def _is_typed(body: Any) -> bool:
    """cassetter's body: ``{type: json|text|binary|none, content: ...}``."""
    return (
        isinstance(body, dict) and body.get("type") in _TYPED and set(body) <= {"type", "content"}
    )


# -- interactions -----------------------------------------------------------------------
def _exchange(interaction: Any) -> Exchange:
    request, response = interaction["request"], interaction["response"]
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise TypeError("request and response must be mappings")
    headers = response.get("headers")
    return Exchange(
        method=str(request.get("method") or "POST").upper(),  # Ruby and R VCR: `post`
        url=str(request["uri"]),
        request_body=_body_of(request),
        status=_status(response),
        headers={
            str(name).lower(): [str(v) for v in value] if isinstance(value, list) else [str(value)]
            for name, value in (headers.items() if isinstance(headers, dict) else ())
        },  # R vcr writes one value per header, not a list
        body=_body_of(response),
    )


def _body_of(part: dict[str, Any]) -> bytes:
    """A request's or response's body, wherever the recorder put it."""
    if part.get("body") is not None:
        return _body(part["body"])
    if "parsed_body" in part:  # pydantic-ai's serialiser, on request and response
        return _as_json(part["parsed_body"])
    return b""


def _body(value: Any) -> bytes:
    """A body as each recorder stores it.

    vcrpy: a string, bytes (YAML ``!!binary``) or ``{string: ...}``; Ruby VCR and Betamax:
    ``{encoding, string}`` or ``{encoding, base64_string}``; R vcr: ``{string}``,
    ``{raw_gzip}`` (2.x) or ``{base64_string}`` (1.x); cassetter: ``{type, content}``.
    """
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        if _is_typed(value):
            return _typed_body(value)
        if value.get("file") is True or "on_disk" in value:
            return b""  # R vcr kept this body in a file beside the cassette
        if "string" in value:
            string = value["string"]
            return b"" if string is False else _body(string)  # R vcr 1.x: `string: no`
        if "base64_string" in value:
            return _base64(value["base64_string"])
        if "raw_gzip" in value:
            return inflate(_base64(value["raw_gzip"]), GZIP_WBITS)
        if "parsed_body" in value:
            return _as_json(value["parsed_body"])
    return _as_json(value)  # a body stored as parsed JSON


def _typed_body(body: dict[str, Any]) -> bytes:
    kind, content = body["type"], body.get("content")
    if kind == "none" or content is None:
        return b""
    if kind == "json":
        return _as_json(content)
    if kind == "binary" and isinstance(content, str):
        return bytes.fromhex(content)  # cassetter writes binary bodies as hex
    return _body(content)


def _base64(value: Any) -> bytes:
    try:
        return base64.b64decode("".join(str(value).split()), validate=True)
    except binascii.Error as err:
        raise ValueError(f"body is not valid base64 ({err})") from None


def _as_json(value: Any) -> bytes:
    # default=str: YAML turns unquoted timestamps in a parsed body into datetimes.
    return json.dumps(value, default=str).encode("utf-8")


def _status(response: dict[str, Any]) -> int:
    """``{code: 200, message: OK}`` (vcrpy, Ruby VCR), ``{status_code: '200'}`` (R vcr 1.x)
    or ``200`` (R vcr 2.x, cassetter)."""
    status = response["status"]
    code = status.get("code", status.get("status_code")) if isinstance(status, dict) else status
    if isinstance(code, bool) or not isinstance(code, (int, str)) or not str(code).isdigit():
        raise ValueError(f"status code {code!r} is not a number")
    return int(code)


# -- batch results ----------------------------------------------------------------------
def _batch_results(text: str, path: str) -> Recording:
    """A batch results file: one exchange per line, so each request is its own case.

    Anthropic Message Batches: ``{"custom_id", "result": {"type", "message": {..., usage}}}``.
    OpenAI Batch output: ``{"custom_id", "response": {"status_code", "body"}, "error"}``.
    """
    batch = quote(Path(path).stem, safe="")
    exchanges: list[Exchange] = []
    lines: list[int | None] = []
    ids: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise CassetteError(
                "corrupt batch results: the line is not JSON (one JSON object per line)",
                path=path,
                line=number,
            ) from None
        exchange = _batch_line(item, line, batch)
        if exchange is None:
            error = NotACassetteError if not exchanges else CassetteError
            raise error(
                "not a batch result (no `result` or `response` object)", path=path, line=number
            )
        exchanges.append(exchange)
        lines.append(number)
        ids.append(str(item.get("custom_id") or f"line {number}"))
    return Recording(str(path), "batch-results", tuple(exchanges), tuple(lines), tuple(ids))


_OPENAI_URLS = {"chat.completion": "/v1/chat/completions", "response": "/v1/responses"}


def _batch_line(item: Any, line: str, batch: str) -> Exchange | None:
    if not isinstance(item, dict):
        return None
    if isinstance(
        item.get("result"), dict
    ):  # Anthropic: providers/anthropic.py reads the line as is
        url = f"/v1/messages/batches/{batch}/results"
        return Exchange("GET", url, b"", 200, {}, line.encode("utf-8"))
    response = item.get("response")
    if isinstance(response, dict) or item.get("error"):  # OpenAI
        response = response if isinstance(response, dict) else {}
        body = response.get("body")
        status = response.get("status_code", 200 if body else 500)
        kind = str(body.get("object") or "") if isinstance(body, dict) else "chat.completion"
        url = _OPENAI_URLS.get(kind, f"/v1/batch-output/{quote(kind, safe='')}")
        if not isinstance(status, int) or isinstance(status, bool):
            status = 500
        return Exchange("POST", url, b"", status, {}, _as_json(body if body else item))
    return None
