"""Performance figures of pytest-tokenbudget, measured side by side in one run.

    python benchmarks/run.py             # full: ~10-15 minutes on 2 cores
    python benchmarks/run.py --quick     # smaller N: ~2-3 minutes
    pip install --target /tmp/cassetter-site --no-deps cassetter
    python benchmarks/run.py --cassetter /tmp/cassetter-site   # with cassetter as a peer

Each variant runs with plugin autoload off and loads only the plugin it measures (-p NAME);
--all-plugins lets pytest load every installed plugin in every variant instead. The plugin's
modules are compiled to bytecode first, as any install has them (see compile_package).

Every figure is wall-clock of ``python -m pytest -p no:cacheprovider -q ...`` timed with
time.perf_counter around subprocess.run, --repeats (default 3) rounds. The variants of a
figure are interleaved (A B C A B C ...) and a ratio is the median over rounds of the ratio
within a round, so that a burst of load on the machine hits both sides of it. CPU time
(user+sys of the pytest process and its children) is recorded too: it tells waiting for a
core apart from work. Serial runs also load benchmarks/phase_timer.py, which reports where
the time went.

  (a) an unused install: 2,000 trivial tests, plugin loaded vs -p no:tokenbudget
  (b) replay of N1 and N2 one-call cases, on the same cassettes: --token-budget;
      pytest-recording alone (match_on method, path, query, body); the floor (the real SDK
      over an in-memory MockTransport of its HTTP library, serving each case's recorded
      response, read from its cassette with libyaml); cassetter (with --cassetter)
  (c) the N2 replay with pytest-xdist -n 2 vs serial
  (d) in-process aggregation of 1,000,000 samples (10,000 cases, 3 models):
      evaluate(BudgetRun) + report.build_report (and, apart, BudgetRun.add_calls)
  (e) one agent case making 200 sequential calls and one making 400, replayed with
      --token-budget and by the floor

(c) and (e) also run pytest-recording alone once, as a reference (--no-reference
skips them; the one of (e) takes ~1.5 minutes, see docs/performance.md).

Projects are generated with benchmarks/generate.py into --workdir (a temporary
directory unless given). The app reuses one anthropic client (see app.py in a
generated project); --client-per-call builds one per call instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402 (a sibling script, found through the sys.path line above)

PY = sys.executable
BASE_ARGS = ["-p", "no:cacheprovider", "-q"]
PLUGIN = ["--token-budget", "-p", "no:recording", "test_bench.py"]
VCR_ALONE = ["-p", "no:tokenbudget", "test_bench_vcr.py"]
FLOOR = ["-p", "no:tokenbudget", "-p", "no:recording", "test_bench_floor.py"]
CASSETTER = ["-p", "no:tokenbudget", "-p", "no:recording", "test_bench_cassetter.py"]
XDIST = ["-n", "2"]
# Isolated runs (the default) load no plugin from entry points (PYTEST_DISABLE_PLUGIN_AUTOLOAD):
# each variant names the one it measures, so what else the venv holds (hypothesis loads itself
# at the terminal summary, ~1 s) adds to no variant.
LOADS = {
    "PLUGIN": "pytest_tokenbudget.plugin",
    "VCR_ALONE": "pytest_recording.plugin",
    "CASSETTER": "cassetter.pytest_plugin",
    "XDIST": "xdist.plugin",
}


def isolate() -> None:
    """Each variant loads its plugin by name (-p), as it runs with autoload off."""
    for name, module in LOADS.items():
        globals()[name] = ["-p", module, *globals()[name]]


PACKAGES = (
    "pytest",
    "pytest-tokenbudget",
    "vcrpy",
    "pytest-recording",
    "pytest-xdist",
    "anthropic",
    "httpx2",
    "PyYAML",
    "jsonschema",
    "cassetter",
)


# -- timing ---------------------------------------------------------------------------------
@dataclass
class Timing:
    name: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    phases: list[dict] = field(default_factory=list)  # from phase_timer, one per run (serial runs)

    @property
    def wall(self) -> float:
        return min(self.walls)

    @property
    def cpu(self) -> float:
        return min(self.cpus)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def as_dict(self) -> dict:
        out = {
            "best_wall_s": self.wall,
            "median_wall_s": statistics.median(self.walls),
            "walls_s": self.walls,
            "best_cpu_s": self.cpu,
            "cpus_s": self.cpus,
        }
        if self.phases:
            # in the test item: setup + call + teardown + makereport (where the plugin parses
            # the test's exchanges); the best run by that measure
            per_item = [p["in_test"] + p["makereport"] for p in self.phases]
            out["best_in_item_s"] = min(per_item)
            out["in_item_s"] = per_item
            out["phases_of_best_wall"] = self.phases[self.walls.index(self.wall)]
        return out


def _env(client_per_call: bool, isolated: bool = False) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE goes too: a user's machine keeps bytecode (see compile_package)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "ANTHROPIC_"))
        and k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")
    }
    env["BENCH_CLIENT_PER_CALL"] = "1" if client_per_call else "0"
    if isolated:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = str(HERE)  # for -p phase_timer
    return env


def compile_package() -> None:
    """Bytecode for the plugin, as a user's install has it (pip compiles a wheel's modules,
    an editable install writes them on first import). Without it, where the environment
    sets PYTHONDONTWRITEBYTECODE, every run compiles the plugin's modules again (~0.1 s)."""
    import pytest_tokenbudget

    package = Path(pytest_tokenbudget.__file__).parent
    subprocess.run([PY, "-m", "compileall", "-q", str(package)], check=True)


