"""The action (action.yml) and the GitLab CI component (templates/token-budget.yml), run as
docs/ci.md shows them (the snippets extracted from the page, never retyped) by the CI runner
(tests/support/ci_runner.py) on a copy of the bundled example: a pull request over two
pushes with one sticky comment, a regression that fails the step, a pull request from a fork.

Each run of the budgets is a pytest subprocess (a CI job runs its own process), about 4 s of
CPU: the tests below run as few as their proof needs, and the checks that need none use a
stand-in for the Python (`python` input) that records pytest's arguments instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import paths
import pytest
import yaml
from ci_runner import (
    Actions,
    StepResult,
    ci_env,
    fenced_blocks,
    gitlab_pipeline,
    load_yaml,
    run_gitlab,
    write_event,
)
from github_stub import BOT, TOKEN, GitHubStub
from gitlab_stub import JOB_TOKEN, NOTE_TOKEN, NOTE_USER, PROJECT, GitLabStub
from project_files import copy_example

from pytest_tokenbudget.cli import main as tokenbudget

CI_MD = (paths.DOCS / "ci.md").read_text()
OWN_WORKFLOW = (paths.REPO / ".github" / "workflows" / "token-budget.yml").read_text()
ACTION = load_yaml((paths.REPO / "action.yml").read_text())
TEMPLATE = (paths.REPO / "templates" / "token-budget.yml").read_text()
REPO = "acme/shop"
PR = 7
MARKER = "<!-- pytest-tokenbudget -->"


def _snippet(*containing: str) -> str:
    """The one YAML block of docs/ci.md that holds all of these."""
    [block] = [b for b in fenced_blocks(CI_MD, "yaml") if all(s in b for s in containing)]
    return block


ACTION_WORKFLOW = _snippet("name: token-budget\n", "/pytest-tokenbudget@")
FORK_STEP = _snippet("comment: false")
COMMENT_WORKFLOW = _snippet("workflow_run:", "tokenbudget diff")
COMPONENT = _snippet("component:", "/pytest-tokenbudget/token-budget@")

# The project's conftest: puts the app on sys.path (an empty rootdir conftest does) and, when
# asked, writes down which token-like variables the tests could read.
PROBE = """\
import os
import pathlib

if os.environ.get("SECRET_PROBE"):
    names = sorted(name for name in os.environ if "TOKEN" in name)
    pathlib.Path(os.environ["SECRET_PROBE"]).write_text(" ".join(names))
"""


# -- the project: the bundled example as a repository of its own ------------------------
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


class Project:
    """main: the example with its six shortest chat questions and three triage tickets.
    The pull request's first push adds a file and changes no number; its second adds the
    long question that escalates to Opus: within every budget, but more than 10% worse on
    cost, escalation and cache hits (the regression gate)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        copy_example(path, light_sdk=True)
        shutil.copy(paths.REPO / "action.yml", path / "action.yml")  # for `uses: ./`
        (path / "conftest.py").write_text(PROBE)
        chat = path / "cases" / "chat_reply.yml"
        entries = chat.read_text().split("\n- ")  # [0] is the header and the first case
        long_case = next(e for e in entries if e.startswith("id: damaged_item_long"))
        chat.write_text("\n- ".join(entries[:6]) + "\n")
        triage = path / "cases" / "triage.jsonl"
        triage.write_text("".join(triage.read_text().splitlines(keepends=True)[:3]))
        _git(path, "init", "-q", "-b", "main")
        _git(path, "add", "-A")
        _git(path, "commit", "-qm", "base")
        self.base = _git(path, "rev-parse", "HEAD")
        _git(path, "checkout", "-qb", "feature")
        (path / "NOTES.md").write_text("Support bot notes.\n")
        _git(path, "add", "NOTES.md")
        _git(path, "commit", "-qm", "notes")
        self.first_push = _git(path, "rev-parse", "HEAD")
        chat.write_text(chat.read_text() + "- " + long_case + "\n")
        _git(path, "commit", "-qam", "a long question")
        self.second_push = _git(path, "rev-parse", "HEAD")
        _git(path, "checkout", "-q", "main")

    def checkout(self, where: Path, commit: str) -> Path:
        _git(self.path, "worktree", "add", "-q", "--detach", str(where), commit)
        return where


