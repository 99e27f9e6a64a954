"""HTTP/1.1 without I/O: the bytes of a request, and a response read out of a buffer.

Written once for :mod:`._plain_http`, whose sync and async transports only move bytes
between a socket and a :class:`bytearray`. Only what a client of a plain-HTTP server needs:
one request at a time on a connection, bodies framed by ``Content-Length``, ``chunked``
or the end of the connection, 1xx interim answers skipped. Anything malformed is an
``httpx.RemoteProtocolError``, as httpx's own transport (h11) would raise.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

__all__ = ["MAX_HEAD", "Body", "Head", "framing", "parse_head", "request_bytes"]

#: The longest status line and headers accepted (h11 refuses past 16 KiB; we are laxer).
MAX_HEAD = 64 * 1024
#: The longest chunk-size line (with extensions) or trailer section of a chunked body.
_MAX_CHUNK_LINE = 4 * 1024


def request_bytes(request: httpx.Request, body: bytes) -> bytes:
    """The whole request as sent: request line, ``request.headers`` as they are, body.

    httpx has already added ``Host`` and ``Content-Length`` (or ``Transfer-Encoding:
    chunked`` for a body of unknown length, which is then sent as one chunk).
    """
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    chunked = False
    for name, value in request.headers.raw:
        parts += [name, b": ", value, b"\r\n"]
        if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
    parts.append(b"\r\n")
    if chunked:
        if body:
            parts += [b"%x\r\n" % len(body), body, b"\r\n"]
        parts.append(b"0\r\n\r\n")
    else:
        parts.append(body)
    return b"".join(parts)


@dataclass
class Head:
    """A response's status line and headers (names as the server spelled them)."""

    http_version: bytes
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]

    def closes(self) -> bool:
        """Whether the server keeps the connection open after this answer."""
        tokens = {t.strip().lower() for v in self.values(b"connection") for t in v.split(b",")}
        if self.http_version == b"HTTP/1.0":
            return b"keep-alive" not in tokens
        return b"close" in tokens


def _error(message: str) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(message)


def parse_head(buffer: bytearray) -> Head | None:
    """Take one status line and its headers off the front of ``buffer``.

    ``None`` while the blank line that ends them has not arrived yet.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise _error(f"the answer's headers are longer than {MAX_HEAD} bytes")
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    del buffer[: end + 4]
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise _error(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in b" \t":
            raise _error(f"malformed header line: {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    return Head(version, int(code), reason.strip(b" \t"), headers)


def framing(method: str, head: Head) -> Body:
    """How the body of ``head``'s answer to ``method`` ends (RFC 9112, section 6.3)."""
    if method == "HEAD" or head.status in (204, 304) or head.status < 200:
        return Body(remaining=0)
    codings = [c.strip().lower() for v in head.values(b"transfer-encoding") for c in v.split(b",")]
    if codings:
        # Chunked last is chunked; any other coding last runs to the end of the connection.
        return Body(chunked=True) if codings[-1] == b"chunked" else Body(to_close=True)
    lengths = {v.strip() for v in head.values(b"content-length")}
    if not lengths:
        return Body(to_close=True)
    if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
        raise _error(f"invalid Content-Length: {sorted(lengths)!r}")
    return Body(remaining=int(lengths.pop()))


class Body:
    """Where one response body is: :meth:`take` moves what has arrived out of the buffer.

    ``remaining`` (bytes still due by ``Content-Length``), ``chunked`` or ``to_close`` says
    how the body ends; none of them is an empty body.
    """

    def __init__(
        self, *, remaining: int = 0, chunked: bool = False, to_close: bool = False
    ) -> None:
        self.remaining = remaining
        self.chunked = chunked
        self.to_close = to_close
        self.done = not (remaining or chunked or to_close)
        # Chunked only: bytes left in the current chunk, or None between chunks.
        self._chunk: int | None = None
        self._in_trailers = False

    def take(self, buffer: bytearray) -> bytes:
        """The body bytes at the front of ``buffer``, removed from it (maybe none yet)."""
        if self.done:
            return b""
        if self.to_close:
            data = bytes(buffer)
            buffer.clear()
            return data
        if not self.chunked:
            data = bytes(buffer[: self.remaining])
            del buffer[: len(data)]
            self.remaining -= len(data)
            self.done = self.remaining == 0
            return data
        return self._take_chunks(buffer)

    def _take_chunks(self, buffer: bytearray) -> bytes:
        out = []
        while not self.done:
            if self._in_trailers:
                if not self._skip_trailers(buffer):
                    break
                continue
            if self._chunk is None:
                size = self._chunk_size(buffer)
                if size is None:
                    break
                if size == 0:
                    self._in_trailers = True
                    continue
                self._chunk = size
            if self._chunk > 0:
                data = bytes(buffer[: self._chunk])
                del buffer[: len(data)]
                self._chunk -= len(data)
                out.append(data)
                if self._chunk:
                    break
            if len(buffer) < 2:
                break
            if buffer[:2] != b"\r\n":
                raise _error("a chunk of the answer does not end with CRLF")
            del buffer[:2]
            self._chunk = None
        return b"".join(out)

    @staticmethod
    def _chunk_size(buffer: bytearray) -> int | None:
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > _MAX_CHUNK_LINE:
                raise _error("a chunk-size line of the answer is too long")
            return None
        digits = bytes(buffer[:end]).partition(b";")[0].strip(b" \t")
        del buffer[: end + 2]
        if not digits or any(c not in b"0123456789abcdefABCDEF" for c in digits):
            raise _error(f"invalid chunk size in the answer: {digits[:20]!r}")
        return int(digits, 16)

    def _skip_trailers(self, buffer: bytearray) -> bool:
        """Drop the trailer section after the last chunk; False while it is incomplete."""
        if buffer[:2] == b"\r\n":
            del buffer[:2]
            self.done = True
            return True
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_CHUNK_LINE:
                raise _error("the answer's trailers are too long")
            return False
        del buffer[: end + 4]
        self.done = True
        return True

    def at_eof(self) -> None:
        """The server closed the connection: fine only if the body was to run until then."""
        if self.to_close:
            self.done = True
        elif not self.done:
            raise _error("the server closed the connection before the end of the answer's body")
