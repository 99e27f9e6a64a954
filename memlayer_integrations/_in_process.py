"""Servers of this process that clients reach without a socket.

An embedded server (``LocalMemLayerServer``) registers its in-process transports here under
its ``in_process_url``. A client built without ``http_client`` whose base URL is one of
them sends through that transport, to the same ASGI app, with its middleware, keys, limits
and errors: only the socket and the HTTP parsing are left out. Any other base URL, a server
that stopped included, is sent over HTTP as always (so a stopped server's URL fails to
connect). This module imports no server code: the server fills the registry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx

__all__ = ["InProcessServer", "async_transport", "register", "sync_transport", "unregister"]


@dataclass(frozen=True)
class InProcessServer:
    """How to make transports to one embedded server's app."""

    sync: Callable[[], httpx.BaseTransport]
    async_: Callable[[], httpx.AsyncBaseTransport]


_servers: dict[str, InProcessServer] = {}
_lock = threading.Lock()


def register(base_url: str, server: InProcessServer) -> None:
    with _lock:
        _servers[base_url.rstrip("/")] = server


def unregister(base_url: str) -> None:
    with _lock:
        _servers.pop(base_url.rstrip("/"), None)


def _lookup(base_url: str) -> InProcessServer | None:
    with _lock:
        return _servers.get(base_url.rstrip("/"))


def sync_transport(base_url: str) -> httpx.BaseTransport | None:
    """A new transport to the embedded server at ``base_url``, or ``None`` if none is."""
    server = _lookup(base_url)
    return None if server is None else server.sync()


def async_transport(base_url: str) -> httpx.AsyncBaseTransport | None:
    """The async twin of :func:`sync_transport`."""
    server = _lookup(base_url)
    return None if server is None else server.async_()
