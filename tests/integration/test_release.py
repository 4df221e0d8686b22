"""What a user installs: the pre-commit hook from this repository, run as pre-commit runs it.

Each test here runs in fresh environments of its own (pre-commit's, a new venv): a separate
process is the behaviour under test. They cost tens of seconds of CPU, so they are few.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from paths import REPO

GOOD_CONFIG = """\
endpoints:
  chat_reply:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 4000
    cases: budget_cases/chat_reply.yml
"""
CASES = "- id: refund\n  input: When will I get my refund?\n"


def git(*args: str, cwd: Path, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode()


def hook_repository(where: Path) -> str:
    """This repository as `pre-commit try-repo` tests it: HEAD with the working tree's
    changes (and the hook manifest as it is on disk) committed in a clone. Its commit."""
    git("clone", "--quiet", str(REPO), str(where), cwd=REPO)
    diff = subprocess.run(
        ["git", "diff", "--binary", "HEAD"], cwd=REPO, capture_output=True, check=True
    ).stdout
    if diff:
        git("apply", "-", cwd=where, stdin=diff)
    (where / ".pre-commit-hooks.yaml").write_bytes((REPO / ".pre-commit-hooks.yaml").read_bytes())
    git("add", "--all", cwd=where)
    git("commit", "--quiet", "--allow-empty", "-m", "the working tree", cwd=where)
    return git("rev-parse", "HEAD", cwd=where).strip()


def pre_commit(project: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_pre_commit_hook_passes_good_budgets_and_fails_a_typo(tmp_path):
    from pre_commit.clientlib import load_manifest

    [hook] = load_manifest(str(REPO / ".pre-commit-hooks.yaml"))  # pre-commit's own schema
    assert hook["id"] == "tokenbudget-check"
    rev = hook_repository(tmp_path / "hooks")
    project = tmp_path / "project"
    (project / "budget_cases").mkdir(parents=True)
    (project / "token_budgets.yml").write_text(GOOD_CONFIG)
    (project / "budget_cases" / "chat_reply.yml").write_text(CASES)
    (project / "app.py").write_text("print('unrelated')\n")
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n- repo: {tmp_path / 'hooks'}\n  rev: {rev}\n  hooks:\n  - id: tokenbudget-check\n"
    )
    git("init", "--quiet", cwd=project)
    git("add", "--all", cwd=project)
    home = tmp_path / "pre-commit-home"  # one hook environment for the three runs

    good = pre_commit(project, "--all-files", home=home)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "tokenbudget check" in good.stdout and "Passed" in good.stdout

    unrelated = pre_commit(project, "--files", "app.py", home=home)
    assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr
    assert "Skipped" in unrelated.stdout  # the `files` pattern: not a budget or cases file

    (project / "token_budgets.yml").write_text(
        GOOD_CONFIG.replace("max_input_tokens_p95", "max_input_token_p95")
    )
    bad = pre_commit(project, "--files", "budget_cases/chat_reply.yml", home=home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "token_budgets.yml:4: " in bad.stdout and "max_input_tokens_p95" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
