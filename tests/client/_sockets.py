"""A tiny scripted HTTP server on a loopback socket, for the plain-HTTP transport tests.

Each request is read whole (head and ``Content-Length`` body) and answered by a function of
the server and the request's bytes, which writes raw bytes, may hang, or may close the
connection. The server counts the connections it accepted and keeps every request it read.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

Answer = Callable[["Conn", bytes], None]


class Conn:
    """One accepted connection, as an answer function sees it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        """Close the connection (a FIN); the client sees it as readable while idle."""
        self.closed = True
        self.sock.close()

    def reset(self) -> None:
        """Close with a reset (RST), as a crashed or aborting server does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()


class ScriptedServer:
    """``with ScriptedServer(answer) as server:`` serves ``server.url`` until the end."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.accepted = 0
        self.requests: list[bytes] = []
        self.answered = threading.Event()  # set after each answer function returns
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    def __enter__(self) -> ScriptedServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(OSError):  # shutdown wakes the accept; close alone does not
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in self._conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        conn = Conn(sock)
        buffer = b""
        try:
            while not conn.closed:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                self.requests.append(request)
                self.answer(conn, request)
                self.answered.set()
        except OSError:
            return
        finally:
            if not conn.closed:
                sock.close()


def ok(body: bytes = b"hello", *headers: bytes) -> bytes:
    """A 200 answer with ``Content-Length``."""
    lines = [b"HTTP/1.1 200 OK", b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def path_of(request: bytes) -> bytes:
    return request.split(b" ", 2)[1]
