"""What a user installs: the wheel and sdist `python -m build` makes, installed in a new
venv, and the pre-commit hook from this repository, run as pre-commit runs it.

The two end-to-end tests run in fresh environments of their own (a new venv, pre-commit's):
a separate process is the behaviour under test. They cost tens of seconds of CPU each (pip
installs every dependency, from a folder of this venv's packages), so there are two.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import wheelhouse
import yaml
from packaging.requirements import Requirement
from paths import REPO
from project_files import copy_example

import pytest_tokenbudget

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself needs tomli before 3.11
    import tomli as tomllib

RELEASE = REPO / ".github" / "workflows" / "release.yml"


@pytest.fixture(scope="module", autouse=True)
def local_wheels(wheelhouse_dir):
    """pip, wherever these tests start it (build's isolated environments, the new venv,
    pre-commit's hook environment), installs from this venv's own distributions repacked as
    wheels (tests/support/wheelhouse.py), with no index and no byte-compiling: the same
    requirements resolved, without downloading them (~20 s of CPU less)."""
    with pytest.MonkeyPatch.context() as env:
        for name, value in wheelhouse.pip_env(wheelhouse_dir).items():
            env.setenv(name, value)
        yield


GOOD_CONFIG = """\
endpoints:
  chat_reply:
    target_model: claude-sonnet-4-6
    max_input_tokens_p95: 4000
    cases: budget_cases/chat_reply.yml
"""
CASES = "- id: refund\n  input: When will I get my refund?\n"


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode()


def hook_repository(where: Path) -> str:
    """This repository at HEAD with the hook manifest as it is on disk, committed in a clone:
    what a user's config pins. Its commit. (Not the rest of the working tree: other work in
    progress there may not run yet.)"""
    git("clone", "--quiet", str(REPO), str(where), cwd=REPO)
    (where / ".pre-commit-hooks.yaml").write_bytes((REPO / ".pre-commit-hooks.yaml").read_bytes())
    git("add", "--all", cwd=where)
    git("commit", "--quiet", "--allow-empty", "-m", "the hook manifest on disk", cwd=where)
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


# -- the release: one version, the sdist and the wheel -------------------------------------
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_installed_version_is_the_package_version():
    """pyproject.toml reads the version from pytest_tokenbudget.__version__ (one place)."""
    project = pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    attr = pyproject()["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "pytest_tokenbudget.__version__"
    assert importlib.metadata.version("pytest-tokenbudget") == pytest_tokenbudget.__version__


# The repository users install from before the first release (README, docs) and whose
# action and hook they use: github.com/OWNER/pytest-tokenbudget, `uses: OWNER/...`.
GITHUB_REPOSITORY = re.compile(
    r"(?:github\.com/|githubusercontent\.com/|uses: )([\w.-]+)/pytest-tokenbudget\b"
)


def test_the_readme_and_docs_name_one_repository_to_install_from():
    texts = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    owners = {o for path in texts for o in GITHUB_REPOSITORY.findall(path.read_text())}
    assert len(owners) == 1, owners  # a placeholder until pyproject.toml names the repository
    [owner] = owners
    url = f"https://github.com/{owner}/pytest-tokenbudget"
    readme = (REPO / "README.md").read_text()
    assert f'`pip install "pytest-tokenbudget @ git+{url}@main"`' in readme
    assert "`pip install pytest-tokenbudget`" in readme  # the index form beside it
    for where in pyproject()["project"].get("urls", {}).values():
        if "github.com/" in where:
            assert where.rstrip("/").removesuffix(".git") == url, where


def distributions(tmp_path: Path) -> tuple[Path, Path]:
    """The sdist and the wheel: .ci/run's (TOKENBUDGET_DIST, built from this checkout just
    before the tests) when given, else built here, the wheel from the sdist as a release is."""
    dist = Path(os.environ.get("TOKENBUDGET_DIST") or tmp_path / "dist")
    if not os.environ.get("TOKENBUDGET_DIST"):
        built = subprocess.run(
            [sys.executable, "-m", "build", "--quiet", "--outdir", str(dist), str(REPO)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    version = pytest_tokenbudget.__version__
    [sdist] = dist.glob(f"pytest_tokenbudget-{version}.tar.gz")
    [wheel] = dist.glob(f"pytest_tokenbudget-{version}-py3-none-any.whl")
    return sdist, wheel


def test_the_wheel_installs_in_a_new_venv_and_runs_the_example(tmp_path, one_ca_bundle):
    sdist, wheel = distributions(tmp_path)
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"} <= names
    assert not [n for n in names if n.startswith(("tests/", "examples/"))]  # MANIFEST.in
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
    assert "pytest_tokenbudget/config/config_schema.json" in wheel_names  # package data
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in wheel_names)

    venv = tmp_path / "venv"  # its own site-packages only: every dependency from the wheel's
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-compile",
            str(wheel),
        ],
        capture_output=True,
        check=True,
        timeout=600,
    )
    project = tmp_path / "project"  # outside the checkout: nothing imported from it
    project.mkdir()
    copy_example(project)
    (project / "conftest.py").write_text("")  # support_bot.py on sys.path, the rootdir
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "PYTEST_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env["PATH"]])
    env["SSL_CERT_FILE"] = str(one_ca_bundle)  # no TLS: the example replays

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=project, env=env, capture_output=True, text=True, timeout=600
        )

    version = pytest_tokenbudget.__version__
    where = run(
        str(python),
        "-c",
        "import pytest_tokenbudget as p, importlib.metadata as m; "
        "print(p.__file__); print(m.version('pytest-tokenbudget'))",
    )
    location, installed = where.stdout.split()
    assert Path(location).is_relative_to(venv) and installed == version
    assert run("tokenbudget", "check").returncode == 0

    result = run(str(python), "-m", "pytest", "--token-budget", "-p", "no:cacheprovider")

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "token budget: PASS: All 2 endpoints within budget" in result.stdout
    assert (project / ".token-budget" / "report.json").is_file()

    # the release workflow's check that the pushed tag is this version, on these files
    (tmp_path / "tagged").mkdir()
    (tmp_path / "tagged" / "dist").symlink_to(sdist.parent)
    for tag, code in ((f"v{version}", 0), ("v0.0.0", 1), (version, 1)):
        tagged = subprocess.run(
            ["bash", "-ec", release_step("The tag is the version")["run"]],
            cwd=tmp_path / "tagged",
            env={**env, "GITHUB_REF_NAME": tag},
            capture_output=True,
            text=True,
        )
        assert tagged.returncode == code, (tag, tagged.stdout, tagged.stderr)
    assert f"::error::tag {version} is not v + the version" in tagged.stdout


def release_workflow() -> dict:
    return yaml.load(RELEASE.read_text(), Loader=yaml.BaseLoader)  # `on:` stays a key


def release_step(name: str) -> dict:
    [step] = [s for s in release_workflow()["jobs"]["build"]["steps"] if s.get("name") == name]
    return step


def test_the_release_workflow_publishes_a_version_tag_with_trusted_publishing():
    flow = release_workflow()
    assert flow["on"] == {"push": {"tags": ["v*"]}}
    assert flow["permissions"] == {"contents": "read"}
    build, publish = flow["jobs"]["build"], flow["jobs"]["publish"]
    assert "permissions" not in build  # the OIDC token only in the job that publishes
    assert publish["needs"] == "build"
    assert publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    uses = [step.get("uses", "") for step in publish["steps"]]
    assert uses[-1].startswith("pypa/gh-action-pypi-publish@")
    [upload] = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-")]
    [download] = [s for s in publish["steps"] if s.get("uses", "").startswith("actions/download-")]
    assert upload["with"]["name"] == download["with"]["name"]
    assert upload["with"]["path"] == download["with"]["path"] == "dist/"
    # built with the build and twine .ci/run uses: the dev extra's pins
    project = pyproject()["project"]
    dev = {
        Requirement(r).name: str(Requirement(r).specifier)
        for r in project["optional-dependencies"]["dev"]
    }
    installed = re.findall(r"([\w.-]+)(==[\w.]+)", release_step("Build")["run"])
    assert installed and all(dev[name] == pin for name, pin in installed), installed
    assert {name for name, _ in installed} == {"build", "twine"}
