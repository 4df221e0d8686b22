"""Every CI recipe and command block of the README, docs/ and .github/workflows, run
as written there (extracted from the files, never retyped) on a copy of the bundled
example, some on a project with a pytest ini file and the others on one without, with
baselines outside the project.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import paths
import pytest
import wheelhouse
from ci_runner import (
    Actions,
    ci_env,
    fenced_blocks,
    is_install,
    load_yaml,
    run_gitlab,
    shell_commands,
    write_event,
)
from github_stub import TOKEN, GitHubStub
from project_files import copy_example

from pytest_tokenbudget import cli

ROOT = paths.REPO
README = (ROOT / "README.md").read_text()
CI_MD = (ROOT / "docs" / "ci.md").read_text()
WORKFLOW = (ROOT / ".github" / "workflows" / "token-budget.yml").read_text()
EXAMPLE = ROOT / "examples" / "support_bot"
REPO = "acme/shop"
PR = 7

# Which test runs each documented block: a new block in these files fails
# test_every_documented_block_is_run until a test here runs it.
YAML_BLOCKS = {
    0: "the action: test_reusable_ci.py",
    1: "the action, fork split workflow 1: test_reusable_ci.py",
    2: "fork split workflow 2: test_reusable_ci.py",
    3: "without the action: test_artifact_baseline_recipe",
    4: "re-run variant: test_rerun_base_recipe",
    5: "the GitLab component: test_reusable_ci.py",
    6: "GitLab without the component: test_gitlab_recipe",
}
BASH_BLOCKS = {
    ("README.md", 0): "test_readme_setup_in_a_fresh_copy, test_ci_runs_the_readme_test_command",
    ("README.md", 1): "test_readme_pull_request_loop",
    ("README.md", 2): "test_ci_runs_the_readme_test_command, test_readme_setup_in_a_fresh_copy",
    ("docs/ci.md", 0): "test_gitlab_recipe_with_the_artifact_download",
    ("docs/configuration.md", 0): "test_docs_command_blocks",
    ("docs/configuration.md", 1): "test_docs_command_blocks",
    ("docs/getting-started.md", 0): "installs: test_readme_setup_in_a_fresh_copy installs so",
    ("docs/getting-started.md", 1): "test_docs_command_blocks",
    ("docs/getting-started.md", 2): "test_docs_command_blocks",
    ("docs/getting-started.md", 3): "test_adoption.py::test_the_getting_started_commands",
    ("docs/security.md", 0): "test_docs_command_blocks",
    # benchmarks, run by hand (minutes each, and cassetter must not share the venv)
    ("docs/performance.md", 0): "by hand",
    ("docs/performance.md", 1): "by hand",
}
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
# inline commands of the README: test_readme_inline_commands


# -- the project: the bundled example as a repository of its own ----------------------
def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
            "PATH": "/usr/bin:/bin",
        },
    ).stdout.strip()


class Repo:
    """Base commit = the example; the pull request drops its cheapest chat cases."""

    def __init__(self, path: Path, ini: bool) -> None:
        self.path = path
        path.mkdir()
        copy_example(path, light_sdk=True)
        # fewer cases than the example: each documented command here runs pytest on it
        chat = path / "cases" / "chat_reply.yml"
        chat.write_text("\n- ".join(chat.read_text().split("\n- ")[:8]) + "\n")
        triage = path / "cases" / "triage.jsonl"
        triage.write_text("".join(triage.read_text().splitlines(keepends=True)[:3]))
        if ini:
            (path / "pytest.ini").write_text("[pytest]\ntestpaths = tests\npythonpath = .\n")
        else:  # a rootdir conftest.py puts the app on sys.path for plain `pytest`
            (path / "conftest.py").write_text("")
        _git(path, "init", "-q", "-b", "main")
        _git(path, "add", "-A")
        _git(path, "commit", "-qm", "base")
        self.base = _git(path, "rev-parse", "HEAD")
        _git(path, "checkout", "-qb", "feature")
        cases = path / "cases" / "chat_reply.yml"
        entries = cases.read_text().split("\n- ")
        cases.write_text("\n- ".join(entries[:-4]) + "\n")  # fewer cases: the numbers move
        _git(path, "commit", "-qam", "fewer cases")
        self.head = _git(path, "rev-parse", "HEAD")
        _git(path, "checkout", "-q", "main")
        _git(path, "merge", "-q", "--no-ff", "-m", "merge", "feature")
        self.merge = _git(path, "rev-parse", "HEAD")  # what actions/checkout gives a PR

    def checkout(self, where: Path, commit: str) -> Path:
        _git(self.path, "worktree", "add", "-q", "--detach", str(where), commit)
        return where


@pytest.fixture(autouse=True)
def _one_ca_certificate(request, monkeypatch, one_ca_bundle):
    """The commands run here make no TLS connection (the emulator, the GitHub and GitLab
    stubs and fake gh are plain HTTP on loopback): a CA bundle of one certificate (conftest's
    one_ca_bundle), but for the fresh copy's install where it may reach the package index."""
    if request.function is not test_readme_setup_in_a_fresh_copy:
        monkeypatch.setenv("SSL_CERT_FILE", str(one_ca_bundle))


