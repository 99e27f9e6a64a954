"""Connection limits: a client cannot hold the server's connections or memory unanswered.

The key is checked before a byte of the body is read (a client without one is answered and
disconnected at once); a request's headers and body must arrive within their timeouts; the
request line and headers are limited in size and number (431 ``headers_too_large``, cut off
as the bytes arrive). Half-sent requests do not keep real clients from being served.

Timeouts here are a fraction of a second so the tests are quick; what is asserted is that
the server answers and closes, not how fast (the socket waits up to 20 s).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer, ServerSettings

WAIT = 20.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMemLayerServer]:
    settings = ServerSettings(
        db_path=tmp_path_factory.mktemp("conn") / "c.db", header_timeout=0.5, body_timeout=0.5
    )
    with LocalMemLayerServer(settings=settings) as s:
        yield s


@pytest.fixture(scope="module")
def key(server: LocalMemLayerServer) -> str:
    return server.create_key()


def connect(server: LocalMemLayerServer) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    return sock


def answer_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def status_and_code(raw: bytes) -> tuple[int, str | None]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)["error"]["code"]
    except (ValueError, KeyError):
        return status, None


def test_no_key_is_answered_before_the_body_and_disconnected(server):
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"{" * 10
        )  # 990 bytes of the body never come
        raw = answer_until_closed(sock)
    assert status_and_code(raw) == (401, "invalid_api_key")


def test_headers_that_never_end_are_timed_out(server):
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        raw = answer_until_closed(sock)
    assert status_and_code(raw) == (408, "request_timeout")


def test_a_body_that_never_ends_is_timed_out(server, key):
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-API-Key: " + key.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        raw = answer_until_closed(sock)
    assert raw == b"" or status_and_code(raw) == (408, "request_timeout")
    # Nothing was stored, and the server serves on.
    usage = httpx.get(server.url + "/v1/usage", headers={"X-API-Key": key}).json()
    assert usage["memories_stored"] == 0


@pytest.mark.parametrize(
    "headers",
    [
        [b"X-Big: " + b"a" * 80 * 1024],  # one large header
        [b"X-H%d: v" % i for i in range(100)],  # too many
        [b"X-H%d: " % i + b"b" * 1400 for i in range(50)],  # too many bytes together
    ],
    ids=["one-large", "too-many", "too-many-bytes"],
)
def test_header_limits(server, key, headers):
    with connect(server) as sock:
        head = b"GET /v1/usage HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode()
        sock.sendall(head + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n")
        raw = answer_until_closed(sock)
    assert status_and_code(raw) == (431, "headers_too_large")


def test_an_endless_header_is_cut_off_as_it_arrives(server):
    sent = 0
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nX-Endless: ")
        try:
            for _ in range(32 * 16):  # up to 32 MB
                sock.sendall(b"c" * 64 * 1024)
                sent += 64 * 1024
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = answer_until_closed(sock)
    assert sent < 32 * 1024 * 1024  # refused long before the end
    assert raw == b"" or status_and_code(raw) == (431, "headers_too_large")


def test_half_sent_requests_do_not_starve_real_clients(server, key):
    idle = [connect(server) for _ in range(200)]
    try:
        for sock in idle:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")  # and no more
        with httpx.Client(base_url=server.url + "/v1", headers={"X-API-Key": key}) as http:
            r = http.post("/memories", json={"content": "served", "user_id": "u", "agent_id": "a"})
            assert r.status_code == 201
            assert http.get("/health").status_code == 200
        # And every one of them is answered and closed in the end.
        assert {status_and_code(answer_until_closed(s)) for s in idle} == {(408, "request_timeout")}
    finally:
        for sock in idle:
            sock.close()


def test_a_normal_request_with_ordinary_headers_passes(server, key):
    headers = {"X-API-Key": key, **{f"X-Extra-{i}": "v" * 100 for i in range(30)}}
    assert httpx.get(server.url + "/v1/usage", headers=headers).status_code == 200
