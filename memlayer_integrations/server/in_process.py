"""Transports that hand requests to the embedded server's ASGI app, without a socket.

``LocalMemLayerServer`` serves its app with uvicorn on one background event loop. These
transports call the same app: the same middleware (request ids, the JSON 500),
authentication, quotas, budgets, body limits and error answers as over HTTP. What is left
out is the socket, HTTP parsing and the protocol guards that only a connection needs
(header size, slow-client timeouts).

Where the app runs:

- **A sync caller** (a thread with no event loop running) runs it on its own thread, in an
  event loop the transport keeps for that thread, and the endpoint runs the service there
  too (``routes.CALLER_THREAD``): the caller waits anyway, so handing the request to the
  server's thread and the answer back (two thread switches and a loop wake-up, most of an
  embedded request's time on a busy machine) buys nothing. The service is thread-safe (the
  server's own worker threads share it), so callers on several threads run side by side as
  requests on the server's worker threads do. A read timeout cannot interrupt the work
  running on the caller's own thread; the service's budgets bound it, as over HTTP.
- **A sync caller inside a running event loop**, and **an async caller**, hand the request
  to the server's loop (``run_coroutine_threadsafe``) and wait for the answer, which a read
  timeout stops waiting for; an async caller on the server's loop itself calls the app
  directly. Those requests count as the server's own (its in-flight count decides what
  runs on its loop), which is only right on the server's one thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import MutableMapping
from typing import Any

import httpx

from .routes import CALLER_THREAD

__all__ = ["AsyncInProcessTransport", "InProcessTransport"]

_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


async def _call_app(app: Any, request: httpx.Request, caller_thread: bool) -> _Answer:
    """The app's answer to ``request`` (whose body was read), as an ASGI server would get it.

    An error the app raises is answered with a 500, as uvicorn answers it (the app's
    ``RequestIdMiddleware`` has already turned it into its JSON 500 when it could).
    """
    url = request.url
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "scheme": url.scheme,
        "path": url.path,
        "raw_path": url.raw_path.split(b"?")[0],
        "query_string": url.query,
        "server": (url.host, url.port),
        "client": ("127.0.0.1", 123),
        "root_path": "",
        "extensions": {CALLER_THREAD: True} if caller_thread else {},
    }
    body = request.content
    sent = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    parts: list[bytes] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # the whole body was given: what is left to hear is the end of the exchange
            await done.wait()
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    except Exception:
        if not done.is_set():
            status, headers, parts = 500, [], []
    finally:
        done.set()
    return status, headers, b"".join(parts)


class _AppLoop:
    """The app and the event loop (and its thread) that serve it."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.app = app
        self.loop = loop
        self.thread = thread

    def check(self, request: httpx.Request) -> None:
        """A ``ConnectError`` once the server stopped (its loop closed or its thread ended)."""
        if self.loop.is_closed() or not self.thread.is_alive():
            raise httpx.ConnectError("the local MemLayer server is not running", request=request)

    async def answer(self, request: httpx.Request) -> _Answer | None:
        """The app's answer on the server's loop, or ``None`` if the request was cancelled
        there (the server stopping, or the caller giving up: either way no one reads it)."""
        try:
            return await _call_app(self.app, request, caller_thread=False)
        except asyncio.CancelledError:
            return None

    def submit(self, request: httpx.Request) -> concurrent.futures.Future[_Answer | None]:
        self.check(request)
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


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _ThreadLoop:
    """An event loop of one caller's thread, closed when the thread ends (its thread-local
    data goes) or the transport closes, whichever comes first: a client shared by many
    short-lived threads does not keep a loop (and its file descriptors) per thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        if not self.loop.is_closed() and not self.loop.is_running():
            self.loop.close()

    def __del__(self) -> None:
        self.close()


class InProcessTransport(httpx.BaseTransport):
    """A sync transport to the app, on the caller's thread when it can (module docstring)."""

    def __init__(self, app_loop: _AppLoop) -> None:
        self._app = app_loop
        self._local = threading.local()
        self._loops: weakref.WeakSet[_ThreadLoop] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        own: _ThreadLoop | None = getattr(self._local, "own", None)
        if own is None or own.loop.is_closed():
            own = _ThreadLoop()
            self._local.own = own
            with self._lock:
                self._loops.add(own)
        return own.loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body as bytes, whichever loop then reads it
        if not _in_event_loop() and threading.current_thread() is not self._app.thread:
            self._app.check(request)
            loop = self._own_loop()
            return _response(
                loop.run_until_complete(_call_app(self._app.app, request, caller_thread=True)),
                request,
            )
        future = self._app.submit(request)
        try:
            answer = future.result(_read_timeout(request))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout("the local MemLayer server did not answer in time") from None
        return _response(answer, request)

    def close(self) -> None:
        """Close the event loops this transport made for its callers' threads."""
        with self._lock:
            loops = list(self._loops)
        for own in loops:
            own.close()


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
