"""A loopback stand-in for the GitLab API calls of the CI component (templates/).

Merge request notes (`GET`, paginated with `X-Next-Page` as GitLab does; `POST`; `PUT`,
by their author only) under a `PRIVATE-TOKEN`, whose user `GET /user` names; and the job
artifacts API's `raw` file of a branch's last pipeline under a `JOB-TOKEN`, answered, as
GitLab does with object storage, by a redirect to another host name of this server
(`localhost` instead of `127.0.0.1`). Every request is logged with the token headers it
carried.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PROJECT = "5"
NOTE_TOKEN = "glpat-stubNoteTokenForTests"  # a project access token, its bot user below
NOTE_USER = {"id": 4242, "username": "project_5_bot_token_budget"}
JOB_TOKEN = "glcbt-stubJobTokenForTests"

_NOTES = re.compile(r"^/api/v4/projects/(\w+)/merge_requests/(\d+)/notes(?:/(\d+))?$")
_ARTIFACT = re.compile(r"^/api/v4/projects/(\w+)/jobs/artifacts/([^/]+)/raw/(.+)$")


@dataclass
class Logged:
    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    private_token: str | None
    job_token: str | None


@dataclass
class GitLabStub:
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # MR iid -> notes
    artifacts: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # ref, job, path
    log: list[Logged] = field(default_factory=list)
    per_page_limit: int = 100
    _next_id: int = 500
    _blobs: dict[str, bytes] = field(default_factory=dict)

    def add_note(self, iid: int, body: str, author: dict[str, Any]) -> int:
        self._next_id += 1
        self.notes.setdefault(iid, []).append({"id": self._next_id, "body": body, "author": author})
        return self._next_id

    def calls(self, method: str, pattern: str) -> list[Logged]:
        return [c for c in self.log if c.method == method and re.search(pattern, c.path)]

    # -- server --------------------------------------------------------------------------
    def __enter__(self) -> GitLabStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_POST(self) -> None:
                stub._handle(self, "POST")

            def do_PUT(self) -> None:
                stub._handle(self, "PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v4"

    # -- the API -------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length)) if length else None
        private, job = h.headers.get("PRIVATE-TOKEN"), h.headers.get("JOB-TOKEN")
        host = (h.headers.get("Host") or "").split(":")[0]
        self.log.append(Logged(method, host, parts.path, parse_qs(parts.query), private, job))
        if parts.path.startswith("/storage/"):  # object storage: no token wanted or read
            blob = self._blobs.get(parts.path[len("/storage/") :])
            if blob is None:
                return self._send(h, 404, {"message": "NoSuchKey"})
            return self._send(h, 200, raw=blob)
        artifact = _ARTIFACT.match(parts.path)
        if artifact and method == "GET":
            return self._artifact(h, artifact, parse_qs(parts.query), job)
        if private != NOTE_TOKEN:
            return self._send(h, 401, {"message": "401 Unauthorized"})
        if parts.path == "/api/v4/user" and method == "GET":
            return self._send(h, 200, NOTE_USER)
        notes = _NOTES.match(parts.path)
        if notes is None or notes.group(1) != PROJECT:
            return self._send(h, 404, {"message": "404 Not found"})
        iid, note_id = int(notes.group(2)), notes.group(3)
        if method == "GET" and note_id is None:
            return self._page(h, iid, parse_qs(parts.query))
        if method == "POST" and note_id is None:
            created = self.add_note(iid, (body or {})["body"], NOTE_USER)
            return self._send(h, 201, self.notes[iid][-1] | {"id": created})
        if method == "PUT" and note_id is not None:
            [note] = [n for n in self.notes.get(iid, []) if n["id"] == int(note_id)] or [None]
            if note is None:
                return self._send(h, 404, {"message": "404 Not found"})
            if note["author"]["id"] != NOTE_USER["id"]:
                return self._send(h, 403, {"message": "403 Forbidden"})
            note["body"] = (body or {})["body"]
            return self._send(h, 200, note)
        return self._send(h, 404, {"message": "404 Not found"})

    def _artifact(self, h: BaseHTTPRequestHandler, match: re.Match, query: dict, job: Any) -> None:
        project, ref, path = match.groups()
        key = (unquote(ref), query.get("job", [""])[0], unquote(path))
        if job != JOB_TOKEN or project != PROJECT:
            return self._send(h, 401, {"message": "401 Unauthorized"})
        if key not in self.artifacts:
            return self._send(h, 404, {"message": "404 Not Found"})
        blob = hashlib.sha256(self.artifacts[key]).hexdigest()[:16]
        self._blobs[blob] = self.artifacts[key]
        return self._send(
            h, 302, headers={"Location": f"http://localhost:{self.port}/storage/{blob}"}
        )

    def _page(self, h: BaseHTTPRequestHandler, iid: int, query: dict) -> None:
        per_page = min(int(query.get("per_page", ["20"])[0]), self.per_page_limit)
        page = int(query.get("page", ["1"])[0])
        notes = self.notes.get(iid, [])
        chunk = notes[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(notes)
        self._send(h, 200, chunk, {"X-Next-Page": str(page + 1) if more else ""})

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        data = raw if raw is not None else json.dumps(payload).encode("utf-8")
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)
