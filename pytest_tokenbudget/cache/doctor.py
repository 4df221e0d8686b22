"""The prompt-cache doctor: what keeps the prompt cache from working, and where.

Findings come from three places: a replayed request that differs from its
recording only in volatile values (cache/volatile.py), the requests of one endpoint
compared with each other, and each request's breakpoints (count, minimum
length). A finding is data; whether it fails the run is the endpoint's
`cache_lint` setting.

Findings do not depend on the order calls arrive in (under pytest-xdist, the order
workers finish): calls are compared and findings merged in test order (test id, then
the call's place in its test), so a parallel run finds exactly what a serial one does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from pytest_tokenbudget.cache.checklist import (
    CallSeen,
    Costing,
    RequestMemo,
    call_seen,
    calls_from_wire,
    calls_to_wire,
    checklist_findings,
)
from pytest_tokenbudget.cache.finding import CODES
from pytest_tokenbudget.cache.finding import CacheFinding as CacheFinding  # its former home
from pytest_tokenbudget.cache.prefixes import Variant, masked_digest, prefix_only, variant_spans
from pytest_tokenbudget.cache.prompt import (
    MAX_BREAKPOINTS,
    Memo,
    PromptBlock,
    breakpoints,
    prompt_blocks,
)
from pytest_tokenbudget.cache.volatile import Span
from pytest_tokenbudget.providers.usage import Usage

FIX_MOVE = "move the value after the last breakpoint, e.g. into the user turn"


def _quote(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _breakpoint_path(request: dict[str, Any]) -> str:
    blocks = prompt_blocks(request)
    points = breakpoints(blocks)
    return blocks[points[-1]].path if points else "none"


def span_findings(
    endpoint: str,
    case_id: str,
    spans: Sequence[Span],
    request: dict[str, Any] | None,
    *,
    against: str,
    last: str = "",
) -> list[CacheFinding]:
    """Findings for volatile values; `against` says what they were compared with; `last`:
    the request's last breakpoint, when the request itself is not at hand."""
    out = []
    last = _breakpoint_path(request) if request is not None else last
    for span in spans:
        values = f"{_quote(span.before)} {against}, {_quote(span.after)} now"
        if span.in_cached_prefix:
            message = (
                f"{span.path} at character {span.offset} changes between requests ({values}), "
                f"inside the cached prefix (breakpoint at {last}): every request misses the "
                "cache and pays for the whole prefix"
            )
            out.append(
                CacheFinding("volatile-prefix", endpoint, span.path, message, FIX_MOVE, (case_id,))
            )
        else:
            message = (
                f"{span.path} at character {span.offset} changes between requests ({values}), "
                "after the last cache breakpoint: harmless for the cache"
            )
            out.append(
                CacheFinding(
                    "volatile-after-breakpoint", endpoint, span.path, message, "", (case_id,)
                )
            )
    return out


Order = tuple[str, int]  # (test id, the call's place in its test): test order


class RawFinding(NamedTuple):
    """A finding as one call gave it, with where that call is in test order."""

    order: Order
    finding: CacheFinding


class PromptSeen(NamedTuple):
    """What the doctor keeps of one Messages call: its blocks, for comparing prefixes.
    One per call, kept to the end of the run: immutable, with no list of its own."""

    endpoint: str
    case_id: str
    model: str
    blocks: tuple[PromptBlock, ...]
    whole_input_tokens: int
    test_id: str = ""
    # the call's place among its test's exchanges (`index` would shadow tuple.index)
    call_index: int = 0
    kinds: tuple[str, ...] = ()  # each block's type, for the lookback window
    recorded: tuple[int, int, int] | None = None  # (read, 5m, 1h) as recorded; None: stale


