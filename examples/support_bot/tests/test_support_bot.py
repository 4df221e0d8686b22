"""Token budgets of the support bot: each case runs through the real app code."""

import pytest
from support_bot import answer, triage


@pytest.mark.token_budget("chat_reply")
def test_chat_reply(budget_case):
    reply = answer(budget_case["question"])
    assert reply.text


@pytest.mark.token_budget("triage")
def test_triage(budget_case):
    assert triage(budget_case["ticket"])
