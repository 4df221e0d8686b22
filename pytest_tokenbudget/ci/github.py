"""The GitHub REST API, just as far as the sticky comment needs it (stdlib only).

The token only ever goes to the API host: GITHUB_API_URL is checked, no redirect is
followed (a 3xx is an error), a next-page link to another host is refused, answers are
read up to a size limit, and what the server says is printed with the token masked.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_tokenbudget.errors import TokenBudgetError
from pytest_tokenbudget.providers.scrub import replace_keys

DEFAULT_API = "https://api.github.com"
MAX_PAGES = 100  # 10,000 comments: beyond that, something else is wrong
TIMEOUT_S = 30
MAX_ANSWER_BYTES = 10 * 1024 * 1024  # a page of 100 comments is at most ~7 MiB
MAX_ERROR_BYTES = 64 * 1024  # an error answer: only its message is read
# The identity GitHub Actions' GITHUB_TOKEN writes as, on github.com and on Enterprise
# Server: `[bot]` logins belong to GitHub Apps, no user can take one.
ACTIONS_BOT = "github-actions[bot]"
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(?:\[bot\])?")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")
_URL_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]*)*")
# GitHub's own token shapes (classic, fine-grained, OAuth, app, refresh): masked in what
# the server says, beside the token itself and the key shapes of providers/scrub.py.
_GITHUB_TOKEN_SHAPE = re.compile(r"\b(?:gh[opsur]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})")
MASK = "***"


class GitHubError(TokenBudgetError):
    """The GitHub API refused or could not be reached; the message says why in one line."""

    def __init__(
        self, message: str, *, status: int | None = None, rate_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status GitHub answered, when it answered one
        self.rate_limited = rate_limited


# -- what the server says, made safe to print --------------------------------------------
def shown(text: str, token: str = "", limit: int = 300) -> str:
    """Server-chosen text as one printable line: the token and key shapes masked, cut.

    Line breaks and tabs become spaces and other unprintable characters are dropped
    before masking (a token with a NUL inside is still the token); no line break
    survives to forge a workflow command or a second line.
    """
    text = "".join(c if c.isprintable() else " " if c.isspace() else "" for c in text)
    text = " ".join(text.split())
    if token:
        text = text.replace(token, MASK)
    text = _GITHUB_TOKEN_SHAPE.sub(MASK, text)
    text = replace_keys(text, lambda _: MASK)
    return text if len(text) <= limit else text[:limit] + "…"


def _host_of(url: str, token: str) -> str:
    """Just the host[:port] of a server-chosen URL, for a message: never its user name,
    password, path or query, and its case kept so that a token in it is masked."""
    try:
        host = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
    except ValueError:  # "http://[::1": not even a host
        host = ""
    return shown(host, token, limit=100) or "an unnamed host"


# -- where the token may go ----------------------------------------------------------------
def api_url(text: str) -> str:
    """GITHUB_API_URL as a base URL the token may be sent to, else a GitHubError why not.

    https only (http for a loopback host, which tests use); a host, an optional port
    and path (GitHub Enterprise Server's /api/v3), nothing else: no user name or
    password, query, fragment, whitespace or control character.
    """
    problem = _api_url_problem(text)
    if problem:
        raise GitHubError(f"GITHUB_API_URL {problem}; it is where the token is sent")
    return text.rstrip("/")


def _api_url_problem(text: str) -> str | None:
    """What is wrong with an API URL, never quoting more of it than the part at fault
    (the whole value may hold a password)."""
    odd = next((c for c in text if not c.isascii() or c.isspace() or not c.isprintable()), "")
    if odd:
        return f"holds whitespace, a control or a non-ASCII character ({odd!a})"
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return "is not a well-formed URL"
    if "@" in parts.netloc:
        return "must not hold a user name or password (user@host)"
    if parts.scheme not in ("https", "http"):
        shown_scheme = f"{shown(parts.scheme, limit=20)!r}" if parts.scheme else "none"
        return f"must be an https:// URL (its scheme: {shown_scheme})"
    host = parts.hostname or ""
    if not host or (port is None and parts.netloc.endswith(":")):
        return "has no host or no port after its colon"
    if not (_HOST_NAME.fullmatch(host) or _is_ip(host)):
        return f"has an invalid host ({shown(host, limit=100)})"
    if parts.scheme == "http" and not _is_loopback(host):
        return (
            f"must be https: http://{host} would carry the token unencrypted (http is "
            "accepted only for a loopback host: 127.0.0.1, ::1, localhost)"
        )
    if parts.query or parts.fragment or "?" in text or "#" in text:
        return "must not have a query (?) or fragment (#)"
    if not _URL_PATH.fullmatch(parts.path) or "/../" in f"{parts.path}/":
        return f"has an invalid path ({shown(parts.path, limit=100)})"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _graphql_url(api: str) -> str:
    """GitHub's GraphQL endpoint beside a REST base: /graphql, or /api/graphql on GHES."""
    if api.endswith("/api/v3"):
        return api[: -len("v3")] + "graphql"
    return api + "/graphql"


def _opener() -> urllib.request.OpenerDirector:
    """Only the handlers a JSON API needs: no redirect handler (a 3xx is an error, so no
    redirect can take the token anywhere), no file:, ftp: or data: handler."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),  # HTTPS_PROXY and friends, read now
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


# -- whose comment it is -------------------------------------------------------------------
@dataclass(frozen=True)
class Author:
    """The identity the token writes as: the only author whose marked comment is ours."""

    login: str
    user_id: int | None = None  # None when only the login is known (the Actions fallback)

    def wrote(self, comment: Mapping[str, Any]) -> bool:
        user = comment.get("user")
        if not isinstance(user, dict) or user.get("login") != self.login:
            return False
        if self.login.endswith("[bot]") and user.get("type") != "Bot":
            return False
        # The id as well as the login: a renamed account's old login can be taken.
        return self.user_id is None or (is_int(user.get("id")) and user["id"] == self.user_id)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def json_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- the API -----------------------------------------------------------------------------
class GitHub:
    """Just the calls the sticky comment needs, to the API host and nowhere else."""

    def __init__(self, token: str, *, api: str = DEFAULT_API, repo: str, pr: int) -> None:
        self.token = token
        self.api = api_url(api)
        self.repo = repo
        self.pr = pr
        self._origin = urllib.parse.urlsplit(self.api)[:2]
        self._opener = _opener()

    def author(self) -> Author:
        """Who the token writes as.

        A personal access token is a user: `GET /user` names it. A GitHub App's
        installation token (Actions' GITHUB_TOKEN is one) gets a 403 there ("Resource
        not accessible by integration"); GraphQL's `viewer` names its bot, and when
        GraphQL does not answer, it is Actions' own bot.
        """
        try:
            user = json_object(self._call("GET", f"{self.api}/user")[0])
        except GitHubError as err:
            if err.status != 403 or err.rate_limited:
                raise
            return self._viewer() or Author(ACTIONS_BOT)
        login, user_id = user.get("login"), user.get("id")
        if not isinstance(login, str) or not _LOGIN.fullmatch(login) or not is_int(user_id):
            raise GitHubError(
                f"the GitHub API at {self.api} answered GET /user without a login and id"
            )
        return Author(login, user_id)

    def _viewer(self) -> Author | None:
        query = {"query": "query { viewer { login databaseId } }"}
        try:
            answer = json_object(self._call("POST", _graphql_url(self.api), query)[0])
        except GitHubError:
            return None
        viewer = json_object(json_object(answer.get("data")).get("viewer"))
        login, user_id = viewer.get("login"), viewer.get("databaseId")
        if not isinstance(login, str) or not _LOGIN.fullmatch(login):
            return None
        return Author(login, user_id if is_int(user_id) else None)

    def comments(self) -> Iterator[dict[str, Any]]:
        """Every comment on the pull request, following the Link: rel="next" pages."""
        url: str | None = f"{self.api}/repos/{self.repo}/issues/{self.pr}/comments?per_page=100"
        for _ in range(MAX_PAGES):
            if url is None:
                return
            page, headers = self._call("GET", url)
            if not isinstance(page, list):
                raise GitHubError(
                    f"the GitHub API at {self.api} answered the list of comments with "
                    "something that is not a list"
                )
            yield from (c for c in page if isinstance(c, dict))
            url = _next_link(headers.get("Link", ""))
            if url is not None and not self._same_origin(url):
                raise GitHubError(
                    "refusing to follow a next-page link to another host "
                    f"({_host_of(url, self.token)}): the token is only sent to {self.api}"
                )

    def create(self, body: str) -> dict[str, Any]:
        url = f"{self.api}/repos/{self.repo}/issues/{self.pr}/comments"
        return json_object(self._call("POST", url, {"body": body})[0])

    def update(self, comment_id: int, body: str) -> dict[str, Any]:
        url = f"{self.api}/repos/{self.repo}/issues/comments/{comment_id}"
        return json_object(self._call("PATCH", url, {"body": body})[0])

    def _same_origin(self, url: str) -> bool:
        try:
            return urllib.parse.urlsplit(url)[:2] == self._origin
        except ValueError:
            return False

    def _call(
        self, method: str, url: str, payload: dict[str, Any] | None = None
    ) -> tuple[Any, Any]:
        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", "pytest-tokenbudget")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=TIMEOUT_S) as response:
                raw = response.read(MAX_ANSWER_BYTES + 1)
                headers = response.headers
        except urllib.error.HTTPError as err:
            raise self._explain(err, method, url) from None
        except urllib.error.URLError as err:
            raise GitHubError(
                f"cannot reach the GitHub API at {self.api}: {shown(str(err.reason), self.token)}"
            ) from None
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise GitHubError(
                f"cannot reach the GitHub API at {self.api}: {shown(str(err), self.token)}"
            ) from None
        if len(raw) > MAX_ANSWER_BYTES:
            raise GitHubError(
                f"the GitHub API at {self.api} answered {method} with more than "
                f"{MAX_ANSWER_BYTES // (1024 * 1024)} MiB: not read further"
            )
        try:
            return json.loads(raw or b"null"), headers
        except (ValueError, RecursionError):
            raise GitHubError(
                f"the GitHub API at {self.api} answered {method} with non-JSON"
            ) from None

    def _explain(self, err: urllib.error.HTTPError, method: str, url: str) -> GitHubError:
        try:
            message = json.loads(err.read(MAX_ERROR_BYTES) or b"{}").get("message", "")
        except (ValueError, AttributeError, OSError, RecursionError, http.client.HTTPException):
            message = ""
        message = shown(message, self.token) if isinstance(message, str) else ""
        said = f' (GitHub said: "{message}")' if message else ""
        where = f"{self.repo} pull request #{self.pr}"
        if 300 <= err.code < 400:
            target = err.headers.get("Location") or ""
            with contextlib.suppress(ValueError):  # not a URL: said to be elsewhere
                target = urllib.parse.urljoin(url, target) if target else ""
            if not target:
                to, hint = "without a Location", ""
            elif self._same_origin(target):
                to = "to another path on the same host"
                hint = " (a renamed or moved repository? pass its current OWNER/NAME with --repo)"
            else:
                to, hint = f"to {_host_of(target, self.token)}", ""
            return GitHubError(
                f"the GitHub API at {self.api} answered {method} with a redirect "
                f"(HTTP {err.code}) {to}: not followed, the token is only ever sent to "
                f"{self.api}{hint}",
                status=err.code,
            )
        if err.code == 401:
            text = (
                "GitHub rejected the token (HTTP 401): GITHUB_TOKEN is invalid, expired or "
                "for another GitHub host (GITHUB_API_URL)"
            )
        elif err.code == 403 and err.headers.get("X-RateLimit-Remaining") == "0":
            return GitHubError(
                "GitHub's API rate limit is exhausted (HTTP 403): try again later",
                status=403,
                rate_limited=True,
            )
        elif err.code == 403:
            text = (
                f"GitHub refused to {'read' if method == 'GET' else 'write'} comments on {where} "
                "(HTTP 403): the token lacks the `pull-requests: write` permission. Add "
                "`permissions: {pull-requests: write}` to the job; a pull_request run from a "
                "fork only ever gets a read-only token (use the workflow_run recipe in docs/ci.md)"
            )
        elif err.code == 404:
            text = (
                f"not found (HTTP 404): no repository {self.repo} with a pull request "
                f"#{self.pr} that this token can see: check --repo and --pr"
            )
        elif err.code == 422:
            text = "GitHub did not accept the comment (HTTP 422)"
        else:
            text = f"the GitHub API answered HTTP {err.code} to {method}"
        return GitHubError(text + said, status=err.code)


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        match = _NEXT.search(part)
        if match:
            return match.group(1)
    return None
