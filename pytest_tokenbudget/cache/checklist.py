"""The cost checklist as findings: tool definitions that no response calls (`unused-tools`),
a conversation resent whole at every turn (`history-unbounded`), and one request sent by
several cases (`duplicate-requests`).

In: what the run keeps of each Anthropic Messages call (`CallSeen`: its tools by name and
size, a digest of each message and of the whole request, the tools its response called, its
usage). Out: findings (cache/finding.py) beside the prompt-cache doctor's, with tokens and,
where a price and `requests_per_day` allow, dollars (`Costing`).

Pure functions over the calls in test order (test id, then the call's place in its test):
a run under pytest-xdist finds exactly what a serial run does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

from pytest_tokenbudget.cache.finding import CacheFinding
from pytest_tokenbudget.errors import PricingError
from pytest_tokenbudget.formatting import usd
from pytest_tokenbudget.providers.usage import Usage

if TYPE_CHECKING:
    from pytest_tokenbudget.config.budgets import Config
    from pytest_tokenbudget.pricing.prices import Price

MIN_TURNS = 3  # a conversation of fewer calls shows no growth *with the number of turns*
PROJECTED_TURNS = 20  # the conversation length history-unbounded prices
NAMED = 10  # tools or groups of cases named in one message
_DIGEST = 16
# what does not change the answer: left out of the key duplicate requests share
_NOT_THE_REQUEST = frozenset({"tools", "system", "messages", "stream", "metadata", "cache_control"})

FIX_TOOLS = "send only the tools the endpoint needs; if a case should call one, add that case"
FIX_HISTORY = (
    "send a window of the latest turns, or replace earlier turns with a summary, so the input "
    "stops growing with every turn"
)
FIX_DUPLICATES = (
    "answer repeated requests from an application-level response cache keyed by the request"
)


class CallSeen(NamedTuple):
    """What the checklist keeps of one Messages call. One per call, to the end of the run."""

    endpoint: str
    case_id: str
    test_id: str
    call_index: int  # the call's place among its test's exchanges
    model: str
    input_tokens: int  # the whole prompt as sent (recorded, or counted)
    usage: Usage  # as billed: what the call cost
    batch: bool
    answered: bool  # a response was recorded, so the tools it called are known
    called: tuple[str, ...]  # tools called: by its response, or in the history it sends
    tools: tuple[tuple[str, int], ...]  # (name, size in characters) of each tool sent
    size: int  # the prompt's size in characters: tools, system and messages
    messages: tuple[str, ...]  # a digest of each message (cache_control left out)
    key: str  # a digest of the whole request: equal for identical requests

    def to_wire(self, before: tuple[str, ...] = ()) -> list[Any]:
        """As JSON; its messages as how many it shares with `before`'s, and the rest."""
        n = len(before)
        shared = n if n <= len(self.messages) and self.messages[:n] == before else 0
        return [
            *self[:6],
            list(dataclasses.astuple(self.usage)),
            self.batch,
            self.answered,
            list(self.called),
            [list(t) for t in self.tools],
            self.size,
            [shared, list(self.messages[shared:])],
            self.key,
        ]

    @classmethod
    def from_wire(cls, data: list[Any], before: tuple[str, ...] = ()) -> CallSeen:
        endpoint, case_id, test_id, index, model, tokens, usage, *rest = data
        batch, answered, called, tools, size, (shared, messages), key = rest
        return cls(
            endpoint,
            case_id,
            test_id,
            index,
            model,
            tokens,
            Usage(*usage),
            batch,
            answered,
            tuple(called),
            tuple((name, chars) for name, chars in tools),
            size,
            before[:shared] + tuple(messages),
            key,
        )


def calls_to_wire(calls: Iterable[CallSeen]) -> list[list[Any]]:
    """Calls as JSON, each call's messages relative to the call before it: an agent's
    history crosses from an xdist worker once, not once per call."""
    out = []
    before: tuple[str, ...] = ()
    for call in calls:
        out.append(call.to_wire(before))
        before = call.messages
    return out


def calls_from_wire(data: Iterable[list[Any]]) -> list[CallSeen]:
    out: list[CallSeen] = []
    before: tuple[str, ...] = ()
    for item in data:
        out.append(CallSeen.from_wire(item, before))
        before = out[-1].messages
    return out


# -- what one request holds -------------------------------------------------------------
class _Part(NamedTuple):
    digest: str
    size: int
    called: tuple[str, ...] = ()  # the tool_use names in it (a message of the history)


def _plain(obj: Any) -> Any:
    """A block without its cache_control: where the cache breaks is not what is asked."""
    return {k: v for k, v in obj.items() if k != "cache_control"} if isinstance(obj, dict) else obj


def _text(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST]


def _part(obj: Any) -> _Part:
    text = _text(obj)
    return _Part(_digest(text), len(text))


