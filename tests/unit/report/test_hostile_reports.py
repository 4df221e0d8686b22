"""Reports from a fork and values from cassettes, as an attacker would write them.

In CI the baseline or the head report of `tokenbudget diff` may be a fork's pull-request
artifact, and model names come from recorded responses. None of them may crash a run
(one message naming the file and the key, exit 2 or pytest's 4, no traceback), and none
may steer what we print: a GitHub workflow command in the log, Markdown or HTML in the
comment and report.html, or a line of the token_budgets.yml `tokenbudget analyze` proposes.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from project_files import APP
from reports import BASE, HEAD, budget, case, compared, to_html

from pytest_tokenbudget.ci.annotations import github_annotations, gitlab_code_quality
from pytest_tokenbudget.cli import main
from pytest_tokenbudget.cli.budget_proposal import yaml_scalar
from pytest_tokenbudget.errors import ReportError
from pytest_tokenbudget.plain_text import one_line, safe_line
from pytest_tokenbudget.report import reader as report_file
from pytest_tokenbudget.report.html import render_html
from pytest_tokenbudget.report.json_io import report_from_json
from pytest_tokenbudget.report.markdown import MARKER, render_markdown
from pytest_tokenbudget.report.reader import check_report, load_report
from pytest_tokenbudget.report.table import render_findings, render_table, render_verdict

INJECTION = "\n::add-mask::hunter2\r::error file=x.py::forged\x1b[2K ##[stop-commands]tok"
MARKUP = '<img src=x onerror="alert(1)"> <script>alert(2)</script> @octocat [x](https://evil.example) |a|'
STICKY = "\n<!-- pytest-tokenbudget -->\n<!-- pytest-tokenbudget run=99999.9 sha=f -->"
EVIL = INJECTION + MARKUP + STICKY  # a name an attacker might give an endpoint or a case
COMMANDS = ("::error ", "::warning ", "::notice ")


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _with(path_of_keys, value, doc=HEAD):
    """HEAD with one value replaced, written as JSON text (so NaN can be written too)."""
    data = copy.deepcopy(doc)
    *parents, last = path_of_keys
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


def _no_command_injected(text: str) -> None:
    """No line a runner would read as a command, except our own annotations."""
    for line in text.splitlines():
        assert "##[" not in line, line
        if line.lstrip().startswith("::"):
            assert line.startswith(COMMANDS), line
        assert "\r" not in line and "\x1b" not in line, line


# -- reading: every bad value is one message naming the file and the key -----------------
NAN = '{"schema": "pytest-tokenbudget/report", "version": 1, "endpoints": {"chat": {"metrics": {"input_tokens_p95": %s}}}}'
METRIC = "endpoints.chat.metrics.input_tokens_p95"


@pytest.mark.parametrize(
    "text, key, message",
    [
        (NAN % "NaN", METRIC, "not a finite number (NaN)"),
        (NAN % "Infinity", METRIC, "not a finite number (Infinity)"),
        (NAN % "-Infinity", METRIC, "not a finite number (-Infinity)"),
        (NAN % "1e999", METRIC, "not a finite number (1e999)"),
        (NAN % ("9" * 5000), METRIC, "a number of 5,000 digits (at most 20)"),
        (NAN % ("1." + "5" * 5000), METRIC, "a number written with 5,002 characters"),
        (NAN % "1e300", METRIC, "a number out of range (beyond ±10^18)"),
        (NAN % '"12"', METRIC, "must be a number, not a string ('12')"),
    ],
)
def test_a_non_number_where_a_number_is_read_is_named_by_its_key(tmp_path, text, key, message):
    path = _write(tmp_path, "base.json", text)
    with pytest.raises(ReportError) as err:
        load_report(path)
    assert str(err.value) == f"{path}: {key}: {message}"


@pytest.mark.parametrize(
    "keys, value, key, message",
    [
        (
            ("endpoints", "chat", "budgets", 0, "limit"),
            "1300",
            "endpoints.chat.budgets[0].limit",
            "must be a number, not a string ('1300')",
        ),
        (
            ("endpoints", "chat", "budgets", 0, "limit"),
            None,
            "endpoints.chat.budgets[0].limit",
            "must be a number, not NoneType None",
        ),
        (
            ("endpoints", "chat", "budgets", 0, "line"),
            "5\n::add-mask::x",
            "endpoints.chat.budgets[0].line",
            "must be a line number (1 or more), not a string ('5\\n::add-mask::x')",
        ),
        (
            ("endpoints", "chat", "budgets", 0, "line"),
            0,
            "endpoints.chat.budgets[0].line",
            "must be a line number (1 or more), not a number (0)",
        ),
        (
            ("endpoints", "chat", "budgets", 0, "ok"),
            "false",
            "endpoints.chat.budgets[0].ok",
            "must be true or false, not a string ('false')",
        ),
        (
            ("endpoints", "chat", "budgets", 0, "drivers"),
            "b",
            "endpoints.chat.budgets[0].drivers",
            "must be a list, not a string ('b')",
        ),
        (
            ("endpoints", "chat", "max_regression_pct"),
            "10",
            "endpoints.chat.max_regression_pct",
            "must be a number, not a string ('10')",
        ),
        (
            ("endpoints", "chat", "max_regression_pct"),
            -5,
            "endpoints.chat.max_regression_pct",
            "must be a percentage of 0 or more, not a number (-5)",
        ),
        (
            ("endpoints", "chat", "line"),
            True,
            "endpoints.chat.line",
            "must be a line number (1 or more), not a boolean (True)",
        ),
        (
            ("endpoints", "chat", "status"),
            "pwned",
            "endpoints.chat.status",
            'must be one of "pass", "fail", "not-run", not a string (\'pwned\')',
        ),
        (
            ("endpoints", "chat", "per_case"),
            [],
            "endpoints.chat.per_case",
            "must be an object, not a list",
        ),
        (
            ("endpoints", "chat", "per_case", "b", "escalated"),
            1,
            "endpoints.chat.per_case.b.escalated",
            "must be true or false, not a number (1)",
        ),
        (
            ("endpoints", "chat", "problems"),
            [1],
            "endpoints.chat.problems[0]",
            "must be a string, not a number (1)",
        ),
        (("totals",), [], "totals", "must be an object, not a list"),
        (
            ("totals", "monthly_cost_usd"),
            "$156",
            "totals.monthly_cost_usd",
            "must be a number, not a string ('$156')",
        ),
        (("prices",), "2026-11-01", "prices", "must be an object, not a string ('2026-11-01')"),
        (
            ("prices", "table_date"),
            20261101,
            "prices.table_date",
            "must be a string, not a number (20261101)",
        ),
        (("config",), ["token_budgets.yml"], "config", "must be a string, not a list"),
    ],
)
def test_a_wrongly_typed_value_is_named_by_its_key(tmp_path, keys, value, key, message):
    path = _write(tmp_path, "base.json", _with(keys, value))
    with pytest.raises(ReportError) as err:
        load_report(path)
    assert str(err.value) == f"{path}: {key}: {message}"


def test_a_budget_without_its_limit_is_named(tmp_path):
    head = copy.deepcopy(HEAD)
    del head["endpoints"]["chat"]["budgets"][1]["limit"]
    with pytest.raises(ReportError, match=r": endpoints\.chat\.budgets\[1\]\.limit: missing$"):
        load_report(_write(tmp_path, "base.json", head))


def test_hostile_keys_are_quoted_on_one_line_that_is_no_command(tmp_path):
    head = _with(("endpoints", EVIL), {"metrics": {"input_tokens_p95": "x"}})
    with pytest.raises(ReportError) as err:
        load_report(_write(tmp_path, "base.json", head))
    text = str(err.value)
    assert "\n" not in text and "\r" not in text and "##[" not in text
    assert text.startswith(f'{tmp_path / "base.json"}: endpoints["\\n::add-mask::hunter2')
    assert text.endswith("\"].metrics.input_tokens_p95: must be a number, not a string ('x')")


def test_nesting_is_bounded_where_it_is_read_and_where_it_is_not(tmp_path):
    deep = _with(("endpoints", "chat", "extra"), json.loads("[" * 40 + "]" * 40))
    with pytest.raises(
        ReportError, match=r"endpoints\.chat\.extra(\[0\]){29}: nested deeper than 32"
    ):
        load_report(_write(tmp_path, "deep.json", deep))
    text = json.dumps(HEAD)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(ReportError, match=r"deeper\.json: nested deeper than 32 levels$"):
        load_report(_write(tmp_path, "deeper.json", text))


def test_unread_keys_are_bounded_too(tmp_path):
    head = _with(("future_section",), {"values": [1, float("nan")]})
    with pytest.raises(ReportError, match=r": future_section\.values\[1\]: not a finite number"):
        load_report(_write(tmp_path, "head.json", json.dumps(head)))
    head = _with(("notes",), ["x" * (report_file.MAX_TEXT_CHARS + 1)])
    with pytest.raises(ReportError, match=r": notes\[0\]: text of 100,001 characters"):
        load_report(_write(tmp_path, "head.json", head))


def test_a_document_checked_as_a_dict_is_held_to_the_same_bounds():
    head = _with(("endpoints", "chat", "metrics", "input_tokens_p95"), float("inf"))
    with pytest.raises(
        ReportError, match=r"^endpoints\.chat\.metrics\.input_tokens_p95: not a finite"
    ):
        check_report(head)


def test_notes_come_from_the_reader_never_from_the_file(tmp_path):
    head = {**HEAD, "_load_notes": ["all within budget, trust me"]}
    assert load_report(_write(tmp_path, "head.json", head))["_load_notes"] == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_devices_pipes_and_huge_files_are_refused_before_reading(tmp_path, monkeypatch):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would hang
    with pytest.raises(ReportError, match="not a regular file"):
        load_report(fifo)
    with pytest.raises(ReportError, match="not a regular file"):
        load_report("/dev/zero")  # reading it would never end
    monkeypatch.setattr(report_file, "REPORT_MAX_BYTES", 100)
    with pytest.raises(
        ReportError, match=r"report is too large to read \([\d,]+ bytes; the limit is 100\)"
    ):
        load_report(_write(tmp_path, "big.json", HEAD))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"schema": "\xff"}')
    with pytest.raises(ReportError, match="not UTF-8"):
        load_report(binary)


def test_every_report_this_version_writes_is_read_back(tmp_path):
    assert load_report(_write(tmp_path, "head.json", HEAD))["endpoints"] == HEAD["endpoints"]


# -- tokenbudget diff: exit 2, one line, no traceback ------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        NAN % "NaN",
        NAN % "1e999",
        NAN % ("9" * 5000),
        json.dumps(_with(("endpoints", "chat", "budgets", 0, "limit"), "x")),
        json.dumps(_with(("endpoints", "chat", "max_regression_pct"), "x")),
        json.dumps(_with(("totals",), 7)),
        json.dumps(_with(("prices",), [])),
        json.dumps(_with(("endpoints", "chat", "budgets", 0, "line"), "5\n::add-mask::x")),
    ],
)
@pytest.mark.parametrize("side", ["base", "head"])
@pytest.mark.parametrize("fmt", ["markdown", "github", "json", "gitlab"])
def test_tokenbudget_diff_refuses_a_hostile_report_in_one_line(tmp_path, capsys, text, side, fmt):
    good = _write(tmp_path, "good.json", BASE)
    bad = _write(tmp_path, f"{side}.json", text)
    files = [bad, good] if side == "base" else [good, bad]
    assert main(["diff", *map(str, files), "--format", fmt]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"tokenbudget diff: {bad}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    _no_command_injected(err)


# -- what `tokenbudget diff` prints for a valid report full of hostile text ----------------
def _hostile_head():
    """A report this version would read: every string an attacker's."""
    head = copy.deepcopy(HEAD)
    chat = head["endpoints"].pop("chat")
    chat["per_case"][EVIL] = case(9000, 900, 0.05)
    chat["budgets"][0].update(key=EVIL, ok=False, drivers=[EVIL])
    chat["problems"] = [EVIL]
    chat["warnings"] = [EVIL]
    head["endpoints"][EVIL] = chat
    head["endpoints"]["summarize"]["metrics"][EVIL + "_tokens"] = 5
    head["config"] = "token_budgets.yml\n::add-mask::x,line=1"
    head["percentile_method"] = EVIL
    head["prices"] = {"table_date": EVIL, "source": EVIL}
    return head