def _report(workspace: Path) -> dict:
    return json.loads((workspace / ".token-budget" / "report.json").read_text())


def _token_names(tmp: Path, run: str) -> list[str]:
    """The token-like variables the project's tests saw in that run (PROBE)."""
    return (tmp / f"secrets-{run}").read_text().split()


# -- GitHub Actions ----------------------------------------------------------------------
def _pull_request(head: str, head_repo: str = REPO) -> dict:
    return {
        "number": PR,
        "pull_request": {
            "number": PR,
            "head": {"sha": head, "repo": {"full_name": head_repo}},
            "base": {"ref": "main"},
        },
    }


def _actions(
    project: Project,
    tmp: Path,
    store: Path,
    run_id: str,
    commit: str,
    event: dict | None = None,
    api: str = "http://127.0.0.1:9",
) -> Actions:
    """A job of a `push` (no event) or `pull_request` run, in a checkout of `commit`."""
    workspace = project.checkout(tmp / f"run-{run_id}", commit)
    runner_temp = tmp / f"runner-temp-{run_id}"
    runner_temp.mkdir()
    event_name = "pull_request" if event else "push"
    ref = f"refs/pull/{PR}/merge" if event else "refs/heads/main"
    github = {
        "event_name": event_name,
        "repository": REPO,
        "token": TOKEN,
        "event": event or {},
        "base_ref": "main" if event else "",
        "ref": ref,
    }
    env = ci_env(
        tmp,
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(workspace),
        GITHUB_REPOSITORY=REPO,
        GITHUB_API_URL=api,
        GITHUB_EVENT_NAME=event_name,
        GITHUB_WORKFLOW_REF=f"{REPO}/.github/workflows/token-budget.yml@{ref}",
        GITHUB_RUN_ID=run_id,
        GITHUB_RUN_ATTEMPT="1",
        GITHUB_SHA=commit,
        RUNNER_TEMP=str(runner_temp),
        GITHUB_EVENT_PATH=write_event(tmp / f"event-{run_id}.json", event or {}),
        GITHUB_STEP_SUMMARY=str(tmp / f"summary-{run_id}.md"),
        FAKE_GH_STORE=str(store),
        SECRET_PROBE=str(tmp / f"secrets-{run_id}"),
    )
    runner = Actions(workspace=workspace, store=store, context={"github": github}, env=env)
    runner.run_id = run_id
    return runner


def _action_step(results: list[StepResult]) -> StepResult:
    [step] = [r for r in results if r.steps]  # the one composite action of the job
    return step


@pytest.fixture(scope="module")
def main_push(tmp_path_factory):
    """This repository's own workflow on a push to main of the project: the baseline."""
    tmp = tmp_path_factory.mktemp("main-push")
    project = Project(tmp / "shop")
    store = tmp / "store"
    store.mkdir()
    runner = _actions(project, tmp, store, "41", project.base)
    results = runner.run_job(load_yaml(OWN_WORKFLOW)["jobs"]["budget"])
    store.joinpath("runs.json").write_text(
        json.dumps(
            [
                {
                    "databaseId": 41,
                    "workflow": "token-budget.yml",
                    "branch": "main",
                    "event": "push",
                    "status": "success",
                }
            ]
        )
    )
    return project, store, runner, results


def _store_copy(store: Path, tmp: Path) -> Path:
    """The artifact store as the main push left it, for one test to add its runs to."""
    return Path(shutil.copytree(store, tmp / "store"))