# Each recipe runs once, on one of the two project shapes (every run of one is ~4 s of CPU
# per pytest it starts): with an ini file, pytest's rootdir and options come from it;
# without, from a rootdir conftest.py. A baseline passed outside the project moved the
# rootdir on either (the '=' form avoids it). Both shapes run a GitHub and a GitLab recipe:
# ini: re-run, pull request loop, GitLab's default branch and artifact download, inline
# commands; no ini: artifact baseline, GitLab merge request, the docs' command blocks.
@pytest.fixture
def ini_repo(tmp_path):
    return Repo(tmp_path / "shop", ini=True)


@pytest.fixture
def no_ini_repo(tmp_path):
    return Repo(tmp_path / "shop", ini=False)


@pytest.fixture
def github():
    stub = GitHubStub(repos={REPO})
    stub.open_pull(REPO, PR)
    with stub:
        yield stub, stub.url


def _actions(workspace: Path, tmp: Path, store: Path, api: str, event_name: str, **context):
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    event = context.pop("event", {})
    github = {
        "event_name": event_name,
        "repository": REPO,
        "token": TOKEN,
        "event": event,
        "base_ref": "main" if event_name == "pull_request" else "",
        **context,
    }
    env = ci_env(
        tmp,
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(workspace),
        GITHUB_REPOSITORY=REPO,
        GITHUB_API_URL=api,
        GITHUB_EVENT_NAME=event_name,
        RUNNER_TEMP=str(runner_temp),
        GITHUB_EVENT_PATH=write_event(tmp / f"event-{workspace.name}.json", event),
        GITHUB_STEP_SUMMARY=str(tmp / f"summary-{workspace.name}.md"),
        FAKE_GH_STORE=str(store),
    )
    return Actions(workspace=workspace, store=store, context={"github": github}, env=env)


def _pull_request_event(repo: Repo) -> dict:
    return {
        "number": PR,
        "pull_request": {"number": PR, "head": {"sha": repo.head, "repo": {"full_name": REPO}}},
    }


def _report(workspace: Path) -> dict:
    return json.loads((workspace / ".token-budget" / "report.json").read_text())


def _outcomes(results) -> dict[str, str]:
    return {r.name: r.outcome for r in results}


def _assert_compared(head: dict, base: dict) -> None:
    """The head report's diff holds the base report's numbers as its base side."""
    diff = head["diff"]["endpoints"]["chat_reply"]["metrics"]
    for metric in ("input_tokens_p95", "cost_per_request_usd"):
        assert diff[metric]["base"] == base["endpoints"]["chat_reply"]["metrics"][metric]
        assert diff[metric]["head"] == head["endpoints"]["chat_reply"]["metrics"][metric]
    assert head["endpoints"]["chat_reply"]["cases"] == base["endpoints"]["chat_reply"]["cases"] - 4