def run_pytest(
    cwd: Path,
    args: list[str],
    env: dict[str, str],
    expect_passed: int,
    phases_out: Path | None = None,
) -> tuple[float, float, str]:
    if phases_out is not None:
        env = {**env, "PHASE_TIMER_OUT": str(phases_out)}
        args = ["-p", "phase_timer", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [PY, "-m", "pytest", *BASE_ARGS, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = done.stdout + done.stderr
    passed = re.search(r"(\d+) passed", out)
    if done.returncode != 0 or not passed or int(passed.group(1)) != expect_passed:
        tail = "\n".join(out.splitlines()[-30:])
        raise SystemExit(
            f"pytest {' '.join(args)} in {cwd} did not pass {expect_passed} tests "
            f"(exit {done.returncode}):\n{tail}"
        )
    return wall, cpu, out


def pair_ratio(a: dict, b: dict, key: str = "walls_s") -> float:
    """Median over rounds of a/b, each round's a against the same round's b (they ran back to
    back, so a burst of load on the machine hits both)."""
    return statistics.median(x / y for x, y in zip(a[key], b[key], strict=True))


Variant = tuple  # (name, cwd, args, expected passes[, extra env])


def interleaved(
    variants: list[Variant], repeats: int, env: dict[str, str], log, *, phases: bool = False
) -> dict[str, Timing]:
    """`repeats` runs of each variant, run A B C A B C ... With phases, serial runs also
    load benchmarks/phase_timer.py (a few hook wrappers: microseconds per test)."""
    timings = {name: Timing(name) for name, *_ in variants}
    out_file = Path(tempfile.mkdtemp(prefix="tokenbudget-phases-")) / "phases.json"
    for r in range(repeats):
        for name, cwd, args, expect, *extra in variants:
            timed_phases = phases and "-n" not in args
            run_env = {**env, **extra[0]} if extra else env
            wall, cpu, _ = run_pytest(
                cwd, args, run_env, expect, out_file if timed_phases else None
            )
            t = timings[name]
            t.walls.append(wall)
            t.cpus.append(cpu)
            if timed_phases:
                t.phases.append(json.loads(out_file.read_text()))
            log(f"  [{r + 1}/{repeats}] {name}: {wall:.2f} s wall, {cpu:.2f} s cpu")
    return timings


# -- (d) aggregation, in a fresh interpreter -----------------------------------------------
AGG_CONFIG = """\
endpoints:
  bench:
    target_model: claude-sonnet-4-6
    escalation_models: [claude-opus-4-7]
    max_input_tokens_p95: 1000000
    max_output_tokens_p95: 100000
    allowed_escalation_rate: 0.5
    min_cache_hit_rate: 0.01
    max_cost_per_request_usd: 100
    monthly_budget_usd: 1000000000
    requests_per_day: 1000
"""


def aggregate(samples: int, cases: int, repeats: int, wire_samples: int) -> dict:
    """Runs inside the child: build the samples (untimed), then time the aggregation."""
    import gc

    from pytest_tokenbudget.config.budgets import load_config
    from pytest_tokenbudget.measure.evaluation import evaluate
    from pytest_tokenbudget.measure.run import BudgetRun, Options
    from pytest_tokenbudget.measure.samples import CaseRun
    from pytest_tokenbudget.pricing.prices import table_date
    from pytest_tokenbudget.providers.usage import Call, Usage
    from pytest_tokenbudget.report.build import build_report
    from pytest_tokenbudget.report.json_io import report_json
    from pytest_tokenbudget.report.markdown import render_markdown

    tmp = Path(tempfile.mkdtemp(prefix="tokenbudget-agg-"))
    (tmp / "token_budgets.yml").write_text(AGG_CONFIG)
    config = load_config(tmp / "token_budgets.yml")
    options = Options(config_path=tmp / "token_budgets.yml", cassettes=tmp, report_dir=tmp)

    def build(n: int, shuffle: bool = False) -> tuple[BudgetRun, float]:
        """The run after its tests, as the plugin fills it (add_calls once per test), and
        the seconds add_calls took in all (spread over the tests in a real run)."""
        run = BudgetRun(config, options)
        rng = random.Random(7)
        models = ["claude-sonnet-4-6"] * 8 + ["claude-opus-4-7", "claude-haiku-4-5"]
        per_case = n // cases
        adding = 0.0
        for c in range(cases):
            case_id = f"c{c:05d}"
            test_id = f"test_bench.py::test_bench[{case_id}]"
            calls = []
            for _ in range(per_case):
                usage = Usage(
                    input_tokens=rng.randint(50, 5000),
                    output_tokens=rng.randint(1, 800),
                    cache_write_5m_tokens=rng.choice((0, 0, 0, 1200)),
                    cache_read_tokens=rng.choice((0, 0, 2400)),
                )
                calls.append(Call("anthropic", "messages", rng.choice(models), usage))
            t0 = time.perf_counter()
            run.add_calls(calls, endpoint="bench", case_id=case_id, test_id=test_id)
            adding += time.perf_counter() - t0
            run.case_runs.append(CaseRun("bench", case_id, test_id, "passed", []))
        if shuffle:  # xdist workers report in any order: the worst case for the sort
            rng.shuffle(run.parts)
            rng.shuffle(run.case_runs)
        return run, adding

    def timed(run: BudgetRun) -> list[dict]:
        runs = []
        for _ in range(repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            evaluation = evaluate(run)  # the statistics and verdicts of every endpoint
            t1 = time.perf_counter()
            report = build_report(
                evaluation.results,
                config_path="token_budgets.yml",
                price_table_date=table_date(),
                findings=evaluation.findings,
            )
            t2 = time.perf_counter()
            cpu = time.process_time() - c0
            markdown = render_markdown(report)
            text = json.dumps(report_json(report), indent=2)
            t3 = time.perf_counter()
            runs.append(
                {
                    "evaluate_s": t1 - t0,
                    "build_report_s": t2 - t1,
                    "total_s": t2 - t0,
                    "total_cpu_s": cpu,
                    "markdown_and_json_s": t3 - t2,
                }
            )
            del evaluation, report, markdown, text
            gc.collect()
        return runs

    run, adding = build(samples)  # in test order, as a serial run collects them
    count = sum(len(p) for p in run.parts)
    out: dict = {"samples": count, "cases": cases, "add_calls_s": adding, "runs": timed(run)}
    out.update(min(out["runs"], key=lambda r: r["total_s"]))
    del run
    gc.collect()
    shuffled, _ = build(samples, shuffle=True)  # in no order (the sort's worst case)
    out["shuffled_runs"] = timed(shuffled)
    out["shuffled"] = min(out["shuffled_runs"], key=lambda r: r["total_s"])
    # xdist ships every sample from the workers to the controller (to_wire / merge_wire).
    del shuffled
    gc.collect()
    small, _ = build(wire_samples)
    t0 = time.perf_counter()
    wire = small.to_wire()
    t1 = time.perf_counter()
    merged = BudgetRun(config, options)
    merged.merge_wire(wire)
    t2 = time.perf_counter()
    out["wire"] = {
        "samples": sum(len(p) for p in small.parts),
        "to_wire_s": t1 - t0,
        "merge_wire_s": t2 - t1,
    }
    return out


def run_aggregate(samples: int, cases: int, repeats: int, wire_samples: int) -> dict:
    done = subprocess.run(
        [
            PY,
            str(Path(__file__).resolve()),
            "--_aggregate",
            str(samples),
            str(cases),
            str(repeats),
            str(wire_samples),
        ],
        capture_output=True,
        text=True,
        env=_env(False),
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"aggregation benchmark failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- machine ----------------------------------------------------------------------------------
def machine(extra_site: Path | None = None) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            found = (
                [d.version for d in distributions(name=name, path=[str(extra_site)])]
                if extra_site
                else []
            )
            versions[name] = found[0] if found else "-"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "loadavg_start": list(os.getloadavg()),
    }


# -- report ---------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(res: dict) -> str:
    m = res["machine"]
    t = res["timings"]
    n1, n2 = res["n1"], res["n2"]
    rows = []

    def row(label: str, value: str, target: str, ok: bool | None, detail: str = "") -> None:
        rows.append(
            f"| {label} | {value} | {target} | {'-' if ok is None else verdict(ok)} | {detail} |"
        )

    if "a_on" in t:
        on, off = t["a_on"], t["a_off"]
        ratio = on["best_wall_s"] / off["best_wall_s"]
        cpu_ratio = on["best_cpu_s"] / off["best_cpu_s"]
        row(
            f"(a) unused install: {TRIVIAL:,} trivial tests, plugin on / `-p no:tokenbudget`",
            f"{ratio:.3f}×",
            "≤ 1.02×",
            ratio <= 1.02,
            f"{on['best_wall_s']:.2f} s vs {off['best_wall_s']:.2f} s wall; cpu {cpu_ratio:.3f}×",
        )
    peers = (
        ("vcr", "pytest-recording", 0.70),
        ("floor", "the floor", 1.10),
        ("cassetter", "cassetter", None),
    )
    for n in (n1, n2):
        p = t.get(f"b_plugin_{n}")
        for peer, label, target in peers:
            o = t.get(f"b_{peer}_{n}")
            if p is None or o is None:
                continue
            ratio = pair_ratio(p, o)
            row(
                f"(b) replay {n:,} cases: `--token-budget` / {label}",
                f"{ratio:.3f}×",
                f"≤ {target:.2f}×" if target and n == n1 else "-",
                ratio <= target if target and n == n1 else None,
                f"medians {p['median_wall_s']:.2f} s vs {o['median_wall_s']:.2f} s wall; "
                f"cpu {pair_ratio(p, o, 'cpus_s'):.3f}×",
            )
        for peer, label, _ in peers[::2]:  # the peers against the floor
            o, f = t.get(f"b_{peer}_{n}"), t.get(f"b_floor_{n}")
            if o is not None and f is not None:
                row(
                    f"(b) replay {n:,} cases: {label} / the floor",
                    f"{pair_ratio(o, f):.3f}×",
                    "-",
                    None,
                    f"medians {o['median_wall_s']:.2f} s vs {f['median_wall_s']:.2f} s",
                )
    for tool, label in (
        ("plugin", "`--token-budget`"),
        ("vcr", "pytest-recording"),
        ("floor", "the floor"),
        ("cassetter", "cassetter"),
    ):
        a, b = t.get(f"b_{tool}_{n1}"), t.get(f"b_{tool}_{n2}")
        if a is None or b is None:
            continue
        ratio = pair_ratio(b, a)
        limit = 2.1 * n2 / (2 * n1)
        row(
            f"(b) scaling: {n2:,} / {n1:,} cases, {label}",
            f"{ratio:.3f}×",
            f"≤ {limit:.2f}×" if tool == "plugin" else "-",
            ratio <= limit if tool == "plugin" else None,
            f"medians {b['median_wall_s']:.2f} s vs {a['median_wall_s']:.2f} s wall",
        )
    if f"c_xdist_{n2}" in t:
        s, x = t[f"b_plugin_{n2}"], t[f"c_xdist_{n2}"]
        speedup = s["best_wall_s"] / x["best_wall_s"]
        ref = ""
        if f"c_vcr_xdist_{n2}" in t:
            ref = (
                f"; pytest-recording alone (1 run): "
                f"{t[f'b_vcr_{n2}']['best_wall_s'] / t[f'c_vcr_xdist_{n2}']['best_wall_s']:.2f}×"
            )
        row(
            f"(c) xdist: {n2:,} cases serial / `-n 2`",
            f"{speedup:.2f}× speed-up",
            "≥ 1.6×",
            speedup >= 1.6,
            f"{s['best_wall_s']:.2f} s serial vs {x['best_wall_s']:.2f} s with -n 2; "
            f"cpu {x['best_cpu_s']:.1f} s vs {s['best_cpu_s']:.1f} s{ref}",
        )
    if "d" in res:
        d = res["d"]
        row(
            f"(d) aggregate {d['samples']:,} samples ({d['cases']:,} cases): evaluate() + build_report",
            f"{d['total_s']:.2f} s",
            "< 1 s",
            d["total_s"] < 1.0,
            f"cpu {d['total_cpu_s']:.2f} s; samples in test order; "
            f"evaluate() {d['evaluate_s']:.2f} s + build_report "
            f"{d['build_report_s']:.2f} s; markdown + json.dumps {d['markdown_and_json_s']:.2f} s "
            f"(not in target); tests in random order: {d['shuffled']['total_s']:.2f} s; "
            f"add_calls during the tests {d['add_calls_s']:.2f} s "
            f"({d['add_calls_s'] / d['samples'] * 1e6:.2f} µs per call)",
        )
    a1, a2 = res["agent_calls"], 2 * res["agent_calls"]
    for tool, label in (("plugin", "`--token-budget`"), ("floor", "the floor")):
        e1, e2 = t.get(f"e_{tool}_{a1}"), t.get(f"e_{tool}_{a2}")
        if e1 is None or e2 is None:
            continue
        ratio = pair_ratio(e2, e1, "in_item_s")
        sizes = res.get("agent_cassette_bytes", {})
        row(
            f"(e) agent case, {a2} / {a1} sequential calls, {label}, time in the test",
            f"{ratio:.3f}×",
            "≤ 2.2×" if tool == "plugin" else "-",
            ratio <= 2.2 if tool == "plugin" else None,
            f"medians {statistics.median(e2['in_item_s']):.2f} s vs "
            f"{statistics.median(e1['in_item_s']):.2f} s in the test "
            f"(setup+call+teardown+makereport); sessions {e2['median_wall_s']:.2f} s vs "
            f"{e1['median_wall_s']:.2f} s; cassettes {sizes.get(str(a2), 0) / 1e6:.1f} MB vs "
            f"{sizes.get(str(a1), 0) / 1e6:.1f} MB",
        )
    for calls in (a1, a2):
        p, f = t.get(f"e_plugin_{calls}"), t.get(f"e_floor_{calls}")
        if p is not None and f is not None:
            row(
                f"(e) agent case, {calls} calls: `--token-budget` / the floor, time in the test",
                f"{pair_ratio(p, f, 'in_item_s'):.3f}×",
                "-",
                None,
                f"session wall {pair_ratio(p, f):.3f}×",
            )
    if f"e_vcr_{a1}" in t:
        v = t[f"e_vcr_{a1}"]
        row(
            f"(e) agent case, {a1} calls, pytest-recording alone (reference, 1 run)",
            f"{v['best_in_item_s']:.2f} s in the test",
            "-",
            None,
            f"session {v['best_wall_s']:.2f} s",
        )

    phase_rows = []
    keys = (
        "startup_until_sessionstart",
        "collection",
        "setup",
        "call",
        "teardown",
        "makereport",
        "sessionfinish",
        "total_until_unconfigure",
    )
    for name in sorted(t):
        ph = t[name].get("phases_of_best_wall")
        if ph:
            phase_rows.append(
                f"| {name} | " + " | ".join(f"{ph.get(k, 0):.2f}" for k in keys) + " |"
            )
    breakdown = []
    if phase_rows:
        breakdown = [
            "",
            "Where the time goes (seconds, best run of each; phase_timer):",
            "",
            "| run | startup+configure | collection | setup | call | teardown | makereport | sessionfinish | total |",
            "|---|---|---|---|---|---|---|---|---|",
            *phase_rows,
        ]
    lines = [
        "| figure | measured | target | status | detail |",
        "|---|---|---|---|---|",
        *rows,
        "",
        (
            f"Machine: {m['cpu']}, {m['usable_cores']} usable cores ({m['cores']} online), "
            f"Python {m['python']}, {m['platform']}; load average at start "
            f"{' / '.join(f'{x:.2f}' for x in m['loadavg_start'])}, at end "
            f"{' / '.join(f'{x:.2f}' for x in res['loadavg_end'])}."
        ),
        "Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        (
            f"Ratios: median over {res['repeats']} interleaved rounds of the ratio within each round "
            f"(figure (a): best of {res['repeats_a']}); wall-clock; "
            f"app client: {'one per call' if res['client_per_call'] else 'shared'}; "
            f"plugins: {'only the measured one (autoload off)' if res.get('isolated') else 'all installed'}; "
            f"total benchmark time {res['elapsed_s'] / 60:.1f} min."
        ),
    ]
    if "d" in res and "wire" in res["d"]:
        w = res["d"]["wire"]
        lines.append(
            f"xdist transfer of {w['samples']:,} samples: to_wire {w['to_wire_s']:.2f} s, "
            f"merge_wire {w['merge_wire_s']:.2f} s."
        )
    return "\n".join(lines + breakdown)


# -- main -----------------------------------------------------------------------------------
# Enough tests that a cost per test shows (50 hid an autouse fixture's ~0.14 ms per test),
# in a project that has a token_budgets.yml, as one that installs the plugin does.
TRIVIAL = 2000
TRIVIAL_TESTS = f"""\"\"\"{TRIVIAL:,} trivial tests, no marker.\"\"\"
import pytest


@pytest.mark.parametrize("n", range({TRIVIAL}))
def test_trivial(n):
    assert n + 1 > n
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller N: 200/400 cases, 50/100-call agent, 10^5 samples",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated projects here")
    parser.add_argument("--only", default="abcde", help="subset of figures, e.g. --only bd")
    parser.add_argument(
        "--client-per-call",
        action="store_true",
        help="the app builds an anthropic client for every call (~25 ms each)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the pytest-recording reference runs of (c) and (e), run once each "
        "by default (the (e) one takes ~1.5 min)",
    )
    parser.add_argument(
        "--cassetter",
        type=Path,
        default=None,
        metavar="DIR",
        help="also replay with cassetter, installed in DIR with `pip install --target DIR "
        "--no-deps cassetter` (it registers --record-mode, like pytest-recording, so it cannot "
        "share the venv); loaded through PYTHONPATH for its runs only",
    )
    parser.add_argument(
        "--all-plugins",
        action="store_true",
        help="let pytest load every plugin installed in the venv, in every variant alike "
        "(default: only the one each variant measures)",
    )
    parser.add_argument("--_aggregate", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._aggregate:
        print(json.dumps(aggregate(*args._aggregate)))
        return 0

    started = time.perf_counter()
    n1, n2 = (200, 400) if args.quick else (1000, 2000)
    agent_calls = 50 if args.quick else 200
    samples = 100_000 if args.quick else 1_000_000
    repeats = args.repeats
    repeats_a = 5 * repeats  # (a) is a few-% question on a ~2 s session: more runs tame the noise
    only = set(args.only)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tokenbudget-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    isolated = not args.all_plugins
    if isolated:
        isolate()
    env = _env(args.client_per_call, isolated)
    compile_package()
    cassetter_env = None
    if args.cassetter:
        site = args.cassetter.resolve()
        if not (site / "cassetter").is_dir():
            raise SystemExit(
                f"--cassetter {site}: no cassetter package there "
                f"(pip install --target {site} --no-deps cassetter)"
            )
        cassetter_env = {"PYTHONPATH": f"{HERE}{os.pathsep}{site}"}

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    res: dict = {
        "machine": machine(args.cassetter),
        "n1": n1,
        "n2": n2,
        "agent_calls": agent_calls,
        "repeats": repeats,
        "repeats_a": repeats_a,
        "client_per_call": args.client_per_call,
        "isolated": isolated,
        "timings": {},
    }
    log(
        f"machine: {res['machine']['cpu']}, {res['machine']['usable_cores']} cores, "
        f"load {res['machine']['loadavg_start']}; workdir {work}"
    )

    # projects
    trivial = work / "trivial"
    trivial.mkdir(exist_ok=True)
    (trivial / "pytest.ini").write_text("[pytest]\n")
    (trivial / "test_trivial.py").write_text(TRIVIAL_TESTS)
    (trivial / "token_budgets.yml").write_text(
        "endpoints:\n  chat:\n    max_input_tokens_p95: 10\n"
    )
    projects: dict[str, Path] = {}
    if only & set("bce"):
        for n in (n1, n2) if only & set("bc") else ():
            projects[f"c{n}"] = work / f"cases_{n}"
            log(f"generating {n} cases ...")
            generate.generate(
                projects[f"c{n}"],
                cases=n,
                agent=0,
                observation_words=20,
                cases_format="yml",
                seed=1,
                record_all=False,
            )
        if "e" in only:
            res["agent_cassette_bytes"] = {}
            for calls in (agent_calls, 2 * agent_calls):
                projects[f"agent{calls}"] = work / f"agent_{calls}"
                log(f"generating the {calls}-call agent case ...")
                info = generate.generate(
                    projects[f"agent{calls}"],
                    cases=0,
                    agent=calls,
                    observation_words=20,
                    cases_format="yml",
                    seed=1,
                    record_all=False,
                )
                res["agent_cassette_bytes"][str(calls)] = info["cassette_bytes"]

    timings: dict[str, Timing] = {}
    if "a" in only:
        log("(a) unused install")
        timings.update(
            interleaved(
                [
                    ("a_on", trivial, ["-p", LOADS["PLUGIN"]] if isolated else [], TRIVIAL),
                    ("a_off", trivial, ["-p", "no:tokenbudget"], TRIVIAL),
                ],
                repeats_a,
                env,
                log,
            )
        )
    if only & set("bc"):
        log("(b)/(c) replay")
        variants = []
        if "b" in only:
            for n in (n1, n2):
                variants += [
                    (f"b_plugin_{n}", projects[f"c{n}"], PLUGIN, n),
                    (f"b_vcr_{n}", projects[f"c{n}"], VCR_ALONE, n),
                    (f"b_floor_{n}", projects[f"c{n}"], FLOOR, n),
                ]
                if cassetter_env:
                    variants.append(
                        (f"b_cassetter_{n}", projects[f"c{n}"], CASSETTER, n, cassetter_env)
                    )
        elif "c" in only:
            variants.append((f"b_plugin_{n2}", projects[f"c{n2}"], PLUGIN, n2))
        if "c" in only:
            variants.append((f"c_xdist_{n2}", projects[f"c{n2}"], [*PLUGIN, *XDIST], n2))
        timings.update(interleaved(variants, repeats, env, log, phases=True))
        if "c" in only and "b" in only and not args.no_reference:
            # reference, run once: what -n 2 does for pytest-recording alone on this machine
            timings.update(
                interleaved(
                    [(f"c_vcr_xdist_{n2}", projects[f"c{n2}"], [*VCR_ALONE, *XDIST], n2)],
                    1,
                    env,
                    log,
                )
            )
    if "e" in only:
        log("(e) agent case")
        variants = []
        for calls in (agent_calls, 2 * agent_calls):
            variants += [
                (f"e_plugin_{calls}", projects[f"agent{calls}"], PLUGIN, 1),
                (f"e_floor_{calls}", projects[f"agent{calls}"], FLOOR, 1),
            ]
        timings.update(interleaved(variants, repeats, env, log, phases=True))
        if not args.no_reference:
            # reference, run once: pytest-recording's body matcher parses both JSON bodies for
            # every (request, recording) pair it compares, so it is quadratic here (~1.5 min)
            timings.update(
                interleaved(
                    [(f"e_vcr_{agent_calls}", projects[f"agent{agent_calls}"], VCR_ALONE, 1)],
                    1,
                    env,
                    log,
                    phases=True,
                )
            )
    if "d" in only:
        log(f"(d) aggregation of {samples:,} samples")
        res["d"] = run_aggregate(samples, 10_000, repeats, 100_000 if not args.quick else 20_000)
        log(f"  evaluate()+build_report best {res['d']['total_s']:.2f} s")

    res["timings"] = {name: t.as_dict() for name, t in timings.items()}
    res["loadavg_end"] = list(os.getloadavg())
    res["elapsed_s"] = time.perf_counter() - started
    text = markdown(res)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
