"""The SDK stand-in the CI-plumbing tests run the example with (tests/support/light_sdk.py)
sends what the SDK sends and reads the answers as the SDK does: recorded against the
emulator, the two send the same requests; replayed, they give the same report."""

from __future__ import annotations

import json

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
    _run(pytester, monkeypatch, False, "--token-budget-record=all")
    by_sdk = [(s.path, s.request) for s in recording_env.served]
    _run(pytester, monkeypatch, True, "--token-budget-record=all")
    by_stand_in = [(s.path, s.request) for s in recording_env.served[len(by_sdk) :]]
    assert len(by_sdk) >= 26  # every case, the escalated ones twice
    assert by_stand_in == by_sdk
