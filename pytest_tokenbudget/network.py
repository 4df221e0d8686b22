"""Sockets refused for a while: what a request reaches below the transport is a mock's.

Replay offers a request it has no recording of to the layers under the HTTP transport
(respx and other mocks patch httpcore there); with every socket refused, only such a
mock can answer it, and a request that would have gone to the network is known as one.
A test's own server on loopback may be let through: it is a mock too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class NetworkBlocked(OSError):
    """Raised by a socket call while blocked: the request needed the network."""


def is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    if host.lower() in {"localhost", "localhost.", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def blocked(*, loopback: bool = False) -> Iterator[list[str]]:
    """Refuse connections and name lookups (but loopback ones when `loopback`); yields the
    list of what was refused."""
    refused: list[str] = []
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def allowed(host: Any) -> bool:
        return loopback and is_loopback(host)

    def refuse(what: str) -> NetworkBlocked:
        refused.append(what)
        return NetworkBlocked(f"pytest-tokenbudget: no network in replay ({what})")

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        if sock.family == getattr(socket, "AF_UNIX", None) or allowed(address[0]):
            return connect(sock, address)
        raise refuse(f"connect {address[0]}")

    def guarded_connect_ex(sock: socket.socket, address: Any) -> Any:
        if sock.family == getattr(socket, "AF_UNIX", None) or allowed(address[0]):
            return connect_ex(sock, address)
        raise refuse(f"connect {address[0]}")

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if allowed(host.decode() if isinstance(host, bytes) else host):
            return getaddrinfo(host, *args, **kwargs)
        raise refuse(f"resolve {host!r}")

    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo
    try:
        yield refused
    finally:
        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo
