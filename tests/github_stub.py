"""A loopback stand-in for the three GitHub REST calls `tokenbudget comment` makes.

Issue comments of pull requests, paginated as GitHub does (`per_page` up to 100,
`page`, absolute `Link: <...>; rel="next"` URLs), created with POST, edited with
PATCH; a bearer-token check (401), switchable 403s and 404s, the 65,536
character body limit (422), and a log of every request.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghs_stubTokenForTests"
BOT = "github-actions[bot]"
BODY_LIMIT = 65_536
_LIST = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")
_EDIT = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$")


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


@dataclass
class GitHubStub:
    token: str = TOKEN
    repos: set[str] = field(default_factory=lambda: {"acme/shop"})
    pulls: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    forbid_writes: bool = False  # a read-only token: 403 on POST and PATCH
    log: list[Logged] = field(default_factory=list)
    _next_id: int = 1000

    # -- test helpers --------------------------------------------------------------------
    def open_pull(self, repo: str, number: int) -> None:
        self.pulls.setdefault((repo, number), [])

    def add_comment(self, repo: str, number: int, body: str, user: str = "someone") -> int:
        self._next_id += 1
        comments = self.pulls.setdefault((repo, number), [])
        comments.append(
            {
                "id": self._next_id,
                "body": body,
                "user": {"login": user},
                "html_url": f"https://github.test/{repo}/pull/{number}#issuecomment-{self._next_id}",
            }
        )
        return self._next_id

    def comments_of(self, repo: str, number: int) -> list[dict[str, Any]]:
        return self.pulls[(repo, number)]

    def calls(self, method: str | None = None) -> list[Logged]:
        return [c for c in self.log if method is None or c.method == method]

    # -- server --------------------------------------------------------------------------
    def __enter__(self) -> GitHubStub:  # noqa: PYI034
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_POST(self) -> None:
                stub._handle(self, "POST")

            def do_PATCH(self) -> None:
                stub._handle(self, "PATCH")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- the API -------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        auth = h.headers.get("Authorization")
        self.log.append(Logged(method, parts.path, parse_qs(parts.query), body, auth))
        if auth not in (f"Bearer {self.token}", f"token {self.token}"):
            return self._send(h, 401, {"message": "Bad credentials"})
        listing, editing = _LIST.match(parts.path), _EDIT.match(parts.path)
        if listing and method in ("GET", "POST"):
            owner, name, number = listing.groups()
            key = (f"{owner}/{name}", int(number))
            if key[0] not in self.repos or key not in self.pulls:
                return self._send(h, 404, {"message": "Not Found"})
            if method == "GET":
                return self._page(h, key, parse_qs(parts.query))
            return self._write(h, lambda: self._create(key, body))
        if editing and method == "PATCH":
            owner, name, comment_id = editing.groups()
            found = [
                c
                for (repo, _), comments in self.pulls.items()
                if repo == f"{owner}/{name}"
                for c in comments
                if c["id"] == int(comment_id)
            ]
            if f"{owner}/{name}" not in self.repos or not found:
                return self._send(h, 404, {"message": "Not Found"})
            return self._write(h, lambda: self._edit(found[0], body))
        return self._send(h, 404, {"message": "Not Found"})

    def _write(self, h: BaseHTTPRequestHandler, action: Any) -> None:
        if self.forbid_writes:
            return self._send(h, 403, {"message": "Resource not accessible by integration"})
        status, payload = action()
        self._send(h, status, payload)

    def _create(self, key: tuple[str, int], body: Any) -> tuple[int, Any]:
        text = (body or {}).get("body", "")
        if len(text) > BODY_LIMIT:
            return 422, {
                "message": "Validation Failed: body is too long (maximum is 65536 characters)"
            }
        comment_id = self.add_comment(key[0], key[1], text, user=BOT)
        return 201, self.comments_of(*key)[-1] | {"id": comment_id}

    def _edit(self, comment: dict[str, Any], body: Any) -> tuple[int, Any]:
        text = (body or {}).get("body", "")
        if len(text) > BODY_LIMIT:
            return 422, {
                "message": "Validation Failed: body is too long (maximum is 65536 characters)"
            }
        comment["body"] = text
        return 200, comment

    def _page(self, h: BaseHTTPRequestHandler, key: tuple[str, int], query: dict) -> None:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        comments = self.comments_of(*key)
        last = max(1, -(-len(comments) // per_page))
        chunk = comments[(page - 1) * per_page : page * per_page]
        base = f"http://{h.headers['Host']}/repos/{key[0]}/issues/{key[1]}/comments"
        links = []
        if page < last:
            links.append(f'<{base}?per_page={per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{base}?per_page={per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?per_page={per_page}&page=1>; rel="first"')
            links.append(f'<{base}?per_page={per_page}&page={page - 1}>; rel="prev"')
        self._send(h, 200, chunk, {"Link": ", ".join(links)} if links else {})

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict | None = None
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)
