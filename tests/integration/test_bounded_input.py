"""Bounded input (issue 24): what a hostile or unlucky file can make the plugin do.

Config, cases, cassettes and count caches are read as untrusted input: YAML aliases may
stand for at most a million values, nesting is bounded, only regular files of a bounded
size are read (never `/dev/zero` or a FIFO), compressed bodies decode to a bounded size,
numbers are in a sane range, and a malformed recording is named as such. Each is one
message naming the file (and line, and key or interaction), an exit code, no traceback,
within seconds and a bounded amount of memory: the heavy cases run in a subprocess under
RLIMIT_AS, as users run `tokenbudget` and `pytest`.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from project_files import PLAIN_APP

from pytest_tokenbudget.capture.counting import CACHE_SCHEMA, count_key
from pytest_tokenbudget.files.input_files import CASSETTE_MAX_BYTES

GiB = 1024**3
MiB = 1024**2

# -- running as users run it, bounded -------------------------------------------------------


def run_bounded(
    args: list[str],
    cwd: Path,
    *,
    memory: int = GiB,
    seconds: float = 60,
    env: dict[str, str] | None = None,
):
    """(completed process, seconds taken) of a command run with its address space capped
    at `memory`: what took 3 GB before a bound now fails the test with a MemoryError."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    start = time.monotonic()
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=seconds,
            env=env,
            preexec_fn=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)}: still running after {seconds} s")
    return done, time.monotonic() - start


