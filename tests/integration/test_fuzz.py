"""Fuzz: hostile files and flags at every edge get one message and a known exit code.

Each edge is driven as a user (or a fork's pull request) reaches it: `tokenbudget check`
for budgets and cases, `tokenbudget analyze` for cassettes of every body kind, `tokenbudget
diff` for baselines, a pytest run for cassettes, count caches and flags. Whatever the
input, the run ends with exit 0, 1, 2 or 4, no traceback and no INTERNALERROR, a failure
names the file it is about, time and memory stay bounded, and nothing is written outside
the project.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from project_files import CASES, CONFIG, copy_example

from pytest_tokenbudget.cli import main

FUZZ = settings(
    max_examples=40,
    deadline=10_000,  # ms: a bomb or a hang fails the example, not the CI job's clock
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FUZZ, max_examples=12)  # whole pytest runs, in process

MEMORY_GROWTH_LIMIT = 512 * 1024  # kB of peak RSS one example may add (ru_maxrss is kB)

HOSTILE_NUMBERS = [
    "1e999",
    "-1e999",
    ".inf",
    "-.inf",
    ".nan",
    "9" * 4000,
    "-1",
    "0",
    "1.5",
    "0x10",
    "true",
    "null",
    "1_000",
    "'12'",
    "[]",
    "{}",
]
CLIMBING = "../../outside"  # hygiene: allow (a hostile name, never a path this suite reads)
HOSTILE_TEXT = [
    "chat\n",
    "a" * 300,
    "risk-assessment-summary",
    "::error::forged",
    "<script>x</script>",
    CLIMBING,
    "CON",
    "é",
    "sk-ant-api03-" + "x" * 40,
    "%0A::add-mask::x",
    "|",
    "`",
    "@everyone",
    "<!-- pytest-tokenbudget -->",
]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def scalar_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE_NUMBERS),
        st.sampled_from(HOSTILE_TEXT).map(json.dumps),
        st.integers(-5, 10**13).map(str),
        st.text(max_size=20).map(json.dumps),
    )


class Sandbox:
    """A fresh project folder beside an `outside` folder that nothing may touch."""

    def __init__(self, root: Path) -> None:
        self.root = Path(tempfile.mkdtemp(dir=root))
        self.project = self.root / "project"
        self.outside = self.root / "outside"
        self.project.mkdir()
        self.outside.mkdir()
        (self.outside / "sentinel.txt").write_text("untouched")

    def check_nothing_written_outside(self) -> None:
        assert sorted(p.name for p in self.root.iterdir()) == ["outside", "project"]
        assert [p.name for p in self.outside.iterdir()] == ["sentinel.txt"]
        assert (self.outside / "sentinel.txt").read_text() == "untouched"


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_cli(capsys, sandbox: Sandbox, argv: list[str], about: str) -> int:
    """`tokenbudget ARGV` in the project folder; checks the contract and returns the exit."""
    before, cwd = peak_rss_kb(), os.getcwd()
    os.chdir(sandbox.project)
    try:
        code = main(argv)
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (code, out, err)
    assert "Traceback" not in out + err
    if code == 2:
        assert about in err, err
    assert peak_rss_kb() - before < MEMORY_GROWTH_LIMIT
    sandbox.check_nothing_written_outside()
    return code


# -- budgets and cases: `tokenbudget check` ---------------------------------------------
CONFIG_TEMPLATE = """\
version: 1
defaults:
  min_samples: {min_samples}
endpoints:
  {name}:
    target_model: {model}
    max_input_tokens_p95: {input_p95}
    max_output_tokens_p95: {output_p95}
    monthly_budget_usd: {monthly}
    allowed_escalation_rate: {rate}
    cases: [{{id: {case_id}, question: hi}}]
