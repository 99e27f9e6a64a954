"""The client pair every adapter holds: twins share settings, and an async client it built
keeps working across separate ``asyncio.run`` calls (frameworks' sync methods do that)."""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings

import pytest

from memlayer_integrations import (
    AsyncMemLayerClient,
    MemLayerClient,
    MemLayerError,
    MemLayerScopeError,
)
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


async def test_a_closed_pair_raises_a_memlayer_error_naming_its_owner(api_key, base_url):
    pair = ClientPair(api_key=api_key, base_url=base_url)
    await pair.aclose()
    with pytest.raises(
        MemLayerError, match=r"^MemLayerMemory is closed .* build a new MemLayerMemory"
    ):
        pair.check_open("MemLayerMemory")
    with pytest.raises(MemLayerError, match="is closed"):
        pair.sync.usage()
    with pytest.raises(MemLayerError, match="is closed"):
        await pair.async_.usage()
    pair.close()  # closing again is harmless


def test_a_client_built_in_a_loop_is_closed_when_that_loop_shuts_down(api_key, base_url):
    # Sync framework methods run async code with asyncio.run, one loop per call: each
    # loop's client must not outlive it holding a socket until the garbage collector.
    pair = ClientPair(api_key=api_key, base_url=base_url)
    built = []

    async def turn(n: int) -> None:
        built.append(pair.async_)
        await pair.async_.remember(f"fact {n}", user_id="u1", agent_id="bot")

    gc.collect()  # what earlier tests left is not this test's to report
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for n in range(3):
            asyncio.run(turn(n))
            assert built[-1]._http.is_closed
        gc.collect()
    # A connection left open shows as an unclosed transport or a connected socket (one with
    # a peer address); loops some library created and dropped are not this test's concern.
    leaked = [
        str(w.message)
        for w in caught
        if "transport" in str(w.message) or "raddr=" in str(w.message)
    ]
    assert leaked == []
    assert len({id(c) for c in built}) == 3
    pair.close()


def test_a_loop_closed_without_shutting_down_leaves_nothing_to_finalize(api_key, base_url):
    pair = ClientPair(api_key=api_key, base_url=base_url)
    unraisable = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:

        async def turn() -> None:
            await pair.async_.usage()

        loop = asyncio.new_event_loop()
        loop.run_until_complete(turn())
        loop.close()  # no shutdown_asyncgens: the first client stays open
        asyncio.run(turn())  # a new loop: the pair builds a new client, forgets the old
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert [u.exc_value for u in unraisable if u.exc_type is not ResourceWarning] == []
    pair.close()
