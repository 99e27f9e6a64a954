"""A lean HTTP/1.1 transport for plain-HTTP servers: keep-alive sockets and little else.

httpx's own transport (httpcore and h11) spends about 0.4 ms of Python per request above
the wire; against a local ``memlayer serve`` that is more than the server's own work.
:class:`PlainHTTPTransport` and :class:`AsyncPlainHTTPTransport` send each request in one
``sendall`` on a pooled keep-alive connection (``TCP_NODELAY``) and read the answer from a
buffer; the HTTP itself is in :mod:`._http11`, written once. No TLS, no proxies, no HTTP/2:
:mod:`._transports` uses them only for ``http://`` on a loopback host with no proxy.

They raise what httpx's transport raises (``ConnectError``, ``ConnectTimeout``,
``ReadTimeout``, ``WriteTimeout``, ``ReadError``, ``WriteError``, ``RemoteProtocolError``),
so the client's retries see the same errors. The pool is not bounded (``PoolTimeout`` never
happens); at most :data:`MAX_IDLE` idle connections per server are kept.

**When a request is sent again.** A pooled connection the server closed while it was idle
(uvicorn does after 5 s) is readable: it is checked before reuse and dropped, and nothing
was sent on it. If writing the request on a reused connection still fails (the server
closed it in between), the request is written once more on a new connection: a failed
``sendall`` means its last bytes never left this process, so the server cannot have read a
whole request, let alone acted on it. Once the request was written, nothing is resent here,
whatever comes back (no answer, a reset, a truncated answer): the server may have acted on
it, and only the client above knows whether sending it again is safe (its retries reuse the
call's ``Idempotency-Key``). httpcore decides the same way.

**Test doubles.** Libraries that fake httpx in tests (vcrpy, pytest-httpx, respx) patch
httpx's or httpcore's transport classes. While such a patch is in place (compared with what
was there when this module was imported), requests go through httpx's own transport, so the
fake still answers them. The async transport does the same outside asyncio (trio).
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpcore
import httpx

from ._http11 import Body, Head, framing, parse_head, request_bytes

__all__ = ["MAX_IDLE", "AsyncPlainHTTPTransport", "PlainHTTPTransport"]

#: Idle connections kept per (host, port); more are closed when their answer is read.
MAX_IDLE = 16
_RECV = 65536

_Key = tuple[str, int]

# What httpx's and httpcore's transports were at import; anything else is a test double.
_HTTPX_SYNC = httpx.HTTPTransport.handle_request
_HTTPX_ASYNC = httpx.AsyncHTTPTransport.handle_async_request
_HTTPCORE_SYNC = httpcore.ConnectionPool.handle_request
_HTTPCORE_ASYNC = httpcore.AsyncConnectionPool.handle_async_request


def _faked() -> bool:
    return (
        httpx.HTTPTransport.handle_request is not _HTTPX_SYNC
        or httpcore.ConnectionPool.handle_request is not _HTTPCORE_SYNC
    )


def _faked_async() -> bool:
    return (
        httpx.AsyncHTTPTransport.handle_async_request is not _HTTPX_ASYNC
        or httpcore.AsyncConnectionPool.handle_async_request is not _HTTPCORE_ASYNC
    )


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: an EOF (closed) or garbage."""
    if hasattr(select, "poll"):  # select.select fails on descriptors past 1023
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


