"""Run CI recipes from the docs as written: a small GitHub Actions and GitLab CI runner.

Enough of both to run this project's documented workflows on a test project:
`run:` steps through bash with the step's `env:`, `${{ ... }}` expressions and
`if:` conditions, `$GITHUB_OUTPUT` into `steps.<id>.outputs`, the four actions
the recipes use (checkout and setup-python are the prepared checkout and this
interpreter; upload/download-artifact copy through a local artifact store), and
GitLab `script:` entries run in one shell as GitLab does. `gh` is a stand-in
(fake_gh.py) over the same store. Installs are the one kind of step not run:
the plugin under test is already installed (the README's first command, run
by its own test, proves that install).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_NAME = re.compile(r"(?<![\w.'])([A-Za-z_][\w-]*(?:\.[\w-]+)+)(?![\w(])")
_INSTALL = re.compile(r"^\s*(python -m )?pip install ")


def fenced_blocks(markdown: str, language: str) -> list[str]:
    """The fenced code blocks of one language, as written (indentation removed)."""
    blocks, current, indent = [], None, 0
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if current is None and stripped.startswith("```" + language):
            current, indent = [], len(line) - len(stripped)
        elif current is not None and stripped.startswith("```"):
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line[indent:])
    return blocks


def shell_commands(block: str) -> list[str]:
    """Commands of a bash block: comments dropped, backslash continuations joined."""
    commands, pending = [], ""
    for line in block.splitlines():
        line = pending + line
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def is_install(script: str) -> bool:
    return bool(_INSTALL.match(script))


class _Missing(str):
    """An absent context value: empty and falsy, like GitHub's null."""


