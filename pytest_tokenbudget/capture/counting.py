"""Count mode: input tokens from `count_tokens` on the request as it is sent now.

Counts are free but rate-limited, so they are kept in a disk cache beside the
cassettes, keyed by a canonical hash of the counted fields: safe to commit, and a
second run with unchanged prompts makes no API call at all.

Beside each request's own count, the counts of its prefixes (cache/parts.py's
`count_chain`) give its anatomy exactly: kept in the same cache, by the same key, so a
replay in CI reads them offline (`part_counts`).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_tokenbudget.cache.parts import count_chain
from pytest_tokenbudget.errors import CassetteError
from pytest_tokenbudget.files.atomic import write_atomic
from pytest_tokenbudget.files.input_files import COUNTS_MAX_BYTES, read_bounded_text
from pytest_tokenbudget.providers.counts import (
    token_count,
)  # whole number, at least 0; else a CassetteError

# What count_tokens takes: the prompt, not the sampling parameters.
COUNTED_FIELDS = ("model", "system", "tools", "tool_choice", "messages", "thinking", "mcp_servers")
CACHE_FILE = "token_counts.json"
CACHE_SCHEMA = "pytest-tokenbudget/token-counts"
RETRY_STATUSES = frozenset({429, 529})
MAX_ATTEMPTS = 6
MAX_WAIT_SECONDS = 60.0


def counted_request(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in COUNTED_FIELDS if k in body}


def count_key(counted: dict[str, Any]) -> str:
    canonical = json.dumps(counted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def retry_delay(headers: Any, attempt: int) -> float:
    """Honour retry-after-ms, then retry-after (seconds); else back off exponentially."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return min(max(float(value) * scale, 0.0), MAX_WAIT_SECONDS)
            except ValueError:
                pass
    return min(0.5 * 2.0**attempt, MAX_WAIT_SECONDS)


@dataclass
class CountResult:
    input_tokens: int
    from_cache: bool


