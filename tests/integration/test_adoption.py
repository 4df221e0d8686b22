"""Adopting the plugin on an existing suite: a plain run loses no test, every
--token-budget-* option measures, other mocks keep serving their tests, and every test
item is its own case with its own cassette."""

from __future__ import annotations

import json
import shutil

import pytest
from paths import CASSETTES, DOCS
from project_files import APP, CASES, CONFIG, report_of

pytest.importorskip("pytest_recording")

DATA = CASSETTES / "anthropic"
REAL = DATA / "openinference_parallel_tool_use_plain.yaml"  # one call: 721 in, 112 out

# A module of a team's suite, marked as docs/getting-started.md shows: pytest-recording
# replays one test, one test makes no call, one asks for the plugin's own case.
MIXED = """\
import anthropic
import pytest

pytestmark = [pytest.mark.token_budget("chat")]


@pytest.mark.vcr("tools.yaml")
def test_replayed_by_pytest_recording():
    message = anthropic.Anthropic(max_retries=0).messages.create(
        model="claude-sonnet-4-6", max_tokens=40,
        messages=[{"role": "user", "content": "weather?"}])
    assert message.usage.input_tokens == 721


def test_no_call():
    assert True


class TestInAClass:
    @pytest.mark.vcr("tools.yaml")
    def test_replayed_too(self):
        anthropic.Anthropic(max_retries=0).messages.create(
            model="claude-sonnet-4-6", max_tokens=40,
            messages=[{"role": "user", "content": "weather?"}])


def test_only_the_plugin_serves(budget_case):
    assert budget_case["id"]
"""


@pytest.fixture
def suite(pytester, ci_env, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")  # the suite's own dummy key
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=4000), cases=CASES)
    cassettes = pytester.mkdir("cassettes") / "test_suite"
    cassettes.mkdir()
    shutil.copy(REAL, cassettes / "tools.yaml")
    pytester.makepyfile(test_suite=MIXED)
    return pytester


def test_a_plain_run_keeps_every_test_another_recorder_drives(suite):
    unmarked = suite.path / "unmarked"
    unmarked.mkdir()
    shutil.copytree(suite.path / "cassettes", unmarked / "cassettes")
    (unmarked / "test_suite.py").write_text(
        MIXED.replace('pytestmark = [pytest.mark.token_budget("chat")]', "")
    )
    before = suite.runpytest(str(unmarked), "-p", "no:cacheprovider", "--record-mode=none")
    before.assert_outcomes(passed=3, skipped=1)  # budget_case: the plugin's, skipped alone

    after = suite.runpytest("test_suite.py", "-rs", "-p", "no:cacheprovider", "--record-mode=none")

    after.assert_outcomes(passed=3, skipped=1)
    after.stdout.fnmatch_lines(["*test_suite.py:*only pytest-tokenbudget can serve*"])
    assert not (suite.path / ".token-budget").exists()


def test_the_getting_started_commands(suite):
    """docs/getting-started.md's pytest-recording block, each command as written there,
    on a module marked as the page shows (vcr-driven tests and one that makes no call)."""
    from ci_runner import fenced_blocks, shell_commands

    tests = suite.mkdir("tests")  # pytest-recording's tests/cassettes/<module>/ layout
    (tests / "test_suite.py").write_text(
        MIXED.replace("def test_only_the_plugin_serves", "def _unused")
    )
    (tests / "cassettes").mkdir()
    (suite.path / "cassettes" / "test_suite").rename(tests / "cassettes" / "test_suite")
    (suite.path / "test_suite.py").unlink()
    page = (DOCS / "getting-started.md").read_text()
    commands = shell_commands(fenced_blocks(page, "bash")[3])
    assert [c.split("#")[0].split() for c in commands] == [
        ["pytest"],
        ["pytest", "--token-budget"],
        ["pytest", "--token-budget", "--record-mode=once"],
    ]
    before = {p: p.read_bytes() for p in tests.rglob("*.yaml")}
    plain, *measured = (command.split("#")[0].split()[1:] for command in commands)

    suite.runpytest(*plain, "-p", "no:cacheprovider").assert_outcomes(passed=3)
    assert not (suite.path / ".token-budget").exists()  # as before: nothing measured
    for args in measured:
        suite.runpytest(*args, "-p", "no:cacheprovider").assert_outcomes(passed=3)
        endpoint = report_of(suite)["endpoints"]["chat"]
        assert endpoint["recorders"] == ["pytest-recording"]
        assert endpoint["calls"] == 2
    assert {p: p.read_bytes() for p in tests.rglob("*.yaml")} == before
    assert not list((suite.path / "cassettes").rglob("*.yaml"))  # the plugin wrote none