def test_the_projects_own_workflow_runs_the_action_on_a_push(main_push):
    project, store, runner, results = main_push
    job = load_yaml(OWN_WORKFLOW)["jobs"]["budget"]
    assert [s.get("uses") for s in job["steps"]][-1] == "./"
    action = _action_step(results)
    assert action.outcome == "success", action.stdout + action.stderr
    assert action.step("Baseline from the base branch").outcome == "skipped"
    assert action.step("Comment on the pull request").outcome == "skipped"
    assert runner.outputs["budgets"]["verdict"] == "pass"
    assert runner.outputs["budgets"]["baseline"] == ""
    report_dir = Path(runner.outputs["budgets"]["report-dir"])
    assert report_dir == runner.workspace / ".token-budget"
    kept = store / "41" / "token-budget-report"
    assert json.loads((kept / "report.json").read_text()) == _report(runner.workspace)
    assert not (kept / "pr-number").exists()  # a push is no pull request
    html = "token-budget-report.html"  # report.html, unzipped, named after the artifact
    assert (store / "41" / html / html).read_text() == (report_dir / "report.html").read_text()
    # the plugin wrote the job summary; the workflow's `-p no:cacheprovider` reached pytest
    assert MARKER in (runner.workspace.parent / "summary-41.md").read_text()
    assert not (runner.workspace / ".pytest_cache").exists()


def test_one_sticky_comment_over_two_pushes_and_a_regression_fails_the_step(main_push, tmp_path):
    project, main_store, main_runner, _ = main_push
    store = _store_copy(main_store, tmp_path)
    base = _report(main_runner.workspace)
    job = load_yaml(ACTION_WORKFLOW)["jobs"]["budget"]
    assert job["permissions"] == {
        "contents": "read",
        "actions": "read",
        "pull-requests": "write",
    }
    with GitHubStub(repos={REPO}) as stub:
        stub.open_pull(REPO, PR)

        first = _actions(
            project,
            tmp_path,
            store,
            "42",
            project.first_push,
            _pull_request(project.first_push),
            stub.url,
        )
        action = _action_step(first.run_job(job))
        assert action.outcome == "success", action.stdout + action.stderr
        assert "baseline: report of run 41 on main" in action.stdout
        head = _report(first.workspace)
        assert (
            head["diff"]["endpoints"]["chat_reply"]["metrics"]["cost_per_request_usd"]["base"]
            == (base["endpoints"]["chat_reply"]["metrics"]["cost_per_request_usd"])
        )
        [comment] = stub.comments_of(REPO, PR)
        assert comment["user"]["login"] == BOT
        assert f"run=42.1 sha={project.first_push}" in comment["body"]
        url = f"https://github.com/{REPO}/actions/runs/42/artifacts/token-budget-report.html"
        assert f"[report.html]({url})" in comment["body"]
        first_body = comment["body"]
        # the tests never had the token: only the action's own steps get it
        assert not {"GITHUB_TOKEN", "GH_TOKEN"} & set(_token_names(tmp_path, "42"))

        second = _actions(
            project,
            tmp_path,
            store,
            "43",
            project.second_push,
            _pull_request(project.second_push),
            stub.url,
        )
        action = _action_step(second.run_job(job))
        [updated] = stub.comments_of(REPO, PR)

    # the gate tripped: the step fails as pytest did, after the report was kept and the
    # comment posted
    assert action.outcome == "failure"
    assert action.step("Token budgets").outcome == "success"
    assert action.step("Keep the report").outcome == "success"
    assert action.step("Comment on the pull request").outcome == "success"
    assert action.step("Verdict").outcome == "failure"
    assert _report(second.workspace)["status"] == "fail"
    assert (store / "43" / "token-budget-report" / "report.json").exists()
    assert (store / "43" / "token-budget-report" / "pr-number").read_text() == f"{PR}\n"
    # one comment, edited in place: this push's numbers and stamp
    assert updated["id"] == comment["id"] and updated["body"] != first_body
    assert f"run=43.1 sha={project.second_push}" in updated["body"]
    assert "🔺 regression" in updated["body"] and "damaged\\_item\\_long" in updated["body"]
    comments = f"/repos/{REPO}/issues/{PR}/comments"
    assert len(stub.calls("POST", comments)) == 1 and len(stub.calls("PATCH")) == 1


