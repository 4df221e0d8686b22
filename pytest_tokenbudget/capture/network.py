"""Sockets refused for a while: what a request reaches below the transport is a mock's.

Replay offers a request it has no recording of to the layers under the HTTP transport
when a mock sits there (respx patches httpcore's pools); with every socket refused, only
that mock can answer it. A request that is no LLM API call and goes to a server of the
test's own on loopback may connect: that server is a mock too.

The guard is installed once, however many windows overlap (threads, asyncio tasks), and
removed when the last closes; which calls it refuses is the window's own context
(a context variable), so code outside a window, in other threads, is never refused.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# None: not in a window; else whether loopback connections are let through
_POLICY: ContextVar[bool | None] = ContextVar("pytest_tokenbudget_network", default=None)
_LOCK = threading.Lock()
_installed: list[tuple[Any, str, Any]] = []
_depth = 0


class NetworkBlocked(OSError):
    """Raised by a socket call inside a window: the request needed the network."""


def is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]")
    if host.lower() in {"localhost", "localhost.", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def refused(error: BaseException) -> bool:
    """Whether the guard refused a socket call on the way to this error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, NetworkBlocked):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def blocked(*, loopback: bool = False) -> Iterator[None]:
    """Within: connections and name lookups refused (loopback ones let through when
    `loopback`), for this thread or task only."""
    token = _POLICY.set(loopback)
    _install()
    try:
        yield
    finally:
        _POLICY.reset(token)
        _uninstall()


def _check(host: Any) -> None:
    policy = _POLICY.get()
    if policy is None or (policy and is_loopback(host)):
        return
    raise NetworkBlocked(f"pytest-tokenbudget: no network in replay (to {host!r})")


def _install() -> None:
    global _depth
    with _LOCK:
        _depth += 1
        if _depth > 1:
            return
        connect, connect_ex, getaddrinfo = (
            socket.socket.connect,
            socket.socket.connect_ex,
            socket.getaddrinfo,
        )

        def guarded_connect(sock: socket.socket, address: Any) -> Any:
            if sock.family != getattr(socket, "AF_UNIX", None):
                _check(address[0])
            return connect(sock, address)

        def guarded_connect_ex(sock: socket.socket, address: Any) -> Any:
            if sock.family != getattr(socket, "AF_UNIX", None):
                _check(address[0])
            return connect_ex(sock, address)

        def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            _check(host)
            return getaddrinfo(host, *args, **kwargs)

        _installed[:] = [
            (socket.socket, "connect", connect),
            (socket.socket, "connect_ex", connect_ex),
            (socket, "getaddrinfo", getaddrinfo),
        ]
        socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = guarded_getaddrinfo


def _uninstall() -> None:
    global _depth
    with _LOCK:
        _depth -= 1
        if _depth:
            return
        for owner, name, original in _installed:
            setattr(owner, name, original)
        _installed.clear()
