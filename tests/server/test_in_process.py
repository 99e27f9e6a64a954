"""Clients of ``LocalMemLayerServer.in_process_url``: the same app and answers as over HTTP,
without a socket."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading

import pytest

from memlayer_integrations import (
    APIConnectionError,
    AsyncMemLayerClient,
    AuthenticationError,
    BadRequestError,
    MemLayerClient,
    RateLimitError,
)
from memlayer_integrations.server import LocalMemLayerServer, Plan, ServerSettings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    settings = ServerSettings(
        db_path=tmp_path_factory.mktemp("in_process") / "m.db",
        plans={"unlimited": Plan(None, None), "three": Plan(memories=None, requests_per_day=3)},
        max_body_bytes=64 * 1024,
    )
    with LocalMemLayerServer(settings=settings) as server:
        yield server


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt from now on fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an in-process client opened a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_a_client_of_the_in_process_url_needs_no_socket(server, no_sockets) -> None:
    key = server.create_key()
    with MemLayerClient(api_key=key, base_url=server.in_process_url) as client:
        stored = client.remember("likes green tea", user_id="u", agent_id="bot")
        assert [r.memory.id for r in client.recall("tea", user_id="u")] == [stored.id]
        assert client.get(stored.id) == stored
        assert client.rate_limit is not None  # the quota headers came back too


def test_the_same_answers_as_over_http(server) -> None:
    key = server.create_key()
    over_http = MemLayerClient(api_key=key, base_url=server.url)
    in_process = MemLayerClient(api_key=key, base_url=server.in_process_url)
    stored = in_process.remember("in process", user_id="u", agent_id="bot")
    assert over_http.get(stored.id) == stored
    assert [m.id for m in in_process.list_memories(user_id="u")] == [stored.id]
    for client in (over_http, in_process):
        with pytest.raises(AuthenticationError) as caught:
            MemLayerClient(api_key="ml_live_" + "0" * 32, base_url=client.base_url).usage()
        assert "invalid or missing API key" in str(caught.value)
        assert caught.value.request_id and caught.value.request_id.startswith("req_")
    over_http.close()
    in_process.close()


def test_limits_and_quotas_apply_in_process(server) -> None:
    client = MemLayerClient(
        api_key=server.create_key(plan="three"), base_url=server.in_process_url, max_retries=0
    )
    with pytest.raises(BadRequestError) as too_large:  # 413: larger than max_body_bytes
        client.remember_many(["x" * 30_000] * 3, user_id="u", agent_id="bot")
    assert too_large.value.status_code == 413
    client.usage()
    client.usage()
    with pytest.raises(RateLimitError) as spent:
        client.usage()
    assert spent.value.code == "daily_quota_exceeded"


def test_threads_and_other_event_loops_share_the_server(server) -> None:
    key = server.create_key()
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with MemLayerClient(api_key=key, base_url=server.in_process_url) as client:
                for i in range(5):
                    client.remember(f"thread {n} fact {i}", user_id="u", agent_id="bot")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()

    async def recall() -> int:
        async with AsyncMemLayerClient(api_key=key, base_url=server.in_process_url) as client:
            await client.remember("async fact", user_id="u", agent_id="bot")
            return len([m async for m in client.list_memories(user_id="u")])

    asyncio.run(recall())
    for t in threads:
        t.join()
    assert not errors
    assert asyncio.run(recall()) == 21  # the repeated "async fact" is one memory


def test_after_stop_a_client_cannot_connect() -> None:
    with LocalMemLayerServer() as server:
        key = server.create_key()
        url = server.in_process_url
        client = MemLayerClient(api_key=key, base_url=url, max_retries=0)
        client.usage()
    with pytest.raises(APIConnectionError):
        client.usage()  # its transport's server stopped
    with pytest.raises(APIConnectionError):
        MemLayerClient(api_key=key, base_url=url, max_retries=0).usage()  # nothing at the URL


def test_a_sync_client_runs_the_request_on_its_own_thread(server, monkeypatch) -> None:
    service = server._app.state.service
    ran_on: list[threading.Thread] = []
    execute = service.execute

    def recording(*args, **kwargs):
        ran_on.append(threading.current_thread())
        return execute(*args, **kwargs)

    monkeypatch.setattr(service, "execute", recording)
    key = server.create_key()
    with MemLayerClient(api_key=key, base_url=server.in_process_url) as client:
        client.usage()

        async def inside_a_loop() -> None:
            client.usage()  # a sync call inside a running loop: handed to the server's loop

        done = threading.Thread(target=asyncio.run, args=(inside_a_loop(),))
        done.start()
        done.join()
    assert ran_on[0] is threading.current_thread()
    assert ran_on[1] not in (done, threading.current_thread())


def test_a_thread_that_ends_leaves_no_event_loop_behind(server) -> None:
    key = server.create_key()
    with MemLayerClient(api_key=key, base_url=server.in_process_url) as client:
        transport = client._http._transport

        def call() -> None:
            client.usage()

        for _ in range(5):
            t = threading.Thread(target=call)
            t.start()
            t.join()
        gc.collect()
        assert len(transport._loops) == 0  # each thread's loop closed with its thread
        client.usage()
        (own,) = transport._loops
    assert own.loop.is_closed()  # and the client's own when it closed
