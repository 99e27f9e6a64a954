"""The package's own clients against the local server, end to end."""

from __future__ import annotations

import pytest

from memlayer_integrations import (
    AsyncMemLayerClient,
    AuthenticationError,
    MemLayerClient,
    NotFoundError,
    Op,
    UnprocessableEntityError,
)


def test_sync_client_round_trip(base_url, api_key):
    with MemLayerClient(api_key=api_key, base_url=base_url) as client:
        memory = client.remember(
            "User is on the Pro plan", user_id="user_123", agent_id="billing_bot", key="plan"
        )
        assert client.get(memory.id) == memory
        replaced = client.remember(
            "User is on the Team plan", user_id="user_123", agent_id="billing_bot", key="plan"
        )
        assert replaced.id == memory.id
        [hit] = client.recall("which plan is the user on?", user_id="user_123")
        assert hit.memory.content == "User is on the Team plan" and hit.score > 0
        stored, recalled = client.batch(
            [
                Op.remember_many(["likes tea"], user_id="user_123", agent_id="billing_bot"),
                Op.recall("tea", user_id="user_123"),
            ]
        )
        assert [r.memory.id for r in recalled] == [stored[0].id]
        assert [m.content for m in client.list_memories(user_id="user_123", page_size=1)] == [
            "User is on the Team plan",
            "likes tea",
        ]
        assert client.forget_all(user_id="user_123") == 2
        with pytest.raises(NotFoundError):
            client.get(memory.id)
        with pytest.raises(UnprocessableEntityError) as exc:
            client.remember(" ", user_id="u", agent_id="a")
        assert exc.value.code == "validation_error"


async def test_async_client_round_trip(base_url, api_key):
    async with AsyncMemLayerClient(api_key=api_key, base_url=base_url) as client:
        await client.remember("likes tea", user_id="u", agent_id="a")
        hits = await client.recall("tea", user_id="u")
        assert [h.memory.content for h in hits] == ["likes tea"]
        assert (await client.usage()).memories_stored == 1


def test_unknown_key_is_an_authentication_error(base_url):
    with (
        MemLayerClient(api_key="ml_live_unknown0000", base_url=base_url) as client,
        pytest.raises(AuthenticationError) as exc,
    ):
        client.usage()
    assert exc.value.code == "invalid_api_key" and exc.value.status_code == 401
