"""The anatomy of a Messages request: its prompt split into parts, in cache order.

The parts, each a set of blocks wherever they are in the request:

- ``tools``: the tool definitions (with ``tool_choice`` and ``mcp_servers``);
- ``system``: the system prompt;
- ``history``: the turns before the newest user turn (each message's framing, and a tool
  result's envelope, go with the turn);
- ``tool_results``: what tools returned: the content of ``tool_result`` blocks and of the
  server tools' result blocks, in any turn;
- ``documents``: ``document``, ``image`` and ``search_result`` blocks, in any turn;
- ``latest_turn``: the newest user turn's own blocks, and any prefill after it.

Two ways to a part's tokens. Counted: `count_chain` gives six requests; their
count_tokens counts and the whole request's give each part exactly (`counted_parts`), and
the parts add up to the whole count. Estimated: `estimate_parts` reads each part's own
text alone (`units`), so a part that did not change keeps its figure whatever the others
do; what the estimates leave of the recorded prompt is carried apart, never shared out
(measure/anatomy.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

INPUT_PARTS = ("tools", "system", "history", "tool_results", "documents", "latest_turn")
TOOLS, SYSTEM, HISTORY, TOOL_RESULTS, DOCUMENTS, LATEST_TURN = range(len(INPUT_PARTS))
DOCUMENT_TYPES = frozenset({"document", "image", "search_result"})
TOOL_FIELDS = ("tools", "tool_choice", "mcp_servers")
PROMPT_FIELDS = (*TOOL_FIELDS, "system", "messages")
# The user turn every counted prefix ends with: count_tokens needs one, and the same turn at
# the end of each prefix cancels out of every difference but the first (counted_parts).
PLACEHOLDER = {"role": "user", "content": "."}

# Sizes the text cannot tell: an image as Claude reads it after scaling it to about 1.15
# megapixels (width x height / 750), and a binary (PDF) document, about a page of text.
IMAGE_TOKENS = 1_600
DOCUMENT_TOKENS = 1_500

# A word, a number, a punctuation mark; each CJK character on its own (a word-level
# count would make a sentence of Chinese one token).
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_UNIT = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+|[^\\w\\s]")


def units(text: str) -> int:
    """The tokens of a text as a word-level tokenizer counts them: words, numbers and
    punctuation marks. An estimate of Claude's count, from the text alone."""
    return len(_UNIT.findall(text))


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def _without_cache_control(obj: Any) -> Any:
    return {k: v for k, v in obj.items() if k != "cache_control"} if isinstance(obj, dict) else obj


def is_tool_result(block: Any) -> bool:
    """A client tool's `tool_result`, or a server tool's (`web_search_tool_result`, ...)."""
    return isinstance(block, dict) and str(block.get("type", "")).endswith("tool_result")