def _message(message: Any) -> _Part:
    if not isinstance(message, dict):
        return _part(message)
    content = message.get("content")
    blocks = content if isinstance(content, list) else []
    plain = {**message, "content": [_plain(b) for b in blocks]} if blocks else message
    found = _part(plain)
    called = tuple(
        b["name"]
        for b in blocks
        if isinstance(b, dict)
        and str(b.get("type", "")).endswith("tool_use")
        and isinstance(b.get("name"), str)
    )
    return found._replace(called=called)


def _tool_sizes(tools: Any) -> tuple[tuple[tuple[str, int], ...], str]:
    """(name, size) of each tool definition, and a digest of them all."""
    listed = [_plain(t) for t in tools] if isinstance(tools, list) else []
    sized = tuple((str(t.get("name", "")), len(_text(t))) for t in listed if isinstance(t, dict))
    return sized, _digest(_text(listed))


@dataclass
class RequestMemo:
    """One endpoint's last request, part by part, and what was derived from each part.

    Cases share their tools and system prompt, and each turn of a conversation repeats
    the one before: each part is serialized once, not once per call that repeats it
    (as cache/prompt.py's Memo does for the doctor).
    """

    tools: tuple[Any, tuple[tuple[str, int], ...], str] | None = None
    system: tuple[Any, _Part] | None = None
    messages: list[Any] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # each message's
    sizes: list[int] = field(default_factory=list)  # of the messages up to each, summed


def call_seen(
    endpoint: str,
    case_id: str,
    request: dict[str, Any],
    *,
    input_tokens: int,
    usage: Usage,
    called: tuple[str, ...] | None,
    batch: bool = False,
    test_id: str = "",
    index: int = 0,
    memo: RequestMemo | None = None,
) -> CallSeen:
    """One Messages request as the checklist keeps it; `called`: the tools its recorded
    response called (None: no response was recorded); `memo`: the endpoint's."""
    memo = memo if memo is not None else RequestMemo()
    tools = request.get("tools")
    if memo.tools is None or memo.tools[0] != tools:
        memo.tools = (tools, *_tool_sizes(tools))
    _, sized, tools_digest = memo.tools
    system = request.get("system")
    if memo.system is None or memo.system[0] != system:
        blocks = [_plain(b) for b in system] if isinstance(system, list) else system
        memo.system = (system, _part(blocks) if system else _Part("", 0))
    system_part = memo.system[1]
    messages = request.get("messages")
    messages = messages if isinstance(messages, list) else []
    before, start = memo.messages, 0
    # a conversation's next request is the one before plus its new turns: one C-speed
    # comparison, then only the new messages serialized
    if before and messages[: len(before)] == before:
        start = len(before)
    # slices and joins of what the memo holds: no Python step per message already seen
    digests, sizes = memo.digests[:start], memo.sizes[:start]
    total = sizes[-1] if sizes else 0
    fresh: set[str] = set()
    for message in messages[start:]:
        part = _message(message)
        total += part.size
        digests.append(part.digest)
        sizes.append(total)
        fresh.update(part.called)
    memo.messages, memo.digests, memo.sizes = list(messages), digests, sizes
    params = {k: v for k, v in request.items() if k not in _NOT_THE_REQUEST}
    key = _digest(" ".join([_text(params), tools_digest, system_part.digest, *digests]))
    return CallSeen(
        endpoint,
        case_id,
        test_id,
        index,
        str(request.get("model", "")),
        input_tokens,
        usage,
        batch,
        called is not None,
        tuple(dict.fromkeys([*(called or ()), *sorted(fresh)])),
        sized,
        sum(size for _, size in sized) + system_part.size + total,
        tuple(digests),
        key,
    )


# -- dollars ------------------------------------------------------------------------------
def _no_price(model: str) -> Price | None:
    return None


@dataclass(frozen=True)
class Costing:
    """What turns tokens into dollars: each model's price, each endpoint's traffic."""

    price: Callable[[str], Price | None] = _no_price
    requests_per_day: Mapping[str, float | None] = field(default_factory=dict)
    batch: Mapping[str, bool] = field(default_factory=dict)

    @classmethod
    def of(
        cls, config: Config, hook: Callable[[str], Mapping[str, float] | None] | None = None
    ) -> Costing:
        from pytest_tokenbudget.pricing.prices import PriceBook

        book = PriceBook(config.pricing, fallback=hook)
        endpoints = config.endpoints
        return cls(
            book.find,
            {name: ep.requests_per_day for name, ep in endpoints.items()},
            {name: ep.batch for name, ep in endpoints.items()},
        )

    def cost(self, call: CallSeen, usage: Usage | None = None) -> Fraction | None:
        """What the call (or `usage` of it) cost; None: its model has no price."""
        try:
            price = self.price(call.model)
            batch = call.batch or self.batch.get(call.endpoint, False)
            billed = call.usage if usage is None else usage
            return None if price is None else price.cost(billed, batch=batch)
        except PricingError:  # a context the source has no rate for: no dollar figure
            return None

    def input_cost(self, call: CallSeen) -> Fraction | None:
        """What the call's prompt cost as billed (uncached, cache writes and reads)."""
        return self.cost(call, dataclasses.replace(call.usage, output_tokens=0))

    def input_rate(self, call: CallSeen) -> Fraction | None:
        """$ per uncached input token of the call's model, in the call's context."""
        one = Usage(input_tokens=1, speed=call.usage.speed, inference_geo=call.usage.inference_geo)
        return self.cost(call, one)

    def monthly(self, endpoint: str, per_request: Fraction | None) -> str:
        """Dollars per request as a monthly figure at the endpoint's requests_per_day."""
        if per_request is None:
            return ""
        daily = self.requests_per_day.get(endpoint)
        if daily:
            return f"{usd(per_request * Fraction(daily) * 30)}/month at requests_per_day {daily:,g}"
        return f"{usd(per_request)} per request (set requests_per_day for a monthly figure)"


# -- the findings --------------------------------------------------------------------------
def checklist_findings(
    calls: Iterable[CallSeen], costing: Costing | None = None
) -> list[CacheFinding]:
    """Every endpoint's checklist findings, from its calls in test order."""
    costing = costing or Costing()
    by_endpoint: dict[str, list[CallSeen]] = {}
    for call in sorted(calls, key=lambda c: (c.test_id, c.call_index)):
        by_endpoint.setdefault(call.endpoint, []).append(call)
    out = []
    for endpoint, mine in by_endpoint.items():
        for check in (unused_tools, unbounded_history, duplicate_requests):
            found = check(endpoint, mine, costing)
            if found is not None:
                out.append(found)
    return out


def _cases(calls: Iterable[CallSeen]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.case_id for c in calls))


def _per_request(total: Fraction | None, calls: Sequence[CallSeen]) -> Fraction | None:
    """A sum over the endpoint's calls as the mean per request (case)."""
    return None if total is None else total / len(_cases(calls))


def _named(items: Sequence[str]) -> str:
    shown = ", ".join(items[:NAMED])
    return shown + (f" and {len(items) - NAMED} more" if len(items) > NAMED else "")


def _about(value: Fraction) -> str:
    return f"{round(value):,}"


def _mean(values: Sequence[Fraction]) -> Fraction:
    return sum(values, Fraction(0)) / len(values)


def unused_tools(endpoint: str, calls: Sequence[CallSeen], costing: Costing) -> CacheFinding | None:
    """Tools sent with calls that have a recorded response, called by none of the
    endpoint's responses (nor in any history it sends): their estimated tokens and cost."""
    used = {name for call in calls for name in call.called}
    unused = list(
        dict.fromkeys(
            name for call in calls if call.answered for name, _ in call.tools if name not in used
        )
    )
    if not unused:
        return None
    names = set(unused)
    per_tool: dict[str, list[Fraction]] = {}
    per_call: list[Fraction] = []
    sending = []
    spent: Fraction | None = Fraction(0)
    for call in calls:
        mine = [(name, size) for name, size in call.tools if name in names]
        if not mine or not call.size:
            continue
        sending.append(call)
        # estimated: each tool's share of the prompt's characters, of its recorded tokens
        for name, size in mine:
            per_tool.setdefault(name, []).append(Fraction(size, call.size) * call.input_tokens)
        share = Fraction(sum(size for _, size in mine), call.size)
        per_call.append(share * call.input_tokens)
        cost = costing.input_cost(call)
        spent = None if cost is None or spent is None else spent + share * cost
    listing = [f"{name} (~{_about(_mean(per_tool[name]))} tokens)" for name in unused]
    money = costing.monthly(endpoint, _per_request(spent, calls))
    count = len(unused)
    message = (
        f"{count} tool definition{'s' if count != 1 else ''} sent with its calls that no "
        f"recorded response calls: {_named(listing)}; about {_about(_mean(per_call))} tokens "
        "per call, estimated from their size" + (f", {money}" if money else "")
    )
    return CacheFinding("unused-tools", endpoint, "tools", message, FIX_TOOLS, _cases(sending))


class Growth(NamedTuple):
    """One case's conversation resent whole: its first and last turn, and the growth."""

    case_id: str
    first: CallSeen
    last: CallSeen
    turns: int

    @property
    def per_turn(self) -> Fraction:
        return Fraction(self.last.input_tokens - self.first.input_tokens, self.turns - 1)

    def projected_tokens(self, turns: int = PROJECTED_TURNS) -> Fraction:
        """The input of a conversation of `turns` turns growing at this rate."""
        return turns * self.first.input_tokens + self.per_turn * turns * (turns - 1) / 2