class CountCache:
    """Counts by request hash, loaded once per run and written back atomically if it grew."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, Any]] | None = None
        self._unreadable: CassetteError | None = None
        self._dirty = False
        self.api_calls = 0  # count_tokens requests actually sent this run
        self.hits = 0

    def _load(self) -> dict[str, dict[str, Any]]:
        """The counts on disk, read once. A file that cannot be read raises its
        CassetteError again on every use: never an empty cache, which would tell every later
        case "no recorded count" for the count that is there, in a file that needs fixing."""
        if self._unreadable is not None:
            raise self._unreadable
        if self._counts is None:
            try:
                self._counts = _read_counts(self.path)
            except CassetteError as err:
                self._unreadable = err
                raise
        return self._counts

    def get(self, key: str) -> int | None:
        """The count kept for a request; a kept count that is not a whole number of at
        least 0 (or an entry that is no object) is a CassetteError naming the file and the
        field, never a count."""
        with self._lock:
            entry = self._load().get(key)
        if entry is None:
            return None
        field = f"counts.{key}.input_tokens"
        if not isinstance(entry, dict) or entry.get("input_tokens") is None:
            raise CassetteError(
                f"corrupt count cache: {field} is missing; delete the entry (or the file) to "
                "count again",
                path=self.path,
            )
        try:
            count = _count(entry["input_tokens"], field)
            if count == 0:  # every Messages request has a prompt: a 0 is forged or corrupt
                raise CassetteError(f"a count of 0 tokens, which no request has ({field})")
            return count
        except CassetteError as err:
            raise CassetteError(
                f"corrupt count cache: {err.message}; delete the entry (or the file) to count "
                "again",
                path=self.path,
            ) from None

    def lookup(self, key: str) -> int | None:
        """Like get, counting the hit."""
        found = self.get(key)
        if found is not None:
            self.hits += 1
        return found

    def put(self, key: str, model: str, tokens: int) -> None:
        with self._lock:
            self._load()[key] = {"model": model, "input_tokens": tokens}
            self._dirty = True

    def save(self) -> None:
        """Merge with what is on disk (xdist workers share the file), then write atomically.
        A file on disk that cannot be read is left as it is: each case that needed it has
        said why, and the run ends without writing over it."""
        with self._lock:
            if not self._dirty or self._counts is None:
                return
            merged = dict(self._counts)
            self._counts = None
            try:
                merged = {**self._load(), **merged}
            except CassetteError:
                self._counts = merged
                return
            self._counts = merged
            data = {"schema": CACHE_SCHEMA, "version": 1, "counts": dict(sorted(merged.items()))}
            write_atomic(self.path, json.dumps(data, indent=1) + "\n")
            self._dirty = False

    def __len__(self) -> int:
        """The counts kept (0 for a file that cannot be read: get says why)."""
        with self._lock:
            try:
                return len(self._load())
            except CassetteError:
                return 0


def _read_counts(path: Path) -> dict[str, dict[str, Any]]:
    """The `counts` of a count cache file ({} when there is none): a regular file of at most
    COUNTS_MAX_BYTES holding this cache's JSON, else a CassetteError naming the file."""
    try:
        if not path.exists():
            return {}
    except OSError as err:  # a name too long for the file system
        raise CassetteError(f"cannot read count cache: {err.strerror or err}", path=path) from None
    text = read_bounded_text(path, limit=COUNTS_MAX_BYTES, what="count cache", error=CassetteError)
    fix = "delete it to count again"
    try:
        data = json.loads(text)
    except RecursionError:
        raise CassetteError(
            f"corrupt count cache (nested too deeply to read); {fix}", path=path
        ) from None
    except ValueError as err:  # bad JSON, or a number of more than 4,300 digits
        raise CassetteError(f"corrupt count cache ({err}); {fix}", path=path) from None
    if not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA:
        raise CassetteError(
            f"not a token count cache (no `schema: {CACHE_SCHEMA}`); {fix}", path=path
        )
    counts = data.get("counts")
    if counts is not None and not isinstance(counts, dict):
        raise CassetteError(f"corrupt count cache: `counts` is not an object; {fix}", path=path)
    return dict(counts or {})


def count_sync(
    cache: CountCache,
    body: dict[str, Any],
    send: Callable[[dict[str, Any]], tuple[int, Any, bytes]],
    sleep: Callable[[float], None] = time.sleep,
) -> CountResult:
    """The count for a Messages request body: from the cache, else from the API (with retries)."""
    attempts = _Attempts(cache, body)
    while attempts.result is None:
        attempts.answer(*send(attempts.counted), sleep=sleep)
    return attempts.result


async def count_async(
    cache: CountCache,
    body: dict[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[tuple[int, Any, bytes]]],
) -> CountResult:
    import asyncio

    attempts = _Attempts(cache, body)
    while attempts.result is None:
        delay = attempts.answer(*await send(attempts.counted))
        if delay:
            await asyncio.sleep(delay)
    return attempts.result


