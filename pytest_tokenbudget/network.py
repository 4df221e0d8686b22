"""Sockets refused for a while: what a request reaches below the transport is a mock's.

Replay offers a request it has no recording of to the layers under the HTTP transport
(respx and other mocks patch httpcore there); with every socket refused, only such a
mock can answer it, and a request that would have gone to the network is known as one.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class NetworkBlocked(OSError):
    """Raised by a socket call while blocked: the request needed the network."""


@contextmanager
def blocked() -> Iterator[list[str]]:
    """Refuse connections and name lookups; yields the list of what was refused."""
    refused: list[str] = []

    def refuse(what: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            refused.append(what)
            raise NetworkBlocked(f"pytest-tokenbudget: no network in replay ({what})")

        return call

    saved = [
        (socket.socket, "connect", socket.socket.connect),
        (socket.socket, "connect_ex", socket.socket.connect_ex),
        (socket, "getaddrinfo", socket.getaddrinfo),
        (socket, "create_connection", socket.create_connection),
    ]
    for owner, name, _ in saved:
        setattr(owner, name, refuse(name))
    try:
        yield refused
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
