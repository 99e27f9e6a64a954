"""A loopback HTTP server that misbehaves on cue, optionally in front of a real MemLayer server.

``httpx.MockTransport`` can only *raise* a transport error; this server produces the real
thing on a real socket: a reset (RST) before or in the middle of an answer, an answer that
never comes, an answer that comes late. In front of a real server (``upstream``) it can
forward a request and then lose the answer, which is how a write whose first attempt
reached the server gets retried.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import httpx

#: What the server does with one connection's request.
FORWARD = "forward"  # pass it to upstream and relay the answer
RESET = "reset"  # read it, then reset the connection: no answer at all
FORWARD_THEN_RESET = "forward-then-reset"  # upstream handles it, the answer is lost to a reset
FORWARD_THEN_HANG = (
    "forward-then-hang"  # upstream handles it, the answer never comes (a read timeout)
)
HANG = "hang"  # read it and never answer
TRUNCATE = "truncate"  # headers and half the body, then a reset
SLOW = "slow"  # wait a little, then forward


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FaultyServer:
    """Serves ``faults`` in order, one per connection (the last one repeats).

    Every answer says ``Connection: close``, so each request of a client comes on a new
    connection and meets the next fault. Use it as a context manager.
    """

    faults: tuple[str, ...]
    upstream: str | None = None
    delay: float = 0.3  # of SLOW
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accept = threading.Thread(target=self._serve, name="faulty-server", daemon=True)
        self._accept.start()

    def __enter__(self) -> FaultyServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        # shutdown() wakes the accept() below; close() alone does not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accept.join(5)
        for thread in self._threads:
            thread.join(5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                self.seen.append(request)
                fault = self.faults[min(len(self.seen), len(self.faults)) - 1]
            if fault == HANG:
                self._stop.wait()
                return
            if fault == RESET:
                _reset(conn)
                return
            if fault == SLOW:
                time.sleep(self.delay)
            status, headers, body = self._forward(request)
            if fault == FORWARD_THEN_RESET:
                _reset(conn)
                return
            if fault == FORWARD_THEN_HANG:
                self._stop.wait()
                return
            head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            if fault == TRUNCATE:
                conn.sendall(head.encode() + body[: len(body) // 2])
                _reset(conn)
                return
            conn.sendall(head.encode() + body)

    def _forward(self, request: Seen) -> tuple[int, dict[str, str], bytes]:
        if self.upstream is None:
            body = (
                b'{"plan":"free","memories_stored":0,"memories_limit":500,"requests_today":1,'
                b'"requests_limit":100,"resets_at":"2026-11-28T00:00:00Z"}'
            )
            return 200, {"Content-Type": "application/json"}, body
        hop = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
        response = httpx.request(
            request.method, self.upstream + request.path, headers=headers, content=request.body
        )
        kept = {
            k: v for k, v in response.headers.items() if k.lower() not in hop | {"content-encoding"}
        }
        return response.status_code, kept, response.content


def _reset(conn: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST, not an orderly FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _read_request(conn: socket.socket) -> Seen | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return Seen(method, path, headers, body)


def closed_port_url() -> str:
    """The URL of a loopback port nothing listens on: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"
