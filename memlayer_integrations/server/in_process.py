"""Transports that hand requests to the embedded server's ASGI app, without a socket.

``LocalMemLayerServer`` serves its app with uvicorn on one background event loop. These
transports run each request on that same loop, through ``httpx.ASGITransport``: the same
app, so the same middleware (request ids, the JSON 500), authentication, quotas, budgets,
body limits and error answers as over HTTP. What is left out is the socket, HTTP parsing
and the protocol guards that only a connection needs (header size, slow-client timeouts).

Why one loop, the server's: the app's endpoints count the requests in flight without a
lock (``routes.py``), which is only right on one thread, and its lifespan opened the
database there. A sync caller hands the request over with ``run_coroutine_threadsafe`` and
waits (two thread switches, some tens of microseconds, instead of a TCP round trip and
two HTTP parsers); an async caller on another loop awaits the same future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import httpx

__all__ = ["AsyncInProcessTransport", "InProcessTransport"]

_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class _AppLoop:
    """The app and the event loop (and its thread) that serve it."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        # raise_app_exceptions=False: an error inside the app is answered as uvicorn answers it
        # (RequestIdMiddleware's JSON 500), not raised into the caller.
        self.asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.loop = loop
        self.thread = thread

    async def answer(self, request: httpx.Request) -> _Answer | None:
        """The app's answer, or ``None`` if the request was cancelled on the server's loop
        (the server stopping, or the caller giving up: either way no one reads it)."""
        try:
            response = await self.asgi.handle_async_request(request)
            content = await response.aread()
        except asyncio.CancelledError:
            return None
        return response.status_code, list(response.headers.raw), content

    def submit(self, request: httpx.Request) -> concurrent.futures.Future[_Answer | None]:
        if self.loop.is_closed() or not self.thread.is_alive():
            raise httpx.ConnectError("the local MemLayer server is not running", request=request)
        if threading.current_thread() is self.thread:
            # A sync client used inside the server's own loop would wait for itself forever.
            raise RuntimeError("a sync MemLayerClient cannot call the server from its own loop")
        try:
            return asyncio.run_coroutine_threadsafe(self.answer(request), self.loop)
        except RuntimeError as exc:  # the loop closed in between
            raise httpx.ConnectError(
                "the local MemLayer server is not running", request=request
            ) from exc


def _read_timeout(request: httpx.Request) -> float | None:
    timeout: dict[str, float | None] = request.extensions.get("timeout", {})
    return timeout.get("read")


def _response(answer: _Answer | None, request: httpx.Request) -> httpx.Response:
    if answer is None:
        raise httpx.RemoteProtocolError(
            "the local MemLayer server stopped before it answered", request=request
        )
    status, headers, content = answer
    return httpx.Response(status, headers=headers, content=content)


class InProcessTransport(httpx.BaseTransport):
    """A sync transport to the app on its server's loop (see the module docstring)."""

    def __init__(self, app_loop: _AppLoop) -> None:
        self._app = app_loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body as bytes, which the app's loop can then read
        future = self._app.submit(request)
        try:
            answer = future.result(_read_timeout(request))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout("the local MemLayer server did not answer in time") from None
        return _response(answer, request)


class AsyncInProcessTransport(httpx.AsyncBaseTransport):
    """The async twin of :class:`InProcessTransport`, usable from any event loop."""

    def __init__(self, app_loop: _AppLoop) -> None:
        self._app = app_loop

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        if asyncio.get_running_loop() is self._app.loop:
            return _response(await self._app.answer(request), request)
        future = asyncio.wrap_future(self._app.submit(request))
        try:
            answer = await asyncio.wait_for(future, _read_timeout(request))
        except asyncio.TimeoutError:
            raise httpx.ReadTimeout("the local MemLayer server did not answer in time") from None
        return _response(answer, request)