def _lookup(context: dict[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _Missing()
        value = value[part]
    return value


@dataclass
class StepResult:
    name: str
    ran: bool
    outcome: str  # success | failure | skipped | not-run (an install)
    stdout: str = ""
    stderr: str = ""


@dataclass
class Actions:
    """One job of a GitHub Actions workflow, run in `workspace`."""

    workspace: Path
    store: Path  # artifacts/<run id>/<name>/..., runs.json and pulls.json for fake gh
    context: dict[str, Any]
    env: dict[str, str]
    run_id: str = "1"
    results: list[StepResult] = field(default_factory=list)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    failed: bool = False

    # -- expressions ---------------------------------------------------------------------
    def evaluate(self, expression: str) -> Any:
        context = dict(self.context, steps={k: {"outputs": v} for k, v in self.outputs.items()})
        python = "".join(
            part if part.startswith("'") else _translate(part)
            for part in re.split(r"('[^']*')", expression)
        )
        names = {
            "_get": lambda dotted: _lookup(context, dotted),
            "success": lambda: not self.failed,
            "failure": lambda: self.failed,
            "always": lambda: True,
            "cancelled": lambda: False,
            "hashFiles": self._hash_files,
        }
        return eval(python, {"__builtins__": {}}, names)  # our own docs, not input

    def substitute(self, text: str) -> str:
        return _EXPRESSION.sub(lambda m: str(self.evaluate(m.group(1))), text)

    def _hash_files(self, pattern: str) -> str:
        return "hash" if list(self.workspace.glob(pattern)) else ""

    # -- steps ---------------------------------------------------------------------------
    def run_job(self, job: dict[str, Any]) -> list[StepResult]:
        condition = job.get("if")
        if condition is not None and not self.evaluate(_strip(condition)):
            return self.results
        for step in job["steps"]:
            self.step(step)
        return self.results

    def step(self, step: dict[str, Any]) -> StepResult:
        name = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
        condition = step.get("if", "success()")
        if not self.evaluate(_strip(str(condition))):
            result = StepResult(name, ran=False, outcome="skipped")
        elif "uses" in step:
            result = self._uses(name, step["uses"], step.get("with", {}), step.get("id"))
        elif is_install(step["run"]):
            result = StepResult(name, ran=False, outcome="not-run")
        else:
            result = self._run(name, step)
        if result.outcome == "failure":
            self.failed = True
        self.results.append(result)
        return result

    def _run(self, name: str, step: dict[str, Any]) -> StepResult:
        output = self.workspace.parent / f"github-output-{len(self.results)}"
        output.write_text("")
        env = dict(self.env, GITHUB_OUTPUT=str(output))
        env.update({k: self.substitute(str(v)) for k, v in step.get("env", {}).items()})
        script = self.substitute(step["run"])
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if "id" in step:
            self.outputs[step["id"]] = dict(
                line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
            )
        outcome = "success" if done.returncode == 0 else "failure"
        return StepResult(name, True, outcome, done.stdout, done.stderr)

    def _uses(
        self, name: str, action: str, given: dict[str, Any], step_id: str | None = None
    ) -> StepResult:
        inputs = {k: self.substitute(str(v)) for k, v in given.items()}
        kind = action.split("@")[0]
        if kind in ("actions/checkout", "actions/setup-python"):
            pass  # the workspace is the checkout; this interpreter is the Python
        elif kind == "actions/upload-artifact":
            source = self.workspace / inputs["path"]
            unzipped = inputs.get("archive", "true").lower() == "false"  # one file, its name
            artifact = source.name if unzipped else inputs["name"]
            target = self.store / self.run_id / artifact
            if source.is_dir():
                shutil.copytree(source, target)
            elif source.is_file():
                target.mkdir(parents=True)
                shutil.copy2(source, target / source.name)
            if source.exists() and step_id:
                repo = _lookup(self.context, "github.repository")
                url = f"https://github.com/{repo}/actions/runs/{self.run_id}/artifacts/{artifact}"
                self.outputs[step_id] = {"artifact-url": url}
        elif kind == "actions/download-artifact":
            source = self.store / inputs.get("run-id", self.run_id) / inputs["name"]
            if not source.exists():
                return StepResult(name, True, "failure", stderr=f"no artifact {source}")
            shutil.copytree(source, self.workspace / inputs.get("path", "."), dirs_exist_ok=True)
        else:
            raise AssertionError(f"the runner does not know {action}")
        return StepResult(name, True, "success")


def _translate(code: str) -> str:
    """GitHub's operators and context names as Python (strings are left out by the caller)."""
    code = code.replace("&&", " and ").replace("||", " or ")
    code = re.sub(r"!(?!=)", " not ", code)
    return _NAME.sub(lambda m: f"_get({m.group(1)!r})", code)


def _strip(condition: str) -> str:
    match = _EXPRESSION.fullmatch(condition.strip())
    return match.group(1) if match else condition


def gitlab_script(job: dict[str, Any]) -> str:
    """A job's `script:` as GitLab runs it: one shell, stopping at the first failure."""
    return "set -eo pipefail\n" + "\n".join(job["script"]) + "\n"


def run_gitlab(
    job: dict[str, Any], workspace: Path, env: dict[str, str]
) -> subprocess.CompletedProcess:
    variables = {k: str(v) for k, v in job.get("variables", {}).items()}
    entries = [entry for entry in job["script"] if not is_install(entry)]
    script = gitlab_script(dict(job, script=entries))
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        cwd=workspace,
        env={**variables, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ci_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A CI machine's environment: no API key, no GitHub variables of this machine, fake gh."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_gh.py"}" "$@"\n')
    gh.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "ANTHROPIC_", "OPENAI_", "PYTEST_", "CI_", "RUNNER_"))
    }
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env["PATH"]])
    env.update(extra)
    return env


def load_yaml(text: str) -> Any:
    # `on:` is YAML 1.1's True; a workflow is read with it kept as a key
    return yaml.load(text, Loader=yaml.BaseLoader)


def write_event(path: Path, event: dict[str, Any]) -> str:
    path.write_text(json.dumps(event))
    return str(path)
