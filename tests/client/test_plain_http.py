"""The lean HTTP/1.1 transport (``_plain_http``) against scripted servers on loopback sockets.

Every test runs with the sync and the async transport (``flavor``). What the server wrote and
what it read are compared byte for byte with httpx's own transport where that matters.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from memlayer_integrations import MemLayerClient, _plain_http
from memlayer_integrations._plain_http import AsyncPlainHTTPTransport, PlainHTTPTransport

from ._sockets import Conn, ScriptedServer, ok, path_of


@pytest.fixture
async def http(flavor: str) -> AsyncIterator[Any]:
    """An httpx client of the test's flavour on the plain-HTTP transport."""
    if flavor == "sync":
        with httpx.Client(transport=PlainHTTPTransport()) as client:
            yield client
    else:
        async with httpx.AsyncClient(transport=AsyncPlainHTTPTransport()) as client:
            yield client


async def fetch(client: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    if isinstance(client, httpx.Client):
        return client.request(method, url, **kwargs)
    response: httpx.Response = await client.request(method, url, **kwargs)
    return response


def answer_with(data: bytes) -> Any:
    return lambda conn, request: conn.send(data)


async def test_one_connection_carries_many_requests(http: Any) -> None:
    with ScriptedServer(lambda conn, request: conn.send(ok(path_of(request)))) as server:
        for n in range(20):
            response = await fetch(http, "GET", f"{server.url}/item/{n}")
            assert (response.status_code, response.content) == (200, b"/item/%d" % n)
        assert server.accepted == 1
        assert len(server.requests) == 20


async def test_a_connection_the_server_closed_while_idle_is_not_used(http: Any) -> None:
    def answer(conn: Conn, request: bytes) -> None:
        conn.send(ok(path_of(request)))
        conn.close()  # like uvicorn after its keep-alive timeout

    with ScriptedServer(answer) as server:
        for n in range(3):
            server.answered.clear()
            response = await fetch(http, "POST", f"{server.url}/n/{n}", content=b"x")
            assert response.content == b"/n/%d" % n
            assert server.answered.wait(5)
        assert server.accepted == 3
        assert [path_of(r) for r in server.requests] == [b"/n/0", b"/n/1", b"/n/2"]


def _race(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the idle check miss a close, as when the server closes just after it."""
    monkeypatch.setattr(_plain_http, "_readable", lambda sock: False)


async def test_a_write_that_fails_on_a_reused_connection_is_sent_on_a_new_one(
    http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(conn: Conn, request: bytes) -> None:
        conn.send(ok(path_of(request)))
        if path_of(request) == b"/first":
            conn.reset()  # any later byte sent on it fails

    with ScriptedServer(answer) as server:
        server.answered.clear()
        assert (await fetch(http, "GET", f"{server.url}/first")).content == b"/first"
        assert server.answered.wait(5)
        _race(monkeypatch)
        # Loopback delivers the reset at once, so writing on the old connection fails.
        response = await fetch(http, "POST", f"{server.url}/second", content=b"body")
        assert response.content == b"/second"
        assert server.accepted == 2
        assert [path_of(r) for r in server.requests] == [b"/first", b"/second"]


async def test_a_request_written_on_a_connection_closed_meanwhile_is_not_resent(
    http: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(conn: Conn, request: bytes) -> None:
        conn.send(ok())
        conn.close()

    with ScriptedServer(answer) as server:
        server.answered.clear()
        await fetch(http, "GET", f"{server.url}/first")
        assert server.answered.wait(5)
        _race(monkeypatch)
        # The write goes into the kernel; the answer never comes. The server might have
        # acted on it, so the transport fails instead of sending it again.
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await fetch(http, "POST", f"{server.url}/second", content=b"body")
        assert server.accepted == 1


async def test_an_answer_cut_short_is_a_protocol_error(http: Any) -> None:
    def answer(conn: Conn, request: bytes) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        conn.close()

    with ScriptedServer(answer) as server, pytest.raises(httpx.RemoteProtocolError):
        await fetch(http, "GET", server.url)
    with (
        ScriptedServer(lambda conn, request: conn.close()) as silent,
        pytest.raises(httpx.RemoteProtocolError, match="without sending a response"),
    ):
        await fetch(http, "GET", silent.url)


def test_the_client_retries_an_answer_cut_short_with_the_same_idempotency_key(
    sleeps: list[float], fake_key: str
) -> None:
    from ._support import memory_json

    body = httpx.Response(201, json=memory_json()).content

    def answer(conn: Conn, request: bytes) -> None:
        answer_log.append(request)  # before answering: the client may check it right after
        if len(answer_log) == 1:
            conn.send(b"HTTP/1.1 201 Created\r\nContent-Length: 500\r\n\r\n{")
            conn.close()
        else:
            conn.send(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    answer_log: list[bytes] = []
    with ScriptedServer(answer) as server:
        with MemLayerClient(api_key=fake_key, base_url=server.url, max_retries=2) as client:
            assert isinstance(client._http._transport, PlainHTTPTransport)
            memory = client.remember("hello", user_id="u1", agent_id="bot")
        assert memory.id == memory_json()["id"]
        assert len(sleeps) == 1
        keys = [_header(r, b"idempotency-key") for r in answer_log]
        assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith(b"idem_")


def _header(request: bytes, name: bytes) -> bytes:
    for line in request.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.lower() == name:
            return value.strip()
    raise AssertionError(f"no {name!r} header")


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n1;ext=1\r\n \r\n"
    b"a\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n"
)


async def test_chunked_answers_arrive_whole_even_a_byte_at_a_time(http: Any) -> None:
    def answer(conn: Conn, request: bytes) -> None:
        if path_of(request) == b"/slow":
            for i in range(len(CHUNKED)):
                conn.send(CHUNKED[i : i + 1])
        else:
            conn.send(CHUNKED)

    with ScriptedServer(answer) as server:
        for path in ("/fast", "/slow", "/fast"):
            response = await fetch(http, "GET", server.url + path)
            assert response.content == b"hello 0123456789"
        assert server.accepted == 1


async def test_an_answer_without_length_runs_to_the_close(http: Any) -> None:
    def answer(conn: Conn, request: bytes) -> None:
        conn.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of ")
        conn.send(b"this")
        conn.close()

    with ScriptedServer(answer) as server:
        for _ in range(2):
            assert (await fetch(http, "GET", server.url)).content == b"all of this"
        assert server.accepted == 2


async def test_interim_answers_are_skipped(http: Any) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    with ScriptedServer(answer_with(interim + ok(b"final"))) as server:
        response = await fetch(http, "POST", server.url, content=b"x")
        assert (response.status_code, response.content) == (200, b"final")
        assert "link" not in response.headers


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", b"200 OK"), ("GET", b"204 No Content"), ("GET", b"304 X")]
)
async def test_head_204_and_304_have_no_body(http: Any, method: str, status: bytes) -> None:
    # A Content-Length here describes the body a GET would get; none follows.
    head = b"HTTP/1.1 " + status + b"\r\nContent-Length: 5\r\n\r\n"
    with ScriptedServer(answer_with(head)) as server:
        for _ in range(3):
            response = await fetch(http, method, server.url)
            assert response.content == b""
        assert server.accepted == 1


async def test_connection_close_is_honoured(http: Any) -> None:
    with ScriptedServer(answer_with(ok(b"x", b"Connection: close"))) as server:
        for _ in range(2):
            await fetch(http, "GET", server.url)
        assert server.accepted == 2
    with ScriptedServer(answer_with(ok(b"x"))) as server:
        for _ in range(2):
            await fetch(http, "GET", server.url, headers={"Connection": "close"})
        assert server.accepted == 2


async def test_a_stream_closed_early_does_not_go_back_to_the_pool(flavor: str) -> None:
    with ScriptedServer(lambda conn, request: conn.send(ok(b"x" * 100_000))) as server:
        if flavor == "sync":
            with httpx.Client(transport=PlainHTTPTransport()) as client:
                with client.stream("GET", server.url) as response:
                    next(response.iter_raw(10))
                assert len(client.get(server.url).content) == 100_000
        else:
            async with httpx.AsyncClient(transport=AsyncPlainHTTPTransport()) as aclient:
                async with aclient.stream("GET", server.url) as response:
                    await response.aiter_raw(10).__anext__()
                assert len((await aclient.get(server.url)).content) == 100_000
        assert server.accepted == 2


async def test_a_malformed_answer_is_a_protocol_error(http: Any) -> None:
    chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    for garbage in (b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", chunk):
        with (
            ScriptedServer(answer_with(garbage)) as server,
            pytest.raises(httpx.RemoteProtocolError),
        ):
            await fetch(http, "GET", server.url)


async def test_a_silent_server_is_a_read_timeout(http: Any) -> None:
    release = threading.Event()
    with ScriptedServer(lambda conn, request: release.wait(10)) as server:
        try:
            with pytest.raises(httpx.ReadTimeout):
                await fetch(http, "GET", server.url, timeout=httpx.Timeout(5, read=0.2))
        finally:
            release.set()


async def test_a_closed_port_is_a_connect_error(http: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await fetch(http, "GET", f"http://127.0.0.1:{port}/")


ANSWERS = [
    ok(b'{"a": 1}', b"Content-Type: application/json", b"X-Request-Id:  req_1 ", b"X-Dup: 1"),
    b"HTTP/1.1 404 Not Found\r\nX-Dup: a\r\nx-dup: b\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 500 \r\nContent-Length: 3\r\nSet-Cookie: a=b\r\n\r\nbad",
    CHUNKED,
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
]


@pytest.mark.parametrize("answer", ANSWERS, ids=range(len(ANSWERS)))
async def test_answers_and_requests_match_httpx_byte_for_byte(flavor: str, answer: bytes) -> None:
    def read(response: httpx.Response) -> tuple[Any, ...]:
        ext = response.extensions
        return (response.status_code, response.headers.raw, response.content,
                ext["http_version"], ext["reason_phrase"])  # fmt: skip

    request: dict[str, Any] = dict(
        headers={"X-API-Key": "ml_live_" + "a" * 32, "Content-Type": "application/json"},
        params={"q": "ä b"},
        content='{"é": 1}'.encode(),
    )
    seen = []
    with ScriptedServer(answer_with(answer)) as server:
        if flavor == "sync":
            for transport in (httpx.HTTPTransport(), PlainHTTPTransport()):
                with httpx.Client(transport=transport) as client:
                    seen.append(read(client.post(server.url + "/p/x", **request)))
        else:
            for atransport in (httpx.AsyncHTTPTransport(), AsyncPlainHTTPTransport()):
                async with httpx.AsyncClient(transport=atransport) as aclient:
                    seen.append(read(await aclient.post(server.url + "/p/x", **request)))
        assert seen[0] == seen[1]
        assert server.requests[0] == server.requests[1]  # the server read the same bytes


def test_many_threads_share_one_client() -> None:
    with ScriptedServer(lambda conn, request: conn.send(ok(path_of(request)))) as server:
        errors: list[str] = []
        with httpx.Client(transport=PlainHTTPTransport()) as client:

            def work(t: int) -> None:
                for n in range(40):
                    path = f"/t{t}/{n}"
                    content = client.get(server.url + path).content
                    if content != path.encode():
                        errors.append(f"{path} got {content!r}")

            threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        assert len(server.requests) == 320
        assert server.accepted <= 8


async def test_a_faked_httpx_transport_answers_instead(
    flavor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # vcrpy, pytest-httpx and respx patch httpx's transport: they must still see requests.
    def fake(self: Any, request: httpx.Request) -> httpx.Response:
        return httpx.Response(299, content=b"faked")

    async def afake(self: Any, request: httpx.Request) -> httpx.Response:
        return fake(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", fake)
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", afake)
    with ScriptedServer(answer_with(ok())) as server:
        if flavor == "sync":
            with httpx.Client(transport=PlainHTTPTransport()) as client:
                response = client.get(server.url)
        else:
            async with httpx.AsyncClient(transport=AsyncPlainHTTPTransport()) as aclient:
                response = await aclient.get(server.url)
        assert (response.status_code, response.content) == (299, b"faked")
        assert server.accepted == 0