def _push_run(repo: Repo, tmp: Path, store: Path, api: str, job: dict) -> dict:
    """The workflow on a push to main: replay, keep the report as the artifact."""
    workspace = repo.checkout(tmp / "push", repo.base)
    runner = _actions(workspace, tmp, store, api, "push", ref="refs/heads/main")
    runner.run_id = "41"
    results = _outcomes(runner.run_job(job))
    assert results["Token budgets"] == "success", runner.results
    assert results["Baseline from the base branch"] == "skipped"
    store.joinpath("runs.json").write_text(
        json.dumps(
            [
                {
                    "databaseId": 41,
                    "workflow": "token-budget.yml",
                    "branch": "main",
                    "event": "push",
                    "status": "success",
                },
            ]
        )
    )
    assert (store / "41" / "token-budget-report" / "report.json").exists()
    return _report(workspace)


# -- the recipe without the action (this repository's own workflow runs the action:
# test_reusable_ci.py) ------------------------------------------------------------------
def test_artifact_baseline_recipe(no_ini_repo, tmp_path, github):
    repo = no_ini_repo
    stub, api = github
    job = load_yaml(fenced_blocks(CI_MD, "yaml")[3])["jobs"]["budget"]
    store = tmp_path / "store"
    store.mkdir()
    base = _push_run(repo, tmp_path, store, api, job)

    workspace = repo.checkout(tmp_path / "pr", repo.merge)
    runner = _actions(
        workspace, tmp_path, store, api, "pull_request", event=_pull_request_event(repo)
    )
    runner.run_id = "42"
    results = runner.run_job(job)
    outcomes = _outcomes(results)
    assert [r.name for r in results if r.outcome == "not-run"] == [
        r.name for r in results if r.name.startswith(("Install", "python -m pip install"))
    ]
    baseline_step = next(r for r in results if r.name == "Baseline from the base branch")
    assert "baseline: report of run 41 on main" in baseline_step.stdout
    head = _report(workspace)
    _assert_compared(head, base)
    gate = "success" if head["status"] == "pass" else "failure"
    assert outcomes["Token budgets"] == gate
    assert outcomes["Comment on the pull request"] == "success"
    [comment] = stub.pulls[(REPO, PR)]
    assert comment["body"].startswith(
        (workspace / ".token-budget" / "report.md").read_text().strip()[:40]
    )
    assert (store / "42" / "token-budget-report" / "report.md").exists()
    # report.html: its own artifact, unzipped, and the comment links to it
    assert (store / "42" / "report.html" / "report.html").exists()
    url = f"https://github.com/{REPO}/actions/runs/42/artifacts/report.html"
    assert f"[report.html]({url})" in comment["body"]


def test_artifact_recipe_without_a_base_report_says_so(ini_repo, tmp_path, github):
    repo = ini_repo
    _, api = github
    job = load_yaml(fenced_blocks(CI_MD, "yaml")[3])["jobs"]["budget"]
    store = tmp_path / "store"
    store.mkdir()
    workspace = repo.checkout(tmp_path / "pr", repo.merge)
    runner = _actions(
        workspace, tmp_path, store, api, "pull_request", event=_pull_request_event(repo)
    )
    results = runner.run_job(job)
    step = next(r for r in results if r.name == "Baseline from the base branch")
    assert "::notice title=Token budget::no report on main yet" in step.stdout
    assert "diff" not in _report(workspace)


# -- the re-run variant: the base commit replayed outside the project -----------------
def test_rerun_base_recipe(ini_repo, tmp_path, github):
    repo = ini_repo
    _, api = github
    steps = load_yaml(fenced_blocks(CI_MD, "yaml")[4])
    workspace = repo.checkout(tmp_path / "pr", repo.merge)
    runner = _actions(
        workspace, tmp_path, tmp_path, api, "pull_request", event=_pull_request_event(repo)
    )
    results = runner.run_job({"steps": steps})
    assert _outcomes(results)["Baseline from the base commit"] == "success", results
    base_report = tmp_path / "runner-temp" / "base-report" / "report.json"
    _assert_compared(_report(workspace), json.loads(base_report.read_text()))


# -- GitLab ----------------------------------------------------------------------------
def _gitlab_env(tmp: Path, **extra: str) -> dict[str, str]:
    tmpdir = tmp / "gitlab-tmp"  # where mktemp puts the base: outside the project
    tmpdir.mkdir(exist_ok=True)
    return ci_env(tmp, TMPDIR=str(tmpdir), GITLAB_CI="true", **extra)


