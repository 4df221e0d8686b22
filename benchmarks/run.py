"""Performance figures of pytest-tokenbudget, measured side by side in one run.

    python benchmarks/run.py             # full: ~7-9 minutes on 2 cores
    python benchmarks/run.py --quick     # smaller N: ~1-2 minutes

Every figure is wall-clock, best of --repeats (default 3) runs of
``python -m pytest -p no:cacheprovider -q ...`` timed with time.perf_counter
around subprocess.run; the variants of a figure are interleaved (A B A B ...)
so that a burst of load on the machine hits all of them. CPU time (user+sys of
the pytest process and its children) is recorded too: it tells waiting for a
core apart from work (on a VM whose CPU speed drifts it drifts as well). Serial
runs also load benchmarks/phase_timer.py, which reports where the time went.

  (a) an unused install: 50 trivial tests, plugin loaded vs -p no:tokenbudget
  (b) replay of N1 and N2 one-call cases with --token-budget vs the same
      cassettes replayed by pytest-recording alone (match_on method, path, query, body)
  (c) the N2 replay with pytest-xdist -n 2 vs serial
  (d) in-process aggregation of 1,000,000 samples (10,000 cases, 3 models):
      BudgetRun.results() + report.build_report
  (e) one agent case making 200 sequential calls, replayed with --token-budget

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
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

PY = sys.executable
BASE_ARGS = ["-p", "no:cacheprovider", "-q"]
PLUGIN = ["--token-budget", "-p", "no:recording", "test_bench.py"]
VCR_ALONE = ["-p", "no:tokenbudget", "test_bench_vcr.py"]
PACKAGES = ("pytest", "pytest-tokenbudget", "vcrpy", "pytest-recording", "pytest-xdist",
            "anthropic", "httpx2", "PyYAML", "jsonschema")  # fmt: skip


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

    def as_dict(self) -> dict:
        out = {"best_wall_s": self.wall, "median_wall_s": statistics.median(self.walls),
               "walls_s": self.walls, "best_cpu_s": self.cpu, "cpus_s": self.cpus}  # fmt: skip
        if self.phases:
            # in the test item: setup + call + teardown + makereport (where the plugin parses
            # the test's exchanges); the best run by that measure
            per_item = [p["in_test"] + p["makereport"] for p in self.phases]
            out["best_in_item_s"] = min(per_item)
            out["in_item_s"] = per_item
            out["phases_of_best_wall"] = self.phases[self.walls.index(self.wall)]
        return out


def _env(client_per_call: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "ANTHROPIC_")) and k != "PYTHONPATH"}  # fmt: skip
    env["BENCH_CLIENT_PER_CALL"] = "1" if client_per_call else "0"
    env["PYTHONPATH"] = str(HERE)  # for -p phase_timer
    return env


def run_pytest(cwd: Path, args: list[str], env: dict[str, str], expect_passed: int,
               phases_out: Path | None = None) -> tuple[float, float, str]:  # fmt: skip
    if phases_out is not None:
        env = {**env, "PHASE_TIMER_OUT": str(phases_out)}
        args = ["-p", "phase_timer", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([PY, "-m", "pytest", *BASE_ARGS, *args], cwd=cwd, env=env,
                          capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = done.stdout + done.stderr
    passed = re.search(r"(\d+) passed", out)
    if done.returncode != 0 or not passed or int(passed.group(1)) != expect_passed:
        tail = "\n".join(out.splitlines()[-30:])
        raise SystemExit(f"pytest {' '.join(args)} in {cwd} did not pass {expect_passed} tests "
                         f"(exit {done.returncode}):\n{tail}")  # fmt: skip
    return wall, cpu, out


def interleaved(variants: list[tuple[str, Path, list[str], int]], repeats: int, env: dict[str, str],
                log, *, phases: bool = False) -> dict[str, Timing]:  # fmt: skip
    """Best-of-`repeats` of each variant, run A B C A B C ... With phases, serial runs also
    load benchmarks/phase_timer.py (a few hook wrappers: microseconds per test)."""
    timings = {name: Timing(name) for name, *_ in variants}
    out_file = Path(tempfile.mkdtemp(prefix="tokenbudget-phases-")) / "phases.json"
    for r in range(repeats):
        for name, cwd, args, expect in variants:
            timed_phases = phases and "-n" not in args
            wall, cpu, _ = run_pytest(cwd, args, env, expect, out_file if timed_phases else None)
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

    from pytest_tokenbudget.config import load_config
    from pytest_tokenbudget.markdown import render_markdown
    from pytest_tokenbudget.pricing import table_date
    from pytest_tokenbudget.report import build_report
    from pytest_tokenbudget.samples import CaseRun, Sample
    from pytest_tokenbudget.session import BudgetRun, Options
    from pytest_tokenbudget.usage import Usage

    tmp = Path(tempfile.mkdtemp(prefix="tokenbudget-agg-"))
    (tmp / "token_budgets.yml").write_text(AGG_CONFIG)
    config = load_config(tmp / "token_budgets.yml")
    options = Options(config_path=tmp / "token_budgets.yml", cassettes=tmp, report_dir=tmp)

    def build(n: int, shuffle: bool = False) -> BudgetRun:
        run = BudgetRun(config, options)
        rng = random.Random(7)
        models = ["claude-sonnet-4-6"] * 8 + ["claude-opus-4-7", "claude-haiku-4-5"]
        per_case = n // cases
        for c in range(cases):
            case_id = f"c{c:05d}"
            test_id = f"test_bench.py::test_bench[{case_id}]"
            for index in range(per_case):
                usage = Usage(
                    input_tokens=rng.randint(50, 5000),
                    output_tokens=rng.randint(1, 800),
                    cache_write_5m_tokens=rng.choice((0, 0, 0, 1200)),
                    cache_read_tokens=rng.choice((0, 0, 2400)),
                )
                run.samples.append(Sample(endpoint="bench", case_id=case_id, test_id=test_id,
                                          index=index, model=rng.choice(models), usage=usage))  # fmt: skip
            run.case_runs.append(CaseRun("bench", case_id, test_id, "passed", []))
        if shuffle:  # the worst case for the sort in results(): no order at all
            rng.shuffle(run.samples)
        return run

    def timed(run: BudgetRun) -> list[dict]:
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            results = run.results()
            t1 = time.perf_counter()
            report = build_report(
                results, config_path="token_budgets.yml", price_table_date=table_date()
            )
            t2 = time.perf_counter()
            markdown = render_markdown(report)
            text = json.dumps(report, indent=2)
            t3 = time.perf_counter()
            runs.append({"results_s": t1 - t0, "build_report_s": t2 - t1, "total_s": t2 - t0,
                         "markdown_and_json_s": t3 - t2})  # fmt: skip
            del results, report, markdown, text
            gc.collect()
        return runs

    start = time.perf_counter()
    run = build(samples)  # in test order, as a serial run collects them
    built = time.perf_counter() - start
    out: dict = {"samples": len(run.samples), "cases": cases, "build_s": built, "runs": timed(run)}
    out.update(min(out["runs"], key=lambda r: r["total_s"]))
    del run
    gc.collect()
    shuffled = build(samples, shuffle=True)  # in no order (the sort's worst case)
    out["shuffled_runs"] = timed(shuffled)
    out["shuffled"] = min(out["shuffled_runs"], key=lambda r: r["total_s"])
    # xdist ships every sample from the workers to the controller (Sample.to_dict / from_dict).
    del shuffled
    gc.collect()
    small = build(wire_samples)
    t0 = time.perf_counter()
    wire = small.to_wire()
    t1 = time.perf_counter()
    merged = BudgetRun(config, options)
    merged.merge_wire(wire)
    t2 = time.perf_counter()
    out["wire"] = {"samples": len(small.samples), "to_wire_s": t1 - t0, "merge_wire_s": t2 - t1}
    return out


def run_aggregate(samples: int, cases: int, repeats: int, wire_samples: int) -> dict:
    done = subprocess.run(
        [PY, str(Path(__file__).resolve()), "--_aggregate", str(samples), str(cases), str(repeats),
         str(wire_samples)],
        capture_output=True, text=True, env=_env(False),
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"aggregation benchmark failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- machine ----------------------------------------------------------------------------------
def machine() -> dict:
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
            versions[name] = "-"
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
        row("(a) unused install: 50 trivial tests, plugin on / `-p no:tokenbudget`",
            f"{ratio:.3f}×", "≤ 1.02×", ratio <= 1.02,
            f"{on['best_wall_s']:.2f} s vs {off['best_wall_s']:.2f} s wall; cpu {cpu_ratio:.3f}×")  # fmt: skip
    for n in (n1, n2):
        if f"b_plugin_{n}" in t and f"b_vcr_{n}" in t:
            p, v = t[f"b_plugin_{n}"], t[f"b_vcr_{n}"]
            ratio = p["best_wall_s"] / v["best_wall_s"]
            row(f"(b) replay {n:,} cases: `--token-budget` / pytest-recording",
                f"{ratio:.3f}×", "≤ 1.1×", ratio <= 1.1,
                f"{p['best_wall_s']:.2f} s vs {v['best_wall_s']:.2f} s wall; "
                f"cpu {p['best_cpu_s'] / v['best_cpu_s']:.3f}×")  # fmt: skip
    if all(f"b_{tool}_{n}" in t for tool in ("plugin", "vcr") for n in (n1, n2)):
        a, b = t[f"b_plugin_{n1}"], t[f"b_plugin_{n2}"]
        ratio = b["best_wall_s"] / a["best_wall_s"]
        row(f"(b) scaling: {n2:,} / {n1:,} cases with `--token-budget`", f"{ratio:.3f}×",
            f"≤ {2.1 * n2 / (2 * n1):.2f}×", ratio <= 2.1 * n2 / (2 * n1),
            f"{b['best_wall_s']:.2f} s vs {a['best_wall_s']:.2f} s wall; pytest-recording alone: "
            f"{t[f'b_vcr_{n2}']['best_wall_s'] / t[f'b_vcr_{n1}']['best_wall_s']:.3f}×")  # fmt: skip
    if f"c_xdist_{n2}" in t:
        s, x = t[f"b_plugin_{n2}"], t[f"c_xdist_{n2}"]
        speedup = s["best_wall_s"] / x["best_wall_s"]
        ref = ""
        if f"c_vcr_xdist_{n2}" in t:
            ref = (f"; pytest-recording alone (1 run): "
                   f"{t[f'b_vcr_{n2}']['best_wall_s'] / t[f'c_vcr_xdist_{n2}']['best_wall_s']:.2f}×")  # fmt: skip
        row(f"(c) xdist: {n2:,} cases serial / `-n 2`", f"{speedup:.2f}× speed-up", "≥ 1.6×",
            speedup >= 1.6,
            f"{s['best_wall_s']:.2f} s serial vs {x['best_wall_s']:.2f} s with -n 2; "
            f"cpu {x['best_cpu_s']:.1f} s vs {s['best_cpu_s']:.1f} s{ref}")  # fmt: skip
    if "d" in res:
        d = res["d"]
        row(f"(d) aggregate {d['samples']:,} samples ({d['cases']:,} cases): results() + build_report",
            f"{d['total_s']:.2f} s", "< 1 s", d["total_s"] < 1.0,
            f"samples in test order; results() {d['results_s']:.2f} s + build_report "
            f"{d['build_report_s']:.2f} s; markdown + json.dumps {d['markdown_and_json_s']:.2f} s "
            f"(not in target); samples shuffled: {d['shuffled']['total_s']:.2f} s")  # fmt: skip
    if "e_plugin" in t:
        e = t["e_plugin"]
        size = res.get("agent_cassette_bytes", 0) / 1e6
        row(f"(e) agent case, {res['agent_calls']} sequential calls ({size:.1f} MB cassette), "
            "`--token-budget`",
            f"{e['best_in_item_s']:.2f} s in the test", "< 1 s", e["best_in_item_s"] < 1.0,
            f"setup+call+teardown+makereport; session {e['best_wall_s']:.2f} s wall"
            + (f"; pytest-recording alone (1 run): {t['e_vcr']['best_in_item_s']:.2f} s in the test, "
               f"{t['e_vcr']['best_wall_s']:.2f} s session" if "e_vcr" in t else ""))  # fmt: skip

    phase_rows = []
    keys = ("startup_until_sessionstart", "collection", "setup", "call", "teardown", "makereport",
            "sessionfinish", "total_until_unconfigure")  # fmt: skip
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
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores ({m['cores']} online), "
        f"Python {m['python']}, {m['platform']}; load average at start "
        f"{' / '.join(f'{x:.2f}' for x in m['loadavg_start'])}, at end "
        f"{' / '.join(f'{x:.2f}' for x in res['loadavg_end'])}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()) + ".",
        f"Best of {res['repeats']} (figure (a): best of {res['repeats_a']}), wall-clock; "
        f"app client: {'one per call' if res['client_per_call'] else 'shared'}; "
        f"total benchmark time {res['elapsed_s'] / 60:.1f} min.",
    ]
    if "d" in res and "wire" in res["d"]:
        w = res["d"]["wire"]
        lines.append(
            f"xdist transfer of {w['samples']:,} samples: to_wire {w['to_wire_s']:.2f} s, "
            f"merge_wire {w['merge_wire_s']:.2f} s."
        )
    return "\n".join(lines + breakdown)


# -- main -----------------------------------------------------------------------------------
TRIVIAL_TESTS = "".join(
    f"\n\ndef test_trivial_{i:02d}():\n    assert {i} + 1 > {i}\n" for i in range(50)
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller N: 200/400 cases, 50-call agent, 10^5 samples"
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
    repeats_a = 5 * repeats  # (a) is a 2% question on a ~1.3 s session: more runs tame the noise
    only = set(args.only)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tokenbudget-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = _env(args.client_per_call)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    res: dict = {"machine": machine(), "n1": n1, "n2": n2, "agent_calls": agent_calls,
                 "repeats": repeats, "repeats_a": repeats_a, "client_per_call": args.client_per_call,
                 "timings": {}}  # fmt: skip
    log(f"machine: {res['machine']['cpu']}, {res['machine']['usable_cores']} cores, "
        f"load {res['machine']['loadavg_start']}; workdir {work}")  # fmt: skip

    # projects
    trivial = work / "trivial"
    trivial.mkdir(exist_ok=True)
    (trivial / "pytest.ini").write_text("[pytest]\n")
    (trivial / "test_trivial.py").write_text('"""50 trivial tests, no marker."""' + TRIVIAL_TESTS)
    projects: dict[str, Path] = {}
    if only & set("bce"):
        for n in (n1, n2) if only & set("bc") else ():
            projects[f"c{n}"] = work / f"cases_{n}"
            log(f"generating {n} cases ...")
            generate.generate(projects[f"c{n}"], cases=n, agent=0, observation_words=20,
                              cases_format="yml", seed=1, record_all=False)  # fmt: skip
        if "e" in only:
            projects["agent"] = work / f"agent_{agent_calls}"
            log(f"generating the {agent_calls}-call agent case ...")
            info = generate.generate(projects["agent"], cases=0, agent=agent_calls, observation_words=20,
                                     cases_format="yml", seed=1, record_all=False)  # fmt: skip
            res["agent_cassette_bytes"] = info["cassette_bytes"]

    timings: dict[str, Timing] = {}
    if "a" in only:
        log("(a) unused install")
        timings.update(interleaved([
            ("a_on", trivial, [], 50),
            ("a_off", trivial, ["-p", "no:tokenbudget"], 50),
        ], repeats_a, env, log))  # fmt: skip
    if only & set("bc"):
        log("(b)/(c) replay")
        variants = []
        if "b" in only:
            for n in (n1, n2):
                variants += [(f"b_plugin_{n}", projects[f"c{n}"], PLUGIN, n),
                             (f"b_vcr_{n}", projects[f"c{n}"], VCR_ALONE, n)]  # fmt: skip
        elif "c" in only:
            variants.append((f"b_plugin_{n2}", projects[f"c{n2}"], PLUGIN, n2))
        if "c" in only:
            variants.append((f"c_xdist_{n2}", projects[f"c{n2}"], [*PLUGIN, "-n", "2"], n2))
        timings.update(interleaved(variants, repeats, env, log, phases=True))
        if "c" in only and "b" in only and not args.no_reference:
            # reference, run once: what -n 2 does for pytest-recording alone on this machine
            timings.update(interleaved([(f"c_vcr_xdist_{n2}", projects[f"c{n2}"], [*VCR_ALONE, "-n", "2"], n2)],
                                       1, env, log))  # fmt: skip
    if "e" in only:
        log("(e) agent case")
        timings.update(interleaved([("e_plugin", projects["agent"], PLUGIN, 1)], repeats, env, log,
                                   phases=True))  # fmt: skip
        if not args.no_reference:
            # reference, run once: pytest-recording's body matcher parses both JSON bodies for
            # every (request, recording) pair it compares, so it is quadratic here (~1.5 min)
            timings.update(interleaved([("e_vcr", projects["agent"], VCR_ALONE, 1)], 1, env, log,
                                       phases=True))  # fmt: skip
    if "d" in only:
        log(f"(d) aggregation of {samples:,} samples")
        res["d"] = run_aggregate(samples, 10_000, repeats, 100_000 if not args.quick else 20_000)
        log(f"  results()+build_report best {res['d']['total_s']:.2f} s")

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
