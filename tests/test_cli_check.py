"""`tokenbudget check`: exit 0 with a summary, or 2 with every problem and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_tokenbudget.cli import main

CONFIG = """\
endpoints:
  chat_reply:
    max_input_tokens_p95: 4000
    target_model: claude-sonnet-4-6
    requests_per_day: 100
    monthly_budget_usd: 80
    cases: cases.yml
  triage:
    max_output_tokens_p95: 64
    cases: [{id: t1}, {id: t2}, {id: t3}]
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "token_budgets.yml").write_text(CONFIG)
    (tmp_path / "cases.yml").write_text("- id: a\n- id: b\n")
    return tmp_path


def test_check_ok(project, capsys):
    assert main(["check", "--config", str(project / "token_budgets.yml")]) == 0
    out, err = capsys.readouterr()
    assert out == f"{project / 'token_budgets.yml'}: 2 endpoints, 5 cases — OK\n"
    assert err == ""


def test_check_defaults_to_token_budgets_yml_here(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    assert main(["check"]) == 0
    assert capsys.readouterr().out == "token_budgets.yml: 2 endpoints, 5 cases — OK\n"


def test_check_singular_and_warning_for_an_unprojectable_monthly_budget(tmp_path, capsys):
    path = tmp_path / "b.yml"
    path.write_text("endpoints:\n  chat:\n    monthly_budget_usd: 10\n    cases: [{id: a}]\n")
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: 1 endpoint, 1 case — OK\n"
    assert (
        f"warning: {path}:3: monthly_budget_usd: chat: not checked until requests_per_day is set"
        in err
    )


def test_check_reports_file_line_key_and_exits_2(project, capsys):
    path = project / "token_budgets.yml"
    path.write_text(CONFIG.replace("max_input_tokens_p95", "max_input_token_p95"))
    assert main(["check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"tokenbudget check: {path}:3: max_input_token_p95: unknown key 'max_input_token_p95' "
        "(did you mean 'max_input_tokens_p95'?)\n"
    )


def test_check_lists_every_problem(project, capsys):
    path = project / "token_budgets.yml"
    path.write_text(CONFIG.replace("4000", "-4").replace("64", "'64'"))
    (project / "cases.yml").write_text("- id: a\n- id: a\n")
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: max_input_tokens_p95: -4 is out of range" in err
    assert f"{path}:9: max_output_tokens_p95: expected a whole number, got '64'" in err
    assert f"{project / 'cases.yml'}:2: id: duplicate case id 'a'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "no such file. Create it"),
        ("", "the file is empty"),
        ("endpoints:\n  a: {max_input_tokens_p95: [1\n", "malformed YAML at line"),
        ("endpoints:\n  a: {target_model: m}\n", ":2: a: no budget"),
        (
            "endpoints:\n  a: {max_input_tokens_p95: 1, cases: gone.yml}\n",
            ":2: cases: cases file not found",
        ),
    ],
)
def test_check_bad_input_exits_2_without_traceback(tmp_path, capsys, text, expected):
    path = tmp_path / "token_budgets.yml"
    if text is not None:
        path.write_text(text)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokenbudget check: ") and expected in err
    assert "Traceback" not in err


def test_unknown_subcommand_is_a_usage_error(capsys):
    assert main(["bogus"]) == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_no_subcommand_is_a_usage_error(capsys):
    assert main([]) == 2
    assert "usage: tokenbudget" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("check", "diff", "comment", "analyze"))


def test_importing_the_cli_stays_light():
    code = (
        "import sys, pytest_tokenbudget.cli as cli; cli.build_parser(); "
        "print(sorted(m for m in ('jsonschema', 'yaml', 'anthropic', 'vcr') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def console_script() -> str:
    script = Path(sys.executable).with_name("tokenbudget")
    if not script.exists():
        pytest.skip("the tokenbudget console script is not installed beside this Python")
    return str(script)


def test_console_script_end_to_end(project):
    script = console_script()
    ok = subprocess.run(
        [script, "check", "--config", "token_budgets.yml"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ok.returncode, ok.stdout, ok.stderr) == (
        0,
        "token_budgets.yml: 2 endpoints, 5 cases — OK\n",
        "",
    )

    (project / "token_budgets.yml").write_text(
        CONFIG.replace("0.", "").replace("cases.yml", "nope.yml")
    )
    bad = subprocess.run(
        [script, "check", "--config", "token_budgets.yml"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "token_budgets.yml:7: cases: cases file not found" in bad.stderr
    assert "Traceback" not in bad.stderr

    usage = subprocess.run([script, "frobnicate"], capture_output=True, text=True, check=False)
    assert (
        usage.returncode == 2
        and "invalid choice" in usage.stderr
        and "Traceback" not in usage.stderr
    )