def count_parts_sync(
    cache: CountCache,
    body: dict[str, Any],
    send: Callable[[dict[str, Any]], tuple[int, Any, bytes]],
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Count the prefixes that split a Messages request into its parts (cache/parts.py),
    those not in the cache yet. False when count_tokens refused one (the anatomy of that
    request is then estimated): never an error of the case, whose own count is in."""
    for attempts in _prefix_attempts(cache, body):
        try:
            while attempts.result is None:
                attempts.answer(*send(attempts.counted), sleep=sleep)
        except CassetteError:
            return False
    return True


async def count_parts_async(
    cache: CountCache,
    body: dict[str, Any],
    send: Callable[[dict[str, Any]], Awaitable[tuple[int, Any, bytes]]],
) -> bool:
    import asyncio

    for attempts in _prefix_attempts(cache, body):
        try:
            while attempts.result is None:
                delay = attempts.answer(*await send(attempts.counted))
                if delay:
                    await asyncio.sleep(delay)
        except CassetteError:
            return False
    return True


def _prefix_attempts(cache: CountCache, body: dict[str, Any]) -> Iterator[_Attempts]:
    """One count per prefix of the chain, each made when the one before is in the cache,
    so a prefix the chain repeats (no tools: P1 is P0) or that cases share (one system
    prompt) is counted once."""
    for prefix in count_chain(counted_request(body)) or []:
        try:
            attempts = _Attempts(cache, prefix, tally=False)
        except CassetteError:  # a corrupt cache: the request's own count has said so
            return
        yield attempts


def part_counts(cache: CountCache, body: dict[str, Any]) -> tuple[int, list[int]] | None:
    """(the request's count, its prefixes' counts) when the cache holds them all, else None.
    Read only: nothing is sent, and a request never counted costs one hash."""
    try:
        whole = cache.get(count_key(counted_request(body)))
        if whole is None:
            return None
        chain = count_chain(counted_request(body))
        if chain is None:
            return None
        found = [cache.get(count_key(counted_request(prefix))) for prefix in chain]
    except CassetteError:  # a corrupt cache: the capture says so where it matters
        return None
    if any(n is None for n in found):
        return None
    return whole, [n for n in found if n is not None]


class _Attempts:
    """One count: the cache first, then API answers until a count or the last attempt.

    Shared by the sync and async transports, which differ only in how they send and sleep.
    """

    def __init__(self, cache: CountCache, body: dict[str, Any], *, tally: bool = True) -> None:
        self.cache = cache
        self.counted = counted_request(body)
        self.key = count_key(self.counted)
        self.attempt = 0
        # a prefix found in the cache is no request answered from it (`tally` False)
        cached = cache.lookup(self.key) if tally else cache.get(self.key)
        self.result = CountResult(cached, from_cache=True) if cached is not None else None

    def answer(
        self,
        status: int,
        headers: Any,
        payload: bytes,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> float:
        """Take one API answer; return how long to wait before retrying (0 when done)."""
        self.cache.api_calls += 1
        self.attempt += 1
        if status in RETRY_STATUSES and self.attempt < MAX_ATTEMPTS:
            delay = retry_delay(headers, self.attempt - 1)
            if sleep is not None:
                sleep(delay)
            return delay
        tokens = _parse_count(status, payload)
        self.cache.put(self.key, str(self.counted.get("model", "")), tokens)
        self.result = CountResult(tokens, from_cache=False)
        return 0.0


def _parse_count(status: int, payload: bytes) -> int:
    if status == 401:
        raise CassetteError(
            "count_tokens needs a real API key: set ANTHROPIC_API_KEY (counting is free), "
            "or run without --token-budget-count to replay recorded usage"
        )
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        data = None
    if status >= 400:
        detail = (
            data.get("error", data)
            if isinstance(data, dict)
            else payload[:200].decode("utf-8", "replace")
        )
        raise CassetteError(f"count_tokens failed with HTTP {status}: {detail}")
    if not isinstance(data, dict) or data.get("input_tokens") is None:
        raise CassetteError(f"count_tokens answered HTTP {status} without a count")
    return _count(data["input_tokens"], "count_tokens input_tokens")


def _count(value: Any, where: str) -> int:

    return token_count(value, where)


def counter_client() -> Callable[[dict[str, Any]], tuple[int, Any, bytes]]:
    """count_tokens through the installed anthropic SDK (its key and base URL from the
    environment): status, headers and body, whatever the answer."""
    import anthropic

    client = anthropic.Anthropic(max_retries=0)  # retries are ours, honouring retry-after

    def send(fields: dict[str, Any]) -> tuple[int, Any, bytes]:
        try:
            raw = client.messages.with_raw_response.count_tokens(**fields)
        except anthropic.APIStatusError as err:
            return err.status_code, err.response.headers, err.response.content
        return raw.status_code, raw.headers, raw.http_response.content

    return send