def tokenbudget(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    return run_bounded([sys.executable, "-m", "pytest_tokenbudget.cli", *args], cwd)


def check_in_process(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`tokenbudget check` in this process, for a file too small to take much memory or time
    (as pytest_in_process below): the same exit code and output, without its imports."""
    from pytest_tokenbudget.cli import main

    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:  # a warning is printed to stderr, as the command's own process would print it
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            code = main(["check", *args])
    finally:
        os.chdir(before)
    shown = "".join(warnings.formatwarning(x.message, x.category, x.filename, x.lineno) for x in w)
    return subprocess.CompletedProcess(
        ["check", *args], code, out.getvalue(), err.getvalue() + shown
    )


def pytest_run(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """pytest --token-budget in the project, replaying (no key), in its own process."""
    command = [sys.executable, "-m", "pytest", "--token-budget", "-p", "no:cacheprovider", *args]
    return run_bounded(command, project, memory=2 * GiB, seconds=120, env=env)


def pytest_in_process(project: pytest.Pytester) -> subprocess.CompletedProcess[str]:
    """The same run in this process, for a recording too small to take much memory or time:
    a subprocess's bound would prove nothing more, and each costs seconds of imports."""
    result = project.runpytest("--token-budget", "-p", "no:cacheprovider")
    return subprocess.CompletedProcess(
        [], int(result.ret), "\n".join(result.outlines), "\n".join(result.errlines)
    )


def one_message(done: subprocess.CompletedProcess[str]) -> str:
    """What a failed command said: no traceback, no INTERNALERROR."""
    text = done.stdout + done.stderr
    assert "Traceback" not in text and "INTERNALERROR" not in text, text[-3000:]
    assert "MemoryError" not in text and "RecursionError" not in text, text[-3000:]
    return text


def laughs(indent: str = "", levels: int = 9) -> str:
    """Nested YAML aliases, nine of nine: 387 million values once expanded."""
    out = f"{indent}a0: &a0 [" + ", ".join(["lol"] * 9) + "]\n"
    for i in range(1, levels):
        out += f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
    return out


CONFIG = """\
endpoints:
  chat:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 4000
    cases: cases.yml
"""


# -- 1. YAML aliases ------------------------------------------------------------------------
def test_a_billion_laughs_config_is_refused_within_seconds(tmp_path):
    # the anchors sit under a key nothing reads: expanding them was already the harm
    (tmp_path / "token_budgets.yml").write_text(
        "unused:\n" + laughs("  ") + CONFIG.replace("    cases: cases.yml\n", "")
    )
    done, took = tokenbudget("check", cwd=tmp_path)
    text = one_message(done)
    assert done.returncode == 2
    assert took < 20
    assert done.stderr.startswith("tokenbudget check: token_budgets.yml:")
    assert "YAML aliases (*name) expand to more than 1,000,000 values" in text


def test_a_billion_laughs_cases_file_is_refused_within_seconds(tmp_path):
    (tmp_path / "token_budgets.yml").write_text(CONFIG)
    (tmp_path / "cases.yml").write_text("- id: a\n  data:\n" + laughs("    "))
    done, took = tokenbudget("check", cwd=tmp_path)
    text = one_message(done)
    assert done.returncode == 2 and took < 20
    assert done.stderr.startswith("tokenbudget check: cases.yml:8: ")
    assert "expand to more than 1,000,000 values" in text


def test_anchors_and_aliases_that_repeat_little_still_read(tmp_path, capsys):
    from pytest_tokenbudget.cli import main

    (tmp_path / "token_budgets.yml").write_text(
        "defaults: &base\n  max_input_tokens_p95: 100\n"
        "endpoints:\n  a: {<<: *base, cases: cases.yml}\n  b: *base\n"
    )
    shared = "- id: one\n  messages: &m [{role: user, content: hi}]\n- id: two\n  messages: *m\n"
    (tmp_path / "cases.yml").write_text(shared)
    assert main(["check", "--config", str(tmp_path / "token_budgets.yml")]) == 0
    assert "2 endpoints, 2 cases — OK" in capsys.readouterr().out


# -- 2. sizes, depth and files that are no files ------------------------------------------
def test_dev_zero_as_config_is_refused_not_read(tmp_path):
    done, took = tokenbudget("check", "--config", "/dev/zero", cwd=tmp_path)
    text = one_message(done)
    assert done.returncode == 2 and took < 20
    assert "/dev/zero: cannot read config file: not a regular file" in text


def test_a_fifo_as_config_or_cases_file_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "token_budgets.yml")
    done, _ = tokenbudget("check", cwd=tmp_path)
    assert done.returncode == 2
    assert "token_budgets.yml: cannot read config file: not a regular file" in one_message(done)


def test_a_config_path_too_long_for_the_file_system_is_one_message(tmp_path):
    done, _ = tokenbudget("check", "--config", "a" * 300, cwd=tmp_path)
    assert done.returncode == 2
    assert "not a usable config file path: File name too long" in one_message(done)


def test_a_config_past_its_size_limit_is_refused_before_it_is_read(tmp_path):
    from pytest_tokenbudget.files.input_files import CONFIG_MAX_BYTES

    with open(tmp_path / "token_budgets.yml", "wb") as f:
        f.truncate(CONFIG_MAX_BYTES + 1)  # sparse: no disk used, nothing worth reading
    done, _ = tokenbudget("check", cwd=tmp_path)
    assert done.returncode == 2
    limit = f"({CONFIG_MAX_BYTES + 1:,} bytes; the limit is {CONFIG_MAX_BYTES:,})"
    assert f"config file is too large to read {limit}" in one_message(done)


@pytest.mark.parametrize(
    ("config", "cases", "where"),
    [
        ("unused: " + "[" * 900 + "]" * 900 + "\n" + CONFIG, None, "token_budgets.yml:1:"),
        (CONFIG, "- id: a\n  deep: " + "[" * 900 + "]" * 900 + "\n", "cases.yml:2:"),
        (
            CONFIG.replace("cases.yml", "cases.jsonl"),
            '{"id": "a", "d": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
            "cases.jsonl:1:",
        ),
        (
            CONFIG.replace("cases.yml", "cases.jsonl"),
            '{"id": "a", "d": ' + "[" * 500 + "]" * 500 + "}\n",
            "cases.jsonl:1:",
        ),
    ],
    ids=["config-yaml", "cases-yaml", "cases-jsonl-past-json", "cases-jsonl"],
)
def test_nesting_past_the_depth_limit_is_one_message(tmp_path, config, cases, where):
    (tmp_path / "token_budgets.yml").write_text(config)
    name = "cases.jsonl" if "jsonl" in config else "cases.yml"
    (tmp_path / name).write_text(cases or "- id: a\n")
    done, _ = tokenbudget("check", cwd=tmp_path)
    text = one_message(done)
    assert done.returncode == 2
    assert where in text and "lists and mappings nested more than 100 deep" in text


@pytest.mark.parametrize(
    ("config", "cases", "expected"),
    [
        (
            CONFIG.replace("4000", "1" + "0" * 5000),
            "- id: a\n",
            "token_budgets.yml:4: malformed YAML at line 4, column 27: a number too long to read",
        ),
        (
            CONFIG.replace("4000", "1_0" + "0" * 5000),
            "- id: a\n",
            "token_budgets.yml:4: malformed YAML at line 4, column 27: cannot build this value",
        ),
        (
            CONFIG,
            "- id: a\n  when: 2026-13-45\n",
            "cases.yml:2: malformed YAML at line 2, column 9: cannot build this value (month",
        ),
    ],
    ids=["5000-digits", "5000-digits-underscored", "13th-month"],
)
def test_a_value_python_cannot_build_is_one_message_at_its_line(tmp_path, config, cases, expected):
    (tmp_path / "token_budgets.yml").write_text(config)
    (tmp_path / "cases.yml").write_text(cases)
    done = check_in_process(tmp_path)
    assert done.returncode == 2
    assert expected in one_message(done)


# -- 4. numbers and names outside a sane range --------------------------------------------
@pytest.mark.parametrize(
    ("line", "key", "why"),
    [
        (
            "max_input_tokens_p95: 1" + "0" * 4000,
            "max_input_tokens_p95",
            "is out of range: must be at most 1,000,000,000,000",
        ),
        (
            "max_output_tokens_p95: 1000000000001",
            "max_output_tokens_p95",
            "1000000000001 is out of range: must be at most 1,000,000,000,000",
        ),
        (
            "max_cost_per_request_usd: .inf",
            "max_cost_per_request_usd",
            ".inf is out of range: must be at most 1,000,000,000",
        ),
        (
            "monthly_budget_usd: 1.0e+10",
            "monthly_budget_usd",
            "10000000000.0 is out of range: must be at most 1,000,000,000",
        ),
        ("requests_per_day: .inf", "requests_per_day", ".inf is out of range"),
        ("min_samples: 1" + "0" * 40, "min_samples", "is out of range"),
        (
            "max_regression_pct: .inf",
            "max_regression_pct",
            ".inf is out of range: must be at most 1,000,000",
        ),
        ("max_cost_per_request_usd: .nan", "max_cost_per_request_usd", "is .nan: give a number"),
    ],
    ids=["4000-digits", "tokens", "inf-usd", "usd", "inf-traffic", "samples", "inf-pct", "nan"],
)
def test_a_number_outside_a_sane_range_is_an_error_at_its_line(tmp_path, line, key, why):
    (tmp_path / "token_budgets.yml").write_text(
        f"endpoints:\n  chat:\n    target_model: claude-sonnet-4-6\n    {line}\n"
    )
    done = check_in_process(tmp_path)
    assert done.returncode == 2
    text = one_message(done)
    assert f"token_budgets.yml:4: {key}: " in text and why in text


def test_prices_and_cache_minimums_are_bounded_too(tmp_path):
    (tmp_path / "token_budgets.yml").write_text(
        "pricing:\n  my-model: {input: .inf, output: 1.0e+12}\n"
        "cache_minimums:\n  my-model: 1" + "0" * 30 + "\n"
        "endpoints:\n  chat: {target_model: my-model, max_input_tokens_p95: 10}\n"
    )
    done = check_in_process(tmp_path)
    text = one_message(done)
    assert done.returncode == 2
    assert "token_budgets.yml:2: input: .inf is out of range" in text
    assert "token_budgets.yml:2: output: 1000000000000.0 is out of range" in text
    assert "token_budgets.yml:4: my-model: 1" in text


@pytest.mark.parametrize(
    ("name", "key", "why"),
    [
        ('"chat\\n"', "chat\\n", "names cassette folders and test ids"),
        ('"ch\\tat"', "ch\\tat", "names cassette folders and test ids"),
        ("a" * 260, "a" * 37 + "...", "is longer than 100 characters"),
    ],
    ids=["final-newline", "tab", "260-characters"],
)
def test_an_endpoint_name_that_cannot_name_a_folder_is_an_error(tmp_path, name, key, why):
    (tmp_path / "token_budgets.yml").write_text(
        f"endpoints:\n  {name}:\n    max_input_tokens_p95: 10\n"
    )
    done = check_in_process(tmp_path)
    text = one_message(done)
    assert done.returncode == 2
    assert f"token_budgets.yml:2: {key}: endpoint name " in text and why in text
    assert len(done.stderr.splitlines()) == 1  # the name's newline is shown, not printed


def test_an_endpoint_name_of_100_characters_is_fine(tmp_path, capsys):
    from pytest_tokenbudget.cli import main

    path = tmp_path / "token_budgets.yml"
    path.write_text("endpoints:\n  " + "a" * 100 + ":\n    max_input_tokens_p95: 10\n")
    assert main(["check", "--config", str(path)]) == 0


BAD_CONFIGS = {
    "inf": "max_cost_per_request_usd: .inf",
    "huge": "max_output_tokens_p95: 1" + "0" * 4000,
    "newline": None,
}


@pytest.mark.parametrize("bad", list(BAD_CONFIGS))
def test_pytest_refuses_what_check_refuses_with_the_same_message(pytester, ci_env, bad):
    line = BAD_CONFIGS[bad]
    config = (
        f"endpoints:\n  chat:\n    max_input_tokens_p95: 4000\n    {line}\n"
        if line
        else 'endpoints:\n  "chat\\n":\n    max_input_tokens_p95: 4000\n'
    )
    pytester.makefile(".yml", token_budgets=config)
    pytester.makepyfile(
        test_x='import pytest\n\n@pytest.mark.token_budget("chat")\ndef test_x():\n    pass\n'
    )
    checked = check_in_process(pytester.path, "--config", str(pytester.path / "token_budgets.yml"))
    assert checked.returncode == 2
    message = checked.stderr.removeprefix("tokenbudget check: ").strip()
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert f"ERROR: pytest-tokenbudget: {message}" in result.stderr.str()


# -- cassettes, replayed as users replay them -----------------------------------------------
QUESTION = "What is a token?"
REQUEST = {
    "max_tokens": 40,
    "messages": [{"role": "user", "content": QUESTION}],
    "model": "claude-sonnet-4-6",
}
ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [{"type": "text", "text": "A piece of a word."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 6},
}
TEST = """\
import pytest
from app import reply


@pytest.mark.token_budget("chat")
def test_chat(budget_case):
    reply(budget_case["question"])
"""


def cassette(
    body: str | None = None, *, headers: str = "content-type: [application/json]", before: str = ""
) -> str:
    """A vcrpy cassette of the one call the app makes; `body` the response body in YAML."""
    if body is None:
        body = "{string: " + json.dumps(json.dumps(ANSWER)) + "}"
    return (
        before + "interactions:\n- request:\n"
        f"    body: {json.dumps(json.dumps(REQUEST, separators=(',', ':')))}\n"
        "    headers: {}\n    method: POST\n    uri: https://api.anthropic.com/v1/messages\n"
        f"  response:\n    body: {body}\n    headers: {{{headers}}}\n"
        "    status: {code: 200, message: OK}\nversion: 1\n"
    )


@pytest.fixture
def replayed(pytester, ci_env):
    """A project whose one case replays from cassettes/chat/short.yaml (written by each test)."""
    pytester.makefile(".yml", token_budgets=CONFIG, cases=f"- id: short\n  question: {QUESTION}\n")
    # the SDK's default retries: a response it cannot take is retried, and the retry is a miss
    pytester.makepyfile(app=PLAIN_APP.replace("max_retries=0", "max_retries=2"), test_budget=TEST)
    (pytester.path / "cassettes" / "chat").mkdir(parents=True)
    return pytester


def short(project) -> Path:
    return project.path / "cassettes" / "chat" / "short.yaml"


def report(project) -> dict:
    return json.loads((project.path / ".token-budget" / "report.json").read_text())


def case_problems(project) -> str:
    chat = report(project)["endpoints"]["chat"]
    lines = list(chat["problems"]) + [
        f"{u['case']}: {u['message']}" for u in chat.get("unmeasured_cases", [])
    ]
    return "\n".join(lines)


def test_a_well_formed_cassette_replays(replayed):
    short(replayed).write_text(cassette())
    done = pytest_in_process(replayed)
    one_message(done)
    assert done.returncode == 0, done.stdout[-2000:]
    assert report(replayed)["endpoints"]["chat"]["calls"] == 1


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """1.4 MB of gzip that decodes to 1.4 GB of zeros: 22 members of 64 MiB each (one
    gzip.decompress call reads them all, as a client does)."""
    return gzip.compress(b"\0" * (64 * MiB), 9) * 22


def binary(data: bytes) -> str:
    return "{string: !!binary " + base64.b64encode(data).decode() + "}"


# The heavy cassettes: each the recording of one case of one project, replayed in one
# pytest process under the bound (one run, not seven: each costs ~4 s of CPU in imports).
# Every case is failed by its own cassette, named in its own section of the output.
def _write_hostile(folder: Path, bomb: bytes) -> None:
    laughs_before = "bomb:\n" + laughs("  ")
    gzip_headers = "content-type: [application/json], content-encoding: [gzip]"
    cassettes = {
        "laughs": cassette("*a8", before=laughs_before),
        "header-laughs": cassette(
            headers="content-type: [application/json], x-lol: *a8", before=laughs_before
        ),
        "nested": cassette("{string: '', deep: " + "[" * 900 + "]" * 900 + "}"),
        "gzip-encoded": cassette(binary(bomb), headers=gzip_headers),
        "gzip-plain": cassette(binary(bomb)),
    }
    for case, text in cassettes.items():
        (folder / f"{case}.yaml").write_text(text)
    os.mkfifo(folder / "fifo.yaml")
    with open(folder / "oversized.yaml", "wb") as f:
        f.truncate(CASSETTE_MAX_BYTES + 1)


HOSTILE = ("laughs", "header-laughs", "nested", "fifo", "oversized", "gzip-encoded", "gzip-plain")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, bomb) -> tuple[Path, subprocess.CompletedProcess[str], float]:
    """(cassettes folder, the bounded run, seconds taken) of a project whose cases each
    replay one hostile cassette (HOSTILE) and fail on it."""
    project = tmp_path_factory.mktemp("hostile")
    (project / "token_budgets.yml").write_text(CONFIG)
    (project / "cases.yml").write_text(
        "".join(f"- id: {case}\n  question: {QUESTION}\n" for case in HOSTILE)
    )
    # the SDK's default retries: a response it cannot take is retried, and the retry is a miss
    (project / "app.py").write_text(PLAIN_APP.replace("max_retries=0", "max_retries=2"))
    (project / "test_budget.py").write_text(TEST)
    folder = project / "cassettes" / "chat"
    folder.mkdir(parents=True)
    _write_hostile(folder, bomb)
    done, took = pytest_run(project, env=replaying())
    one_message(done)
    return folder, done, took


