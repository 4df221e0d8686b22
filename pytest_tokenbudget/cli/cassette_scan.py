"""What the files under `tokenbudget analyze DIR` hold: each one's calls with usage, or why none.

Every recorder's files are read (providers/recorders.py: vcrpy, pydantic-ai, Ruby VCR, R vcr,
batch results) and their calls parsed (providers/exchanges.py). A file that cannot be used is a
`Skipped` with the reason, written on one line whatever its name holds.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.measure.samples import SAMPLE_KINDS
from pytest_tokenbudget.plain_text import one_line
from pytest_tokenbudget.providers import bedrock
from pytest_tokenbudget.providers.bodies import decode_body
from pytest_tokenbudget.providers.exchanges import PROVIDERS, parse_provider
from pytest_tokenbudget.providers.recorders import Exchange, NotACassetteError, read_recording
from pytest_tokenbudget.providers.usage import Call, Usage

SUFFIXES = frozenset({".yaml", ".yml", ".json", ".jsonl", ".ndjson"})
_UNSEARCHED = frozenset({"__pycache__", "node_modules", "site-packages"})


@dataclass(frozen=True)
class Skipped:
    """A file analyze could not use, and why."""

    path: str
    reason: str  # "unreadable: ...", "no usage: ...", "not a cassette: ..."
    line: int | None = None

    def __str__(self) -> str:
        return one_line(f"{self.path}{f':{self.line}' if self.line else ''}: {self.reason}")


@dataclass(frozen=True)
class CassetteCalls:
    """The calls with usage in one file, each with the case it belongs to."""

    path: Path  # relative to DIR
    format: str  # a key of recorders.FORMATS
    calls: tuple[tuple[str, Call], ...]
    left_out: tuple[str, ...] = ()  # calls that carried no usage


@dataclass
class Analysis:
    found: list[CassetteCalls] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def files(self) -> int:
        return len(self.found) + len(self.skipped)


def cassette_files(directory: Path) -> list[Path]:
    """Every file under DIR a recorder may have written; hidden and package folders left out."""
    found = []
    for path in directory.rglob("*"):
        parts = path.relative_to(directory).parts[:-1]
        if any(p.startswith(".") or p in _UNSEARCHED for p in parts):
            continue
        if path.suffix.lower() in SUFFIXES and not path.name.startswith(".") and path.is_file():
            found.append(path)
    return sorted(found)


def analyze(directory: Path) -> Analysis:
    analysis = Analysis()
    for path in cassette_files(directory):
        result = read_calls(path, directory)
        if isinstance(result, Skipped):
            analysis.skipped.append(result)
        else:
            analysis.found.append(result)
    return analysis


def read_calls(path: Path, directory: Path) -> CassetteCalls | Skipped:
    """The calls with usage in one file, or why there are none."""
    relative = path.relative_to(directory)
    shown = relative.as_posix()
    try:
        recording = read_recording(path)
    except NotACassetteError as err:
        return Skipped(shown, f"not a cassette: {err.message}", err.line)
    except CassetteError as err:
        return Skipped(shown, f"unreadable: {err.message}", err.line)
    case_id = relative.with_suffix("").as_posix()
    calls: list[tuple[str, Call]] = []
    empty: list[str] = []
    left_out: list[str] = []
    for index, exchange in enumerate(recording.exchanges):
        case = f"{case_id}:{recording.request_ids[index]}" if recording.request_ids else case_id
        try:
            found = _api_calls(exchange)
        except CassetteError as err:
            other = _other_models_stream(exchange)
            if other:  # a valid recording of a format no parser here reads
                empty.append(other)
                continue
            return Skipped(
                shown, f"unreadable: interaction {index}: {err.message}", recording.line_of(index)
            )
        if found is None:
            empty.append(_not_an_api_call(exchange))
        elif not found:
            empty.append(_no_call(exchange))
        for call in found or ():
            if call.kind not in SAMPLE_KINDS:
                empty.append(f"{call.kind} only (counts the prompt, generates nothing)")
            elif call.note and call.usage == Usage():
                left_out.append(call.note)
            else:
                calls.append((case, call))
    if not calls:
        return Skipped(shown, "no usage: " + summary(left_out + empty))
    return CassetteCalls(relative, recording.format, tuple(calls), tuple(left_out))


def _api_calls(exchange: Exchange) -> list[Call] | None:
    """The calls of an exchange; None when it is not an API call any provider knows."""
    for provider in PROVIDERS:
        calls = parse_provider(exchange, provider)
        if calls is not None:
            return calls
    return None


_BATCHES = re.compile(r"/v1/(?:messages/)?batches(?P<id>/[^/]+)?(?P<op>/cancel)?$")
_BEDROCK_INVOKE = re.compile(r"/model/(?P<model>[^/]+)/invoke-with-response-stream$")


def _other_models_stream(exchange: Exchange) -> str:
    """Why a Bedrock InvokeModel stream of a model that is not Claude has no usage here
    (its chunks are that model's own format, and Bedrock's invocation metrics are absent);
    "" for any other exchange."""
    found = _BEDROCK_INVOKE.search(urlsplit(exchange.url).path)
    model = unquote(found["model"]) if found else ""
    if not model or bedrock.bedrock_model(model) is not None or model.startswith("arn:"):
        return ""
    return (
        f"Bedrock stream of {model} (not a Claude model) without usage "
        "(no amazon-bedrock-invocationMetrics in its chunks)"
    )


def _not_an_api_call(exchange: Exchange) -> str:
    path = urlsplit(exchange.url).path.rstrip("/") or exchange.url
    batch = _BATCHES.search(path)
    if batch and batch["op"]:
        return "batch cancel"
    if batch and batch["id"]:
        return "batch status (usage comes with the batch results)"
    if batch and exchange.method == "POST":
        return "batch create (usage comes with the batch results)"
    if batch:
        return "batch list"
    return f"not an API call ({exchange.method} {path})"


def _no_call(exchange: Exchange) -> str:
    """Why an API call's response holds no call: an error, or a batch request that failed."""
    if not 200 <= exchange.status < 300:
        return f"error response (HTTP {exchange.status})"
    try:
        body = decode_body(exchange.headers, exchange.body)
    except CassetteError:
        body = exchange.body
    if bedrock.is_event_stream(body):
        return f"stream ended in an exception ({_exception_type(body)})"
    if body.lstrip().startswith((b"event:", b"data:")):
        return "stream ended in an error event"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    result = data.get("result") if isinstance(data, dict) else None
    if isinstance(result, dict):
        return f"batch request {result.get('type') or 'without a result'}"
    if "/batches/" in exchange.url:
        return "batch results with no succeeded request"
    return "error response (in the body)"


def _exception_type(body: bytes) -> str:
    """The exception an AWS event stream ended in, as its frame names it."""
    try:
        frames, _cut = bedrock.decode_frames(body)
    except CassetteError:
        frames = []
    for frame in frames:
        if frame.headers.get(":message-type") in ("exception", "error"):
            kind = frame.headers.get(":exception-type") or frame.headers.get(":error-code")
            return str(kind or "error")
    return "error"


def summary(reasons: Iterable[str]) -> str:
    counts = Counter(reasons)
    if not counts:
        return "no interactions"
    return "; ".join(r if n == 1 else f"{r} ×{n}" for r, n in counts.items())