def test_a_test_with_a_cassette_of_the_plugins_own_is_skipped_in_a_plain_run(suite):
    suite.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.token_budget("chat")
        def test_own_cassette():
            raise AssertionError("would call the API with no recording")
        """
    )
    own = suite.path / "cassettes" / "chat" / "test_own" / "test_own_cassette.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("interactions: []\nversion: 1\n")

    result = suite.runpytest("test_own.py", "-p", "no:cacheprovider")

    result.assert_outcomes(skipped=1)


@pytest.mark.parametrize(
    "options",
    [
        ["--token-budget-record=none"],
        ["--token-budget-count"],
        ["--token-budget-report=elsewhere"],
        ["--token-budget-update"],
        ["--token-budget-update-margin=5"],
        ["--token-budget-cassettes=cassettes"],
        ["--token-budget-config=token_budgets.yml"],
        ["--token-budget-count-concurrency=2"],
        ["--token-budget-max-regression=10"],
    ],
    ids=lambda options: options[0].split("=")[0],
)
def test_every_token_budget_option_turns_the_plugin_on(suite, options):
    result = suite.runpytest("test_suite.py", "-p", "no:cacheprovider", *options)

    report = "elsewhere" if "--token-budget-report=elsewhere" in options else ".token-budget"
    assert (suite.path / report / "report.json").is_file(), result.stdout.str()
    assert json.loads((suite.path / report / "report.json").read_text())["endpoints"]["chat"]


@pytest.mark.parametrize(
    "where",
    [
        "ini addopts",
        "PYTEST_ADDOPTS",
        pytest.param(  # the oldest supported pytest is 7.4 (constraints/oldest.txt)
            "@file",
            marks=pytest.mark.skipif(
                tuple(int(n) for n in pytest.__version__.split(".")[:2]) < (8, 2),
                reason="pytest reads arguments from an @file only from 8.2 on",
            ),
        ),
    ],
)
def test_an_option_at_its_default_value_turns_the_plugin_on_from_anywhere(
    suite, monkeypatch, where
):
    option = "--token-budget-record=none"  # the default value: only its presence tells
    args = ["test_suite.py", "-p", "no:cacheprovider"]
    if where == "ini addopts":
        (suite.path / "pytest.ini").write_text(f"[pytest]\naddopts = {option}\n")
    elif where == "PYTEST_ADDOPTS":
        monkeypatch.setenv("PYTEST_ADDOPTS", f"'{option}'")
    else:
        (suite.path / "args.txt").write_text(option + "\n")
        args.append("@args.txt")

    suite.runpytest(*args)

    assert (suite.path / ".token-budget" / "report.json").is_file()


def test_a_baseline_without_the_flag_gates(suite):
    (suite.path / "base.json").write_text("{}")

    result = suite.runpytest(
        "test_suite.py",
        "-p",
        "no:cacheprovider",
        "--token-budget-baseline=base.json",
        "--token-budget-max-regression=10",
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR  # the baseline was read, and refused
    result.stderr.fnmatch_lines(["*pytest-tokenbudget: baseline*base.json*"])


# -- one case per test item -------------------------------------------------------------
PARAMETRIZED = """\
import pytest
from app import reply


@pytest.mark.token_budget("chat")
@pytest.mark.parametrize("question", ["What is a token?", "Why cache?", "What is p95?"],
                         ids=["token", "cache", "p95"])
