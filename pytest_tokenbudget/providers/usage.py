"""The Usage model: the tokens of one API call, split the way they are priced, and the
Call that carries them (provider, kind, model), as every provider's parser returns them.

Anthropic's ``input_tokens`` excludes cached tokens; ``Usage`` keeps that meaning
(``input_tokens`` is the uncached part) and ``prompt_tokens`` is the whole prompt,
so turning caching on never looks like a shrinking prompt. OpenAI counts cached
tokens inside the prompt; its parser (providers/openai.py) splits them the same way.

Usage billed outside the top-level ``usage`` (``usage.iterations``: a compaction step,
an advisor's sub-inference, a fallback model's answer) comes out as calls of kind
``iteration`` right after the call they belong to; measure/samples.py folds them into it, so
every iteration is counted once, at its own model, and the top-level usage is never
added on top of the iterations it sums.

Stdlib only: this module is imported by every pytest run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Usage:
    """Tokens of one API call, split the way they are priced."""

    input_tokens: int = 0  # uncached input
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    # What else the request is billed by (Anthropic's usage object): web searches made by
    # the server tool, fast mode, the geography that served it (data residency).
    web_search_requests: int = 0
    speed: str = ""
    inference_geo: str = ""

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens

    @property
    def pricing_context(self) -> str:
        """What, beyond its tokens, sets the request's rates, as one short key: "" for a
        standard request, else e.g. "speed=fast,inference_geo=us"."""
        parts = []
        if self.speed and self.speed != "standard":
            parts.append(f"speed={self.speed}")
        if self.inference_geo not in ANY_GEO:
            parts.append(f"inference_geo={self.inference_geo}")
        return ",".join(parts)


# usage.inference_geo values that name no single geography (no data-residency premium).
ANY_GEO = frozenset({"", "global", "not_available"})


def context_fields(key: str) -> dict[str, str]:
    """A pricing_context key back as its fields: {"speed": ..., "inference_geo": ...}."""
    return dict(part.split("=", 1) for part in key.split(",") if part)


@dataclass(frozen=True)
class Call:
    """One API call found in an exchange."""

    provider: str  # "anthropic" (also on Bedrock and Vertex AI) | "openai" | "bedrock" (Converse)
    # "messages" | "count_tokens" | "batch" | "chat" | "responses" | "iteration" (ITERATION)
    kind: str
    model: str
    usage: Usage
    batch: bool = False
    streamed: bool = False
    note: str = ""  # e.g. "stream carried no usage"; ITERATION_NOTE + type for an iteration
    recounted: bool = False  # input tokens re-counted with count_tokens (count mode)
    input_only: bool = False  # counted, never generated: no output tokens measured
    # the tools the response called (tool_use blocks, server tools included), in order;
    # None: not read (another provider, or a parser hook's call)
    tools_called: tuple[str, ...] | None = None

    @property
    def iteration(self) -> str:
        """The ``usage.iterations`` type this part of the call before it bills
        (``compaction``, ``advisor_message``, ...); "" for a call of its own."""
        return iteration_type(self.note) if self.kind == ITERATION else ""


# Usage billed in `usage.iterations` beyond the call's own sampling: a Call of this kind,
# following the call it belongs to, whose note is ITERATION_NOTE + the iteration's type.
# The note is what carries it into the samples (a sample row has no kind): measure/samples.py folds
# such a row into the call before it.
ITERATION = "iteration"
ITERATION_NOTE = "usage.iterations: "
# `message`: the executor's own sampling steps. Their sum is the call's own usage (the
# top-level usage is the executor's view of the same steps, never added to them): the first
# is the call, each later one an ITERATION of it, priced by its own prompt's length.
EXECUTOR_STEP = "message"
# The steps that answer: the executor's, or a fallback model's in its place.
ANSWERING_STEPS = (EXECUTOR_STEP, "fallback_message")
# Billed beside it: the same model summarising the conversation (priced at the call's
# model), another model's sub-inference or answer (priced at the iteration's `model`).
KNOWN_ITERATIONS = {
    "compaction": "the call's model",
    "advisor_message": "its model",
    "fallback_message": "its model",
}


def iteration_type(note: str) -> str:
    """The iteration type a sample's note names; "" for any other note."""
    return note[len(ITERATION_NOTE) :] if note.startswith(ITERATION_NOTE) else ""


def add_usage(a: Usage, b: Usage) -> Usage:
    """Two parts of one request: tokens and searches add up, the request's context is the
    first part's that names one."""
    i, o, w5, w1, r = (x + y for x, y in zip(_fields(a), _fields(b), strict=True))
    return Usage(
        i,
        o,
        w5,
        w1,
        r,
        a.web_search_requests + b.web_search_requests,
        a.speed or b.speed,
        a.inference_geo or b.inference_geo,
    )


def _fields(u: Usage) -> tuple[int, int, int, int, int]:
    return (
        u.input_tokens,
        u.output_tokens,
        u.cache_write_5m_tokens,
        u.cache_write_1h_tokens,
        u.cache_read_tokens,
    )


def with_count(call: Call, counted: int, recounted: bool) -> Call:
    """The recorded call, with its whole prompt taken from count_tokens.

    The recorded cache split is kept while it fits in the new prompt (a re-counted
    call's cache figures are stale, and the report says so); otherwise all is uncached.
    """
    if call.kind != "messages":
        return call
    u = call.usage
    cached = u.cache_write_tokens + u.cache_read_tokens
    if cached <= counted:
        usage = replace(u, input_tokens=counted - cached)
    else:
        usage = Usage(input_tokens=counted, output_tokens=u.output_tokens)
    return replace(call, usage=usage, recounted=recounted)