@dataclass
class Doctor:
    """Collects findings and prompts during the run; `findings()` merges them by place."""

    raw: list[RawFinding] = field(default_factory=list)
    prompts: list[PromptSeen] = field(default_factory=list)
    # per (endpoint, model, masked prefix): its distinct prefixes, by their blocks' keys.
    # The one first in test order is what the others are compared with (findings()).
    _variants: dict[tuple[str, str, str], dict[tuple[str, ...], Variant]] = field(
        default_factory=dict
    )
    # per endpoint: the prompt parts seen last and what was derived from them (prompt.Memo).
    # Kept across cases, not only within one: an endpoint's cases share their tools and
    # system prompt, so those are canonicalized and masked once per run, not once per case.
    _memos: dict[str, Memo] = field(default_factory=dict)
    # what the cost checklist keeps of every call (cache/checklist.py), and per endpoint
    # its last request's parts
    calls: list[CallSeen] = field(default_factory=list)
    _requests: dict[str, RequestMemo] = field(default_factory=dict)

    def memo(self, endpoint: str) -> Memo:
        return self._memos.setdefault(endpoint, {})

    def add_call(
        self,
        endpoint: str,
        case_id: str,
        request: dict[str, Any],
        whole_input_tokens: int,
        minimum: int,
        known_prefix: int = 0,
        *,
        test_id: str = "",
        index: int = 0,
        recorded: tuple[int, int, int] | None = None,
        memo: Memo | None = None,
        may_cache: bool = True,
        usage: Usage | None = None,
        called: tuple[str, ...] | None = None,
        batch: bool = False,
    ) -> None:
        """One Messages call as sent; `known_prefix`: its recorded cache reads + writes;
        `memo`: the endpoint's prompt parts seen so far (prompt.prompt_blocks);
        `may_cache` False: the request has no cache_control anywhere, so it neither writes
        nor reads the cache, and its prompt is not split (kept with no blocks);
        `usage`: as billed (None: only counted); `called`: the tools its recorded response
        called (None: no response), for the cost checklist."""
        from pytest_tokenbudget.cache.simulation import block_kinds

        self.calls.append(
            call_seen(
                endpoint,
                case_id,
                request,
                input_tokens=whole_input_tokens,
                usage=usage if usage is not None else Usage(input_tokens=whole_input_tokens),
                called=called,
                batch=batch,
                test_id=test_id,
                index=index,
                memo=self._requests.setdefault(endpoint, RequestMemo()),
            )
        )
        if not may_cache:
            model = str(request.get("model", ""))
            self.prompts.append(
                PromptSeen(
                    endpoint,
                    case_id,
                    model,
                    (),
                    whole_input_tokens,
                    test_id,
                    index,
                    (),
                    recorded,
                )
            )
            return
        blocks = prompt_blocks(request, memo)
        points = breakpoints(blocks)
        model = str(request.get("model", ""))
        order = (test_id, index)
        if len(points) > MAX_BREAKPOINTS:
            self.raw.append(
                RawFinding(
                    order,
                    CacheFinding(
                        "too-many-breakpoints",
                        endpoint,
                        blocks[points[MAX_BREAKPOINTS]].path,
                        f"{len(points)} cache_control breakpoints; the API accepts at most "
                        f"{MAX_BREAKPOINTS} and rejects the request",
                        f"keep at most {MAX_BREAKPOINTS}: one after the tools, one after the system "
                        "prompt, one or two on the conversation",
                        (case_id,),
                    ),
                )
            )
        if points:
            if not known_prefix:  # a recorded cache read or write proves the length enough
                self._below_minimum(
                    endpoint, case_id, model, blocks, points, whole_input_tokens, minimum, order
                )
            self._across_requests(
                endpoint, (test_id, index, case_id), model, request, blocks, points, memo
            )
        kinds = block_kinds(blocks)
        self.prompts.append(
            PromptSeen(
                endpoint,
                case_id,
                model,
                tuple(blocks),
                whole_input_tokens,
                test_id,
                index,
                kinds,
                recorded,
            )
        )

    def _below_minimum(
        self,
        endpoint: str,
        case_id: str,
        model: str,
        blocks: list[PromptBlock],
        points: list[int],
        whole: int,
        minimum: int,
        order: Order,
    ) -> None:
        from pytest_tokenbudget.cache.simulation import estimate_cumulative

        cumulative = estimate_cumulative(blocks, whole)
        longest = points[-1]
        tokens = cumulative[longest]
        if tokens >= minimum:
            return
        exact = "" if longest == len(blocks) - 1 else "about "
        self.raw.append(
            RawFinding(
                order,
                CacheFinding(
                    "prefix-below-minimum",
                    endpoint,
                    blocks[longest].path,
                    f"the prefix up to the breakpoint at {blocks[longest].path} is {exact}{tokens:,} "
                    f"tokens, below {model}'s minimum cacheable length of {minimum:,}: the API caches "
                    "nothing and says nothing",
                    f"put the breakpoint after at least {minimum:,} tokens of stable prefix (tools and "
                    "system prompt together), or drop it",
                    (case_id,),
                ),
            )
        )

    def _across_requests(
        self,
        endpoint: str,
        first: tuple[str, int, str],
        model: str,
        request: dict[str, Any],
        blocks: list[PromptBlock],
        points: list[int],
        memo: Memo | None,
    ) -> None:
        """Group the prefix with those equal to it once masked; compared in findings()."""
        keys = tuple(b.key for b in blocks[: points[-1] + 1])
        prefix = prefix_only(request, blocks, points)
        group = (endpoint, model, masked_digest(prefix, {} if memo is None else memo))
        seen = self._variants.get(group, {}).get(keys)
        if seen is None:
            self._add_variant(group, keys, Variant(first, {first[2]: None}, prefix))
        else:  # the usual case: a prefix seen before (only one object less per call)
            seen.cases[first[2]] = None
            seen.first = min(seen.first, first)

    def _add_variant(
        self, group: tuple[str, str, str], keys: tuple[str, ...], variant: Variant
    ) -> None:
        variants = self._variants.setdefault(group, {})
        seen = variants.get(keys)
        if seen is not None:  # the same prefix again: one more case, maybe an earlier call
            seen.cases.update(variant.cases)
            seen.first = min(seen.first, variant.first)
            return
        variants[keys] = variant
        if len(variants) > 1:  # to be compared: keep only their volatile values
            for each in variants.values():
                each.volatile()

    def _compared(self) -> list[RawFinding]:
        """Each distinct prefix compared with its group's first in test order."""
        out: list[RawFinding] = []
        for (endpoint, _model, _digest), variants in self._variants.items():
            if len(variants) < 2:
                continue
            ordered = sorted(variants.values(), key=lambda v: v.first)
            reference, others = ordered[0], ordered[1:]
            first_case = reference.first[2]
            for variant in others:
                spans = variant_spans(reference.volatile(), variant.volatile())
                cached = [s for s in spans if s.in_cached_prefix]
                found = span_findings(
                    endpoint,
                    variant.first[2],
                    cached,
                    None,
                    against=f"in case {first_case}",
                    last=variant.last,
                )
                cases = tuple(dict.fromkeys((first_case, *sorted(variant.cases))))
                out.extend(RawFinding(variant.first[:2], replace(f, cases=cases)) for f in found)
        return out

    def add_replay_spans(
        self,
        endpoint: str,
        case_id: str,
        spans: Sequence[Span],
        request: dict[str, Any],
        *,
        test_id: str = "",
        index: int = 0,
    ) -> None:
        found = span_findings(endpoint, case_id, spans, request, against="recorded")
        self.raw.extend(RawFinding((test_id, index), f) for f in found)

    def findings(self, costing: Costing | None = None) -> list[CacheFinding]:
        """One finding per (code, endpoint, place), naming every case it was seen in; its
        message is the one of the call first in test order, whatever order calls came in.
        `costing`: prices and traffic, for the cost checklist's dollars."""
        merged: dict[tuple[str, str, str], CacheFinding] = {}
        raw = sorted([*self.raw, *self._compared()], key=lambda r: r.order)  # stable
        found = [*_never_read(self.prompts), *checklist_findings(self.calls, costing)]
        for finding in [*(r.finding for r in raw), *found]:
            key = (finding.code, finding.endpoint, finding.where)
            seen = merged.get(key)
            if seen is None:
                merged[key] = finding
            else:
                cases = tuple(sorted(set(seen.cases + finding.cases)))
                merged[key] = CacheFinding(
                    seen.code, seen.endpoint, seen.where, seen.message, seen.fix, cases
                )
        order = {code: i for i, code in enumerate(CODES)}
        return sorted(merged.values(), key=lambda f: (f.endpoint, order[f.code], f.where))

    # -- xdist -------------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        return {
            "findings": [[list(r.order), r.finding.to_dict()] for r in self.raw],
            "prompts": [
                [
                    p.endpoint,
                    p.case_id,
                    p.model,
                    [[b.path, b.key, b.chars, b.ttl, b.kind] for b in p.blocks],
                    p.whole_input_tokens,
                    p.test_id,
                    p.call_index,
                    list(p.kinds),
                    list(p.recorded) if p.recorded is not None else None,
                ]
                for p in self.prompts
            ],
            "variants": [
                [list(group), list(keys), variant.to_wire()]
                for group, variants in self._variants.items()
                for keys, variant in variants.items()
            ],
            "calls": calls_to_wire(self.calls),
        }

    def merge_wire(self, data: dict[str, Any]) -> None:
        """A worker's findings, prompts and prefixes, to be merged in test order."""
        self.raw.extend(
            RawFinding((order[0], order[1]), CacheFinding.from_dict(f))
            for order, f in data.get("findings", [])
        )
        for (
            endpoint,
            case_id,
            model,
            blocks,
            whole,
            test_id,
            index,
            kinds,
            recorded,
        ) in data.get("prompts", []):
            self.prompts.append(
                PromptSeen(
                    endpoint,
                    case_id,
                    model,
                    tuple(PromptBlock(*b) for b in blocks),
                    whole,
                    test_id,
                    index,
                    tuple(kinds),
                    tuple(recorded) if recorded is not None else None,
                )
            )
        for group, keys, variant in data.get("variants", []):
            self._add_variant(tuple(group), tuple(keys), Variant.from_wire(variant))
        self.calls.extend(calls_from_wire(data.get("calls", [])))


