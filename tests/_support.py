"""Helpers shared by the test packages.

``send_raw`` sends a request byte for byte, for the tests of what HTTP parsers might
normalize or refuse.

``logged_clients``: clients of the session's local server whose every request is logged at
the transport, for the adapter test packages.

The adapter tests pin what a turn costs ("one request per turn") and what it carries by
reading a log of the requests that reached the transport, which then sends them for real.
Each package keeps the log that suits its assertions (``Counter`` in ``tests/langchain``,
``Recorder`` in ``tests/llama_index``) as its ``request_log`` fixture; the ``clients``
fixture of ``tests/conftest.py`` builds the clients around it.
"""

from __future__ import annotations

import socket
from typing import Any, Protocol

import httpx

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient


def send_raw(url: str, head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` (request line and header lines, CRLF-separated, without the blank
    line), ``Content-Length`` and ``body`` on a new connection to ``url``; the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            head + b"\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


class RequestLog(Protocol):
    def record(self, request: httpx.Request) -> None: ...


class _LoggingTransport(httpx.HTTPTransport):
    def __init__(self, log: RequestLog) -> None:
        super().__init__()
        self.log = log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.log.record(request)
        return super().handle_request(request)


class _AsyncLoggingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, log: RequestLog) -> None:
        super().__init__()
        self.log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.log.record(request)
        return await super().handle_async_request(request)


def logged_clients(
    base_url: str, api_key: str, log: RequestLog, **kwargs: Any
) -> tuple[MemLayerClient, AsyncMemLayerClient]:
    """A sync and an async client of ``base_url`` whose requests both go into ``log``."""
    sync = MemLayerClient(
        api_key=api_key,
        base_url=base_url,
        http_client=httpx.Client(transport=_LoggingTransport(log)),
        **kwargs,
    )
    async_ = AsyncMemLayerClient(
        api_key=api_key,
        base_url=base_url,
        http_client=httpx.AsyncClient(transport=_AsyncLoggingTransport(log)),
        **kwargs,
    )
    return sync, async_