def test_gitlab_recipe(no_ini_repo, tmp_path):
    repo = no_ini_repo
    job = load_yaml(fenced_blocks(CI_MD, "yaml")[6])["token-budget"]
    workspace = repo.checkout(tmp_path / "mr", repo.merge)
    done = run_gitlab(
        job, workspace, _gitlab_env(tmp_path, CI_MERGE_REQUEST_DIFF_BASE_SHA=repo.base)
    )
    head = _report(workspace)
    assert done.returncode == (0 if head["status"] == "pass" else 1), done.stderr
    [base_report] = (tmp_path / "gitlab-tmp").glob("*/report/report.json")
    _assert_compared(head, json.loads(base_report.read_text()))
    findings = json.loads((workspace / "gl-code-quality-report.json").read_text())
    assert isinstance(findings, list)
    assert all(f["location"]["path"] == "token_budgets.yml" for f in findings)


def test_gitlab_recipe_on_the_default_branch(ini_repo, tmp_path):
    repo = ini_repo
    job = load_yaml(fenced_blocks(CI_MD, "yaml")[6])["token-budget"]
    workspace = repo.checkout(tmp_path / "main", repo.base)
    done = run_gitlab(job, workspace, _gitlab_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "diff" not in _report(workspace)
    assert json.loads((workspace / "gl-code-quality-report.json").read_text()) == []


class _Artifacts(BaseHTTPRequestHandler):
    """GitLab's artifact API: a redirect to object storage on another host name."""

    report: bytes = b""
    seen: ClassVar[list] = []
    API = "/api/v4/projects/5/jobs/artifacts/main/raw/.token-budget/report.json?job=token-budget"

    def do_GET(self):
        self.seen.append(
            (self.headers.get("Host", "").split(":")[0], self.path, self.headers.get("JOB-TOKEN"))
        )
        if self.path == self.API and self.headers.get("JOB-TOKEN") == "job-token":
            self.send_response(302)
            port = self.server.server_address[1]
            self.send_header("Location", f"http://localhost:{port}/storage/report.json")
            self.end_headers()
        elif self.path == "/storage/report.json":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(self.report)
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args):
        pass


def test_gitlab_recipe_with_the_artifact_download(ini_repo, tmp_path):
    """The documented alternative: the worktree entry replaced by the curl download."""
    repo = ini_repo
    job = load_yaml(fenced_blocks(CI_MD, "yaml")[6])["token-budget"]
    [download] = fenced_blocks(CI_MD, "bash")
    at = next(i for i, entry in enumerate(job["script"]) if "git worktree" in entry)
    job["script"][at] = download

    base_run = repo.checkout(tmp_path / "main", repo.base)
    subprocess.run(
        [sys.executable, "-m", "pytest", "--token-budget", "-q"],
        cwd=base_run,
        env=ci_env(tmp_path),
        check=True,
        capture_output=True,
    )
    _Artifacts.report = (base_run / ".token-budget" / "report.json").read_bytes()
    _Artifacts.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Artifacts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        workspace = repo.checkout(tmp_path / "mr", repo.merge)
        env = _gitlab_env(
            tmp_path,
            CI_API_V4_URL=f"http://127.0.0.1:{server.server_port}/api/v4",
            CI_JOB_TOKEN="job-token",
            CI_PROJECT_ID="5",
            CI_MERGE_REQUEST_TARGET_BRANCH_NAME="main",
        )
        done = run_gitlab(job, workspace, env)
    finally:
        server.shutdown()
    # the token went to the API host and was not sent on to the storage host
    assert _Artifacts.seen == [
        ("127.0.0.1", _Artifacts.API, "job-token"),
        ("localhost", "/storage/report.json", None),
    ], done.stderr
    _assert_compared(_report(workspace), json.loads(_Artifacts.report))