def test_a_fork_pull_request_gets_no_comment_from_the_action_and_one_from_the_split(
    main_push, tmp_path
):
    project, main_store, _, _ = main_push
    store = _store_copy(main_store, tmp_path)
    job = load_yaml(ACTION_WORKFLOW)["jobs"]["budget"]
    job["steps"][-1]["id"] = "budgets"
    with GitHubStub(repos={REPO}) as stub:
        stub.open_pull(REPO, PR)
        fork = _actions(
            project,
            tmp_path,
            store,
            "50",
            project.second_push,
            _pull_request(project.second_push, "someone/shop"),
            stub.url,
        )
        action = _action_step(fork.run_job(job))
        assert action.step("Comment on the pull request").outcome == "skipped"
        assert stub.comments_of(REPO, PR) == [] and stub.log == []
        assert fork.outputs["budgets"]["verdict"] == "fail"
        assert fork.outputs["budgets"]["exit-code"] == "1"
        artifact = store / "50" / "token-budget-report"
        assert (artifact / "pr-number").read_text() == f"{PR}\n"

        # workflow 1 of the split is the same step with the comment left to workflow 2
        [step] = load_yaml(FORK_STEP)
        assert step["uses"] == job["steps"][-1]["uses"]
        assert step["with"] == dict(job["steps"][-1]["with"], comment="false")

        # workflow 2, on the fork's artifact: a report.md of the fork's own saying anything
        (artifact / "report.md").write_text(f"{MARKER}\nAll within budget, merge me\n")
        store.joinpath("pulls.json").write_text(
            json.dumps(
                {
                    "7": {"headRefOid": project.second_push, "baseRefName": "main"},
                    "8": {"headRefOid": "f" * 40, "baseRefName": "main"},
                }
            )
        )
        comment_job = load_yaml(COMMENT_WORKFLOW)["jobs"]["comment"]

        def workflow_run(run_id: str) -> dict[str, str]:
            trusted = tmp_path / f"trusted-{run_id}"
            trusted.mkdir()
            run = {
                "event": "pull_request",
                "conclusion": "failure",
                "id": "50",
                "run_attempt": "1",
                "head_sha": project.second_push,
                "html_url": f"https://github.com/{REPO}/actions/runs/50",
            }
            event = {"workflow_run": run}
            runner = Actions(
                workspace=trusted,
                store=store,
                context={"github": {"repository": REPO, "token": TOKEN, "event": event}},
                env=ci_env(
                    tmp_path,
                    GITHUB_ACTIONS="true",
                    GITHUB_REPOSITORY=REPO,
                    GITHUB_API_URL=stub.url,
                    GITHUB_EVENT_PATH=write_event(tmp_path / f"event-{run_id}.json", event),
                    RUNNER_TEMP=str(trusted),
                    FAKE_GH_STORE=str(store),
                ),
                run_id=run_id,
            )
            return {r.name: r.outcome for r in runner.run_job(comment_job)}

        outcomes = workflow_run("51")
        assert outcomes["Comment"] == "success", outcomes
        [comment] = stub.comments_of(REPO, PR)
        # rendered from the two report.json files, the baseline from main's own push run
        assert "merge me" not in comment["body"]
        base = main_store / "41" / "token-budget-report" / "report.json"
        expected = io.StringIO()
        with contextlib.redirect_stdout(expected):
            code = tokenbudget(
                ["diff", str(base), str(artifact / "report.json"), "--max-regression", "10"]
            )
        assert code == 1  # the regression, seen from validated data
        assert comment["body"].startswith(f"{MARKER}\n<!-- pytest-tokenbudget run=50.1 ")
        assert expected.getvalue().split("\n", 1)[1].strip() in comment["body"]
        assert (
            f"[report.html](https://github.com/{REPO}/actions/runs/50#artifacts)"
            in (comment["body"])
        )

        # a number the fork wrote for another pull request: nothing is posted
        (artifact / "pr-number").write_text("8\n")
        outcomes = workflow_run("52")
        assert outcomes["Check the pull request number"] == "failure"
        assert outcomes["Comment"] == "skipped"
        # a report.json that is not a report: tokenbudget diff refuses it, nothing is posted
        (artifact / "pr-number").write_text(f"{PR}\n")
        (artifact / "report.json").write_text('{"schema": "pytest-tokenbudget/report"}')
        outcomes = workflow_run("53")
        assert outcomes["Comment"] == "failure"
        assert len(stub.comments_of(REPO, PR)) == 1 and len(stub.calls("PATCH")) == 0


