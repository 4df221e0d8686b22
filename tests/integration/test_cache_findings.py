"""Breakpoints that cannot work, volatile values across requests, cache_lint, annotations,
and the predicted cache figures: request cases (nothing recorded) and the bundled example."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import yaml
from paths import CASSETTES, REPO
from project_files import copy_example, report_of

from pytest_tokenbudget.cache.doctor import Doctor
from pytest_tokenbudget.cache.prediction import predict, recorded_totals
from pytest_tokenbudget.cache.simulation import minimum_cacheable

ROOT = REPO
EXAMPLE = ROOT / "examples" / "support_bot"
POLICY = "Answer questions about our refund policy. Refunds take 14 days to arrive. " * 4


def cached_request(system: str, question: str, *, model: str = "claude-sonnet-4-6") -> dict:
    return {
        "model": model,
        "max_tokens": 30,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": question}],
    }


def write_config(pytester, cases: list[dict], **endpoint) -> None:
    config = {"endpoints": {"faq": {"max_input_tokens_p95": 100000, **endpoint, "cases": cases}}}
    pytester.makefile(".yml", token_budgets=yaml.safe_dump(config, sort_keys=False))


def findings_of(pytester, code: str) -> list[dict]:
    return [f for f in report_of(pytester)["findings"] if f["code"] == code]


def test_short_prefix_is_named_with_the_models_minimum_without_a_recording(pytester, recording_env):
    cases = [{"id": f"q{i}", "request": cached_request(POLICY, f"Question {i}?")} for i in range(3)]
    write_config(pytester, cases)
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    assert {s.path for s in recording_env.served} == {"/v1/messages/count_tokens"}
    [finding] = findings_of(pytester, "prefix-below-minimum")
    minimum = minimum_cacheable("claude-sonnet-4-6")
    assert finding["where"] == "system[0]" and finding["cases"] == ["q0", "q1", "q2"]
    assert "claude-sonnet-4-6's minimum cacheable length of " + f"{minimum:,}" in finding["message"]
    # the emulator's tokenizer says how long the prefix really is: the estimate is close
    system_only = {"model": "claude-sonnet-4-6", "system": POLICY, "messages": []}
    true_prefix = recording_env.count(system_only)
    said = int(finding["message"].split(" is about ")[1].split(" tokens")[0].replace(",", ""))
    assert abs(said - true_prefix) <= 0.1 * true_prefix and said < minimum
    assert report_of(pytester)["status"] == "pass"  # a finding alone does not fail the run


def test_timestamp_across_request_cases_is_named_with_both_cases(pytester, recording_env):
    long_policy = POLICY * 30
    cases = [
        {"id": "a", "request": cached_request(f"Time: 2026-12-02T10:00:0{i}Z. {long_policy}", "Hi")}
        for i in range(2)
    ]
    cases[1]["id"] = "b"
    write_config(pytester, cases, cache_lint="error")
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == 1  # cache_lint: error makes error-level findings fail the endpoint
    [finding] = findings_of(pytester, "volatile-prefix")
    assert finding["cases"] == ["a", "b"] and finding["where"] == "system[0].text"
    assert "'2026-12-02T10:00:00Z' in case a, '2026-12-02T10:00:01Z' now" in finding["message"]
    problems = report_of(pytester)["endpoints"]["faq"]["problems"]
    assert any("cache_lint: error" in p for p in problems)


def test_timestamp_under_automatic_caching_is_named(pytester, recording_env):
    """A top-level cache_control puts the breakpoint on the last block: a timestamp in the
    system prompt is then inside the cached prefix too."""
    long_policy = POLICY * 30
    cases = [
        {
            "id": case,
            "request": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 30,
                "cache_control": {"type": "ephemeral"},
                "system": f"Time: 2026-12-02T10:00:0{i}Z. {long_policy}",
                "messages": [{"role": "user", "content": "Hi"}],
            },
        }
        for i, case in enumerate("ab")
    ]
    write_config(pytester, cases)
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=2)
    [finding] = findings_of(pytester, "volatile-prefix")
    assert finding["cases"] == ["a", "b"] and finding["where"] == "system"
    assert "'2026-12-02T10:00:00Z' in case a, '2026-12-02T10:00:01Z' now" in finding["message"]


def test_only_the_prompt_up_to_the_breakpoint_is_compared():
    """What follows the last breakpoint is not cached: a question that differs there (in the
    same message or a later one) hides no timestamp before it."""
    doctor = Doctor()
    for step, question in enumerate(("Where is my parcel?", "Can I change plan?", "Refund?")):
        stamp = {
            "type": "text",
            "text": f"Now 2026-12-02T10:0{step}:00Z.",
            "cache_control": {"type": "ephemeral"},
        }
        messages = [
            {"role": "user", "content": [stamp, {"type": "text", "text": question}]},
            {"role": "assistant", "content": "Let me look."},
            {"role": "user", "content": question},
        ]
        request = {"model": "claude-sonnet-4-6", "system": POLICY * 30, "messages": messages}
        doctor.add_call("faq", f"case{step}", request, 5000, 1024, memo={})
    [finding] = [f for f in doctor.findings() if f.code == "volatile-prefix"]
    assert finding.where == "messages[0].content[0].text"
    assert finding.cases == ("case0", "case1", "case2")


def test_cache_lint_off_hides_findings(pytester, recording_env):
    cases = [{"id": "q0", "request": cached_request(POLICY, "Question?")}]
    write_config(pytester, cases, cache_lint="off")
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert report_of(pytester)["findings"] == []


def test_more_than_four_breakpoints_is_named(pytester, recording_env):
    request = cached_request(POLICY, "Q")
    request["system"] = [
        {"type": "text", "text": f"Part {i}. {POLICY}", "cache_control": {"type": "ephemeral"}}
        for i in range(5)
    ]
    write_config(pytester, [{"id": "many", "request": request}])
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    [finding] = findings_of(pytester, "too-many-breakpoints")
    assert finding["where"] == "system[4]" and "5 cache_control breakpoints" in finding["message"]


def test_breakpoint_after_varying_content_is_never_read(pytester, recording_env):
    cases = [
        {
            "id": f"u{i}",
            "request": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 20,
                "system": POLICY * 30,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "text",
                                "text": f"Customer {name} asks about refunds.",
                                "cache_control": {"type": "ephemeral"},
                            }
                        ],
                    }
                ],
            },
        }
        for i, name in enumerate(["Ann", "Bob", "Cy"])
    ]
    write_config(pytester, cases)
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    [finding] = findings_of(pytester, "breakpoint-never-read")
    assert finding["where"] == "messages[0].content[0]" and finding["cases"] == ["u0", "u1", "u2"]
    cache = report_of(pytester)["endpoints"]["faq"]["cache"]
    assert cache["predicted"]["read_tokens"] == 0 and cache["predicted"]["write_5m_tokens"] > 0


def test_shared_prefix_is_predicted_to_be_read_in_count_mode(pytester, recording_env):
    """Nothing recorded: the prediction is what min_cache_hit_rate is checked against."""
    system = POLICY * 30
    cases = [{"id": f"q{i}", "request": cached_request(system, f"Question {i}?")} for i in range(4)]
    write_config(pytester, cases, min_cache_hit_rate=0.5)
    result = pytester.runpytest("--token-budget", "--token-budget-count", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    endpoint = report_of(pytester)["endpoints"]["faq"]
    [budget] = [b for b in endpoint["budgets"] if b["key"] == "min_cache_hit_rate"]
    assert budget["metric"] == "predicted_cache_hit_rate"
    assert endpoint["cache"]["min_cache_hit_rate_checks"] == "predicted"
    # independently: the first case writes the system prompt, the other three read it
    prefix = recording_env.count({"model": "claude-sonnet-4-6", "system": system, "messages": []})
    whole = sum(recording_env.count(c["request"]) for c in cases)
    predicted = endpoint["cache"]["predicted"]
    assert abs(predicted["read_tokens"] - 3 * prefix) <= 0.05 * 3 * prefix
    assert predicted["prompt_tokens"] == whole
    assert budget["actual"] == round(predicted["read_tokens"] / whole, 6)


def test_broken_cache_budget_annotation_names_the_cause(pytester, recording_env, monkeypatch):
    long_policy = POLICY * 30
    cases = [
        {"id": f"q{i}", "request": cached_request(f"Now: 2026-12-0{i + 1}. {long_policy}", "Hi")}
        for i in range(3)
    ]
    write_config(pytester, cases, min_cache_hit_rate=0.5)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    result = pytester.runpytest("--token-budget", "--token-budget-count", "-p", "no:cacheprovider")
    assert result.ret == 1
    [line] = [
        x for x in result.stdout.lines if x.startswith("::error") and "min_cache_hit_rate" in x
    ]
    assert "Prompt cache: system[0].text at character 5 changes between requests" in line
    assert "Fix: move the value after the last breakpoint" in line


# -- the bundled example: the prediction agrees with the recorded usage ----------------
def _recorded_usage(cassette: Path) -> list[dict]:
    """Usage of each Messages response in a cassette, read by hand (JSON or SSE)."""
    found = []
    for interaction in yaml.safe_load(cassette.read_text())["interactions"]:
        body = interaction["response"]["body"]["string"]
        if body.lstrip().startswith("{"):
            found.append(json.loads(body)["usage"])
            continue
        events = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
        start = next(e for e in events if e["type"] == "message_start")["message"]["usage"]
        found.append(start)
    return found


def test_prediction_agrees_with_the_recording_on_the_example(pytester):
    copy_example(pytester.path)
    pytester.syspathinsert()
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=26)
    report = report_of(pytester)
    for endpoint in ("chat_reply", "triage"):
        usages = [
            u
            for c in (pytester.path / "cassettes" / endpoint).glob("*.yaml")
            for u in _recorded_usage(c)
        ]
        cache = report["endpoints"][endpoint]["cache"]
        assert cache["recorded"]["read_tokens"] == sum(u["cache_read_input_tokens"] for u in usages)
        assert cache["recorded"]["write_5m_tokens"] + cache["recorded"]["write_1h_tokens"] == sum(
            u["cache_creation_input_tokens"] for u in usages
        )
        assert cache["predicted"] == cache["recorded"]


def test_cache_minimums_in_the_config_override_the_table(pytester, recording_env):
    cases = [{"id": "q0", "request": cached_request(POLICY, "Question?")}]
    config = {
        "cache_minimums": {"claude-sonnet-4-6": 10},
        "endpoints": {"faq": {"max_input_tokens_p95": 100000, "cases": cases}},
    }
    pytester.makefile(".yml", token_budgets=yaml.safe_dump(config, sort_keys=False))
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert findings_of(pytester, "prefix-below-minimum") == []


def test_a_bad_cache_minimum_is_a_clear_config_error(pytester):
    pytester.makefile(
        ".yml",
        token_budgets="cache_minimums:\n  claude-sonnet-4-6: many\n"
        "endpoints:\n  faq:\n    max_input_tokens_p95: 10\n",
    )
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["*token_budgets.yml:2: claude-sonnet-4-6: expected a whole number, got 'many'*"]
    )
    assert "Traceback" not in result.stderr.str()


def test_prediction_agrees_with_a_real_cache_bearing_cassette():
    """openllmetry's recorded prompt caching (real API): a write of 1163, then a read of
    1163, with 4 tokens of the prompt outside the cached prefix."""
    cassette = CASSETTES / "anthropic" / "openllmetry_prompt_caching_gzip.yaml"
    doctor = Doctor()
    for index, interaction in enumerate(yaml.safe_load(cassette.read_text())["interactions"]):
        request = json.loads(interaction["request"]["body"])
        body = interaction["response"]["body"]["string"]
        usage = json.loads(gzip.decompress(body) if isinstance(body, bytes) else body)["usage"]
        read, written = usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]
        whole = usage["input_tokens"] + read + written
        minimum = minimum_cacheable(request["model"])
        doctor.add_call(
            "summaries",
            "article",
            request,
            whole,
            minimum,
            read + written,
            test_id="t",
            index=index,
            recorded=(read, written, 0),
        )
    assert recorded_totals(doctor.prompts).read_tokens == 1163
    predicted = predict(doctor.prompts, minimum=minimum_cacheable, requests_per_day=None)
    assert predicted == recorded_totals(doctor.prompts)
    assert doctor.findings() == []


def _diagnose(doctor: Doctor, case_id: str, request: dict, usage) -> None:
    from pytest_tokenbudget.cache.doctor import diagnose_case
    from pytest_tokenbudget.providers.recorders import Exchange
    from pytest_tokenbudget.providers.usage import Call

    exchange = Exchange(
        "POST",
        "https://api.anthropic.com/v1/messages",
        json.dumps(request).encode(),
        200,
        {},
        b"{}",
    )
    call = Call("anthropic", "messages", request["model"], usage)
    diagnose_case(doctor, "faq", case_id, [(exchange, [call])], {}, lambda m: 1024)


def test_an_endpoints_shared_system_prompt_is_split_once_per_run(monkeypatch):
    """Cases of one endpoint share tools and system prompt: the doctor canonicalizes them
    once per run, not once per case, and finds what fresh splits find."""
    from pytest_tokenbudget.cache import prompt
    from pytest_tokenbudget.providers.usage import Usage

    split = []
    real_system = prompt._system
    monkeypatch.setattr(prompt, "_system", lambda system: split.append(1) or real_system(system))
    shared, fresh = Doctor(), Doctor()
    for i in range(5):
        request = cached_request(POLICY * 30, f"Question {i}?")
        _diagnose(shared, f"q{i}", request, Usage(10, 5, 1200))
        fresh.add_call("faq", f"q{i}", request, 1210, 1024, 1200, recorded=(0, 1200, 0), memo={})
    assert len(split) == 1 + 5  # the shared doctor once; the fresh splits once per case
    assert shared.prompts == fresh.prompts
    assert shared.findings() == fresh.findings()


def test_a_request_without_cache_control_is_not_split_and_reads_nothing(monkeypatch):
    """No cache_control anywhere: the call neither writes nor reads the cache. Its prompt
    is not split, and it does not count as reading an earlier call's breakpoint."""
    from pytest_tokenbudget.cache import prompt
    from pytest_tokenbudget.providers.usage import Usage

    split = []
    real_block = prompt._block
    monkeypatch.setattr(prompt, "_block", lambda *a: split.append(a) or real_block(*a))
    doctor = Doctor()
    for i in range(2):  # two cached calls whose system prompts differ: each writes
        _diagnose(
            doctor,
            f"w{i}",
            cached_request(f"Version {i}. " + POLICY * 30, "Q?"),
            Usage(10, 5, 1500),
        )
    written = len(split)
    plain = cached_request("Version 1. " + POLICY * 30, "Q?")  # the second prefix, uncached
    del plain["system"][0]["cache_control"]
    _diagnose(doctor, "plain", plain, Usage(1510, 5))
    assert len(split) == written  # not split
    assert doctor.prompts[-1].blocks == () and doctor.prompts[-1].whole_input_tokens == 1510
    [finding] = [f for f in doctor.findings() if f.code == "breakpoint-never-read"]
    assert finding.cases == ("w0", "w1")  # the uncached call read neither
