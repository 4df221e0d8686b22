"""The floors in pyproject.toml are the versions CI tests as the oldest supported set.

.ci/run installs constraints/oldest.txt and runs the suite against it: a floor that moved
without its pin (or a pin without its floor) would claim support for a set nobody tested.
"""

from __future__ import annotations

import re
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from paths import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself needs tomli before 3.11
    import tomli as tomllib

ROOT = REPO
CONSTRAINTS = ROOT / "constraints" / "oldest.txt"


def runtime_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in requirements}


def oldest_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        [spec] = requirement.specifier
        assert spec.operator == "==", f"constraints/oldest.txt pins with ==: {line}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} is pinned twice in constraints/oldest.txt"
        pins[name] = Version(spec.version)
    return pins


def floor(requirement: Requirement) -> Version:
    """The version of the requirement's single `>=`."""
    floors = [s for s in requirement.specifier if s.operator == ">="]
    assert len(floors) == 1, f"{requirement}: give exactly one >= floor"
    others = [str(s) for s in requirement.specifier if s.operator not in (">=", "<", "!=")]
    assert not others, f"{requirement}: a floor and at most an upper bound, not {others}"
    return Version(floors[0].version)


@pytest.mark.parametrize("name", sorted(runtime_requirements()))
def test_every_runtime_floor_is_its_oldest_pin(name):
    requirement, pins = runtime_requirements()[name], oldest_pins()
    assert name in pins, f"{name} is a dependency with no pin in constraints/oldest.txt"
    assert floor(requirement) == pins[name], (
        f"pyproject.toml says {requirement}, constraints/oldest.txt pins {name}=={pins[name]}: "
        "CI tests the pin, so move both together (and only to a version that passed)"
    )
    assert requirement.marker is None, f"{requirement}: the oldest set is one for every Python"


def test_anthropic_admits_every_major_the_plugin_supports():
    """0.x and 1.x (httpx; httpx2 from 1.x on) and 2.x: projects pinned to any of them install
    the plugin without their pin moving (.ci/run checks 0.98.0 and 1.17.0 by installing)."""
    specifier = runtime_requirements()["anthropic"].specifier
    for version in ("0.98.0", "0.125.0", "1.0.0", "1.17.0", "2.0.0", "2.17.0"):
        assert specifier.contains(version), f"anthropic{specifier} refuses {version}"


def test_ci_installs_the_oldest_set_and_checks_the_pins():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    checked = re.findall(r"^keeps_anthropic_pin \S+ (.*)$", ci, flags=re.MULTILINE)
    # the oldest pin with the whole oldest set, then the last 1.x with the plugin alone
    assert checked == [
        "\"$(pinned anthropic)\" -c constraints/oldest.txt -e '.[test]'",
        "1.17.0 -e .",
    ]