def test_reply(question):
    assert reply(question)
"""


def test_parametrized_items_are_three_cases_with_three_cassettes(
    pytester, recording_env, monkeypatch
):
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=4000), cases=CASES)
    pytester.makepyfile(app=APP, test_param=PARAMETRIZED)
    pytester.syspathinsert()

    first = pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    first.assert_outcomes(passed=3)
    folder = pytester.path / "cassettes" / "chat" / "test_param"
    assert sorted(p.name for p in folder.iterdir()) == [
        "test_reply[cache].yaml",
        "test_reply[p95].yaml",
        "test_reply[token].yaml",
    ]
    served = {s.request["messages"][0]["content"]: s.usage for s in recording_env.served}

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    replay = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")

    replay.assert_outcomes(passed=3)
    per_case = report_of(pytester)["endpoints"]["chat"]["per_case"]
    questions = {"token": "What is a token?", "cache": "Why cache?", "p95": "What is p95?"}
    assert set(per_case) == {f"test_param/test_reply[{i}]" for i in questions}
    for param, question in questions.items():
        usage = served[question]
        whole = (
            usage["input_tokens"]
            + usage.get("cache_creation_input_tokens", 0)
            + usage.get("cache_read_input_tokens", 0)
        )
        case = per_case[f"test_param/test_reply[{param}]"]
        assert (case["calls"], case["input_tokens"]) == (1, whole)
        assert case["output_tokens"] == usage["output_tokens"]


def test_same_named_tests_in_two_modules_are_two_cases(pytester, recording_env):
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=4000), cases=CASES)
    test = 'import pytest\nfrom app import reply\n\n@pytest.mark.token_budget("chat")\n'
    pytester.makepyfile(
        app=APP,
        test_one=test + 'def test_reply():\n    assert reply("one")\n',
        test_two=test + 'class TestTwo:\n    def test_reply(self):\n        assert reply("two")\n',
    )
    pytester.syspathinsert()

    result = pytester.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )

    result.assert_outcomes(passed=2)
    folder = pytester.path / "cassettes" / "chat"
    assert (folder / "test_one" / "test_reply.yaml").is_file()
    assert (folder / "test_two" / "TestTwo.test_reply.yaml").is_file()
    assert set(report_of(pytester)["endpoints"]["chat"]["per_case"]) == {
        "test_one/test_reply",
        "test_two/TestTwo.test_reply",
    }


def test_two_tests_over_the_same_cases_are_an_error_naming_both(pytester, ci_env):
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=4000), cases=CASES)
    body = "    assert budget_case\n"
    pytester.makepyfile(
        test_a='import pytest\n\n@pytest.mark.token_budget("chat")\n'
        "def test_a(budget_case):\n" + body,
        test_b='import pytest\n\n@pytest.mark.token_budget("chat")\n'
        "def test_b(budget_case):\n" + body,
    )

    result = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")

    result.assert_outcomes(errors=8)  # each of the four cases, in both tests
    result.stdout.fnmatch_lines(
        ["*tests test_a.py::test_a[[]short[]] and test_b.py::test_b[[]short[]] are both case*"]
    )
    assert "Traceback" not in result.stdout.str()
    under_xdist = pytester.runpytest("--token-budget", "-p", "no:cacheprovider", "-n", "2")
    under_xdist.assert_outcomes(errors=8)  # not an INTERNALERROR of a worker
    assert "INTERNALERROR" not in under_xdist.stdout.str() + under_xdist.stderr.str()


def test_a_cassette_at_its_old_path_gets_the_command_that_moves_it(pytester, recording_env):
    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=4000), cases=CASES)
    pytester.makepyfile(
        app=APP,
        test_old='import pytest\nfrom app import reply\n\n@pytest.mark.token_budget("chat")\n'
        'def test_reply():\n    assert reply("old")\n',
    )
    pytester.syspathinsert()
    assert pytester.runpytest("--token-budget", "--token-budget-record=once").ret == 0
    new = pytester.path / "cassettes" / "chat" / "test_old" / "test_reply.yaml"
    old = new.parent.parent / "test_reply.yaml"
    new.rename(old)  # where the plugin wrote it before one case per test item

    moved = pytester.runpytest("--token-budget", "-p", "no:cacheprovider")

    moved.assert_outcomes(errors=1)
    line = next(line for line in moved.stdout.lines if line.startswith("Move them"))
    command = line.split(": ", 1)[1]
    assert command.startswith("mkdir -p ") and " && mv " in command
    import subprocess

    subprocess.run(command, shell=True, check=True, cwd=pytester.path)
    assert new.is_file() and not old.exists()
    pytester.runpytest("--token-budget", "-p", "no:cacheprovider").assert_outcomes(passed=1)


# -- other mocks ------------------------------------------------------------------------
RESPX_MODULE = """\
import anthropic
import httpx
import pytest
import respx