def is_document(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") in DOCUMENT_TYPES


# -- estimating -----------------------------------------------------------------------------
def block_units(block: Any) -> int:
    """The estimated tokens of one content block, from its own content."""
    if isinstance(block, str):
        return units(block)
    if not isinstance(block, dict):
        return units(_json(block))
    kind = block.get("type")
    if kind == "text":
        return units(str(block.get("text", "")))
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "document":
        return _document_units(block)
    if kind == "thinking":
        return units(str(block.get("thinking", "")))
    if is_tool_result(block):
        return content_units(block.get("content"))
    if str(kind).endswith("tool_use"):
        return units(str(block.get("name", ""))) + units(_json(block.get("input", {})))
    return units(_json(_without_cache_control(block)))


def content_units(content: Any) -> int:
    """A content field: a string, a list of blocks, or nothing."""
    if content is None:
        return 0
    if isinstance(content, list):
        return sum(block_units(b) for b in content)
    return block_units(content)


def _document_units(block: Mapping[str, Any]) -> int:
    source = block.get("source")
    source = source if isinstance(source, dict) else {}
    kind = source.get("type")
    if kind == "text":
        body = units(str(source.get("data", "")))
    elif kind == "content":
        body = content_units(source.get("content"))
    else:  # base64, a URL or a file id: nothing here tells its length
        body = DOCUMENT_TOKENS
    return body + units(str(block.get("title") or "")) + units(str(block.get("context") or ""))


def tools_units(request: Mapping[str, Any]) -> int:
    found = 0
    for name in ("tools", "mcp_servers"):
        listed = request.get(name)
        for item in listed if isinstance(listed, list) else ():
            found += units(_json(_without_cache_control(item)))
    return found


def system_units(system: Any) -> int:
    if isinstance(system, list):
        return sum(block_units(_without_cache_control(b)) for b in system)
    return units(system) if isinstance(system, str) else 0


def last_user_turn(messages: Sequence[Any]) -> int:
    """The index of the newest user turn; len(messages) when there is none."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, dict) and message.get("role") == "user":
            return i
    return len(messages)


def message_units(message: Any, latest: bool) -> tuple[int, int, int, int]:
    """(history, tool_results, documents, latest_turn) of one message; its own blocks are
    `latest_turn` when it is the newest user turn or after it, else `history`."""
    content = message.get("content") if isinstance(message, dict) else message
    own = results = documents = 0
    blocks = content if isinstance(content, list) else [] if content is None else [content]
    for block in blocks:
        if is_tool_result(block):
            results += block_units(block)
        elif is_document(block):
            documents += block_units(block)
        else:
            own += block_units(block)
    return (0, results, documents, own) if latest else (own, results, documents, 0)


# One per endpoint: what each part of the previous request was, and its estimate. Cases
# share tools and system, and an agent's requests repeat their history: each is read once.
EstimateMemo = dict[Any, tuple[Any, Any]]


def _memoized(memo: EstimateMemo | None, key: Any, value: Any, estimate: Any) -> Any:
    seen = memo.get(key) if memo is not None else None
    if seen is not None and seen[0] == value:
        return seen[1]
    found = estimate(value)
    if memo is not None:
        memo[key] = (value, found)
    return found


def estimate_parts(request: Mapping[str, Any], memo: EstimateMemo | None = None) -> list[int]:
    """Each input part's estimated tokens (INPUT_PARTS order), each from its own content."""
    tools = {k: request[k] for k in ("tools", "mcp_servers") if k in request}
    parts = [0] * len(INPUT_PARTS)
    parts[TOOLS] = _memoized(memo, "tools", tools, tools_units)
    parts[SYSTEM] = _memoized(memo, "system", request.get("system"), system_units)
    messages = request.get("messages")
    messages = messages if isinstance(messages, list) else []
    newest = last_user_turn(messages)
    # An agent's next request is its history and more: one comparison of the earlier turns
    # (C speed) rather than one per turn, which would make n calls cost n^2 steps of Python.
    earlier = memo.get("earlier") if memo is not None else None
    start, sums = 0, [0, 0, 0, 0]
    if earlier is not None and earlier[0] and len(earlier[0]) <= newest:
        before, before_sums = earlier
        if messages[: len(before)] == before:
            start, sums = len(before), list(before_sums)
    for i in range(start, newest):
        for k, n in enumerate(message_units(messages[i], latest=False)):
            sums[k] += n
    if memo is not None:
        memo["earlier"] = (messages[:newest], tuple(sums))
    for message in messages[newest:]:
        for k, n in enumerate(message_units(message, latest=True)):
            sums[k] += n
    parts[HISTORY], parts[TOOL_RESULTS], parts[DOCUMENTS], parts[LATEST_TURN] = sums
    return parts


# -- counting -------------------------------------------------------------------------------
def count_chain(counted: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The six requests whose counts, with the whole request's, give each part exactly
    (`counted_parts`); None for a request whose messages are not a list of turns.

    Each adds parts to the one before, in cache order, and ends with the PLACEHOLDER turn:
    P0 none (the request's framing), P1 + tools, P2 + system, P3 + the earlier turns (each
    tool result emptied, documents left out, the newest user turn's tool results kept so
    every tool call keeps its result), P4 + the tool results' content, P5 + the documents.
    The whole request then adds the newest turn's own blocks, in place of the placeholder.
    Every one is a request the API accepts: no tool call without its result, no turn empty.
    """
    messages = counted.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return None
    base = {k: v for k, v in counted.items() if k not in PROMPT_FIELDS}
    p0 = {**base, "messages": [PLACEHOLDER]}
    p1 = {**p0, **{k: counted[k] for k in TOOL_FIELDS if k in counted}}
    p2 = {**p1, **({"system": counted["system"]} if "system" in counted else {})}
    newest = last_user_turn(messages)
    chain = [p0, p1, p2]
    for results, documents in ((False, False), (True, False), (True, True)):
        kept = _earlier_turns(messages, newest, results=results, documents=documents)
        chain.append({**p2, "messages": [*kept, PLACEHOLDER]})
    return chain


def _earlier_turns(
    messages: Sequence[dict[str, Any]], newest: int, *, results: bool, documents: bool
) -> list[dict[str, Any]]:
    out = []
    for i, message in enumerate(messages[: newest + 1]):
        content = message.get("content")
        if not isinstance(content, list):
            if i < newest:  # a plain-text earlier turn; the newest one's text is its own
                out.append(message)
            continue
        blocks = []
        for block in content:
            if is_tool_result(block):
                blocks.append(block if results else _emptied(block))
            elif is_document(block):
                if documents:
                    blocks.append(block)
            elif i < newest:
                blocks.append(block)
        if blocks:
            out.append(message if blocks == content else {**message, "content": blocks})
    return out


def _emptied(block: dict[str, Any]) -> dict[str, Any]:
    """A tool result without what the tool returned: its envelope, paired with its call."""
    content = block.get("content")
    if block.get("type") == "tool_result" or content is None:
        return {k: v for k, v in block.items() if k != "content"}
    if isinstance(content, list):
        return {**block, "content": []}
    if isinstance(content, str):
        return {**block, "content": ""}
    return block  # a server tool's structured result: no empty form to give it


def counted_parts(chain: Sequence[int], whole: int) -> list[int]:
    """Each input part's tokens from the counts of `count_chain`'s requests and of the whole
    request. They add up to `whole`: the request's framing (P0) goes with `latest_turn`,
    the turn every request has."""
    p0, p1, p2, p3, p4, p5 = chain
    return [p1 - p0, p2 - p1, p3 - p2, p4 - p3, p5 - p4, whole - p5 + p0]
