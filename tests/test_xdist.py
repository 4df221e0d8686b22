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