def _hostile_base():
    base = copy.deepcopy(BASE)
    base["endpoints"][EVIL] = base["endpoints"]["chat"]
    base["prices"] = {"table_date": "2026-01-01"}
    return base


def _diff_cli(tmp_path, *args):
    base = _write(tmp_path, "base.json", _hostile_base())
    head = _write(tmp_path, "head.json", _hostile_head())
    return main(["diff", str(base), str(head), *args])


def test_github_format_prints_only_our_commands(tmp_path, capsys, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert _diff_cli(tmp_path, "--format", "github", "--max-regression", "10") == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines and all(line.startswith(COMMANDS) for line in lines), out
    _no_command_injected(out)
    assert "%0A::add-mask::hunter2%0D::error file=x.py::forged" in out  # the data, escaped
    # the config path from the head report is a property: its `:` `,` and line break escaped
    assert all(
        line.split(" ", 1)[1].startswith("file=token_budgets.yml%0A%3A%3Aadd-mask%3A%3Ax%2Cline=1")
        for line in lines
        if not line.startswith("::notice")
    )
    _markdown_is_inert(summary.read_text())


def test_a_line_that_is_not_a_line_number_is_left_out_of_the_command():
    """A report read without load_report's checks still cannot steer a command."""
    head = _with(
        ("endpoints", "chat", "budgets", 0),
        budget(
            "max_input_tokens_p95", "input_tokens_p95", 1100, 1120, "5\n::add-mask::x", ok=False
        ),
    )
    head["endpoints"]["chat"]["line"] = 2.5
    diff = compared(BASE, head, max_regression_pct=10)
    lines = github_annotations(diff, "token_budgets.yml")
    assert [re.findall(r",line=(\d+),", line) for line in lines] == [[], ["7"], []]
    _no_command_injected("\n".join(lines))
    quality = gitlab_code_quality(diff, "token_budgets.yml")
    assert sorted(q["location"]["lines"]["begin"] for q in quality) == [1, 1, 7]


def test_gitlab_format_is_json_with_fields_of_their_types_and_lengths(tmp_path, capsys):
    head = _hostile_head()
    head["endpoints"][EVIL]["budgets"][0]["key"] = "k" * 4000
    head["endpoints"][EVIL]["problems"] = ["p" * 50_000]
    base = _write(tmp_path, "base.json", _hostile_base())
    assert (
        main(["diff", str(base), str(_write(tmp_path, "h.json", head)), "--format", "gitlab"]) == 1
    )
    out = capsys.readouterr().out
    _no_command_injected(out)
    found = json.loads(out)
    assert found
    for item in found:
        assert isinstance(item["description"], str) and len(item["description"]) <= 2000
        assert isinstance(item["check_name"], str) and len(item["check_name"]) <= 250
        assert re.fullmatch(r"[0-9a-f]{64}", item["fingerprint"])
        assert item["severity"] in ("major", "minor")
        assert isinstance(item["location"]["path"], str)
        begin = item["location"]["lines"]["begin"]
        assert isinstance(begin, int) and not isinstance(begin, bool) and begin >= 1


def test_json_format_holds_the_values_and_no_command(tmp_path, capsys):
    assert _diff_cli(tmp_path, "--format", "json") == 1
    out = capsys.readouterr().out
    _no_command_injected(out)
    assert EVIL in json.loads(out)["endpoints"]


def _markdown_is_inert(text: str) -> None:
    """The comment shows the values as text: no element, link, mention, marker or row."""
    _no_command_injected(text)
    lines = text.splitlines()
    assert lines[0] == MARKER and lines.count(MARKER) == 1
    assert "<!--" not in "\n".join(lines[1:])  # no second marker, no forged run stamp
    # GitHub links no mention nor URL in a code block; outside, a zero-width space after
    # `@` and a backslash in `https\\://` keep it from linking the value's
    prose = re.sub(r"^(`{3,})\n.*?\n\1$", "", text, flags=re.MULTILINE | re.DOTALL)
    assert "@octocat" not in prose and "https://evil" not in prose
    rendered = to_html(text)
    for tag in ("<img", "<script", "<a ", "<a>", "<em>", "<strong><img"):
        assert tag not in rendered, tag
    for table in re.findall(r"<table>.*?</table>", rendered, re.DOTALL):
        header, *rows = re.findall(r"<tr>.*?</tr>", table, re.DOTALL)
        for row in rows:  # a `|` in a value never adds a cell
            assert row.count("<td") == header.count("<th"), row


def test_markdown_format_is_inert(tmp_path, capsys):
    assert _diff_cli(tmp_path, "--max-regression", "10") == 1
    out = capsys.readouterr().out
    _markdown_is_inert(out)
    assert "\\<script\\>alert\\(2\\)\\</script\\>" in out  # shown, as text


def test_the_report_markdown_is_inert_too():
    head = _hostile_head()
    head["fixes"] = [{"what": EVIL, "command": "pytest ```\n" + MARKER + "\n``` " + EVIL}]
    text = render_markdown(report_from_json(head))
    _markdown_is_inert(text)
    fence = next(line for line in text.splitlines() if line.startswith("```"))
    assert fence == "````"  # longer than the command's own backticks: it stays one block


# -- the terminal: one line per value, no command -----------------------------------------
def test_terminal_lines_are_one_line_each_and_no_command():
    head = _hostile_head()
    report = report_from_json(head)
    lines = render_table(report) + render_findings(report) + [render_verdict(report)]
    assert not any(line.lstrip().startswith("::") for line in lines)
    _no_command_injected("\n".join(lines))
    assert any("\\n::add-mask::hunter2\\r::error" in line for line in lines)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_one_line_is_one_line_and_no_command(text):
    line = safe_line(text)
    assert len(line.splitlines()) <= 1 and "##[" not in line
    assert not line.lstrip().startswith("::")
    line.encode("utf-8")  # no lone surrogate left to fail the write
    assert one_line(one_line(text)) == one_line(text)


# -- report.html ---------------------------------------------------------------------------
def test_html_escapes_a_script_in_every_name():
    head = _hostile_head()
    head["endpoints"][EVIL]["per_case"][EVIL]["models"] = [EVIL]
    head["endpoints"][EVIL]["models"] = {EVIL: 1}
    head["endpoints"][EVIL]["unmeasured_cases"] = [
        {"case": EVIL, "test": EVIL, "kind": EVIL, "message": EVIL}
    ]
    head["findings"] = [
        {
            "code": EVIL,
            "level": "error",
            "endpoint": EVIL,
            "where": EVIL,
            "message": EVIL,
            "fix": EVIL,
            "cases": [EVIL],
        }
    ]
    page = render_html(report_from_json(head), baseline=report_from_json(_hostile_base()))
    assert page.count("<script") == 1 and page.count("</script>") == 1  # ours, at the end
    assert "<img" not in page and 'onerror="' not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert f'data-endpoint="{html.escape(EVIL)}"' in page  # attributes too
    assert "<!-- pytest-tokenbudget" not in page


def test_a_pytest_run_escapes_a_hostile_model_name_everywhere(project, recording_env):
    """A model name from a response reaches the terminal, report.md and report.html."""
    evil_model = "my-model\n::add-mask::hunter2 ##[stop-commands]x <script>alert(1)</script>"
    project.makepyfile(app=APP.replace('model="claude-sonnet-4-6"', f"model={evil_model!r}"))
    result = project.runpytest(
        "--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider"
    )
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out
    assert "no price for model 'my-model\\n::add-mask::hunter2" in out  # named, on one line
    _no_command_injected(out)
    folder = project.path / ".token-budget"
    assert (
        evil_model
        in json.loads((folder / "report.json").read_text())["endpoints"]["chat"]["models"]
    )
    page = (folder / "report.html").read_text()
    assert html.escape(evil_model) in page  # in the per-case table and the tier costs
    assert "<script>alert(1)" not in page and page.count("<script") == 1
    _markdown_is_inert((folder / "report.md").read_text())


# -- pytest --token-budget-baseline: exit 4, one line, no INTERNALERROR ---------------------
@pytest.mark.parametrize(
    "text, key",
    [
        (NAN % "NaN", "endpoints.chat.metrics.input_tokens_p95: not a finite number (NaN)"),
        (NAN % ("9" * 5000), "endpoints.chat.metrics.input_tokens_p95: a number of 5,000 digits"),
        (
            json.dumps(_with(("endpoints", "chat", "budgets", 0, "limit"), "1300")),
            "endpoints.chat.budgets[0].limit: must be a number",
        ),
        (json.dumps(_with(("totals",), "lots")), "totals: must be an object"),
    ],
)
def test_a_hostile_baseline_stops_pytest_with_one_line(project, ci_env, tmp_path, text, key):
    baseline = _write(tmp_path, "base.json", text)
    result = project.runpytest(
        "--token-budget", f"--token-budget-baseline={baseline}", "-p", "no:cacheprovider"
    )
    assert result.ret == 4
    err = result.stderr.str()
    assert f"pytest-tokenbudget: baseline {baseline}: {key}" in err
    assert "Traceback" not in err and "INTERNALERROR" not in result.stdout.str() + err


def test_a_valid_baseline_of_hostile_text_steers_nothing(project, recording_env, tmp_path):
    """Read, compared, and every string of it shown as text."""
    base = copy.deepcopy(BASE)
    base["endpoints"] = {"chat": base["endpoints"]["chat"], EVIL: base["endpoints"]["legacy"]}
    base["endpoints"]["chat"]["per_case"][EVIL] = case(1, 1, 0.0)
    base["prices"] = {"table_date": EVIL, "source": EVIL}
    base["percentile_method"] = EVIL
    baseline = _write(tmp_path, "base.json", base)
    result = project.runpytest(
        "--token-budget",
        "--token-budget-record=once",
        f"--token-budget-baseline={baseline}",
        "--token-budget-max-regression=10",
        "-p",
        "no:cacheprovider",
    )
    out = result.stdout.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out
    _no_command_injected(out)
    folder = project.path / ".token-budget"
    _markdown_is_inert((folder / "report.md").read_text())
    page = (folder / "report.html").read_text()
    assert "<script>alert(2)" not in page and page.count("<script") == 1


# -- tokenbudget analyze: the proposed YAML reads back, its comments stay comments ----------
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_proposed_yaml_scalar_reads_back_as_itself(text):
    scalar = yaml_scalar(text)
    assert yaml.safe_load(f"k: {scalar}\n") == {"k": text}
    assert yaml.safe_load(f"k: [{scalar}, x]\n") == {"k": [text, "x"]}
    assert one_line(scalar) == scalar  # one line, no command in a CI log


def _cassette(model: str) -> str:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 120, "output_tokens": 30},
    }
    return yaml.safe_dump(
        {
            "interactions": [
                {
                    "request": {
                        "method": "POST",
                        "uri": "https://api.anthropic.com/v1/messages",
                        "body": json.dumps({"model": model, "max_tokens": 40, "messages": []}),
                        "headers": {"content-type": ["application/json"]},
                    },
                    "response": {
                        "status": {"code": 200, "message": "OK"},
                        "headers": {"content-type": ["application/json"]},
                        "body": {"string": json.dumps(body)},
                    },
                }
            ],
            "version": 1,
        }
    )