"""


@FUZZ
@given(
    fields=st.fixed_dictionaries(
        {
            "min_samples": scalar_text(),
            "name": st.one_of(
                st.sampled_from(HOSTILE_TEXT), st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
            ),
            "model": st.one_of(st.just("claude-sonnet-4-6"), scalar_text()),
            "input_p95": scalar_text(),
            "output_p95": scalar_text(),
            "monthly": scalar_text(),
            "rate": scalar_text(),
            "case_id": st.one_of(st.sampled_from(HOSTILE_TEXT).map(json.dumps), st.just("one")),
        }
    ),
    tail=st.sampled_from(["", BOMB, "x: &a [1]\ny: *a\n", "\x00", "- [" * 500]),
)
def test_check_names_the_config_file(tmp_path, capsys, fields, tail):
    sandbox = Sandbox(tmp_path)
    (sandbox.project / "token_budgets.yml").write_text(CONFIG_TEMPLATE.format(**fields) + tail)
    run_cli(capsys, sandbox, ["check"], "token_budgets.yml")


@FUZZ
@given(data=st.data())
def test_check_survives_any_corruption_of_a_valid_config(tmp_path, capsys, data):
    sandbox = Sandbox(tmp_path)
    text = CONFIG.format(input_p95=4000).encode()
    at = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 8))
    junk = data.draw(st.binary(max_size=12))
    (sandbox.project / "token_budgets.yml").write_bytes(text[:at] + junk + text[at + cut :])
    (sandbox.project / "cases.yml").write_text(CASES)
    run_cli(capsys, sandbox, ["check"], "token_budgets.yml")


@FUZZ
@given(kind=st.sampled_from(["fifo", "dir", "zero-symlink", "binary", "huge-line"]))
def test_check_refuses_files_that_are_not_configs(tmp_path, capsys, kind):
    sandbox = Sandbox(tmp_path)
    path = sandbox.project / "token_budgets.yml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "zero-symlink":
        path.symlink_to("/dev/zero")
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 64)
    else:
        path.write_text("version: 1\n# " + "x" * 20_000_000 + "\n")
    assert run_cli(capsys, sandbox, ["check"], "token_budgets.yml") == 2


# -- cassettes of every body kind: `tokenbudget analyze` ------------------------------------
def usage_json(values: dict[str, str]) -> str:
    """A Messages response whose usage (and model) values are raw JSON text, hostile or not."""
    model = values.pop("model", '"claude-sonnet-4-6"')
    usage = ", ".join(f'"{k}": {v}' for k, v in values.items())
    content = '[{"type": "text", "text": "hi"}]'
    return (
        f'{{"id": "msg_1", "type": "message", "role": "assistant", "model": {model}, '
        f'"content": {content}, "stop_reason": "end_turn", "usage": {{{usage}}}}}'
    )


def sse(message: str) -> str:
    return (
        f'event: message_start\ndata: {{"type": "message_start", "message": {message}}}\n\n'
        'event: message_delta\ndata: {"type": "message_delta", "delta": {"stop_reason": '
        '"end_turn"}, "usage": {"output_tokens": 3}}\n\nevent: message_stop\ndata: '
        '{"type": "message_stop"}\n\n'
    )


def body_of(kind: str, message: str) -> dict[str, object]:
    """A recorded body; bytes are written as YAML `!!binary`, as vcrpy stores them."""
    if kind == "json":
        return {"string": message}
    if kind == "sse":
        return {"string": sse(message)}
    if kind == "gzip":
        return {"string": gzip.compress(message.encode())}
    if kind == "binary":
        return {"string": message.encode() + b"\xff\x00"}  # not UTF-8
    return {"string": message[: len(message) // 2]}  # cut mid-document


def write_cassette(path: Path, interaction: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"version": 1, "interactions": [interaction]}))


@FUZZ
@given(
    kind=st.sampled_from(["json", "sse", "gzip", "binary", "cut"]),
    usage=st.fixed_dictionaries(
        {"input_tokens": scalar_text(), "output_tokens": scalar_text()},
        optional={"cache_read_input_tokens": scalar_text(), "model": scalar_text()},
    ),
    encoding=st.sampled_from([None, "gzip", "br", "identity", "x-bogus"]),
)
def test_analyze_names_the_cassette(tmp_path, capsys, kind, usage, encoding):
    sandbox = Sandbox(tmp_path)
    headers: dict[str, list[str]] = {"content-type": ["application/json"]}
    if encoding:
        headers["content-encoding"] = [encoding]
    interaction = {
        "request": {
            "method": "POST",
            "uri": "https://api.anthropic.com/v1/messages",
            "body": '{"model": "claude-sonnet-4-6", "max_tokens": 5, "messages": []}',
            "headers": {},
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": headers,
            "body": body_of(kind, usage_json(dict(usage))),
        },
    }
    write_cassette(sandbox.project / "cassettes" / "chat" / "one.yaml", interaction)
    run_cli(capsys, sandbox, ["analyze", "cassettes"], "one.yaml")


# -- baselines from a fork: `tokenbudget diff` ------------------------------------------
@pytest.fixture(scope="module")
def example_report(tmp_path_factory, one_ca_bundle) -> str:
    """report.json of the bundled example, as CI makes it (no TLS: one CA certificate; the
    SDK stand-in: the report is what matters here, not the client)."""
    out = tmp_path_factory.mktemp("example")
    project = tmp_path_factory.mktemp("project")
    copy_example(project, light_sdk=True)
    (project / "conftest.py").write_text("")  # the app on sys.path, the rootdir
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--token-budget",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--token-budget-report={out}",
        ],
        check=False,
        cwd=project,
        env={**os.environ, "SSL_CERT_FILE": str(one_ca_bundle)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return (out / "report.json").read_text()


def leaf_paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaf_paths(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaf_paths(v, (*path, i))] or [path]
    return [path]


HOSTILE_JSON = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "9" * 5000,
    "-1",
    '"x"',
    "[]",
    "{}",
    "null",
    "true",
    "0.1",
    json.dumps("::error::forged\n::add-mask::x"),
    "[" * 100_000 + "]" * 100_000,
]


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(["markdown", "github", "json", "gitlab"]))
def test_diff_names_the_hostile_baseline(tmp_path, capsys, example_report, data, fmt):
    sandbox = Sandbox(tmp_path)
    report = json.loads(example_report)
    paths = leaf_paths(report)
    for _ in range(data.draw(st.integers(1, 3))):
        *parents, last = data.draw(st.sampled_from(paths))
        node = report
        for key in parents:
            node = node[key]
        node[last] = "__HOSTILE__"
    text = json.dumps(report)
    while "__HOSTILE__" in text:
        text = text.replace('"__HOSTILE__"', data.draw(st.sampled_from(HOSTILE_JSON)), 1)
    (sandbox.project / "base.json").write_text(text)
    (sandbox.project / "head.json").write_text(example_report)
    out = run_cli(capsys, sandbox, ["diff", "base.json", "head.json", "--format", fmt], "base.json")
    assert out in (0, 1, 2)


# -- a pytest run: replayed cassettes, count caches and flags -----------------------------
PLUGIN_EXITS = (0, 1, 2, 4)


def run_pytest(pytester, args: list[str], about: str | None = None) -> int:
    before = peak_rss_kb()
    result = pytester.runpytest_inprocess("--token-budget", "-p", "no:cacheprovider", *args)
    text = "\n".join(result.outlines + result.errlines)
    assert result.ret in PLUGIN_EXITS, text
    assert "INTERNALERROR" not in text
    assert "Traceback (most recent call last)" not in text
    if result.ret and about:
        assert about in text, text
    assert peak_rss_kb() - before < MEMORY_GROWTH_LIMIT
    return int(result.ret)


@FEW
@given(
    kind=st.sampled_from(["json", "sse", "gzip", "binary", "cut"]),
    usage=st.fixed_dictionaries({"input_tokens": scalar_text(), "output_tokens": scalar_text()}),
)
def test_replay_names_the_hostile_cassette(project, ci_env, kind, usage):
    interaction = {
        "request": {
            "method": "POST",
            "uri": "https://api.anthropic.com/v1/messages",
            "body": None,
            "headers": {},
        },
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {"content-type": ["application/json"]},
            "body": body_of(kind, usage_json(dict(usage))),
        },
    }
    write_cassette(project.path / "cassettes" / "chat" / "short.yaml", interaction)
    run_pytest(project, [], "short.yaml")


@FEW
@given(entry=st.one_of(st.sampled_from(HOSTILE_JSON), st.just('{"input_tokens": "many"}')))
def test_count_mode_names_the_corrupt_count_cache(project, ci_env, entry):
    counts = project.path / "cassettes" / "token_counts.json"
    counts.parent.mkdir(parents=True, exist_ok=True)
    head = '{"schema": "pytest-tokenbudget/token-counts", "version": 1, "counts": '
    counts.write_text(head + '{"0": ' + entry + "}}")
    run_pytest(project, ["--token-budget-count"], "token_counts.json")


FLAGS = [
    "--token-budget-max-regression",
    "--token-budget-update",
    "--token-budget-update-margin",
    "--token-budget-count-concurrency",
    "--token-budget-record",
    "--token-budget-config",
    "--token-budget-baseline",
    "--token-budget-report",
    "--token-budget-cassettes",
]


@FEW
@example(flag="--token-budget-report", value="\x00")  # once an INTERNALERROR at the end
@example(flag="--token-budget-cassettes", value="a\x00b")  # once "no recording" for all
@given(
    flag=st.sampled_from(FLAGS),
    value=st.one_of(st.sampled_from(HOSTILE_NUMBERS + HOSTILE_TEXT), st.text(max_size=10)),
)
def test_any_flag_value_gets_one_message(project, ci_env, flag, value):
    if flag in ("--token-budget-report", "--token-budget-cassettes") and (
        ".." in value or value.startswith("/")
    ):
        value = value.replace("..", "dots").lstrip("/")  # a path the user chose is theirs
    run_pytest(project, [f"{flag}={value}"])
