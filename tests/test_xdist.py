"""pytest-xdist: samples from every worker reach the controller; the report equals a serial run's."""

from __future__ import annotations

from project_files import record


def test_parallel_report_is_the_serial_report(project, recording_env, monkeypatch):
    record(project).assert_outcomes(passed=4)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    report = project.path / ".token-budget" / "report.json"

    serial = project.runpytest_subprocess("--token-budget", "-p", "no:cacheprovider")
    serial.assert_outcomes(passed=4)
    serial_text = report.read_text()
    report.unlink()

    for workers in ("2", "4"):
        parallel = project.runpytest_subprocess(
            "--token-budget", "-p", "no:cacheprovider", "-n", workers
        )
        parallel.assert_outcomes(passed=4)
        assert report.read_text() == serial_text, f"-n {workers}"
        # the table and the gate come from the controller only: printed once
        assert parallel.stdout.str().count("token budget ====") == 1
        report.unlink()


def test_workers_ship_samples_as_plain_data(tmp_path):
    """What a worker sends survives a round trip through plain data (execnet sends lists,
    tuples, dicts, strings, numbers), and the controller's figures are the serial ones."""
    import json

    from pytest_tokenbudget.config import load_config
    from pytest_tokenbudget.samples import CaseRun
    from pytest_tokenbudget.session import BudgetRun, Options
    from pytest_tokenbudget.usage import Call, Usage

    path = tmp_path / "token_budgets.yml"
    path.write_text("endpoints:\n  ep:\n    max_input_tokens_p95: 100\n    requests_per_day: 10\n")
    options = Options(path, tmp_path, tmp_path)
    serial, workers = (
        BudgetRun(load_config(path), options),
        [BudgetRun(load_config(path), options) for _ in range(2)],
    )
    for i in range(6):
        calls = [Call("anthropic", "messages", "claude-sonnet-4-6", Usage(10 * i + k, k))
                 for k in range(i % 3)] + [Call("anthropic", "count_tokens", "x", Usage(5))]  # fmt: skip
        for run in (serial, workers[i % 2]):
            run.add_calls(calls, endpoint="ep", case_id=f"c{i}", test_id=f"t::c{i}")
            run.add_case_run(CaseRun("ep", f"c{i}", f"t::c{i}"))
    controller = BudgetRun(load_config(path), options)
    for worker in workers[::-1]:  # in any order
        controller.merge_wire(json.loads(json.dumps(worker.to_wire())))
    assert controller.report().to_json() == serial.report().to_json()