# -- README ----------------------------------------------------------------------------
def test_readme_pull_request_loop(ini_repo, tmp_path, github):
    """Step 8: the baseline at base/report.json, then the sticky comment."""
    repo = ini_repo
    stub, api = github
    [block] = [b for b in fenced_blocks(README, "bash") if "tokenbudget comment" in b]
    base_run = repo.checkout(tmp_path / "base", repo.base)
    subprocess.run(
        [sys.executable, "-m", "pytest", "--token-budget", "-q"],
        cwd=base_run,
        env=ci_env(tmp_path),
        check=True,
        capture_output=True,
    )
    workspace = repo.checkout(tmp_path / "pr", repo.merge)
    (workspace / "base").mkdir()
    shutil.copy(base_run / ".token-budget" / "report.json", workspace / "base" / "report.json")
    env = ci_env(
        tmp_path,
        GITHUB_TOKEN=TOKEN,
        GITHUB_REPOSITORY=REPO,
        GITHUB_API_URL=api,
        GITHUB_EVENT_PATH=write_event(tmp_path / "event.json", _pull_request_event(repo)),
    )
    # each command as its own step, as CI runs them: the gate may fail, the comment still posts
    for command in shell_commands(block):
        subprocess.run(
            ["bash", "-c", command], cwd=workspace, env=env, capture_output=True, check=False
        )
    _assert_compared(
        _report(workspace), json.loads((workspace / "base" / "report.json").read_text())
    )
    [comment] = stub.pulls[(REPO, PR)]
    assert "<!-- pytest-tokenbudget -->" in comment["body"]


def test_ci_runs_the_readme_test_command(pytestconfig):
    [setup] = [b for b in fenced_blocks(README, "bash") if "pip install -e" in b]
    test_command = shell_commands(setup)[1]
    assert test_command.startswith("python -m pytest tests")
    ci_script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_script
    [development] = [b for b in fenced_blocks(README, "bash") if "record_with_emulator" in b]
    assert shell_commands(development)[0].startswith(test_command)
    # the quick loop is that command leaving out the tests marked slow, a registered marker
    [quick] = re.findall(r'`(python -m pytest tests -m "not slow" [^`]*)`', README)
    assert quick.replace('-m "not slow" ', "") == test_command
    assert any(line.startswith("slow:") for line in pytestconfig.getini("markers"))


def _local_pip(env: dict[str, str], request: pytest.FixtureRequest) -> dict[str, str]:
    """The shell's pip set to install this venv's own distributions, repacked as wheels
    (tests/support/wheelhouse.py), with no index and no byte-compiling: ~40 s of CPU less
    than resolving and downloading ~65 projects. Only when the shell's python3 is this
    one's version, as the wheels' binary tags need; otherwise pip uses the index."""
    python3 = ["python3", "-c", "import sys; print(sys.version_info[:2])"]
    theirs = subprocess.run(python3, env=env, capture_output=True, text=True, check=False)
    if theirs.stdout.strip() != str(sys.version_info[:2]):
        return {}
    return wheelhouse.pip_env(request.getfixturevalue("wheelhouse_dir"))  # once a session


LOCAL_PIP = "\n(pip installed this venv's packages: reinstall it if pyproject.toml asks for more)"