FAKE_PYTHON = """#!/bin/sh
# python -c runs (the action's word splitting); anything else writes its arguments down
if [ "$1" = -c ]; then exec "{python}" "$@"; fi
"{python}" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "{log}"
"""


def _fake_python(tmp: Path) -> tuple[Path, Path]:
    log = tmp / "python-calls.jsonl"
    fake = tmp / "fake-python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable, log=log))
    fake.chmod(0o755)
    return fake, log


HOSTILE_ARGS = """-k 'chat or triage' "$(touch pwned)" `touch pwned` ;touch pwned $HOME"""
SPLIT = ["-k", "chat or triage", "$(touch pwned)", "`touch", "pwned`", ";touch", "pwned", "$HOME"]


def test_the_actions_inputs_are_data_never_shell(tmp_path):
    """pytest-args from a pull request's title: split into words, nothing run or expanded."""
    fake, log = _fake_python(tmp_path)
    workspace = tmp_path / "work"
    (workspace / "sub").mkdir(parents=True)
    (tmp_path / "runner-temp").mkdir()
    job = {
        "steps": [
            {
                "uses": "someone/pytest-tokenbudget@v1",
                "id": "tb",
                "with": {
                    "pytest-args": HOSTILE_ARGS,
                    "python": str(fake),
                    "working-directory": "sub",
                },
            }
        ]
    }
    github = {"event_name": "push", "repository": REPO, "token": TOKEN, "event": {}}
    env = ci_env(tmp_path, RUNNER_TEMP=str(tmp_path / "runner-temp"))
    runner = Actions(workspace=workspace, store=tmp_path, context={"github": github}, env=env)
    [result] = runner.run_job(job)
    assert result.outcome == "success", result.stderr
    [call] = [json.loads(line) for line in log.read_text().splitlines()]
    report = workspace / "sub" / ".token-budget"
    assert call == ["-m", "pytest", "--token-budget", f"--token-budget-report={report}", *SPLIT]
    assert not list(tmp_path.rglob("pwned"))
    assert runner.outputs["tb"]["verdict"] == "pass"
    # and no `${{ }}` is ever pasted into one of the action's scripts
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step["name"]


def test_unbalanced_quotes_in_pytest_args_are_one_error_line_and_no_run(tmp_path):
    fake, log = _fake_python(tmp_path)
    workspace = tmp_path / "work"
    workspace.mkdir()
    (tmp_path / "runner-temp").mkdir()
    step = {"uses": "someone/pytest-tokenbudget@v1", "id": "tb"}
    step["with"] = {"pytest-args": "-k 'chat", "python": str(fake)}
    github = {"event_name": "push", "repository": REPO, "token": TOKEN, "event": {}}
    env = ci_env(tmp_path, RUNNER_TEMP=str(tmp_path / "runner-temp"))
    runner = Actions(workspace=workspace, store=tmp_path, context={"github": github}, env=env)
    [result] = runner.run_job({"steps": [step]})
    assert result.outcome == "failure"
    assert "::error title=Token budget::pytest-args: No closing quotation" in result.stderr
    assert "Traceback" not in result.stderr
    assert not log.exists() or not log.read_text().strip()  # pytest never started


