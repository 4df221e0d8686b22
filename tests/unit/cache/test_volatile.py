"""The volatile-value rule, both ways, on real recorded prompts and on each pattern."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from paths import CASSETTES

from pytest_tokenbudget.cache.prompt import block_of, breakpoints, prompt_blocks
from pytest_tokenbudget.cache.volatile import mask, volatile_spans

DATA = CASSETTES / "anthropic"


def recorded_request(name: str) -> dict:
    cassette = yaml.safe_load((DATA / name).read_text())
    return json.loads(cassette["interactions"][0]["request"]["body"])


@pytest.fixture
def cached_article():
    """openllmetry's prompt-caching test: the article is a user block with cache_control."""
    return recorded_request("openllmetry_prompt_caching_gzip.yaml")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("2026-11-22T13:23:26Z", "2026-12-02T01:42:12.5+01:00"),
        ("Sun, 22 Nov 2026 13:23:26 GMT", "Wed, 02 Dec 2026 01:42:12 GMT"),
        ("Sunday, November 22, 2026", "Wednesday, December 2, 2026"),
        ("22 Nov 2026", "2 Dec 2026"),
        ("11/22/2026", "12/02/2026"),
        ("13:23", "1:42 PM"),
        ("3f2b8c1e-1d2a-4c3b-9a8e-1234567890ab", "00000000-aaaa-4bbb-8ccc-000000000001"),
        ("req_01HXYZabc123", "req_01HZZZqqq999"),
        ("deadbeef12", "0badc0ffee"),
        ("request 41", "request 42"),
    ],
)
def test_each_pattern_masks_both_values_alike(old, new):
    assert mask(f"Now: {old}. Answer.") == mask(f"Now: {new}. Answer.")
    assert "Now:" in mask(f"Now: {old}.")


@pytest.mark.parametrize("word", ["facade", "decade", "Monday-ish plans", "ok_short"])
def test_ordinary_words_are_not_volatile(word):
    assert mask(word) == word.replace("Monday", "\x00")


def test_timestamp_inside_the_cached_prefix_is_volatile_and_kills_the_cache(cached_article):
    before = copy.deepcopy(cached_article)
    after = copy.deepcopy(cached_article)
    text = before["messages"][0]["content"][0]["text"]
    before["messages"][0]["content"][0]["text"] = "Retrieved 2026-11-22T13:23:26Z.\n" + text
    after["messages"][0]["content"][0]["text"] = "Retrieved 2026-12-02T01:42:12Z.\n" + text
    [span] = volatile_spans(before, after)
    assert (span.path, span.offset) == ("messages[0].content[0].text", 10)
    assert (span.before, span.after) == ("2026-11-22T13:23:26Z", "2026-12-02T01:42:12Z")
    assert span.in_cached_prefix


def test_timestamp_after_the_last_breakpoint_is_harmless(cached_article):
    before = copy.deepcopy(cached_article)
    after = copy.deepcopy(cached_article)
    before["messages"][0]["content"].append({"type": "text", "text": "Asked at 10:00:01."})
    after["messages"][0]["content"].append({"type": "text", "text": "Asked at 11:30:59."})
    [span] = volatile_spans(before, after)
    assert span.path == "messages[0].content[1].text" and not span.in_cached_prefix


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r["messages"][0]["content"][0].update(
            text=r["messages"][0]["content"][0]["text"].replace("Open-Source", "Closed-Source")
        ),
        lambda r: r.update(model="claude-opus-4-7"),
        lambda r: r.update(max_tokens=2048),
        lambda r: r["system"][0].update(text=r["system"][0]["text"] + " Be brief."),
        lambda r: r.setdefault("tools", []).append({"name": "search", "input_schema": {}}),
    ],
    ids=["prompt-edit", "model", "max_tokens", "system-edit", "new-tool"],
)
def test_substantive_changes_stay_changes(cached_article, edit):
    after = copy.deepcopy(cached_article)
    edit(after)
    assert volatile_spans(cached_article, after) is None


def test_tools_come_first_in_cache_order():
    request = recorded_request("openinference_parallel_tool_use_plain.yaml")
    request["tools"][-1]["cache_control"] = {"type": "ephemeral", "ttl": "1h"}
    blocks = prompt_blocks(request)
    assert [b.path for b in blocks] == ["tools[0]", "tools[1]", "messages[0].content"]
    assert breakpoints(blocks) == [1] and blocks[1].ttl == "1h"
    assert block_of("tools[0].input_schema.properties.location.description", blocks) == 0
    edited = copy.deepcopy(request)
    edited["tools"][0]["description"] += " Updated 2026-12-02."
    request["tools"][0]["description"] += " Updated 2026-11-30."
    [span] = volatile_spans(request, edited)
    assert span.path == "tools[0].description" and span.in_cached_prefix


def test_top_level_cache_control_marks_the_last_block():
    request = {
        "model": "m",
        "cache_control": {"type": "ephemeral"},
        "system": "S",
        "messages": [{"role": "user", "content": "hi"}],
    }
    blocks = prompt_blocks(request)
    assert breakpoints(blocks) == [len(blocks) - 1]


def test_string_and_text_block_content_are_the_same_prefix():
    plain = prompt_blocks({"messages": [{"role": "user", "content": "hi"}]})
    block = prompt_blocks(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    )
    assert plain[0].key == block[0].key
    other_role = prompt_blocks({"messages": [{"role": "assistant", "content": "hi"}]})
    assert other_role[0].key != plain[0].key
