"""The clients against the real local server (loopback), sync and async.

The scenarios are the ones ``test_recorded.py`` replays from cassettes; here they run live,
so a drift between the client and the server shows up even before anyone re-records.
"""

from __future__ import annotations

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

from ._support import call
from .scenarios import SCENARIOS


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
    answer = httpx.post(
        f"{base_url}/v1/memories",
        headers={"X-API-Key": key},
        json={"content": "x", "user_id": "u1", "agent_id": "bot"},
    )
    server_error = answer.json()["error"]
    with pytest.raises(AuthenticationError) as info:
        MemLayerClient(api_key=key, base_url=base_url).usage()
    assert answer.status_code == info.value.status_code == 401
    assert server_error["code"] == info.value.code == "wrong_key_format"
    assert info.value.message.startswith(server_error["message"])


async def test_rate_limit_headers_on_the_free_plan(make_live, free_key):
    client = make_live(api_key=free_key)
    usage = await call(client, "usage")
    assert (usage.plan, usage.memories_limit, usage.requests_limit) == ("free", 500, 100)
    assert (client.rate_limit.limit, client.rate_limit.remaining) == (
        100,
        100 - usage.requests_today,
    )
    assert client.rate_limit.reset_at == usage.resets_at


# The "tiny" plan of tests/conftest.py (5 memories, 10 requests a day) reaches each limit
# in a handful of requests.


async def test_remembering_past_the_memory_limit(make_live, local_server):
    client = make_live(api_key=local_server.create_key(plan="tiny"))
    await call(
        client, "remember_many", [f"fact {i}" for i in range(5)], user_id="u1", agent_id="bot"
    )
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


async def test_recall_with_explain_gets_why_and_without_it_sends_nothing_new(make_live):
    client = make_live()
    await call(client, "remember", "likes green tea", user_id="u1", agent_id="bot")
    [plain] = await call(client, "recall", "green tea", user_id="u1")
    [explained] = await call(client, "recall", "green tea", user_id="u1", explain=True)
    assert not hasattr(plain, "why") and plain.memory == explained.memory
    assert explained.why == {"matched_words": ["green", "tea"], "neighbour_of": None}
    assert "why" in explained._repr_html_()
