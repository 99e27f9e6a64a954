"""The client pair every adapter holds: twins share settings, and an async client it built
keeps working across separate ``asyncio.run`` calls (frameworks' sync methods do that)."""

from __future__ import annotations

import asyncio

import pytest

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient, MemLayerScopeError
from memlayer_integrations._adapter.clients import ClientPair, require_scope


def test_async_client_survives_successive_event_loops(api_key, base_url):
    pair = ClientPair(api_key=api_key, base_url=base_url)

    async def turn(n: int) -> int:
        await pair.async_.remember(f"fact {n}", user_id="u1", agent_id="bot")
        return len(await pair.async_.recall("fact", user_id="u1", limit=10))

    assert [asyncio.run(turn(n)) for n in range(3)] == [1, 2, 3]
    pair.close()


def test_twin_is_built_with_the_given_clients_settings(api_key, base_url):
    sync = MemLayerClient(api_key=api_key, base_url=base_url, max_retries=5, timeout=3.0)
    pair = ClientPair(client=sync)
    twin = pair.async_
    assert isinstance(twin, AsyncMemLayerClient)
    assert (twin.base_url, twin.max_retries, twin.timeout) == (sync.base_url, 5, sync.timeout)
    with pytest.raises(TypeError):
        ClientPair(client=sync, api_key=api_key)
    sync.close()


@pytest.mark.parametrize("value", [None, "", "   ", 3])
def test_missing_scope_fails_closed(value):
    with pytest.raises(MemLayerScopeError, match="user_id"):
        require_scope("Adapter", user_id=value)
