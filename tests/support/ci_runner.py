"""Run CI recipes from the docs as written: a small GitHub Actions and GitLab CI runner.

Enough of both to run this project's documented workflows on a test project:
`run:` steps through bash with the step's `env:` and `working-directory:`,
`${{ ... }}` expressions and `if:` conditions, `$GITHUB_OUTPUT` into
`steps.<id>.outputs`, the four actions the recipes use (checkout and setup-python
are the prepared checkout and this interpreter; upload/download-artifact copy
through a local artifact store), and composite actions: `uses: ./` (the
workspace's action.yml) or `uses: <owner>/pytest-tokenbudget@<ref>` (this
checkout's), their steps run with `inputs.*`, their own `steps` and their
declared outputs. `gh` is a stand-in (fake_gh.py) over the same store.

GitLab: a pipeline file's `include:` (`local:` or `component:` of
pytest-tokenbudget, resolved to this checkout's templates/) with `spec: inputs:`
checked and `$[[ inputs.x ]]` interpolated, included jobs deep-merged under the
file's own keys; a job's `before_script:` and `script:` entries run in one shell
as GitLab does, its `variables:` in the environment.

Installs are the one kind of step not run: the plugin under test is already
installed (the README's first command, run by its own test, proves that install).
"""

from __future__ import annotations

import copy
import itertools
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
from paths import REPO

HERE = Path(__file__).parent
# `uses:` of this repository's action from anywhere (the docs name it by owner and ref)
_THIS_ACTION = re.compile(r"[\w.-]+/pytest-tokenbudget@[\w./-]+")
_OUTPUT_FILES = itertools.count()
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
    steps: list[StepResult] = field(default_factory=list)  # a composite action's own

    def step(self, name: str) -> StepResult:
        """One of a composite action's steps, by name."""
        [found] = [s for s in self.steps if s.name == name]
        return found


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
        if "inputs" in self.context:  # a composite action's step names its shell
            assert step.get("shell") == "bash", f"{name}: composite steps here are bash"
        output = self.workspace.parent / f"github-output-{next(_OUTPUT_FILES)}"
        output.write_text("")
        env = dict(self.env, GITHUB_OUTPUT=str(output))
        env.update({k: self.substitute(str(v)) for k, v in step.get("env", {}).items()})
        script = self.substitute(step["run"])
        cwd = self.workspace / self.substitute(str(step.get("working-directory", ".")))
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=cwd,
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
        if action == "./" or _THIS_ACTION.fullmatch(action):
            return self._composite(name, action, given, step_id)
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

    def _composite(
        self, name: str, action: str, given: dict[str, Any], step_id: str | None
    ) -> StepResult:
        """A composite action: its inputs from `with:` or their defaults, its steps run in
        a scope of their own (`inputs`, `steps`), its outputs back to the calling step."""
        path = self.workspace / "action.yml" if action == "./" else REPO / "action.yml"
        meta = load_yaml(path.read_text())
        assert meta["runs"]["using"] == "composite", path
        declared = meta.get("inputs", {})
        unknown = set(given) - set(declared)
        assert not unknown, f"{action} has no input {sorted(unknown)}"
        inputs = {}
        for key, spec in declared.items():
            if key in given:
                inputs[key] = self.substitute(str(given[key]))
            else:
                assert spec.get("required") != "true" or "default" in spec, f"{key} is required"
                inputs[key] = self.substitute(str(spec.get("default", "")))
        github = dict(self.context["github"], action_path=str(path.parent))
        inner = Actions(
            workspace=self.workspace,
            store=self.store,
            context=dict(self.context, github=github, inputs=inputs),
            env=dict(self.env, GITHUB_ACTION_PATH=str(path.parent)),
            run_id=self.run_id,
            failed=self.failed,
        )
        for step in meta["runs"]["steps"]:
            inner.step(step)
        if step_id:
            self.outputs[step_id] = {
                key: str(inner.substitute(str(spec["value"])))
                for key, spec in meta.get("outputs", {}).items()
            }
        failed = any(r.outcome == "failure" for r in inner.results)
        return StepResult(
            name,
            True,
            "failure" if failed else "success",
            "".join(r.stdout for r in inner.results),
            "".join(r.stderr for r in inner.results),
            inner.results,
        )


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


