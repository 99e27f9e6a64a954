"""The HTTP connection layer: limits on what a client may hold open before it is answered.

uvicorn's HTTP protocol (httptools) waits as long as a client likes for a request's headers
and body, and accepts headers of any size and number: 200 connections each sending half a
request header stay open indefinitely, and one 32 MB header is read into memory. Neither
reaches the application, so the application cannot refuse them. This protocol, a subclass
of uvicorn's, adds per connection:

- a **header timeout**: the request line and headers must arrive within ``header_timeout``
  seconds of the request's first byte (or of the connection's opening);
- a **body timeout**: the body must arrive within ``body_timeout`` seconds of the headers;
- **header limits**: at most ``max_header_bytes`` of request line and headers, counted as
  bytes arrive (so an endless header is cut off early), and at most ``max_headers`` fields.

A client over a limit gets ``408 request_timeout`` or ``431 headers_too_large`` in the
contract's error shape, and the connection is closed. Idle keep-alive connections are
closed by uvicorn's own ``timeout_keep_alive``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import error_body, new_request_id
from .settings import ServerSettings

__all__ = ["guarded_protocol"]

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request over a limit."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body timeouts and header limits.

    The limits are class attributes, set by :func:`guarded_protocol` on a subclass made for
    one server's settings.
    """

    header_timeout = 10.0
    body_timeout = 30.0
    max_header_bytes = 64 * 1024
    max_headers = 64

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._refusal: tuple[int, str, str] | None = None
        self._arm(self.header_timeout, "the request's headers did not arrive in time")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # -- timers ------------------------------------------------------------------------

    def _arm(self, seconds: float, why: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, why)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, why: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self._refuse(408, "request_timeout", why)

    # -- refusing ----------------------------------------------------------------------

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` in the contract's shape and close the connection."""
        body = error_body(code, message, None, new_request_id())
        if self.cycle is None or not self.cycle.response_started:
            head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
            head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
            head += b"connection: close\r\n\r\n"
            self.transport.write(head + body)
        if self.cycle is not None:
            self.cycle.keep_alive = False
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head and self._head_bytes > self.max_header_bytes + 1024:
            # Still in the headers past the limit (one long header, never ended): stop now
            # rather than buffer it to the end.
            self._refuse(431, *self._too_large())

    def _too_large(self) -> tuple[str, str]:
        return (
            "headers_too_large",
            f"the request line and headers may be at most {self.max_header_bytes} bytes "
            f"in at most {self.max_headers} fields",
        )

    # -- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._header_count = 0
        if self._deadline is None:
            self._arm(self.header_timeout, "the request's headers did not arrive in time")

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_header_bytes:
            self._refusal = (431, *self._too_large())
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if (
            self._header_count > self.max_headers
            or size + len(name) + len(value) > self.max_header_bytes
        ):
            self._refusal = (431, *self._too_large())
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._arm(self.body_timeout, "the request's body did not arrive in time")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def guarded_protocol(settings: ServerSettings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to give ``uvicorn.Config(http=...)`` for a server on ``settings``."""
    limits: dict[str, Any] = {
        "header_timeout": settings.header_timeout,
        "body_timeout": settings.body_timeout,
        "max_header_bytes": settings.max_header_bytes,
        "max_headers": settings.max_headers,
    }
    return type("MemLayerHttpProtocol", (GuardedHttpToolsProtocol,), limits)
