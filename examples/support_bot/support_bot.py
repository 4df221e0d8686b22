"""A small support bot, written the way teams write them.

- The system prompt (policies) is long and stable, so it is cached (`cache_control`).
- Cheap first: the target model drafts a short answer; when the draft runs out of
  room (stop_reason == "max_tokens") the question is escalated to a stronger model.
- Answers stream, as they would to a chat UI.
- Triage of incoming tickets is a small non-streaming call to the cheapest model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import anthropic

DRAFT_MODEL = "claude-sonnet-4-6"
ESCALATION_MODEL = "claude-opus-4-7"
TRIAGE_MODEL = "claude-haiku-4-5"
DRAFT_MAX_TOKENS = 48
ESCALATED_MAX_TOKENS = 400

POLICIES = (Path(__file__).parent / "policies.md").read_text(encoding="utf-8")
SYSTEM = [
    {"type": "text", "text": "You are Acme's support assistant. Answer briefly and kindly."},
    {"type": "text", "text": POLICIES, "cache_control": {"type": "ephemeral"}},
]


@dataclass
class Reply:
    text: str
    model: str
    escalated: bool


def _stream_answer(client: anthropic.Anthropic, model: str, max_tokens: int, question: str):
    with client.messages.stream(
        model=model,
        max_tokens=max_tokens,
        system=SYSTEM,
        messages=[{"role": "user", "content": question}],
    ) as stream:
        text = "".join(stream.text_stream)
        return text, stream.get_final_message()


def answer(question: str, client: anthropic.Anthropic | None = None) -> Reply:
    client = client or anthropic.Anthropic()
    text, message = _stream_answer(client, DRAFT_MODEL, DRAFT_MAX_TOKENS, question)
    if message.stop_reason != "max_tokens":
        return Reply(text, DRAFT_MODEL, escalated=False)
    text, _ = _stream_answer(client, ESCALATION_MODEL, ESCALATED_MAX_TOKENS, question)
    return Reply(text, ESCALATION_MODEL, escalated=True)


TRIAGE_TOOL = {
    "name": "route_ticket",
    "description": "Route a support ticket to a queue.",
    "input_schema": {
        "type": "object",
        "properties": {
            "queue": {"type": "string", "enum": ["billing", "shipping", "returns", "other"]},
            "urgent": {"type": "boolean"},
        },
        "required": ["queue"],
    },
}


def triage(ticket: dict, client: anthropic.Anthropic | None = None) -> str:
    client = client or anthropic.Anthropic()
    message = client.messages.create(
        model=TRIAGE_MODEL,
        max_tokens=64,
        tools=[TRIAGE_TOOL],
        messages=[{"role": "user", "content": json.dumps(ticket)}],
    )
    return "".join(block.text for block in message.content if block.type == "text")