# -- GitLab includes: components and templates with `spec: inputs:` ----------------------
_INTERPOLATION = re.compile(r"\$\[\[\s*inputs\.([\w-]+)\s*\]\]")
# a component or a raw file of this repository, from wherever the docs say it is published
_THIS_COMPONENT = re.compile(r"\$CI_SERVER_FQDN/[\w./-]+/pytest-tokenbudget/([\w-]+)@[\w./-]+")
_THIS_REMOTE = re.compile(
    r"https://raw\.githubusercontent\.com/[\w.-]+/pytest-tokenbudget/[\w.-]+/"
    r"(templates/[\w-]+\.yml)"
)


def gitlab_pipeline(text: str, project: Path) -> dict[str, Any]:
    """A .gitlab-ci.yml with its `include:`s resolved: each included file's jobs, its inputs
    interpolated, deep-merged under the file's own keys (which win, as in GitLab)."""
    config = load_yaml(text)
    includes = config.pop("include", [])
    typed = yaml.safe_load(text)["include"] if includes else []  # the inputs' YAML types
    merged: dict[str, Any] = {}
    for include, given in zip(*(_listed(i) for i in (includes, typed)), strict=True):
        include = dict(include, inputs=given.get("inputs", {}))
        merged = _deep_merge(merged, _included(include, project))
    return _deep_merge(merged, config)


def _listed(includes: Any) -> list[Any]:
    return [includes] if isinstance(includes, dict) else includes


def _included(include: dict[str, Any], project: Path) -> dict[str, Any]:
    if "component" in include:
        match = _THIS_COMPONENT.fullmatch(include["component"])
        assert match, f"the runner only knows this repository's components: {include}"
        path = REPO / "templates" / f"{match.group(1)}.yml"
    elif "remote" in include:
        match = _THIS_REMOTE.fullmatch(include["remote"])
        assert match, f"the runner only knows this repository's templates: {include}"
        path = REPO / match.group(1)
    else:
        path = project / include["local"].lstrip("/")
    documents = list(yaml.load_all(path.read_text(), Loader=yaml.BaseLoader))
    if len(documents) == 1:  # no header: a plain template takes no inputs
        assert not include.get("inputs"), f"{path} declares no inputs"
        return documents[0]
    header, body = documents
    values = _checked_inputs(header["spec"].get("inputs", {}), include.get("inputs", {}), path)
    return _interpolated(body, values)


_INPUT_TYPES = {"string": (str,), "number": (int, float), "boolean": (bool,)}


def _checked_inputs(declared: dict, given: dict, path: Path) -> dict[str, str]:
    """What GitLab checks before it runs anything: known names, every required input
    given, each of its type as YAML reads it (`10` is a number, `"10"` a string),
    `options:` and `regex:`. The values as interpolated text."""
    unknown = set(given) - set(declared)
    assert not unknown, f"{path} has no input {sorted(unknown)}"
    values = {}
    for name, spec in declared.items():
        spec = spec or {}
        assert name in given or "default" in spec, f"{path}: input {name} is required"
        kind = spec.get("type", "string")
        if name in given:
            wanted = _INPUT_TYPES[kind]
            ok = isinstance(given[name], wanted) and (kind == "boolean") == (
                isinstance(given[name], bool)
            )
            assert ok, f"{name}: {given[name]!r} is not a {kind}"
            value = json.dumps(given[name]) if kind != "string" else given[name]
        else:
            value = str(spec["default"])  # as the header wrote it: text already
        if "options" in spec:
            assert value in spec["options"], f"{name}: {value!r} is not one of {spec['options']}"
        if "regex" in spec:
            assert re.search(spec["regex"], value), f"{name}: {value!r} does not match"
        values[name] = value
    return values


def _interpolated(node: Any, values: dict[str, str]) -> Any:
    """`$[[ inputs.x ]]` replaced in every string of the parsed file, keys included: an
    input lands inside a value, it never adds YAML structure."""
    if isinstance(node, dict):
        return {_interpolated(k, values): _interpolated(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolated(item, values) for item in node]
    text = _INTERPOLATION.sub(lambda m: values[m.group(1)], node)
    assert "$[[" not in text, f"an interpolation the runner does not know: {node!r}"
    return text


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _variable(value: Any) -> str:
    """A job variable's value, short (`KEY: value`) or long (`KEY: {value: ..., expand: false}`)."""
    return str(value["value"]) if isinstance(value, dict) else str(value)


def run_gitlab(
    job: dict[str, Any], workspace: Path, env: dict[str, str]
) -> subprocess.CompletedProcess:
    variables = {k: _variable(v) for k, v in job.get("variables", {}).items()}
    entries = [
        entry for entry in [*job.get("before_script", []), *job["script"]] if not is_install(entry)
    ]
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