pytestmark = [pytest.mark.token_budget("chat")]

USAGE = {"input_tokens": 11, "output_tokens": 7}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
           "content": [{"type": "text", "text": "mocked"}], "stop_reason": "end_turn",
           "stop_sequence": None, "usage": USAGE}


@pytest.mark.vcr("tools.yaml")
def test_replayed():
    anthropic.Anthropic(max_retries=0).messages.create(
        model="claude-sonnet-4-6", max_tokens=40, messages=[{"role": "user", "content": "hi"}])


@respx.mock
def test_respx_serves_its_own():
    route = respx.post("https://api.anthropic.com/v1/messages").mock(
        return_value=httpx.Response(200, json=MESSAGE))
    with httpx.Client() as client:
        answer = client.post("https://api.anthropic.com/v1/messages", json={"model": "x"})
    assert answer.json()["content"][0]["text"] == "mocked" and route.called


@respx.mock
def test_respx_error_reaches_the_test():
    respx.get("https://weather.example/today").mock(side_effect=httpx.ConnectTimeout)
    with pytest.raises(httpx.ConnectTimeout):
        httpx.get("https://weather.example/today")


def test_pytest_httpx(httpx_mock):
    httpx_mock.add_response(url="https://weather.example/today", json={"sun": True})
    assert httpx.get("https://weather.example/today").json() == {"sun": True}


def test_mock_transport():
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"ok": 1}))
    with httpx.Client(transport=transport) as client:
        assert client.get("https://weather.example/").json() == {"ok": 1}
"""


def test_a_module_mixing_cassettes_and_other_mocks_passes_as_without_the_plugin(suite):
    pytest.importorskip("respx")
    pytest.importorskip("pytest_httpx")
    suite.makepyfile(test_suite=RESPX_MODULE)
    plain = suite.runpytest("-p", "no:cacheprovider", "--record-mode=none", "-p", "no:tokenbudget")
    plain.assert_outcomes(passed=5)

    result = suite.runpytest("--token-budget", "-p", "no:cacheprovider", "--record-mode=none")

    result.assert_outcomes(passed=5)
    per_case = report_of(suite)["endpoints"]["chat"]["per_case"]
    # what the application received is measured when it carries usage: the real
    # cassette's call, and the respx mock's Messages response (11 in, 7 out)
    assert per_case["test_suite/test_replayed"]["input_tokens"] == 721
    assert per_case["test_suite/test_respx_serves_its_own"]["input_tokens"] == 11
    assert per_case["test_suite/test_respx_serves_its_own"]["output_tokens"] == 7
    warnings = report_of(suite)["endpoints"]["chat"]["warnings"]
    mock = (
        "calls of 1 case(s) were answered by a mock of the test's own (respx or the like), "
        "so their usage is the mock's: test_suite/test_respx_serves_its_own"
    )
    assert [w for w in warnings if "answered by a mock" in w] == [mock]


def test_a_request_nobody_serves_is_still_a_miss_without_network(suite):
    suite.makepyfile(
        test_suite="""
        import anthropic
        import pytest

        @pytest.mark.token_budget("chat")
        def test_unrecorded():
            anthropic.Anthropic(max_retries=0).messages.create(
                model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        """
    )

    result = suite.runpytest("--token-budget", "-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*1 request(s) not in the recording*", "*POST https://api.anthropic.com/v1/messages"]
    )


# A server of the test's own on loopback: a mock like any other.
LOOP = """\
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


def serve_once():
    server = HTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        return httpx.get(f"http://127.0.0.1:{server.server_port}/").text
    finally:
        server.server_close()
"""


LOOPBACK_MODULE = """\
import anthropic
import pytest

from test_loop import serve_once

pytestmark = [pytest.mark.token_budget("chat")]


def test_own_server_on_loopback():
    assert serve_once() == "hello"


def test_api_call_to_a_loopback_emulator():
    anthropic.Anthropic(max_retries=0).messages.create(
        model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}])