def conversation_growth(calls: Sequence[CallSeen]) -> Growth | None:
    """One case's calls in order: a conversation every turn of which resends all earlier
    turns verbatim, at least MIN_TURNS long and still so at the case's last call; None when
    a later call drops or replaces earlier turns (a window, a summary).

    A call continues an earlier one when it carries that call's last message; it extends it
    when it starts with all of that call's messages. A call identical to the one before (a
    retry) is neither.
    """
    start = list(range(len(calls)))  # the first call of the conversation each call is in
    length = [1] * len(calls)  # its turns up to this call
    repeats = set()
    for j, call in enumerate(calls):
        carried = set(call.messages)
        for i in range(j - 1, -1, -1):
            earlier = calls[i].messages
            if not earlier or earlier[-1] not in carried:
                continue
            start[j], length[j] = start[i], length[i]
            if earlier == call.messages:  # the same turn again
                repeats.add(j)
            elif len(earlier) < len(call.messages) and call.messages[: len(earlier)] == earlier:
                length[j] += 1
            else:  # carries the last turn on, without all before it: windowed or summarised
                return None
            break
    end = max(range(len(calls)), key=lambda j: length[j], default=None)
    if end is None or length[end] < MIN_TURNS:
        return None
    if any(j not in repeats for j in range(end + 1, len(calls))):  # went on without it
        return None
    growth = Growth(calls[end].case_id, calls[start[end]], calls[end], length[end])
    return growth if growth.per_turn > 0 else None


def unbounded_history(
    endpoint: str, calls: Sequence[CallSeen], costing: Costing
) -> CacheFinding | None:
    """Multi-turn cases that resend their whole history every turn: the growth per turn and
    what a 20-turn conversation at that rate costs."""
    by_case: dict[str, list[CallSeen]] = {}
    for call in calls:
        by_case.setdefault(call.case_id, []).append(call)
    grown = [g for case in by_case.values() if (g := conversation_growth(case)) is not None]
    if not grown:
        return None
    per_turn = _mean([g.per_turn for g in grown])
    tokens = _mean([g.projected_tokens() for g in grown])
    rates = [costing.input_rate(g.first) for g in grown]
    costs = [g.projected_tokens() * r for g, r in zip(grown, rates, strict=True) if r is not None]
    cost = f", {usd(_mean(costs))} at the uncached input rate" if len(costs) == len(grown) else ""
    if len(grown) == 1:
        [one] = grown
        shape = (
            f"1 multi-turn case resends every earlier turn verbatim: its input grows by "
            f"{_about(per_turn)} tokens per turn ({one.first.input_tokens:,} at turn 1, "
            f"{one.last.input_tokens:,} at turn {one.turns})"
        )
    else:
        first = _mean([Fraction(g.first.input_tokens) for g in grown])
        shape = (
            f"{len(grown)} multi-turn cases resend every earlier turn verbatim: their input "
            f"grows by {_about(per_turn)} tokens per turn on average (turn 1: about "
            f"{_about(first)})"
        )
    message = (
        f"{shape}; a {PROJECTED_TURNS}-turn conversation at that rate sends {_about(tokens)} "
        f"input tokens{cost}"
    )
    cases = tuple(g.case_id for g in grown)
    return CacheFinding("history-unbounded", endpoint, "messages", message, FIX_HISTORY, cases)


def duplicate_requests(
    endpoint: str, calls: Sequence[CallSeen], costing: Costing
) -> CacheFinding | None:
    """Requests that several cases send word for word: all but the first (in test order)
    an application-level response cache would answer, and what that saves."""
    groups: dict[str, list[CallSeen]] = {}
    for call in calls:
        groups.setdefault(call.key, []).append(call)
    repeated = [group for group in groups.values() if len(_cases(group)) > 1]
    if not repeated:
        return None
    served = [call for group in repeated for call in group[1:]]
    saved: Fraction | None = Fraction(0)
    for call in served:
        cost = costing.cost(call)
        saved = None if cost is None or saved is None else saved + cost
    money = costing.monthly(endpoint, _per_request(saved, calls))
    listing = [" = ".join(_cases(group)) for group in repeated]
    message = (
        f"{len(served)} of {len(calls)} calls {'repeats' if len(served) == 1 else 'repeat'} "
        f"word for word a request another case sends ({_named(listing)}): an "
        "application-level response cache would answer "
        f"{'it' if len(served) == 1 else 'them'}" + (f", saving {money}" if money else "")
    )
    cases = tuple(dict.fromkeys(c for group in repeated for c in _cases(group)))
    return CacheFinding("duplicate-requests", endpoint, "request", message, FIX_DUPLICATES, cases)