def test_readme_setup_in_a_fresh_copy(tmp_path, request):
    """Command 1 on a copy of the repository alone in a folder (its pip installing from
    this venv's packages); then the Development block's re-record: what the emulator
    answers today is what the committed cassettes replay."""
    copy = tmp_path / "clone"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    [setup] = [b for b in fenced_blocks(README, "bash") if "pip install -e" in b]
    env = ci_env(tmp_path)
    env["PATH"] = env["PATH"].split(os.pathsep, 2)[-1]  # a plain shell: not this test's venv
    env["COLUMNS"] = "80"  # the width the README's output was taken at
    local = _local_pip(env, request)
    env.update(local)
    if local:  # pip installs from a folder: no process here makes a TLS connection
        env["SSL_CERT_FILE"] = str(request.getfixturevalue("one_ca_bundle"))
    done = subprocess.run(
        ["bash", "-c", shell_commands(setup)[0]],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    hint = LOCAL_PIP if local else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + hint
    assert re.search(r"chat_reply +\d+ +\d+ .* PASS", done.stdout), done.stdout
    shown = fenced_blocks(README, "")[0].splitlines()  # the output the README shows
    printed = done.stdout.splitlines()
    start = printed.index(shown[0])
    assert printed[start : start + len(shown)] == shown
    committed = _report(copy)

    [development] = [b for b in fenced_blocks(README, "bash") if "record_with_emulator" in b]
    venv = dict(env, PATH=f"{copy / '.venv' / 'bin'}{os.pathsep}{env['PATH']}")
    (copy / ".token-budget" / "report.json").unlink()  # the recording run writes its own
    done = subprocess.run(
        ["bash", "-c", shell_commands(development)[1]],
        cwd=copy,
        env=venv,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    # the report of the recording run: what the emulator answers today
    assert _report(copy)["endpoints"] == committed["endpoints"]


def test_every_documented_block_is_run():
    yaml_blocks = fenced_blocks(CI_MD, "yaml")
    assert len(yaml_blocks) == len(YAML_BLOCKS), "a new YAML block in docs/ci.md: run it here"
    files = [("README.md", README), *((f"docs/{name}", text) for name, text in DOCS.items())]
    found = {(name, i) for name, text in files for i, _ in enumerate(fenced_blocks(text, "bash"))}
    assert found == set(BASH_BLOCKS), "a new bash block: run it in a test here"
    steps = load_yaml(WORKFLOW)["jobs"]["budget"]["steps"]
    assert [s["name"] for s in steps if "run" in s and is_install(s["run"])] == ["Install"]


_INLINE = re.compile(r"`((?:pytest |tokenbudget |ANTHROPIC_API_KEY=)[^`]*)`")
_SYNOPSIS = re.compile(r"[\[{]|\b(BASE|HEAD|DIR|PATH)\b")  # the command table's placeholders


def test_readme_inline_commands(ini_repo, tmp_path, emulator, capsys):
    """Each command the README quotes inline, run as written (synopses: their options exist,
    in the --help of the command, the subcommands' from the CLI in this process)."""
    commands = sorted(set(_INLINE.findall(README.replace("\n", " "))))
    synopses = [c for c in commands if _SYNOPSIS.search(c)]
    runnable = [c for c in commands if c not in synopses]
    assert "pytest --token-budget --token-budget-count" in runnable and synopses
    workspace = ini_repo.checkout(tmp_path / "work", ini_repo.base)
    # the API is the emulator: counting and recording reach it, replay never does
    env = ci_env(tmp_path, ANTHROPIC_BASE_URL=emulator.base_url, ANTHROPIC_API_KEY="emulator")
    for command in runnable:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
    assert {s.path for s in emulator.served} <= {"/v1/messages/count_tokens"}
    for synopsis in synopses:
        words = synopsis.split()
        if words[0] == "tokenbudget":
            capsys.readouterr()
            assert cli.main([words[1], "--help"]) == 0, synopsis
            shown = capsys.readouterr().out
        else:
            done = subprocess.run(
                [*words[:2], "--help"],
                cwd=workspace,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, synopsis
            shown = done.stdout
        for option in re.findall(r"--[a-z-]+", synopsis):
            assert option in shown, (synopsis, option)


def test_docs_command_blocks(tmp_path, emulator):
    """The command blocks of the configuration, getting-started and security pages, each
    block one bash script as written, in a copy of the example (installs excepted)."""
    blocks = [
        fenced_blocks(DOCS[name], "bash")[i]
        for name, i in (
            ("getting-started.md", 1),
            ("getting-started.md", 2),
            ("configuration.md", 0),
            ("configuration.md", 1),
            ("security.md", 0),
        )
    ]
    workspace = tmp_path / "work"  # the whole example: its budgets have enough samples to tighten
    workspace.mkdir()
    copy_example(workspace, light_sdk=True)
    (workspace / "conftest.py").write_text("")  # the app on sys.path, as in Repo
    _git(workspace, "init", "-q")
    _git(workspace, "add", "-A")
    _git(workspace, "commit", "-qm", "example")
    env = ci_env(tmp_path, ANTHROPIC_BASE_URL=emulator.base_url)  # recording reaches it only
    outputs = []
    for block in blocks:
        done = subprocess.run(
            ["bash", "-ec", block],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (block, done.stdout[-2000:], done.stderr[-2000:])
        outputs.append(done.stdout)
    assert not emulator.served  # every case of the example is recorded: nothing to record
    assert "max_input_tokens_p95" in outputs[3]  # the ratchet tightened, git diff shows it
    assert outputs[4].strip().endswith("clean")
