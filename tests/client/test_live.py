"""The clients against the real local server (loopback), sync and async.

The scenarios are the ones ``test_recorded.py`` replays from cassettes; here they run live,
so a drift between the client and the server shows up even before anyone re-records.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from memlayer_integrations import (
    AsyncMemLayerClient,
    AuthenticationError,
    MemLayerClient,
    MemoryLimitError,
    PermissionDeniedError,
    RateLimitError,
)

from ._support import call, collect
from .scenarios import SCENARIOS


@pytest.fixture
async def make_live(flavor: str, base_url: str, api_key: str):
    """Clients of the test's flavour on the local server, closed at the end of the test."""
    made: list[Any] = []

    def make(api_key: str = api_key, **kwargs: Any) -> Any:
        cls = MemLayerClient if flavor == "sync" else AsyncMemLayerClient
        client = cls(api_key=api_key, base_url=base_url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await call(client, "close")


@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario_live(name, make_live):
    await SCENARIOS[name](make_live)


def test_the_documented_auth_snippet(base_url, capsys):
    url = base_url
    # The snippet from the service documentation, verbatim.
    try:
        client = MemLayerClient(api_key="ml_live_invalid", base_url=url)
        client.remember("test", user_id="u1", agent_id="bot")
    except AuthenticationError as e:
        print(f"Authentication failed: {e}")

    out = capsys.readouterr().out
    assert out.startswith("Authentication failed: invalid or missing API key")
    assert "status 401" in out and "invalid_api_key" in out
    client.close()


async def test_the_documented_auth_snippet_async(base_url, capsys):
    url = base_url
    try:
        async with AsyncMemLayerClient(api_key="ml_live_invalid", base_url=url) as client:
            await client.remember("test", user_id="u1", agent_id="bot")
    except AuthenticationError as e:
        print(f"Authentication failed: {e}")
    assert capsys.readouterr().out.startswith("Authentication failed: invalid or missing API key")


@pytest.mark.parametrize("key", ["sk-not-memlayer", "ml_live_with-dash"])
def test_the_pre_send_check_agrees_with_the_server(base_url, key):
    """The client refuses locally exactly what the server answers 401 wrong_key_format to."""
    answer = httpx.post(f"{base_url}/v1/memories", headers={"X-API-Key": key},
                        json={"content": "x", "user_id": "u1", "agent_id": "bot"})
    server_error = answer.json()["error"]
    with pytest.raises(AuthenticationError) as info:
        MemLayerClient(api_key=key, base_url=base_url).usage()
    assert answer.status_code == info.value.status_code == 401
    assert server_error["code"] == info.value.code == "wrong_key_format"
    assert info.value.message.startswith(server_error["message"])


class _LoseFirstAnswer(httpx.BaseTransport):
    """Forwards every request to the server, but loses the answer to the first one."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        response = self.inner.handle_request(request)
        if len(self.seen) == 1:
            response.read()
            response.close()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class _AsyncLoseFirstAnswer(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        response = await self.inner.handle_async_request(request)
        if len(self.seen) == 1:
            await response.aread()
            await response.aclose()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_retried_remember_whose_first_attempt_arrived_is_stored_once(
    flavor, base_url, api_key, sleeps
):
    if flavor == "sync":
        transport: Any = _LoseFirstAnswer()
        client: Any = MemLayerClient(api_key, base_url=base_url, http_client=httpx.Client(transport=transport))
    else:
        transport = _AsyncLoseFirstAnswer()
        client = AsyncMemLayerClient(api_key, base_url=base_url, http_client=httpx.AsyncClient(transport=transport))

    memory = await call(client, "remember", "stored exactly once", user_id="u1", agent_id="bot")

    assert len(transport.seen) == 2 and len(sleeps) == 1
    first, retry = transport.seen
    assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"]
    stored = await collect(client.list_memories(user_id="u1"))
    assert [m.id for m in stored] == [memory.id]
    assert (await call(client, "usage")).memories_stored == 1
    await call(client._http, "close" if flavor == "sync" else "aclose")


async def test_rate_limit_headers_on_the_free_plan(make_live, free_key):
    client = make_live(api_key=free_key)
    usage = await call(client, "usage")
    assert (usage.plan, usage.memories_limit, usage.requests_limit) == ("free", 500, 100)
    assert (client.rate_limit.limit, client.rate_limit.remaining) == (100, 100 - usage.requests_today)
    assert client.rate_limit.reset_at == usage.resets_at


# The "tiny" plan of tests/conftest.py (5 memories, 10 requests a day) reaches each limit
# in a handful of requests.


async def test_remembering_past_the_memory_limit(make_live, local_server):
    client = make_live(api_key=local_server.create_key(plan="tiny"))
    await call(client, "remember_many", [f"fact {i}" for i in range(5)], user_id="u1", agent_id="bot")
    with pytest.raises(MemoryLimitError) as info:
        await call(client, "remember", "one too many", user_id="u1", agent_id="bot")
    assert isinstance(info.value, PermissionDeniedError)
    assert (info.value.status_code, info.value.code) == (403, "memory_limit_reached")
    assert (await call(client, "usage")).memories_stored == 5


async def test_the_daily_quota_is_raised_at_once(make_live, local_server, sleeps):
    client = make_live(api_key=local_server.create_key(plan="tiny"), max_retries=5)
    for _ in range(10):
        await call(client, "usage")
    assert client.rate_limit.remaining == 0
    with pytest.raises(RateLimitError) as info:
        await call(client, "usage")
    err = info.value
    assert err.is_daily_quota and (err.status_code, err.code) == (429, "daily_quota_exceeded")
    assert 0 < err.retry_after <= 86400
    assert sleeps == []  # not slept on, not retried


async def test_a_suspended_account_is_denied(make_live, local_server):
    key = local_server.create_key(plan="unlimited")
    local_server.suspend_key(key)
    with pytest.raises(PermissionDeniedError) as info:
        await call(make_live(api_key=key), "usage")
    assert type(info.value) is PermissionDeniedError
    assert (info.value.status_code, info.value.code) == (403, "account_suspended")


async def test_a_revoked_key_is_refused(make_live, local_server):
    key = local_server.create_key(plan="unlimited")
    client = make_live(api_key=key)
    await call(client, "usage")
    local_server.revoke_key(key)
    with pytest.raises(AuthenticationError) as info:
        await call(client, "usage")
    assert info.value.code == "invalid_api_key"


async def test_no_log_record_holds_the_key_on_a_live_run(make_live, api_key, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_live()
    await call(client, "remember", "logged?", user_id="u1", agent_id="bot")
    await call(client, "recall", "logged", user_id="u1")
    assert caplog.records  # httpx and the client did log
    for record in caplog.records:
        assert api_key not in record.getMessage()
    assert api_key not in caplog.text
