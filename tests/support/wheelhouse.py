"""Wheels of what this test venv has installed, for the README's install in a fresh copy.

`pip install -e '.[test]'` from the package index costs ~60 s of CPU here (resolving ~65
projects, downloading ~40 MB, byte-compiling 7,000 files); from a folder of wheels, with no
index and no byte-compiling, ~20 s. The wheels are this venv's own distributions repacked
(the files their RECORD lists), so the fresh venv gets the versions the suite runs with
(on CI, what `.ci/run` has just installed from the index). Build requirements this venv
lacks (setuptools for an editable build) are downloaded, without their dependencies.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as metadata
import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

_SKIPPED_METADATA = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}


def closure(project: str, extras: set[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions `project[extras]` requires, the project left out."""
    found: dict[str, metadata.Distribution] = {}
    todo = _requirements(metadata.distribution(project), extras)
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name not in found:
            found[name] = metadata.distribution(req.name)
            todo.extend(_requirements(found[name], set(req.extras)))
    return found


def _requirements(dist: metadata.Distribution, extras: set[str]) -> list[Requirement]:
    wanted = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
            wanted.append(req)
    return wanted


def repack(dist: metadata.Distribution, folder: Path) -> Path:
    """One installed distribution as a wheel (stored, not compressed: pip unpacks it once)."""
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    info = f"{name}-{dist.version}.dist-info"
    scripts = {
        ep.name for ep in dist.entry_points if ep.group in ("console_scripts", "gui_scripts")
    }
    wheel = folder / f"{name}-{dist.version}-{_tag(dist)}.whl"
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        for entry in dist.files or ():
            source = Path(str(dist.locate_file(entry)))
            parts = entry.parts
            if "__pycache__" in parts or entry.suffix == ".pyc" or not source.is_file():
                continue
            if parts[0] == "..":  # a script in the venv's bin: pip writes console scripts
                if parts[-2] != "bin" or entry.name in scripts:
                    continue
                data = _python_shebang(source.read_bytes())
                arcname = f"{name}-{dist.version}.data/scripts/{entry.name}"
            elif parts[0].endswith(".dist-info"):
                if entry.name in _SKIPPED_METADATA:
                    continue
                data, arcname = source.read_bytes(), f"{info}/{entry.name}"
            else:
                data, arcname = source.read_bytes(), str(entry)
            zf.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append((arcname, f"sha256={digest.decode()}", str(len(data))))
        record.append((f"{info}/RECORD", "", ""))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(record)
        zf.writestr(f"{info}/RECORD", out.getvalue())
    return wheel


def _tag(dist: metadata.Distribution) -> str:
    """The wheel's compressed tag set, from the tags its WHEEL file lists."""
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    parts = [sorted({tag.split("-")[i] for tag in tags}) for i in range(3)]
    return "-".join(".".join(p) for p in parts) if tags else "py3-none-any"


def _python_shebang(data: bytes) -> bytes:
    """A script's shebang as a wheel carries it (pip points it at the new venv's python)."""
    first, sep, rest = data.partition(b"\n")
    return b"#!python" + sep + rest if first.startswith(b"#!") and b"python" in first else data


def build(project_dir: Path, project: str, extras: set[str], folder: Path) -> Path:
    """A folder of wheels for `pip install -e 'project_dir[extras]'` with no index."""
    folder.mkdir(parents=True, exist_ok=True)
    dists = closure(project, extras)
    missing = []
    for req in _build_requires(project_dir):
        if _installed(req):
            dists.setdefault(canonicalize_name(req.name), metadata.distribution(req.name))
        else:
            missing.append(str(req))
    for dist in dists.values():
        repack(dist, folder)
    if missing:
        download = ["download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(folder)]
        command = [sys.executable, "-m", "pip", *download, *missing]
        subprocess.run(command, check=True, capture_output=True)
    return folder


def _build_requires(project_dir: Path) -> list[Requirement]:
    """[build-system] requires of pyproject.toml (a one-line list, as this project's is)."""
    text = (project_dir / "pyproject.toml").read_text()
    [listed] = re.findall(r"^requires\s*=\s*\[(.*?)\]", text, re.MULTILINE)
    return [Requirement(item) for item in re.findall(r"\"([^\"]+)\"", listed)]


def _installed(req: Requirement) -> bool:
    try:
        return req.specifier.contains(metadata.version(req.name), prereleases=True)
    except metadata.PackageNotFoundError:
        return False


def pip_env(folder: Path) -> dict[str, str]:
    """The environment that makes pip install from `folder` alone: no index, and no
    byte-compiling (PIP_COMPILE=0: pip reads PIP_NO_COMPILE=1 as --compile)."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder), "PIP_COMPILE": "0"}
