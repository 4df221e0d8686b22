"""A stand-in for the three `gh` commands the CI recipes use, over a local store.

$FAKE_GH_STORE holds runs.json (the workflow runs `gh run list` sees), pulls.json
(number -> headRefOid and baseRefName) and <run id>/<artifact name>/ folders. Every call is
appended to gh.log, so tests can see what a recipe asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    store = Path(os.environ["FAKE_GH_STORE"])
    with (store / "gh.log").open("a") as log:
        log.write(json.dumps(argv) + "\n")
    for variable in ("GH_TOKEN", "GH_REPO"):
        if not os.environ.get(variable):
            print(f"gh: {variable} is not set", file=sys.stderr)
            return 4
    parser = argparse.ArgumentParser(prog="gh")
    parser.add_argument("group")
    parser.add_argument("verb")
    parser.add_argument("target", nargs="?")
    for flag in ("--workflow", "--branch", "--event", "--status", "--limit", "--json", "--jq"):
        parser.add_argument(flag)
    parser.add_argument("--name")
    parser.add_argument("--dir", default=".")
    args = parser.parse_args(argv)
    if (args.group, args.verb) == ("run", "list"):
        assert args.jq == ".[0].databaseId // empty" and args.json == "databaseId", argv
        runs = (
            json.loads((store / "runs.json").read_text()) if (store / "runs.json").exists() else []
        )
        wanted = {"workflow": args.workflow, "branch": args.branch, "event": args.event}
        found = [
            run
            for run in runs
            if all(run[k] == v for k, v in wanted.items())
            and (args.status in (None, "completed") or run["status"] == args.status)
        ]
        if found:
            print(found[-1]["databaseId"])
        return 0
    if (args.group, args.verb) == ("run", "download"):
        source = store / str(args.target) / str(args.name)
        if not source.is_dir():
            print(f"no artifact matches {args.name}", file=sys.stderr)
            return 1
        shutil.copytree(source, args.dir, dirs_exist_ok=True)
        return 0
    if (args.group, args.verb) == ("pr", "view"):
        assert args.json in ("headRefOid", "baseRefName") and args.jq == "." + args.json, argv
        pulls = json.loads((store / "pulls.json").read_text())
        if args.target not in pulls:
            print(f"no pull requests found for {args.target}", file=sys.stderr)
            return 1
        print(pulls[args.target][args.json])
        return 0
    print(f"fake gh does not know {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
