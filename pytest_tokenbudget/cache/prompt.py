"""A Messages request as the prompt cache sees it: blocks in cache order, and breakpoints.

The API caches prefixes of the prompt in a fixed order (tools, then system, then
messages), up to and including each block that carries `cache_control` (a
breakpoint). A top-level `cache_control` (automatic caching) puts the breakpoint
on the last block. Two prefixes are the same when every block up to the
breakpoint is the same, role included; `cache_control` itself is not part of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

MAX_BREAKPOINTS = 4


class PromptBlock(NamedTuple):
    """One unit of the prompt: a tool, a system block, or a message's content block.

    One per block of every call, kept to the end of the run. A named tuple: prompts are
    compared block by block (cache_sim.PrefixIds), and tuples compare at C speed.
    """

    path: str  # "tools[2]", "system[0]", "messages[1].content[0]", "messages[0].content"
    key: str  # digest of the block's canonical JSON (role included, cache_control left out)
    chars: int  # length of that canonical JSON: the share of tokens when estimating
    ttl: str | None  # "5m" or "1h" when the block is a breakpoint
    kind: str = ""  # "tool", "system", or the content block's type ("text", "tool_use", ...)


def _canonical(section: str, obj: Any, role: str = "") -> str:
    if isinstance(obj, str):  # the API reads a plain string as one text block
        obj = {"type": "text", "text": obj}
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k != "cache_control"}
    return json.dumps([section, role, obj], sort_keys=True, ensure_ascii=False)


def _ttl(obj: Any) -> str | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("cache_control"), dict):
        return None
    return str(obj["cache_control"].get("ttl") or "5m")


def _block(path: str, section: str, obj: Any, role: str = "") -> PromptBlock:
    text = _canonical(section, obj, role)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
    kind = section if section != "content" else "text"
    if isinstance(obj, dict) and section == "content":
        kind = str(obj.get("type", ""))
    return PromptBlock(path, digest, len(text), _ttl(obj), kind)


def _tools(tools: Any) -> list[PromptBlock]:
    return [_block(f"tools[{i}]", "tool", tool) for i, tool in enumerate(tools or [])]


def _system(system: Any) -> list[PromptBlock]:
    if isinstance(system, str) and system:
        return [_block("system", "system", system)]
    if isinstance(system, list):
        return [_block(f"system[{i}]", "system", part) for i, part in enumerate(system)]
    return []


def _message(i: int, message: Any) -> list[PromptBlock]:
    if not isinstance(message, dict):
        return []
    role, content = str(message.get("role", "")), message.get("content")
    if isinstance(content, list):
        return [
            _block(f"messages[{i}].content[{j}]", "content", part, role)
            for j, part in enumerate(content)
        ]
    return [_block(f"messages[{i}].content", "content", content, role)]


# One per endpoint: a part of the prompt at its place -> (that part, what was derived from it).
# What is derived depends on the key (blocks here, a masked digest in the doctor): Any.
Memo = dict[Any, tuple[Any, Any]]


def _part(
    memo: Memo | None, key: Any, value: Any, build: Callable[[Any], list[PromptBlock]]
) -> list[PromptBlock]:
    """The blocks of one part of the prompt, split anew only when it changed."""
    seen = memo.get(key) if memo is not None else None
    # Cases share tools and system, and an agent's requests repeat the history: a part
    # equal to the one at the same place in the previous request has the same blocks (==
    # is C-speed; a 1 where there was a True would pass, and no prompt differs only so).
    if seen is not None and seen[0] == value:
        blocks: list[PromptBlock] = seen[1]
        return blocks
    made = build(value)
    if memo is not None:
        memo[key] = (value, made)
    return made


def _raw_blocks(request: dict[str, Any], memo: Memo | None) -> list[PromptBlock]:
    blocks = [
        *_part(memo, "tools", request.get("tools"), _tools),
        *_part(memo, "system", request.get("system"), _system),
    ]
    messages = request.get("messages") or []
    history = memo.get("history") if memo is not None else None
    start, made = 0, []
    if history is not None:
        # An agent's next request is its history plus what came since: one comparison of
        # the whole history (C-speed) rather than a look-up per message, which would make
        # a loop of n calls cost n^2 steps of Python.
        before, before_blocks = history
        if before and messages[: len(before)] == before:
            start, made = len(before), list(before_blocks)
    for i in range(start, len(messages)):
        made += _part(memo, i, messages[i], functools.partial(_message, i))
    if memo is not None:
        memo["history"] = (list(messages), made)
    return blocks + made


def prompt_blocks(request: dict[str, Any], memo: Memo | None = None) -> list[PromptBlock]:
    """The prompt in cache order; a top-level cache_control marks the last block.

    `memo`: one dict per endpoint, kept between its requests, so each distinct part of the
    prompt is canonicalized once, not once per request that repeats it.
    """
    blocks = _raw_blocks(request, memo)
    automatic = _ttl(request)
    if automatic and blocks and blocks[-1].ttl is None:
        last = blocks[-1]
        blocks[-1] = PromptBlock(last.path, last.key, last.chars, automatic, last.kind)
    return blocks


def breakpoints(blocks: Sequence[PromptBlock]) -> list[int]:
    return [i for i, block in enumerate(blocks) if block.ttl]


def block_of(path: str, blocks: Sequence[PromptBlock]) -> int | None:
    """The index of the block a value's path lies in (None: not part of the prompt)."""
    best = None
    for i, block in enumerate(blocks):
        if path == block.path or path.startswith((block.path + ".", block.path + "[")):
            best = i
    return best


def string_leaves(obj: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, text) of every string in a request, paths as `messages[0].content[1].text`."""
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from string_leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from string_leaves(value, f"{path}[{i}]")