# -- GitLab CI ---------------------------------------------------------------------------
def _gitlab_env(tmp: Path, workspace: Path, stub: GitLabStub, pipeline: str, **extra: str):
    tmpdir = tmp / f"tmp-{pipeline}"  # where mktemp puts the baseline: outside the project
    tmpdir.mkdir()
    return ci_env(
        tmp,
        GITLAB_CI="true",
        TMPDIR=str(tmpdir),
        CI_PROJECT_DIR=str(workspace),
        CI_PROJECT_ID=PROJECT,
        CI_PROJECT_URL="https://gitlab.test/acme/shop",
        CI_API_V4_URL=stub.api,
        CI_JOB_NAME="token-budget",
        CI_JOB_ID=str(int(pipeline) * 10),
        CI_JOB_TOKEN=JOB_TOKEN,
        CI_PIPELINE_ID=pipeline,
        CI_DEFAULT_BRANCH="main",
        TOKEN_BUDGET_NOTE_TOKEN=NOTE_TOKEN,  # a CI/CD variable of the project
        SECRET_PROBE=str(tmp / f"secrets-{pipeline}"),
        **extra,
    )


def _merge_request(project: Project, source_project: str = PROJECT) -> dict[str, str]:
    return {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": str(PR),
        "CI_MERGE_REQUEST_PROJECT_ID": PROJECT,
        "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": source_project,
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": project.base,
    }


def _codequality(workspace: Path) -> list[dict]:
    return json.loads((workspace / "gl-token-budget-codequality.json").read_text())