"""


def test_a_server_of_the_tests_own_is_reached_but_no_api_call_leaves_replay(
    suite, emulator, monkeypatch
):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)  # an API up on loopback
    suite.makepyfile(test_suite=LOOPBACK_MODULE, test_loop=LOOP)
    suite.syspathinsert()

    result = suite.runpytest("--token-budget", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_api_call_to_a_loopback_emulator*"])
    assert emulator.served == []  # replay never reached it


def test_a_key_in_a_parameter_id_never_reaches_a_file_name(pytester, recording_env):
    from conftest import FAKE_KEY

    pytester.makefile(".yml", token_budgets=CONFIG.format(input_p95=4000), cases=CASES)
    pytester.makepyfile(
        app=APP,
        test_key=f"""
        import pytest
        from app import reply

        @pytest.mark.token_budget("chat")
        @pytest.mark.parametrize("key", ["{FAKE_KEY}"])
        def test_reply(key):
            assert reply("hello")
        """,
    )
    pytester.syspathinsert()

    result = pytester.runpytest("--token-budget", "--token-budget-record=once")

    result.assert_outcomes(passed=1)
    written = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert [p.name for p in written if p.parent.name == "test_key"] == [
        p.name for p in written if p.name.startswith("test_reply[redacted-")
    ]
    assert not [p for p in written if FAKE_KEY[:20] in str(p)]
    assert (pytester.path / ".token-budget" / "report.json").is_file()


def test_recording_never_writes_a_mocks_answer(suite, recording_env):
    pytest.importorskip("respx")
    suite.makepyfile(
        test_rec=RESPX_MODULE.replace(
            '@pytest.mark.vcr("tools.yaml")\ndef test_replayed', "def _unused"
        ).replace("def test_pytest_httpx", "def _unused_httpx")
    )

    recorded = suite.runpytest("test_rec.py", "--token-budget", "--token-budget-record=once")
    recorded.assert_outcomes(passed=3)
    replayed = suite.runpytest("test_rec.py", "--token-budget")

    replayed.assert_outcomes(passed=3)  # respx still serves, and `route.called` holds
    assert not list((suite.path / "cassettes" / "chat").rglob("*.yaml"))
    assert recording_env.served == []


POOLED = """\
import anthropic
import pytest

CLIENT = anthropic.Anthropic(max_retries=0)  # one client, one connection pool


