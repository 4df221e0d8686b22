"""The benchmark scripts still run against today's package, at a size of seconds.

The benchmarks are run by hand (docs/performance.md), so nothing else would notice a script
that no longer imports after the code moves. These runs time nothing: they check that each
script works and measures what it says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import paths

BENCHMARKS = paths.REPO / "benchmarks"


def _run(*args: str | Path, cwd: Path = paths.REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_aggregation_benchmark_evaluates_builds_and_ships_every_sample() -> None:
    done = _run(BENCHMARKS / "run.py", "--_aggregate", "3000", "30", "1", "600")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["samples"] == 3000
    assert out["cases"] == 30
    assert out["wire"]["samples"] == 600
    for timing in (out, out["shuffled"]):
        assert timing["total_s"] >= timing["evaluate_s"] > 0
        assert timing["build_report_s"] > 0
        assert timing["markdown_and_json_s"] > 0


def test_a_generated_project_replays_with_the_plugin_and_with_the_floor(tmp_path: Path) -> None:
    project = tmp_path / "p"
    done = _run(BENCHMARKS / "generate.py", project, "--cases", "3")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cases"] == 3

    def pytest(*args: str) -> subprocess.CompletedProcess[str]:
        return _run("-m", "pytest", "-p", "no:cacheprovider", "-q", *args, cwd=project)

    plugin = pytest("--token-budget", "-p", "no:recording", "test_bench.py")
    assert plugin.returncode == 0, plugin.stdout + plugin.stderr
    report = json.loads((project / ".token-budget" / "report.json").read_text())
    assert report["endpoints"]["bench"]["calls"] == 3
    assert report["status"] == "pass"

    floor = pytest("-p", "no:tokenbudget", "-p", "no:recording", "test_bench_floor.py")
    assert floor.returncode == 0, floor.stdout + floor.stderr
    assert "3 passed" in floor.stdout
