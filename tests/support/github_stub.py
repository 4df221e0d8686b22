"""A loopback stand-in for the GitHub API calls `tokenbudget comment` makes.

Issue comments of pull requests, paginated as GitHub does (`per_page` up to 100,
`page`, absolute `Link: <...>; rel="next"` URLs), created with POST, edited with
PATCH, each comment with its author's `user` (login, id, type); who a token is, as
GitHub answers it: `GET /user` names a personal access token's user and is a 403
"Resource not accessible by integration" for an installation token (Actions'
GITHUB_TOKEN, a GitHub App's), whose bot GraphQL's `viewer` names. A bearer-token
check (401), switchable 403s and 404s, the 65,536 character body limit (422), canned
answers for hostile-server tests (redirects, echoed tokens, endless bodies), and a
log of every request.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BODY_LIMIT = 65_536


@dataclass(frozen=True)
class Identity:
    """Who a token is: a user (a personal access token) or an app's bot (installation)."""

    login: str
    id: int
    type: str = "User"  # "User" | "Bot"
    installation: bool = False  # GET /user is a 403 for it

    def user(self) -> dict[str, Any]:
        return {"login": self.login, "id": self.id, "type": self.type}


PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
)


def without_proxies(monkeypatch: Any) -> None:
    """urllib sends even a loopback request through a proxy the environment names."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


BOT = "github-actions[bot]"
TOKEN = "ghs_stubTokenForTests"  # Actions' GITHUB_TOKEN: an installation token of its app
PAT = "ghp_stubPersonalAccessTokenForTests"
PAT_USER = "octo-dev"
APP_TOKEN = "ghs_stubGitHubAppTokenForTests"  # another GitHub App's installation token
APP_BOT = "budget-app[bot]"
IDENTITIES = {
    TOKEN: Identity(BOT, 41898282, "Bot", installation=True),
    PAT: Identity(PAT_USER, 583231, "User"),
    APP_TOKEN: Identity(APP_BOT, 151515151, "Bot", installation=True),
}


def known_user(login: str) -> dict[str, Any]:
    """The `user` of a comment by login: a token's identity, else a user of its own."""
    for identity in IDENTITIES.values():
        if identity.login == login:
            return identity.user()
    return {
        "login": login,
        "id": 1_000_000 + sum(map(ord, login)),
        "type": "Bot" if login.endswith("[bot]") else "User",
    }


@dataclass
class Canned:
    """An answer given instead of the API's, to the first `times` matching requests."""

    method: str
    path: str
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | Callable[[Any], None] | None = None  # bytes, or a writer of the body
    times: int = 1_000_000


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
    tokens: dict[str, Identity] = field(default_factory=lambda: dict(IDENTITIES))
    repos: set[str] = field(default_factory=lambda: {"acme/shop"})
    pulls: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    forbid_writes: bool = False  # a read-only token: 403 on POST and PATCH
    graphql: bool = True  # False: no GraphQL endpoint (404)
    canned: list[Canned] = field(default_factory=list)
    log: list[Logged] = field(default_factory=list)
    _next_id: int = 1000

    # -- test helpers --------------------------------------------------------------------
    def open_pull(self, repo: str, number: int) -> None:
        self.pulls.setdefault((repo, number), [])

    def add_comment(
        self, repo: str, number: int, body: str, user: str | dict[str, Any] = "someone"
    ) -> int:
        """A comment by a login (see known_user) or by an explicit `user` object."""
        self._next_id += 1
        comments = self.pulls.setdefault((repo, number), [])
        comments.append(
            {
                "id": self._next_id,
                "body": body,
                "user": known_user(user) if isinstance(user, str) else user,
                "html_url": f"https://github.test/{repo}/pull/{number}#issuecomment-{self._next_id}",
            }
        )
        return self._next_id

    def comments_of(self, repo: str, number: int) -> list[dict[str, Any]]:
        return self.pulls[(repo, number)]

    def calls(self, method: str | None = None, path: str | None = None) -> list[Logged]:
        return [
            c
            for c in self.log
            if (method is None or c.method == method) and (path is None or c.path == path)
        ]

    def respond(self, method: str, path: str, status: int, payload: Any = None, **kw: Any) -> None:
        """Answer `method path` with this instead (see Canned)."""
        self.canned.append(Canned(method, path, status, payload, **kw))

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
        auth = h.headers.get("Authorization") or ""
        self.log.append(Logged(method, parts.path, parse_qs(parts.query), body, auth or None))
        for canned in self.canned:
            if (canned.method, canned.path) == (method, parts.path) and canned.times > 0:
                canned.times -= 1
                return self._send(h, canned.status, canned.payload, canned.headers, canned.raw)
        scheme, _, token = auth.partition(" ")
        identity = self.tokens.get(token) if scheme in ("Bearer", "token") else None
        if identity is None:
            return self._send(h, 401, {"message": "Bad credentials"})
        if parts.path == "/user" and method == "GET":
            if identity.installation:
                return self._send(h, 403, {"message": "Resource not accessible by integration"})
            return self._send(h, 200, identity.user())
        if parts.path == "/graphql" and method == "POST" and self.graphql:
            if "viewer" not in str((body or {}).get("query")):
                return self._send(h, 200, {"errors": [{"message": "unsupported query"}]})
            viewer = {"login": identity.login, "databaseId": identity.id}
            return self._send(h, 200, {"data": {"viewer": viewer}})
        listing, editing = _LIST.match(parts.path), _EDIT.match(parts.path)
        if listing and method in ("GET", "POST"):
            owner, name, number = listing.groups()
            key = (f"{owner}/{name}", int(number))
            if key[0] not in self.repos or key not in self.pulls:
                return self._send(h, 404, {"message": "Not Found"})
            if method == "GET":
                return self._page(h, key, parse_qs(parts.query))
            return self._write(h, lambda: self._create(key, body, identity))
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

    def _create(self, key: tuple[str, int], body: Any, author: Identity) -> tuple[int, Any]:
        text = (body or {}).get("body", "")
        if len(text) > BODY_LIMIT:
            return 422, {
                "message": "Validation Failed: body is too long (maximum is 65536 characters)"
            }
        comment_id = self.add_comment(key[0], key[1], text, user=author.user())
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
        h: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict | None = None,
        raw: bytes | Callable[[Any], None] | None = None,
    ) -> None:
        data = raw if isinstance(raw, bytes) else json.dumps(payload).encode("utf-8")
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        if callable(raw):
            h.send_header("Connection", "close")  # no length: the body ends when we close
        else:
            h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        # the client may stop reading: what a bounded client does
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            raw(h.wfile) if callable(raw) else h.wfile.write(data)
