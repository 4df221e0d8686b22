"""Where the suite's files are, for tests at any depth under tests/: the repository, tests/,
its vendored data and snapshots, the bundled example and the docs."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
DATA = TESTS / "data"
CASSETTES = DATA / "cassettes"
SNAPSHOTS = TESTS / "snapshots"
EXAMPLE = REPO / "examples" / "support_bot"
DOCS = REPO / "docs"
