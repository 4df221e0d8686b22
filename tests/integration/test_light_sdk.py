"""The SDK stand-in the CI-plumbing tests run the example with (tests/support/light_sdk.py)
sends what the SDK sends and reads the answers as the SDK does: recorded against the
emulator, the two send the same requests; replayed, they give the same report."""

from __future__ import annotations

import json

import pytest
import yaml
from project_files import copy_example


def _run(pytester, monkeypatch, light_sdk: bool, *args: str) -> dict:
    folder = pytester.mkdir("light" if light_sdk else "sdk")
    monkeypatch.chdir(folder)
    copy_example(folder, light_sdk=light_sdk)
    (folder / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider", *args)
    assert result.ret == 0, result.stdout.str()
    return json.loads((folder / ".token-budget" / "report.json").read_text())


def test_replayed_the_stand_in_gives_the_sdks_report(pytester, ci_env, monkeypatch):
    by_sdk = _run(pytester, monkeypatch, light_sdk=False)
    by_stand_in = _run(pytester, monkeypatch, light_sdk=True)
    assert by_stand_in["endpoints"] == by_sdk["endpoints"]
    assert by_stand_in["status"] == by_sdk["status"] == "pass"


def test_recorded_the_stand_in_sends_the_sdks_requests(pytester, recording_env, monkeypatch):
    """The same requests: bodies byte for byte as the cassettes keep them (replay matches
    on the bytes first), and the credential and content headers the plugin copies or scrubs."""
    _run(pytester, monkeypatch, False, "--token-budget-record=all")
    by_sdk = [(s.path, s.request, _headers(s)) for s in recording_env.served]
    _run(pytester, monkeypatch, True, "--token-budget-record=all")
    by_stand_in = [(s.path, s.request, _headers(s)) for s in recording_env.served[len(by_sdk) :]]
    assert len(by_sdk) >= 26  # every case, the escalated ones twice
    assert by_stand_in == by_sdk
    sdk, stand_in = pytester.path / "sdk" / "cassettes", pytester.path / "light" / "cassettes"
    cassettes = sorted(p.relative_to(sdk) for p in sdk.rglob("*.yaml"))
    assert cassettes and cassettes == sorted(
        p.relative_to(stand_in) for p in stand_in.rglob("*.yaml")
    )
    for name in cassettes:
        assert _bodies(stand_in / name) == _bodies(sdk / name), name


def test_without_credentials_the_stand_in_sends_nothing_as_the_sdk(monkeypatch):
    """So a replay on it relies on the plugin's placeholder credentials as one on the SDK."""
    import light_sdk

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # never reached
    with pytest.raises(TypeError, match="Could not resolve authentication method"):
        light_sdk.Anthropic().messages.create(model="m", max_tokens=1, messages=[])


def _headers(served) -> dict[str, str]:
    wanted = ("authorization", "x-api-key", "content-type")  # not the API version: each SDK's own
    return {k.lower(): v for k, v in served.headers.items() if k.lower() in wanted}


def _bodies(cassette) -> list[str]:
    return [i["request"]["body"] for i in yaml.safe_load(cassette.read_text())["interactions"]]