def in_test_order(prompts: Iterable[PromptSeen]) -> list[PromptSeen]:
    """By test id, then by the call's place in its test: as a serial run sees them."""
    return sorted(prompts, key=lambda p: (p.test_id, p.call_index))


def _never_read(prompts: Iterable[PromptSeen]) -> list[CacheFinding]:
    """Breakpoints whose prefix no later call of the endpoint (in test order) starts with:
    written, never read."""
    by_endpoint: dict[tuple[str, str], list[PromptSeen]] = {}
    for seen in in_test_order(prompts):
        by_endpoint.setdefault((seen.endpoint, seen.model), []).append(seen)
    out = []
    for (endpoint, _model), calls in by_endpoint.items():
        lengths = {p + 1 for call in calls for p in breakpoints(call.blocks)}
        last_with: dict[tuple[int, int], int] = {}  # (length, prefix hash) -> last call index
        for i, call in enumerate(calls):
            for n in lengths:
                if n <= len(call.blocks):
                    last_with[(n, hash(tuple(b.key for b in call.blocks[:n])))] = i
        unread: dict[str, list[str]] = {}
        used: set[str] = set()
        for i, call in enumerate(calls):
            for point in breakpoints(call.blocks):
                prefix = (point + 1, hash(tuple(b.key for b in call.blocks[: point + 1])))
                path = call.blocks[point].path
                if last_with[prefix] > i:
                    used.add(path)
                else:
                    unread.setdefault(path, []).append(call.case_id)
        for path, cases in unread.items():
            if path in used or len(cases) < 2:
                continue
            out.append(
                CacheFinding(
                    "breakpoint-never-read",
                    endpoint,
                    path,
                    f"the prefix up to the breakpoint at {path} differs in every call ({len(cases)} "
                    "calls): each one pays the cache-write premium and none reads it",
                    "move the breakpoint before the content that varies per request",
                    tuple(dict.fromkeys(cases)),
                )
            )
    return out