def test_the_gitlab_component_over_a_merge_requests_pipelines(main_push, tmp_path):
    project, _, main_runner, _ = main_push
    job = gitlab_pipeline(COMPONENT, project.path)["token-budget"]
    assert job["before_script"] == ["python -m pip install -e ."]  # the docs' own key, merged
    assert job["artifacts"]["reports"]["codequality"] == "gl-token-budget-codequality.json"
    assert job["artifacts"]["paths"] == ["./.token-budget/"]
    with GitLabStub() as stub:
        # main's report (the same replay on the same commit) as the job's artifact there
        path = ".token-budget/report.json"
        stub.artifacts[("main", "token-budget", path)] = (main_runner.workspace / path).read_bytes()
        base = _report(main_runner.workspace)

        first = project.checkout(tmp_path / "mr-1", project.first_push)
        env = _gitlab_env(tmp_path, first, stub, "101", **_merge_request(project))
        done = run_gitlab(job, first, env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "baseline: the report of the last token-budget pipeline of main" in done.stdout
        assert "created the merge request note" in done.stdout
        assert (
            _report(first)["diff"]["endpoints"]["chat_reply"]["metrics"]["input_tokens_p95"]["base"]
            == (base["endpoints"]["chat_reply"]["metrics"]["input_tokens_p95"])
        )
        assert _codequality(first) == []
        [note] = stub.notes[PR]
        assert note["author"] == NOTE_USER and note["body"].startswith(MARKER)
        assert "<!-- pytest-tokenbudget pipeline=101 -->" in note["body"]
        assert (
            "https://gitlab.test/acme/shop/-/jobs/1010/artifacts/file/.token-budget/report.html"
            in note["body"]
        )
        # the job token went to the API, not on to object storage; the note token neither
        # to storage nor to the tests
        [artifact] = stub.calls("GET", "/jobs/artifacts/")
        [storage] = stub.calls("GET", "^/storage/")
        assert artifact.job_token == JOB_TOKEN and artifact.host == "127.0.0.1"
        assert storage.host == "localhost" and storage.job_token is storage.private_token is None
        names = _token_names(tmp_path, "101")
        assert "CI_JOB_TOKEN" in names and "TOKEN_BUDGET_NOTE_TOKEN" not in names

        second = project.checkout(tmp_path / "mr-2", project.second_push)
        env = _gitlab_env(tmp_path, second, stub, "102", **_merge_request(project))
        done = run_gitlab(job, second, env)
        [updated] = stub.notes[PR]

    assert done.returncode == 1, done.stdout + done.stderr  # the regression gate's exit
    assert "updated the merge request note" in done.stdout
    assert (
        updated["id"] == note["id"]
        and "<!-- pytest-tokenbudget pipeline=102 -->" in (updated["body"])
    )
    assert "🔺 regression" in updated["body"]
    findings = _codequality(second)
    assert findings and {f["severity"] for f in findings} >= {"major"}
    assert {f["location"]["path"] for f in findings} == {"token_budgets.yml"}
    assert len(stub.calls("POST", "/notes$")) == 1 and len(stub.calls("PUT", "/notes/")) == 1


def test_the_gitlab_component_on_a_fork_merge_request_with_a_rerun_baseline(main_push, tmp_path):
    project = main_push[0]
    config = yaml.safe_load(COMPONENT)
    config["include"][0]["inputs"]["baseline"] = "rerun"
    text = json.dumps(config)  # JSON is YAML
    job = gitlab_pipeline(text, project.path)["token-budget"]
    with GitLabStub() as stub:
        workspace = project.checkout(tmp_path / "mr", project.second_push)
        env = _gitlab_env(tmp_path, workspace, stub, "200", **_merge_request(project, "9"))
        done = run_gitlab(job, workspace, env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no note on a merge request from a fork" in done.stdout
    assert stub.log == []  # neither the artifacts API nor the notes
    [base] = (tmp_path / "tmp-200").glob("*/base/report.json")  # the base commit, replayed
    diff = _report(workspace)["diff"]["endpoints"]["chat_reply"]["metrics"]["escalation_rate"]
    assert (
        diff["base"]
        == json.loads(base.read_text())["endpoints"]["chat_reply"]["metrics"]["escalation_rate"]
    )


def test_the_components_inputs_are_checked_and_are_data(tmp_path):
    """The remote and local forms the docs name give the component's job; inputs outside
    the spec are refused; a hostile pytest-args is split into words and nothing runs."""
    project = tmp_path / "shop"
    (project / "templates").mkdir(parents=True)
    shutil.copy(paths.REPO / "templates" / "token-budget.yml", project / "templates")
    component = gitlab_pipeline(COMPONENT, project)
    remote = re.search(r"`- (remote: https://\S+)`", CI_MD).group(1)
    local = re.search(r"`- (local: templates/\S+)`", CI_MD).group(1)
    for form in (remote, local):
        text = COMPONENT.replace(COMPONENT.splitlines()[1].split("- ", 1)[1], form, 1)
        assert gitlab_pipeline(text, project) == component
    refused = {
        "is not one of": {"baseline": "main"},
        "is not a number": {"max-regression": "10"},  # quoted: GitLab refuses it too
        "is not a boolean": {"note": "yes"},
        "has no input": {"max_regression": 10},
    }
    for why, inputs in refused.items():
        config = yaml.safe_load(COMPONENT)
        config["include"][0]["inputs"] = inputs
        with pytest.raises(AssertionError, match=why):
            gitlab_pipeline(json.dumps(config), project)
    assert "$[[" not in json.dumps(component["token-budget"]["script"])
    fake, log = _fake_python(tmp_path)
    config = yaml.safe_load(COMPONENT)
    config["include"][0]["inputs"].update({"pytest-args": HOSTILE_ARGS, "python": str(fake)})
    job = gitlab_pipeline(json.dumps(config), project)["token-budget"]
    with GitLabStub() as stub:  # a pipeline of the default branch
        env = _gitlab_env(tmp_path, project, stub, "300", CI_PIPELINE_SOURCE="push")
        done = run_gitlab(job, project, dict(env, CI_COMMIT_BRANCH="main"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert stub.log == []  # no merge request: no baseline to fetch, no note
    assert _codequality(project) == []
    [call] = [json.loads(line) for line in log.read_text().splitlines()]
    report = project / ".token-budget"
    assert call == ["-m", "pytest", "--token-budget", f"--token-budget-report={report}", *SPLIT]
    assert not list(tmp_path.rglob("pwned"))
