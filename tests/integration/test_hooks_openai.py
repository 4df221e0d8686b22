"""Extension hooks, each exercised by a small plugin in a conftest, and OpenAI beside Claude."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import yaml
from openai_emulator import OpenAIEmulator
from project_files import report_of

MIXED_APP = """
import anthropic
import httpx2
import openai

def run(question, kind):
    if kind == "claude":
        anthropic.Anthropic().messages.create(
            model="claude-haiku-4-5", max_tokens=20,
            messages=[{"role": "user", "content": question}])
    elif kind == "chat":
        openai.OpenAI().chat.completions.create(
            model="gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": question}])
    elif kind == "chat_stream":
        stream = openai.OpenAI().chat.completions.create(
            model="gpt-4o-mini", max_tokens=20, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": question}])
        for _ in stream:
            pass
    elif kind == "responses":
        openai.OpenAI().responses.create(model="gpt-4.1", input=question, max_output_tokens=20)
    elif kind == "gateway":
        import os
        httpx2.post(os.environ["GATEWAY_URL"], headers={"x-acme-tenant": "tenant-42"},
                    json={"model": "acme-proxy-1", "input": question, "max_tokens": 20})
"""

MIXED_TEST = """
import pytest
from app import run

@pytest.mark.token_budget("mixed")
def test_mixed(budget_case):
    run(budget_case["question"], budget_case["kind"])
"""

LONG = " ".join(["cacheable"] * 1100)
CASES = [
    {"id": "claude", "kind": "claude", "question": "hello claude"},
    {"id": "chat1", "kind": "chat", "question": LONG},
    {"id": "chat2", "kind": "chat_stream", "question": LONG},
    {"id": "resp", "kind": "responses", "question": "hello responses"},
]

CONFTEST_HOOKS = """
import json

def pytest_tokenbudget_price(model):
    if model == "acme-proxy-1":
        return {"input": 4.0, "output": 20.0}

def pytest_tokenbudget_parse_usage(exchange):
    if not exchange.url.endswith("/gateway/generate"):
        return None
    from pytest_tokenbudget.providers.usage import Call, Usage
    meter = json.loads(exchange.body)["meter"]
    return [Call("acme", "messages", "acme-proxy-1",
                 Usage(input_tokens=meter["tokens_in"], output_tokens=meter["tokens_out"]))]

def pytest_tokenbudget_scrub(interaction):
    interaction["request"]["headers"].pop("x-acme-tenant", None)

def pytest_tokenbudget_report(report, config):
    with open("metrics.json", "w") as f:
        json.dump({"monthly": report["totals"]["monthly_cost_usd"],
                   "calls": report["totals"]["calls"]}, f)
    return "### Pushed to the metrics backend"
"""

RATES = {
    "claude-haiku-4-5": (Fraction(1), Fraction("0.1"), Fraction(5)),
    "gpt-4o-mini": (Fraction("0.15"), Fraction("0.075"), Fraction("0.6")),
    "gpt-4.1": (Fraction(2), Fraction("0.5"), Fraction(8)),
    "acme-proxy-1": (Fraction(4), Fraction("0.4"), Fraction(20)),
}


@pytest.fixture
def openai_emulator(monkeypatch):
    with OpenAIEmulator() as emu:
        monkeypatch.setenv("OPENAI_BASE_URL", emu.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-" + "openaiKeyMaterial" * 3)
        monkeypatch.setenv("GATEWAY_URL", emu.base_url + "/gateway/generate")
        yield emu


def setup_project(pytester, cases):
    config = {
        "endpoints": {
            "mixed": {"max_input_tokens_p95": 5000, "requests_per_day": 100, "cases": cases}
        }
    }
    pytester.makefile(".yml", token_budgets=yaml.safe_dump(config, sort_keys=False))
    pytester.makepyfile(app=MIXED_APP, test_mixed=MIXED_TEST, conftest=CONFTEST_HOOKS)
    pytester.syspathinsert()


def expected_cost(recording_env, openai_emulator) -> Fraction:
    total = Fraction(0)
    for s in recording_env.served:
        u = s.usage
        inp, read, out = RATES[s.model]
        total += (
            u["input_tokens"] * inp + u["output_tokens"] * out + u["cache_read_input_tokens"] * read
        ) / 10**6
    for s in openai_emulator.served:
        u = s.usage
        if s.path.endswith("/gateway/generate"):
            model, prompt, cached, output = "acme-proxy-1", u["tokens_in"], 0, u["tokens_out"]
        elif s.path.endswith("/chat/completions"):
            model = "gpt-4o-mini"
            prompt, cached = u["prompt_tokens"], u["prompt_tokens_details"]["cached_tokens"]
            output = u["completion_tokens"]
        else:
            model = "gpt-4.1"
            prompt, cached = u["input_tokens"], u["input_tokens_details"]["cached_tokens"]
            output = u["output_tokens"]
        inp, read, out = RATES[model]
        total += ((prompt - cached) * inp + cached * read + output * out) / 10**6
    return total


def test_claude_and_openai_in_one_budget_with_cache_aware_costs(
    pytester, recording_env, openai_emulator, monkeypatch
):
    cases = CASES + [{"id": "gw", "kind": "gateway", "question": "hello gateway"}]
    setup_project(pytester, cases)
    result = pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=5)
    chat = [s for s in openai_emulator.served if s.path.endswith("/chat/completions")]
    assert (
        chat[1].usage["prompt_tokens_details"]["cached_tokens"] > 0
    )  # the second chat hit the cache

    endpoint = report_of(pytester)["endpoints"]["mixed"]
    total = expected_cost(recording_env, openai_emulator)
    assert endpoint["calls"] == 5
    assert endpoint["metrics"]["cost_per_request_usd"] == float(round(total / 5, 9))
    assert endpoint["models"] == {
        "claude-haiku-4-5": 1,
        "gpt-4o-mini": 2,
        "gpt-4.1": 1,
        "acme-proxy-1": 1,
    }
    assert endpoint["price_sources"]["acme-proxy-1"] == "pytest_tokenbudget_price hook"
    assert endpoint["price_sources"]["gpt-4o-mini"].startswith("genai-prices ")

    # scrub hook, and the built-in OpenAI scrubbing: no key, no tenant, no organization
    for path in (pytester.path / "cassettes").rglob("*.yaml"):
        text = path.read_text()
        assert "tenant-42" not in text and "openaiKeyMaterial" not in text
        assert "org-emulator-openai" not in text

    # report hook: pushed metrics and an extra section in report.md
    metrics = json.loads((pytester.path / "metrics.json").read_text())
    assert metrics["calls"] == 5
    assert (
        "### Pushed to the metrics backend"
        in (pytester.path / ".token-budget" / "report.md").read_text()
    )

    # replay offline, without either key
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    before = (len(recording_env.served), len(openai_emulator.served))
    replay = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    replay.assert_outcomes(passed=5)
    assert (len(recording_env.served), len(openai_emulator.served)) == before
    assert report_of(pytester)["endpoints"]["mixed"] == endpoint


def test_openai_stream_without_usage_is_noted(pytester, recording_env, openai_emulator):
    app = MIXED_APP.replace('stream_options={"include_usage": True},', "")
    config = {"endpoints": {"mixed": {"max_input_tokens_p95": 5000, "cases": [CASES[2]]}}}
    pytester.makefile(".yml", token_budgets=yaml.safe_dump(config))
    pytester.makepyfile(app=app, test_mixed=MIXED_TEST)
    pytester.syspathinsert()
    pytester.runpytest("--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider")
    endpoint = report_of(pytester)["endpoints"]["mixed"]
    assert any("include_usage" in w for w in endpoint["warnings"]), endpoint["warnings"]
