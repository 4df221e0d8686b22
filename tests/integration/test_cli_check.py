"""`tokenbudget check`: exit 0 with a summary, or 2 with every problem and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_tokenbudget.cli import main
from pytest_tokenbudget.pricing.prices import source_name

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
        "import sys, pytest_tokenbudget.cli.program as cli; cli.build_parser(); "
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


# -- models nothing prices ------------------------------------------------------------
SNIPPET = (
    "  pricing:\n"
    "    {model}: {{input: 3.0, output: 15.0}}   # $ per million tokens: use the model's real "
    "rates\n"
    "(cache_write_5m, cache_write_1h and cache_read default to 1.25x, 2x and 0.1x input)\n"
    "If a pytest_tokenbudget_price hook prices it (tokenbudget check runs no hooks), pass "
    "--hook-priced {model} instead."
)


def test_check_rejects_an_unknown_target_model_with_line_suggestion_and_snippet(project, capsys):
    path = project / "token_budgets.yml"
    path.write_text(
        CONFIG.replace("target_model: claude-sonnet-4-6", "target_model: claude-opus-9-zz")
    )
    assert main(["check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"tokenbudget check: {path}:4: target_model: unknown model 'claude-opus-9-zz': no price "
        f"in {source_name()} or in `pricing:` (did you mean 'claude-opus-5-5', "
        "'claude-opus-4-8' or 'claude-opus-4-7'?). If it is newer than "
        f"{source_name()}, upgrade genai-prices (or add `pricing:`). If the name is right, add "
        "its price to token_budgets.yml:\n" + SNIPPET.format(model="claude-opus-9-zz") + "\n"
    )
    assert "Traceback" not in err


def test_check_lists_unknown_escalation_and_defaults_models_each_at_its_line(tmp_path, capsys):
    path = tmp_path / "token_budgets.yml"
    path.write_text(
        "defaults:\n"
        "  escalation_models: [claude-opus-4-7, claude-opus-4-77]\n"
        "endpoints:\n"
        "  chat:\n"
        "    target_model: claude-sonnet-4-6\n"
        "    max_input_tokens_p95: 10\n"
        "  triage:\n"
        "    target_model: claude-haiku-4-5\n"
        "    escalation_models:\n"
        "      - claude-sonnet-4-6\n"
        "      - gtp-4o\n"
        "    max_input_tokens_p95: 10\n"
    )
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tokenbudget check: 2 problems in {path}:\n")
    assert (
        f"\n{path}:2: escalation_models[1]: unknown model 'claude-opus-4-77': no price in "
        f"{source_name()} or in `pricing:` (did you mean 'claude-opus-4-7'" in err
    )
    assert (
        f"\n{path}:11: escalation_models[1]: unknown model 'gtp-4o': no price in "
        f"{source_name()} or in `pricing:` (did you mean 'gpt-4o'" in err
    )
    assert SNIPPET.format(model="gtp-4o") in err
    assert err.count("claude-opus-4-77': no price") == 1  # once, though only chat inherits it
    assert "Traceback" not in err


def test_check_accepts_aliases_dated_ids_and_pricing_entries(tmp_path, capsys):
    path = tmp_path / "token_budgets.yml"
    path.write_text(
        "pricing:\n"
        "  my-proxy-model: {input: 1.0, output: 2.0}\n"
        "endpoints:\n"
        "  chat:\n"
        "    target_model: claude-3-5-haiku-latest\n"
        "    escalation_models: [claude-sonnet-4-5-20250929, claude-sonnet-4-5, my-proxy-model,"
        " gpt-4o-2024-08-06, claude-opus-4-1@20250805]\n"
        "    max_input_tokens_p95: 10\n"
    )
    assert main(["check", "--config", str(path)]) == 0
    assert capsys.readouterr() == (f"{path}: 1 endpoint, 0 cases — OK\n", "")


def test_check_takes_hook_priced_models_on_the_users_word(tmp_path, capsys):
    path = tmp_path / "token_budgets.yml"
    path.write_text(
        "endpoints:\n"
        "  chat:\n"
        "    target_model: acme-proxy-1\n"
        "    escalation_models: [acme-proxy-2]\n"
        "    max_input_tokens_p95: 10\n"
    )
    assert main(["check", "--config", str(path), "--hook-priced", "acme-proxy-1"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:4: escalation_models[0]: unknown model 'acme-proxy-2'" in err
    assert "acme-proxy-1" not in err
    argv = [
        "check",
        "--config",
        str(path),
        "--hook-priced",
        "acme-proxy-1",
        "--hook-priced",
        "acme-proxy-2",
    ]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: 1 endpoint, 0 cases — OK\n"
    assert err == (
        "tokenbudget check: note: acme-proxy-1: left to a pytest_tokenbudget_price hook "
        "(pytest --token-budget asks it when it starts)\n"
        "tokenbudget check: note: acme-proxy-2: left to a pytest_tokenbudget_price hook "
        "(pytest --token-budget asks it when it starts)\n"
    )


def test_console_script_rejects_an_unknown_model(project):
    (project / "token_budgets.yml").write_text(CONFIG.replace("claude-sonnet-4-6", "gpt-9o"))
    bad = subprocess.run(
        [console_script(), "check"], cwd=project, capture_output=True, text=True, check=False
    )
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.startswith(
        "tokenbudget check: token_budgets.yml:4: target_model: unknown model 'gpt-9o'"
    )
    assert "    gpt-9o: {input: 3.0, output: 15.0}" in bad.stderr
    assert "Traceback" not in bad.stderr