class _Pool:
    """Idle keep-alive connections per (host, port), shared by threads (or tasks)."""

    def __init__(self) -> None:
        self._idle: dict[_Key, list[socket.socket]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def take(self, key: _Key) -> socket.socket | None:
        """The most recently used live idle connection to ``key``, or ``None``."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                sock = idle.pop()
            if not _readable(sock):
                return sock
            sock.close()

    def give(self, key: _Key, sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if not self._closed and len(idle) < MAX_IDLE:
                idle.append(sock)
                return
        sock.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            socks = [s for idle in self._idle.values() for s in idle]
            self._idle.clear()
        for sock in socks:
            sock.close()


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    return timeouts


def _key(request: httpx.Request) -> _Key:
    url = request.url
    if url.scheme != "http":
        raise httpx.UnsupportedProtocol(f"this transport speaks plain http://, not {url.scheme}")
    return url.host, url.port or 80


def _reusable(request: httpx.Request, head: Head, body: Body) -> bool:
    asked_close = "close" in request.headers.get("connection", "").lower()
    return not (asked_close or body.to_close or head.closes())


def _response(head: Head, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Response:
    return httpx.Response(
        head.status,
        headers=head.headers,
        stream=stream,
        extensions={"http_version": head.http_version, "reason_phrase": head.reason},
    )


def _interim(head: Head) -> bool:
    """A 1xx answer, skipped (101 is refused: no request here asks to switch protocols)."""
    if head.status == 101:
        raise httpx.RemoteProtocolError("the server switched protocols, which was not asked")
    return head.status < 200


_NO_ANSWER = "Server disconnected without sending a response."


# -- sync ---------------------------------------------------------------------------------


def _connect(key: _Key, timeout: float | None) -> socket.socket:
    try:
        sock = socket.create_connection(key, timeout=timeout)
    except TimeoutError as exc:
        raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise httpx.ConnectError(str(exc)) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _send(sock: socket.socket, data: bytes, timeout: float | None) -> None:
    sock.settimeout(timeout)
    try:
        sock.sendall(data)
    except TimeoutError as exc:
        raise httpx.WriteTimeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise httpx.WriteError(str(exc)) from exc


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(_RECV)
    except TimeoutError as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise httpx.ReadError(str(exc)) from exc


class PlainHTTPTransport(httpx.BaseTransport):
    """HTTP/1.1 over plain TCP with keep-alive; safe to share between threads.

    Example:
        >>> client = httpx.Client(transport=PlainHTTPTransport())
        >>> client.get("http://127.0.0.1:8000/v1/health").status_code
        200
    """

    def __init__(self) -> None:
        self._pool = _Pool()
        self._fallback: httpx.HTTPTransport | None = None
        self._fallback_lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if _faked():
            with self._fallback_lock:  # built when first needed: it loads TLS certificates
                if self._fallback is None:
                    self._fallback = httpx.HTTPTransport()
            return self._fallback.handle_request(request)
        key = _key(request)
        timeouts = _timeouts(request)
        data = request_bytes(request, request.read())
        sock = self._pool.take(key)
        try:
            if sock is None:
                sock = _connect(key, timeouts.get("connect"))
                _send(sock, data, timeouts.get("write"))
            else:
                try:
                    _send(sock, data, timeouts.get("write"))
                except httpx.WriteError:  # not a timeout: see "When a request is sent again"
                    sock.close()
                    sock = _connect(key, timeouts.get("connect"))
                    _send(sock, data, timeouts.get("write"))
            sock.settimeout(timeouts.get("read"))
            buffer = bytearray()
            while True:
                head = parse_head(buffer)
                if head is None:
                    received = _recv(sock)
                    if not received:
                        raise httpx.RemoteProtocolError(_NO_ANSWER)
                    buffer += received
                elif not _interim(head):
                    break
            body = framing(request.method, head)
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        stream = _SyncBody(self._pool, key, sock, buffer, body, _reusable(request, head, body))
        return _response(head, stream)

    def close(self) -> None:
        self._pool.close()
        if self._fallback is not None:
            self._fallback.close()


class _Held:
    """A response's connection while its body is read: back to the pool once the body was
    read to its end (if it may be reused), closed when the body is left unread or fails.
    The sync and async bodies differ only in how they read."""

    def __init__(
        self,
        pool: _Pool,
        key: _Key,
        sock: socket.socket,
        buffer: bytearray,
        body: Body,
        reusable: bool,
    ) -> None:
        self._pool, self._key, self._sock = pool, key, sock
        self._buffer, self._body, self._reusable = buffer, body, reusable
        self._open = True

    def _release(self) -> None:
        """The body was read to its end."""
        if self._open:
            self._open = False
            if self._reusable and not self._buffer:  # bytes past the answer: not reusable
                self._pool.give(self._key, self._sock)
            else:
                self._sock.close()

    def _discard(self) -> None:
        if self._open:
            self._open = False
            self._sock.close()


class _SyncBody(_Held, httpx.SyncByteStream):
    """A response body read off its connection, which goes back to the pool at its end."""

    def __iter__(self) -> Iterator[bytes]:
        body, buffer = self._body, self._buffer
        try:
            data = body.take(buffer)
            if data:
                yield data
            while not body.done:
                received = _recv(self._sock)
                if not received:
                    body.at_eof()
                    break
                buffer += received
                data = body.take(buffer)
                if data:
                    yield data
        except BaseException:  # an error, or the stream closed before its end
            self._discard()
            raise
        self._release()

    def close(self) -> None:
        self._discard()


# -- async (asyncio) ------------------------------------------------------------------------


async def _wait(awaitable: Any, timeout: float | None) -> Any:
    if timeout is None:
        return await awaitable
    return await asyncio.wait_for(awaitable, timeout)


async def _aconnect(key: _Key, timeout: float | None) -> socket.socket:
    loop = asyncio.get_running_loop()

    async def connect() -> socket.socket:
        infos = await loop.getaddrinfo(*key, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {key[0]}")
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise error

    try:
        sock: socket.socket = await _wait(connect(), timeout)
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise httpx.ConnectError(str(exc)) from exc
    return sock


async def _asend(sock: socket.socket, data: bytes, timeout: float | None) -> None:
    try:
        await _wait(asyncio.get_running_loop().sock_sendall(sock, data), timeout)
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise httpx.WriteTimeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise httpx.WriteError(str(exc)) from exc


async def _arecv(sock: socket.socket, timeout: float | None) -> bytes:
    try:
        received: bytes = await _wait(asyncio.get_running_loop().sock_recv(sock, _RECV), timeout)
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise httpx.ReadTimeout(str(exc) or "timed out") from exc
    except OSError as exc:
        raise httpx.ReadError(str(exc)) from exc
    return received


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # another async library (trio)
        return False
    return True


class AsyncPlainHTTPTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`PlainHTTPTransport` (other async libraries get httpx's)."""

    def __init__(self) -> None:
        self._pool = _Pool()
        self._fallback: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _faked_async() or not _on_asyncio():
            if self._fallback is None:  # built when first needed: it loads TLS certificates
                self._fallback = httpx.AsyncHTTPTransport()
            return await self._fallback.handle_async_request(request)
        key = _key(request)
        timeouts = _timeouts(request)
        data = request_bytes(request, await request.aread())
        sock = self._pool.take(key)
        try:
            if sock is None:
                sock = await _aconnect(key, timeouts.get("connect"))
                await _asend(sock, data, timeouts.get("write"))
            else:
                try:
                    await _asend(sock, data, timeouts.get("write"))
                except httpx.WriteError:  # not a timeout: see "When a request is sent again"
                    sock.close()
                    sock = await _aconnect(key, timeouts.get("connect"))
                    await _asend(sock, data, timeouts.get("write"))
            read_timeout = timeouts.get("read")
            buffer = bytearray()
            while True:
                head = parse_head(buffer)
                if head is None:
                    received = await _arecv(sock, read_timeout)
                    if not received:
                        raise httpx.RemoteProtocolError(_NO_ANSWER)
                    buffer += received
                elif not _interim(head):
                    break
            body = framing(request.method, head)
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        reusable = _reusable(request, head, body)
        stream = _AsyncBody(self._pool, key, sock, buffer, body, reusable, read_timeout)
        return _response(head, stream)

    async def aclose(self) -> None:
        self._pool.close()
        if self._fallback is not None:
            await self._fallback.aclose()


class _AsyncBody(_Held, httpx.AsyncByteStream):
    """The async twin of :class:`_SyncBody`."""

    def __init__(
        self,
        pool: _Pool,
        key: _Key,
        sock: socket.socket,
        buffer: bytearray,
        body: Body,
        reusable: bool,
        timeout: float | None,
    ) -> None:
        super().__init__(pool, key, sock, buffer, body, reusable)
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        body, buffer = self._body, self._buffer
        try:
            data = body.take(buffer)
            if data:
                yield data
            while not body.done:
                received = await _arecv(self._sock, self._timeout)
                if not received:
                    body.at_eof()
                    break
                buffer += received
                data = body.take(buffer)
                if data:
                    yield data
        except BaseException:  # an error, or the stream closed before its end
            self._discard()
            raise
        self._release()

    async def aclose(self) -> None:
        self._discard()