HOSTILE_MODELS = [
    "evil\n  target_model: claude-haiku-4-5\n  max_input_tokens_p95: 99999999",
    "a: b # c",
    "yes",
    "##[add-mask]x",
    "::error::forged",
    "[flow, seq]",
    "line\u2028break\x85and\x1b[31m",
]


@pytest.mark.parametrize("by", ["folder", "model"])
def test_analyze_proposes_yaml_that_loads_whatever_the_model_names(tmp_path, capsys, by):
    for i, model in enumerate(HOSTILE_MODELS):
        folder = tmp_path / "cassettes" / f"ep{i}"
        folder.mkdir(parents=True)
        (folder / "case.yaml").write_text(_cassette(model))
    assert main(["analyze", str(tmp_path / "cassettes"), "--by", by]) == 0
    out, err = capsys.readouterr()
    _no_command_injected(out + err)
    proposal = yaml.safe_load(out)  # the whole proposal, notes included, is valid YAML
    endpoints = proposal["endpoints"]
    assert len(endpoints) == len(HOSTILE_MODELS)
    for settings_ in endpoints.values():
        assert set(settings_) <= {"max_input_tokens_p95", "max_output_tokens_p95"}
        assert settings_["max_input_tokens_p95"] == 150  # 120 + 20%, not the injected value
    commented = [line for line in out.splitlines() if "# target_model:" in line]
    assert len(commented) == len(HOSTILE_MODELS)  # unpriced: each on one commented line
    found = {
        yaml.safe_load("k: " + line.split("# target_model: ", 1)[1].split("   # no price")[0])["k"]
        for line in commented
    }
    assert found == set(HOSTILE_MODELS)