def diagnose_case(
    doctor: Doctor,
    endpoint: str,
    case_id: str,
    exchanges: Sequence[tuple[Any, Sequence[Any]]],
    volatile: dict[int, list[Span]],
    minimum: Callable[[str], int],
    test_id: str = "",
) -> None:
    """Hand one case's Anthropic Messages calls (exchange, parsed calls) to the doctor.

    A call that compacted (``usage.iterations``) ran twice: its compaction step read the
    request as sent, its message step only the summary. So the compaction step's usage
    is the prompt the doctor sees, and a cache write or read recorded in any step of the
    call's own model is evidence that its prefix is long enough to cache. An advisor's
    steps read the advisor's own transcript: not this prefix.
    """
    from pytest_tokenbudget.providers.usage import ITERATION

    memo = doctor.memo(endpoint)
    for index, (exchange, calls) in enumerate(exchanges):
        at = next(
            (k for k, c in enumerate(calls) if c.kind == "messages" and c.provider == "anthropic"),
            None,
        )
        if at is None:
            continue
        call = calls[at]
        parts = []
        for part in calls[at + 1 :]:
            if part.kind != ITERATION:
                break
            parts.append(part)
        try:
            request = exchange.request_json
        except RecursionError:  # nested deeper than json can read: no prompt to diagnose
            continue
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            continue
        stale = call.recounted  # re-counted now (count mode): the count is the prompt
        compacted = [p.usage for p in parts if p.iteration == "compaction"]
        usage = compacted[0] if compacted and not stale else call.usage
        cached = usage.cache_write_tokens + usage.cache_read_tokens
        # the call's own model's steps: compaction, the first sampling, later ones (message)
        own = compacted + [p.usage for p in parts if p.iteration == "message"]
        evidence = sum(u.cache_write_tokens + u.cache_read_tokens for u in own) + (
            call.usage.cache_write_tokens + call.usage.cache_read_tokens
        )
        whole = usage.input_tokens + cached
        model = str(request.get("model") or call.model)
        recorded = (
            None
            if stale
            else (usage.cache_read_tokens, usage.cache_write_5m_tokens, usage.cache_write_1h_tokens)
        )
        doctor.add_call(
            endpoint,
            case_id,
            request,
            whole,
            minimum(model),
            0 if stale else evidence,
            test_id=test_id,
            index=index,
            recorded=recorded,
            memo=memo,
            # a substring search of the bytes sent, rather than a split of the whole prompt
            may_cache=b"cache_control" in exchange.request_body,
            usage=call.usage,
            called=call.tools_called,
            batch=call.batch,
        )
        if index in volatile:
            doctor.add_replay_spans(
                endpoint, case_id, volatile[index], request, test_id=test_id, index=index
            )