def ask():
    return CLIENT.messages.create(
        model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_unmarked_first():
    assert ask()  # not a budget test: reaches the server, and leaves a pooled connection


@pytest.mark.token_budget("chat")
def test_marked_without_recording():
    ask()
"""


def test_an_unrecorded_call_never_rides_a_pooled_connection(suite, emulator, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)
    suite.makepyfile(test_suite=POOLED)

    result = suite.runpytest("test_suite.py", "--token-budget", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*1 request(s) not in the recording*"])
    assert len(emulator.served) == 1  # the unmarked test's call only


def test_overlapping_windows_restore_the_sockets_and_block_only_their_own_context():
    import socket
    import threading

    from pytest_tokenbudget.capture.network import NetworkBlocked, blocked

    original = socket.socket.connect
    inside, release = threading.Barrier(3), threading.Event()
    errors: list[BaseException] = []

    def window(hold: float) -> None:
        with blocked():
            inside.wait()
            try:
                socket.getaddrinfo("example.invalid", 443)
            except NetworkBlocked as err:
                errors.append(err)
            release.wait(hold)

    threads = [threading.Thread(target=window, args=(t,)) for t in (0.05, 0.2)]
    for thread in threads:
        thread.start()
    inside.wait()  # both windows open: this thread is outside either
    assert socket.getaddrinfo("127.0.0.1", 80)
    for thread in threads:
        thread.join()

    assert len(errors) == 2
    assert socket.socket.connect is original


COMPLETE_CASSETTE = """\
interactions:
- request:
    body: '{"model": "claude-2.1", "prompt": "\\\\n\\\\nHuman: hi\\\\n\\\\nAssistant:", "max_tokens_to_sample": 5}'
    headers: {}
    method: POST
    uri: https://api.anthropic.com/v1/complete
  response:
    body:
      string: '{"type": "completion", "completion": " Hi", "stop_reason": "stop_sequence", "model": "claude-2.1"}'
    headers:
      content-type:
      - application/json
    status:
      code: 200
      message: OK
version: 1
"""

LEGACY_MODULE = """\
import httpx
import pytest

pytestmark = [pytest.mark.token_budget("chat")]


@pytest.mark.vcr("complete.yaml")
def test_legacy_completion():
    answer = httpx.post("https://api.anthropic.com/v1/complete", json={"model": "claude-2.1"})
    assert answer.json()["completion"] == " Hi"
"""


def test_an_api_request_without_usage_is_named_not_silent(suite):
    (suite.path / "cassettes" / "test_legacy").mkdir()
    (suite.path / "cassettes" / "test_legacy" / "complete.yaml").write_text(COMPLETE_CASSETTE)
    suite.makepyfile(test_legacy=LEGACY_MODULE)

    result = suite.runpytest(
        "test_legacy.py",
        "test_suite.py",
        "--token-budget",
        "-p",
        "no:cacheprovider",
        "-k",
        "legacy or pytest_recording",
    )

    result.assert_outcomes(passed=2)
    endpoint = report_of(suite)["endpoints"]["chat"]
    assert endpoint["calls"] == 1  # the Messages call; the completion carries no tokens
    [warning] = [w for w in endpoint["warnings"] if "carried no usage" in w]
    assert "1 API request(s)" in warning
    assert "POST /v1/complete (legacy Text Completions: no usage)" in warning
    assert "test_legacy/test_legacy_completion" in warning
    result.stdout.fnmatch_lines(["warn chat: 1 API request(s) carried no usage*"])


STACKED_PATCH = """\
import httpx
import pytest

from test_loop import serve_once


@pytest.fixture
def transport_mock(monkeypatch):
    # as pytest-httpx 0.29 does: patch the transport at setup, put back what was there
    # (the plugin's own patch, then) at teardown, after the capture has closed
    for name in ("httpx", "httpx2"):  # the SDK's, whichever it is
        try:
            module = __import__(name)
        except ImportError:
            continue
        monkeypatch.setattr(
            module.HTTPTransport, "handle_request",
            lambda self, request, module=module: module.Response(200),
        )


@pytest.mark.token_budget("chat")
def test_marked_with_a_transport_mock(transport_mock):
    assert httpx.get("https://weather.example/").status_code == 200


def test_later_unmarked_test_reaches_its_own_server():
    assert serve_once() == "hello"


def test_later_unmarked_api_call_reaches_the_api():
    import anthropic

    assert anthropic.Anthropic(max_retries=0).messages.create(
        model="claude-sonnet-4-6", max_tokens=5, messages=[{"role": "user", "content": "x"}])
"""


def test_a_patch_put_back_after_the_capture_closed_is_inert(suite, emulator, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.base_url)  # the unmarked test's API
    suite.makepyfile(test_stacked=STACKED_PATCH, test_loop=LOOP)
    suite.syspathinsert()

    result = suite.runpytest("test_stacked.py", "--token-budget", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=3)
    assert len(emulator.served) == 1
