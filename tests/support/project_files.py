"""A small user project for end-to-end runs: config, cases, app code and a budget test."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from paths import EXAMPLE, REPO

# A cached system prompt too short for any model to cache, behind a timestamp that takes
# one of three values: what the prompt-cache findings name (below the minimum, volatile).
POLICY = "Answer questions about our refund policy. Refunds take 14 days to arrive. " * 20


def faq_request(i: int, question_words: int) -> dict[str, Any]:
    """Case i's request: the policy after timestamp i % 3, then `question_words` words."""
    stamp = f"Now 2026-12-02T10:0{i % 3}:00Z. "
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 30,
        "system": [
            {"type": "text", "text": stamp + POLICY, "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": "Why? " * question_words}],
    }


CONFIG = """\
endpoints:
  chat:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: {input_p95}
    max_output_tokens_p95: 600
    allowed_escalation_rate: 0.5
    requests_per_day: 1000
    cases: cases.yml
"""

CASES = """\
- id: short
  question: What is a token?
- id: medium
  question: Explain prompt caching in two sentences please, with an example of a cached prefix.
- id: hard
  question: Compare three retry strategies for rate limited APIs.
  escalate: true
- id: streamed
  question: Stream me a short answer about budgets.
  stream: true
"""

APP = """\
import anthropic

SYSTEM = "You answer questions about LLM costs. Be brief."


def reply(question, *, escalate=False, stream=False):
    client = anthropic.Anthropic(max_retries=0)
    kwargs = dict(
        model="claude-sonnet-4-6",
        max_tokens=40,
        system=SYSTEM,
        messages=[{"role": "user", "content": question}],
    )
    if stream:
        with client.messages.stream(**kwargs) as s:
            text = "".join(s.text_stream)
        return text
    message = client.messages.create(**kwargs)
    if escalate:
        kwargs["model"] = "claude-opus-4-7"
        message = client.messages.create(**kwargs)
    return message.content[0].text
"""

TEST = """\
import pytest
from app import reply


@pytest.mark.token_budget("chat")
def test_chat(budget_case):
    assert reply(
        budget_case["question"],
        escalate=budget_case.get("escalate", False),
        stream=budget_case.get("stream", False),
    )
"""


# One model, no escalation: for tests whose recordings carry usage of their own shape.
PLAIN_APP = """\
import anthropic


def reply(question, *, stream=False):
    client = anthropic.Anthropic(max_retries=0)
    kwargs = dict(model="claude-sonnet-4-6", max_tokens=40,
                  messages=[{"role": "user", "content": question}])
    if stream:
        with client.messages.stream(**kwargs) as s:
            return "".join(s.text_stream)
    return client.messages.create(**kwargs).content[0].text
"""


def record(project):
    return project.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )


def report_of(project):
    return json.loads((project.path / ".token-budget" / "report.json").read_text())


ROOT = REPO
LIGHT_SDK = Path(__file__).with_name("light_sdk.py")


def copy_example(directory: Path, *, light_sdk: bool = False) -> str:
    """The bundled example as a project of its own in `directory` (app, cases, cassettes,
    tests, and the root token_budgets.yml with paths made relative to it); returns that
    config's text. With `light_sdk`, the app imports tests/support/light_sdk.py as its
    `anthropic`: the same requests, ~2.5 s of CPU less per pytest started on it."""
    for name in ("support_bot.py", "policies.md"):
        shutil.copy(EXAMPLE / name, directory / name)
    for name in ("cases", "cassettes", "tests"):
        shutil.copytree(EXAMPLE / name, directory / name)
    if light_sdk:
        use_light_sdk(directory / "support_bot.py")
    config = (ROOT / "token_budgets.yml").read_text().replace("examples/support_bot/", "")
    (directory / "token_budgets.yml").write_text(config)
    return config


def use_light_sdk(app: Path) -> None:
    """Point the app's `import anthropic` at tests/support/light_sdk.py, copied beside it: the
    same requests, without the SDK's import (~2.5 s of CPU in each process that runs it)."""
    source = app.read_text()
    assert re.findall(r"^import anthropic$", source, re.MULTILINE) == ["import anthropic"]
    app.write_text(
        re.sub(r"^import anthropic$", "import light_sdk as anthropic", source, flags=re.MULTILINE)
    )
    shutil.copy(LIGHT_SDK, app.parent / "light_sdk.py")
