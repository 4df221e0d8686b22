"""pytest-xdist: samples from every worker reach the controller; the report equals a serial run's."""

from __future__ import annotations

import json

import yaml
from project_files import POLICY, faq_request, record, use_light_sdk

from pytest_tokenbudget.cache.doctor import Doctor


def test_parallel_report_is_the_serial_report(project, recording_env):
    """The whole report.json, with a reprice section too (priced again on another model
    from what the workers measured), and cache findings from request cases whose prompts
    differ in length and in a timestamp (token estimates, compared values, cases)."""
    use_light_sdk(project.path / "app.py")  # the app's calls import no SDK in the workers
    record(project).assert_outcomes(passed=4)
    # request cases with no recording and a key: counted with count_tokens in the workers
    config = project.path / "token_budgets.yml"
    budgets = yaml.safe_load(config.read_text())
    budgets["endpoints"]["faq"] = {"max_input_tokens_p95": 100000, "cases": FAQ_CASES}
    config.write_text(yaml.safe_dump(budgets, sort_keys=False))
    report = project.path / ".token-budget" / "report.json"
    run = ("--token-budget", "--token-budget-reprice", "claude-haiku-4-5", "-p", "no:cacheprovider")

    serial = project.runpytest(*run)  # in process
    serial.assert_outcomes(passed=10)
    serial_text = report.read_text()
    serial_report = json.loads(serial_text)
    assert serial_report["endpoints"]["chat"]["reprice"]["cost_per_request_usd"] > 0
    codes = {f["code"] for f in serial_report["findings"] if f["endpoint"] == "faq"}
    assert codes >= {"prefix-below-minimum", "volatile-prefix"}
    report.unlink()

    # the controller in process too: its workers are processes of their own all the same
    parallel = project.runpytest(*run, "-n", "2")
    parallel.assert_outcomes(passed=10)
    assert report.read_text() == serial_text
    # the table and the gate come from the controller only: printed once
    assert parallel.stdout.str().count("token budget ====") == 1


def test_workers_ship_samples_as_plain_data(tmp_path):
    """What a worker sends survives a round trip through plain data (execnet sends lists,
    tuples, dicts, strings, numbers), and the controller's figures are the serial ones."""
    import json

    from pytest_tokenbudget.config.budgets import load_config
    from pytest_tokenbudget.measure.run import BudgetRun, Options
    from pytest_tokenbudget.measure.samples import CaseRun
    from pytest_tokenbudget.providers.usage import Call, Usage
    from pytest_tokenbudget.report.build import report_of
    from pytest_tokenbudget.report.json_io import report_json

    path = tmp_path / "token_budgets.yml"
    path.write_text("endpoints:\n  ep:\n    max_input_tokens_p95: 100\n    requests_per_day: 10\n")
    options = Options(path, tmp_path, tmp_path)
    serial, workers = (
        BudgetRun(load_config(path), options),
        [BudgetRun(load_config(path), options) for _ in range(2)],
    )
    for i in range(6):
        calls = [
            Call("anthropic", "messages", "claude-sonnet-4-6", Usage(10 * i + k, k))
            for k in range(i % 3)
        ] + [Call("anthropic", "count_tokens", "x", Usage(5))]
        for run in (serial, workers[i % 2]):
            run.add_calls(calls, endpoint="ep", case_id=f"c{i}", test_id=f"t::c{i}")
            run.add_case_run(CaseRun("ep", f"c{i}", f"t::c{i}"))
    controller = BudgetRun(load_config(path), options)
    for worker in workers[::-1]:  # in any order
        controller.merge_wire(json.loads(json.dumps(worker.to_wire())))
    assert report_json(report_of(controller)) == report_json(report_of(serial))


# -- prompt-cache findings: the same whatever order the workers finish in ------------------
FAQ_CASES = [{"id": f"q{i}", "request": faq_request(i, 1 + 40 * i)} for i in range(6)]


def doctor_calls() -> list[tuple[str, str, str, dict, int]]:
    """(endpoint, test id, case id, request, whole prompt tokens) of twelve calls, in test
    order. faq: a cached system prompt too short to cache, whose estimate differs per case
    (its prompts' lengths differ), with a timestamp in it; notes: a breakpoint after the
    varying question (never read)."""
    calls = []
    for i in range(6):
        faq = faq_request(i, i + 1)
        notes = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 30,
            "system": POLICY,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "Why? " * (i + 1),
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                }
            ],
        }
        calls.append(("faq", f"test_faq.py::test_faq[q{i}]", f"q{i}", faq, 1000 + 40 * i))
        calls.append(("notes", f"test_notes.py::test_notes[n{i}]", f"n{i}", notes, 3000 + i))
    return calls


def doctor_fed(calls) -> Doctor:
    doctor = Doctor()
    for endpoint, test_id, case_id, request, whole in calls:
        doctor.add_call(endpoint, case_id, request, whole, 2048, test_id=test_id, memo={})
    return doctor


def test_cache_findings_do_not_depend_on_which_worker_finishes_first():
    """The finding's message (its token estimate, the values compared) is the one of the call
    first in test order, and its cases are all of them: a serial run, a serial run seeing the
    calls in another order, and workers merged in either order agree."""
    import json

    calls = doctor_calls()
    serial = doctor_fed(calls).findings()
    assert {f.code for f in serial} == {
        "prefix-below-minimum",
        "volatile-prefix",
        "breakpoint-never-read",
    }
    assert doctor_fed(calls[::-1]).findings() == serial
    by_case = [calls[i : i + 2] for i in range(0, len(calls), 2)]  # (faq, notes) per case
    workers = [doctor_fed([c for pair in by_case[k::2] for c in pair]) for k in (1, 0)]
    for merge_order in (workers, workers[::-1]):
        controller = Doctor()
        for worker in merge_order:
            controller.merge_wire(json.loads(json.dumps(worker.to_wire())))
        assert controller.findings() == serial
    [below] = [f for f in serial if f.code == "prefix-below-minimum"]
    assert below.cases == tuple(f"q{i}" for i in range(6))
    [volatile] = [f for f in serial if f.code == "volatile-prefix"]
    assert volatile.cases == ("q0", "q1", "q2", "q4", "q5")  # q3 is q0's prompt again
    assert "'2026-12-02T10:00:00Z' in case q0, '2026-12-02T10:01:00Z' now" in volatile.message
    [never] = [f for f in serial if f.code == "breakpoint-never-read"]
    assert never.cases == tuple(f"n{i}" for i in range(6))