def replaying() -> dict[str, str]:
    """This environment without an API key: the run replays."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}


def case_output(done: subprocess.CompletedProcess[str], case: str) -> str:
    """The case's failure section of pytest's output."""
    _, header, rest = done.stdout.partition(f" test_chat[{case}] _")
    assert header, done.stdout[-3000:]
    return rest.split("\n____", 1)[0].split("\n====", 1)[0]


def hostile_problems(folder: Path, case: str) -> str:
    chat = json.loads((folder.parents[1] / ".token-budget" / "report.json").read_text())
    problems = chat["endpoints"]["chat"]["problems"]
    unmeasured = chat["endpoints"]["chat"].get("unmeasured_cases", [])
    lines = [line for line in problems if f"{case}.yaml" in line]
    return "\n".join(lines + [u["message"] for u in unmeasured if u["case"] == case])


def test_the_hostile_cassettes_run_fails_each_case_within_seconds(hostile):
    _, done, took = hostile
    assert done.returncode == 1 and took < 60
    last = done.stdout.strip().splitlines()[-1]  # failed at setup (an error) or in the test
    assert "passed" not in last and all(case_output(done, case) for case in HOSTILE), last


def test_a_billion_laughs_cassette_fails_its_case_within_seconds(hostile):
    folder, done, _ = hostile
    text = case_output(done, "laughs")
    path = folder / "laughs.yaml"
    assert f"{path}:7: YAML aliases (*name) expand to more than 1,000,000" in text
    assert "not in the recording" not in text


def test_a_billion_laughs_in_a_response_header_fails_its_case(hostile):
    _, done, _ = hostile
    assert "expand to more than 1,000,000 values" in case_output(done, "header-laughs")


def test_a_cassette_nested_past_pythons_recursion_is_one_message(hostile):
    folder, done, _ = hostile
    text = case_output(done, "nested")
    assert f"{folder / 'nested.yaml'}: corrupt cassette (nested too deeply to read)" in text


def test_a_fifo_as_a_cassette_is_named_not_taken_for_a_missing_one(hostile):
    folder, done, _ = hostile
    text = case_output(done, "fifo")
    assert f"{folder / 'fifo.yaml'}: cannot read cassette: not a regular file" in text
    assert "not in the recording" not in text


def test_a_cassette_past_its_size_limit_is_refused_before_it_is_read(hostile):
    folder, done, _ = hostile
    text = case_output(done, "oversized")
    assert f"{folder / 'oversized.yaml'}: cassette is too large to read" in text


# -- 3. decompression -----------------------------------------------------------------------
def test_a_gzip_bomb_with_its_content_encoding_is_refused_as_the_cassette_loads(hostile):
    folder, done, _ = hostile
    assert (
        f"{folder / 'gzip-encoded.yaml'}:2: interaction 0: the recorded response is malformed: "
        "the compressed body decodes to more than 256 MiB"
    ) in case_output(done, "gzip-encoded")


def test_a_gzip_bomb_without_its_header_fails_its_case_naming_the_interaction(hostile):
    folder, _, _ = hostile
    problems = hostile_problems(folder, "gzip-plain")
    path = folder / "gzip-plain.yaml"
    assert f"{path}:2: interaction 0: the recorded response is malformed" in problems
    assert "decodes to more than 256 MiB" in problems


def test_analyze_refuses_a_gzip_bomb_in_an_r_vcr_cassette(tmp_path, bomb):
    packed = base64.b64encode(bomb).decode()
    (tmp_path / "bomb.yml").write_text(
        "http_interactions:\n- request: {method: post, uri: 'https://api.anthropic.com/v1/messages'}\n"
        f"  response:\n    status: {{status_code: '200'}}\n    body: {{raw_gzip: {packed}}}\n"
        "recorded_with: vcr/1.2.2\n"
    )
    done, took = tokenbudget("analyze", str(tmp_path), cwd=tmp_path)
    text = one_message(done)
    assert took < 60
    assert (
        "skipped bomb.yml:2: unreadable: interaction 0: the compressed body decodes to more "
        "than 256 MiB" in text
    )


# -- 6. a malformed recorded response is the recording's fault ------------------------------
@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ("content-type: [[application/json]]", "header 'content-type' holds a list, not text"),
        ("content-type: [application/json], x-n: 3", "header 'x-n' holds a number (3), not text"),
        ("content-type: {a: b}", "header 'content-type' holds dict"),
    ],
    ids=["list-in-list", "number", "mapping"],
)
def test_a_response_httpx_cannot_build_is_named_not_blamed_on_the_request(replayed, headers, why):
    short(replayed).write_text(cassette(headers=headers))
    done = pytest_in_process(replayed)
    text = one_message(done)
    assert done.returncode == 1
    assert f"{short(replayed)}:2: interaction 0: the recorded response is malformed: {why}" in text
    assert "not in the recording" not in text  # the SDK's retry of what it could not take


def test_a_response_body_that_is_no_json_names_the_cassette_and_interaction(replayed):
    short(replayed).write_text(cassette("{string: 'this is not json'}"))
    done = pytest_in_process(replayed)
    one_message(done)
    assert done.returncode == 1
    assert (
        f"{short(replayed)}:2: interaction 0: the recorded response is malformed: POST "
        "https://api.anthropic.com/v1/messages: response is not JSON"
    ) in case_problems(replayed)


def test_a_response_without_usage_names_the_cassette_and_interaction(replayed):
    answer = {k: v for k, v in ANSWER.items() if k != "usage"}
    short(replayed).write_text(cassette("{string: " + json.dumps(json.dumps(answer)) + "}"))
    done = pytest_in_process(replayed)
    one_message(done)
    problems = case_problems(replayed)
    assert f"{short(replayed)}:2: interaction 0: the recorded response is malformed" in problems
    assert "carries no usage" in problems


# -- 5. count caches ------------------------------------------------------------------------
def changed_prompt_project(pytester) -> Path:
    """Two cases whose prompts changed since recording: replay measures each by the count
    committed in token_counts.json."""
    pytester.makefile(
        ".yml", token_budgets=CONFIG, cases="- id: a\n  question: one?\n- id: b\n  question: two?\n"
    )
    pytester.makepyfile(app=PLAIN_APP, test_budget=TEST)
    folder = pytester.path / "cassettes" / "chat"
    folder.mkdir(parents=True)
    for case in ("a", "b"):
        (folder / f"{case}.yaml").write_text(cassette())  # recorded for another question
    return pytester.path / "cassettes" / "token_counts.json"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ({"schema": "something else", "counts": {}}, "not a token count cache"),
        ({"schema": CACHE_SCHEMA, "counts": [1, 2]}, "`counts` is not an object"),
        ("[" * 100_000, "nested too deeply to read"),
        (
            '{"schema": "' + CACHE_SCHEMA + '", "counts": {"k": 1' + "0" * 5000 + "}}",
            "corrupt count cache",
        ),
    ],
    ids=["schema", "counts-list", "deep", "5000-digits"],
)
def test_an_unreadable_count_cache_is_named_for_every_case(pytester, ci_env, content, why):
    counts = changed_prompt_project(pytester)
    counts.write_text(content if isinstance(content, str) else json.dumps(content))
    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text and "Traceback" not in text
    problems = case_problems(pytester)
    for case in ("a", "b"):  # the second case too: never an empty cache after the first error
        assert any(
            line.startswith(f"{case}:") and f"{counts}: " in line and why in line
            for line in problems.splitlines()
        ), problems


def test_count_mode_without_a_key_names_an_unreadable_cache_for_every_case(pytester, ci_env):
    counts = changed_prompt_project(pytester)
    counts.write_text(json.dumps({"schema": "something else"}))
    result = pytester.runpytest("--token-budget", "--token-budget-count", "-p", "no:cacheprovider")
    text = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in text
    assert text.count("not a token count cache") >= 2, text
    assert "no recorded count" not in text  # the count is not missing: the file is unreadable
    assert json.loads(counts.read_text()) == {"schema": "something else"}  # left as it was


def test_a_fifo_or_an_oversized_count_cache_is_named(pytester, ci_env):
    from pytest_tokenbudget.files.input_files import COUNTS_MAX_BYTES

    counts = changed_prompt_project(pytester)
    os.mkfifo(counts)
    done, _ = pytest_run(pytester.path)
    assert f"{counts}: cannot read count cache: not a regular file" in one_message(done)
    counts.unlink()
    with open(counts, "wb") as f:
        f.truncate(COUNTS_MAX_BYTES + 1)
    done = pytest_in_process(pytester)  # were it read, 64 MiB: no bound needed to see that
    assert f"{counts}: count cache is too large to read" in one_message(done)


def test_a_corrupt_count_entry_names_the_file_the_entry_and_the_fix(pytester, ci_env):
    counts = changed_prompt_project(pytester)
    sent = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "one?"}]}
    key = count_key(sent)
    entry = {"model": "claude-sonnet-4-6", "input_tokens": 10**15}
    counts.write_text(json.dumps({"schema": CACHE_SCHEMA, "version": 1, "counts": {key: entry}}))
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider")
    problems = case_problems(pytester)
    assert (
        f"{counts}: corrupt count cache: token count of about 10^15 is beyond any request "
        f"(counts.{key}.input_tokens); delete the entry (or the file) to count again" in problems
    )


# -- 7. other recorders' cassettes, read by `tokenbudget analyze` ---------------------------
def test_analyze_reads_other_recorders_cassettes_the_same_bounded_way(tmp_path):
    folder = tmp_path / "cassettes"
    folder.mkdir()
    interaction = (
        "- request: {method: post, uri: 'https://api.anthropic.com/v1/messages'}\n"
        "  response: {status: {code: 200}, body: {string: x}}\n"
    )
    (folder / "laughs.yml").write_text(
        "bomb:\n"
        + laughs("  ")
        + "http_interactions:\n"
        + interaction
        + "recorded_with: VCR 6.1.0\n"
    )
    (folder / "deep.yml").write_text("x: " + "[" * 900 + "]" * 900 + "\n")
    (folder / "deep.json").write_text('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    done, took = tokenbudget("analyze", str(folder), cwd=tmp_path)
    text = one_message(done)
    assert took < 30
    assert "skipped laughs.yml:7: unreadable: YAML aliases (*name) expand to more than" in text
    assert "skipped deep.yml:1: unreadable: lists and mappings nested more than 100 deep" in text
    assert "skipped deep.json: unreadable: corrupt cassette (JSON nested too deeply" in text


def test_aliases_of_one_long_string_are_bounded_by_its_size(tmp_path):
    """Few values, but 250,000 aliases of a 2 MiB string are 500 GB once a request that
    holds them is written out: `check` said OK and the run hung."""
    aliases = ", ".join(["*s"] * 250_000)
    (tmp_path / "cases.yml").write_text(
        "- id: one\n  request:\n    model: claude-sonnet-4-6\n    max_tokens: 5\n"
        f'    system: &s "{"x" * 2 * 1024 * 1024}"\n    stop_sequences: [{aliases}]\n'
        "    messages: [{role: user, content: hi}]\n"
    )
    (tmp_path / "token_budgets.yml").write_text(
        "endpoints:\n  chat:\n    max_input_tokens_p95: 100\n    cases: cases.yml\n"
    )
    done, _ = tokenbudget("check", cwd=tmp_path)
    assert done.returncode == 2
    assert "cases.yml:5: YAML aliases (*name) expand to more than" in one_message(done)
