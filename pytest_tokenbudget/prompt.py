"""A Messages request as the prompt cache sees it: blocks in cache order, and breakpoints.

The API caches prefixes of the prompt in a fixed order (tools, then system, then
messages), up to and including each block that carries `cache_control` (a
breakpoint). A top-level `cache_control` (automatic caching) puts the breakpoint
on the last block. Two prefixes are the same when every block up to the
breakpoint is the same, role included; `cache_control` itself is not part of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_BREAKPOINTS = 4


@dataclass(frozen=True)
class PromptBlock:
    """One unit of the prompt: a tool, a system block, or a message's content block."""

    path: str  # "tools[2]", "system[0]", "messages[1].content[0]", "messages[0].content"
    key: str  # digest of the block's canonical JSON (role included, cache_control left out)
    chars: int  # length of that canonical JSON: the share of tokens when estimating
    ttl: str | None  # "5m" or "1h" when the block is a breakpoint


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
    return PromptBlock(path, digest, len(text), _ttl(obj))


def _raw_blocks(request: dict[str, Any]) -> Iterator[PromptBlock]:
    for i, tool in enumerate(request.get("tools") or []):
        yield _block(f"tools[{i}]", "tool", tool)
    system = request.get("system")
    if isinstance(system, str) and system:
        yield _block("system", "system", system)
    elif isinstance(system, list):
        for i, part in enumerate(system):
            yield _block(f"system[{i}]", "system", part)
    for i, message in enumerate(request.get("messages") or []):
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role", "")), message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                yield _block(f"messages[{i}].content[{j}]", "content", part, role)
        else:
            yield _block(f"messages[{i}].content", "content", content, role)


def prompt_blocks(request: dict[str, Any]) -> list[PromptBlock]:
    """The prompt in cache order; a top-level cache_control marks the last block."""
    blocks = list(_raw_blocks(request))
    automatic = _ttl(request)
    if automatic and blocks and blocks[-1].ttl is None:
        last = blocks[-1]
        blocks[-1] = PromptBlock(last.path, last.key, last.chars, automatic)
    return blocks


def breakpoints(blocks: list[PromptBlock]) -> list[int]:
    return [i for i, block in enumerate(blocks) if block.ttl]


def block_of(path: str, blocks: list[PromptBlock]) -> int | None:
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
