"""End-to-end client scenarios, run live against the local server (``test_live.py``) and
replayed from cassettes (``test_recorded.py``).

Each scenario takes ``make``, which builds a client of the test's flavour (sync or async)
for the test's account; ``make(api_key=...)`` builds one with another key. Every scenario
runs on a fresh account, so it may assume it starts empty.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from memlayer_integrations import (
    AuthenticationError,
    NotFoundError,
    Op,
    UnprocessableEntityError,
    Usage,
)
from memlayer_integrations._constants import UNKNOWN_KEY_MESSAGE

from ._support import call, collect

Make = Callable[..., Any]


async def remember_and_recall(make: Make) -> None:
    client = make()
    tea = await call(
        client,
        "remember",
        "User likes green tea",
        user_id="u1",
        agent_id="bot",
        metadata={"topic": "food"},
    )
    await call(client, "remember", "User lives in Oslo", user_id="u1", agent_id="bot")
    other = await call(
        client, "remember", "User drinks tea at work", user_id="u1", agent_id="work_bot"
    )
    assert (tea.user_id, tea.agent_id, tea.metadata, tea.key) == (
        "u1",
        "bot",
        {"topic": "food"},
        None,
    )
    assert tea.id.startswith("mem_") and len(tea.id) == 36

    hits = await call(client, "recall", "green tea", user_id="u1", agent_id="bot")
    assert hits[0].memory.id == tea.id and hits[0].score > 0
    assert {h.memory.agent_id for h in hits} == {"bot"}

    across_agents = await call(client, "recall", "tea", user_id="u1")
    assert {h.memory.id for h in across_agents} == {tea.id, other.id}
    assert [h.score for h in across_agents] == sorted(
        (h.score for h in across_agents), reverse=True
    )

    filtered = await call(client, "recall", "tea", user_id="u1", filters={"topic": "food"})
    assert [h.memory.id for h in filtered] == [tea.id]
    assert await call(client, "recall", "tea", user_id="someone_else") == []


async def get_update_forget(make: Make) -> None:
    client = make()
    plan = await call(
        client,
        "remember",
        "User is on the Pro plan",
        user_id="u1",
        agent_id="billing_bot",
        key="plan",
        session_id="s1",
    )
    assert await call(client, "get", plan.id) == plan

    updated = await call(
        client, "update", plan.id, content="User is on the Team plan", metadata={"source": "chat"}
    )
    assert (updated.id, updated.created_at) == (plan.id, plan.created_at)
    assert (updated.content, updated.metadata) == ("User is on the Team plan", {"source": "chat"})
    assert updated.updated_at >= plan.updated_at

    # Remembering again under the same key replaces that memory and keeps its id.
    replaced = await call(
        client,
        "remember",
        "User is on the Enterprise plan",
        user_id="u1",
        agent_id="billing_bot",
        key="plan",
    )
    assert replaced.id == plan.id and replaced.content == "User is on the Enterprise plan"

    assert await call(client, "forget", plan.id) is None
    with pytest.raises(NotFoundError) as info:
        await call(client, "get", plan.id)
    assert info.value.code == "not_found" and info.value.request_id.startswith("req_")
    with pytest.raises(NotFoundError):
        await call(client, "forget", plan.id)


async def list_and_forget_all(make: Make) -> None:
    client = make()
    written = await call(
        client,
        "remember_many",
        [f"fact number {i}" for i in range(5)]
        + [{"content": "keyed fact", "key": "k1", "metadata": {"n": 1}}],
        user_id="u1",
        agent_id="bot",
    )
    assert [m.content for m in written][:2] == ["fact number 0", "fact number 1"]
    listed = await collect(client.list_memories(user_id="u1", page_size=2))
    assert [m.id for m in listed] == [m.id for m in written]  # creation order, across 3 pages
    keyed = await collect(client.list_memories(user_id="u1", keys=["k1"]))
    assert [m.content for m in keyed] == ["keyed fact"]
    assert [
        m.content for m in await collect(client.list_memories(user_id="u1", filters={"n": 1}))
    ] == ["keyed fact"]

    scopes = await call(client, "list_scopes")
    assert [(s.user_id, s.agent_id, s.memories) for s in scopes] == [("u1", "bot", 6)]

    assert await call(client, "forget_all", user_id="u1", keys=["k1"]) == 1
    assert await call(client, "forget_all", user_id="u1", agent_id="bot") == 5
    assert await collect(client.list_memories(user_id="u1")) == []


async def usage(make: Make) -> None:
    client = make()
    await call(client, "remember", "one memory", user_id="u1", agent_id="bot")
    report = await call(client, "usage")
    assert isinstance(report, Usage)
    assert (report.plan, report.memories_stored, report.memories_limit, report.requests_limit) == (
        "unlimited",
        1,
        None,
        None,
    )
    assert report.requests_today >= 2
    assert client.rate_limit is not None
    assert (client.rate_limit.limit, client.rate_limit.remaining) == (None, None)  # "unlimited"
    assert client.rate_limit.reset_at is not None


async def batch(make: Make) -> None:
    client = make()
    memories, recalled, page, report = await call(
        client,
        "batch",
        [
            Op.remember_many(["likes tea", "lives in Oslo"], user_id="u1", agent_id="bot"),
            Op.recall("tea", user_id="u1"),
            Op.list(user_id="u1", limit=1),
            Op.usage(),
        ],
    )
    assert [m.content for m in memories] == ["likes tea", "lives in Oslo"]
    assert recalled[0].memory.id == memories[0].id
    assert [m.id for m in page[0]] == [memories[0].id] and page[1]
    assert report.memories_stored == 2

    # All or nothing: the failing operation is named, and the first one is not stored.
    with pytest.raises(UnprocessableEntityError) as info:
        await call(
            client,
            "batch",
            [
                Op.remember("would be stored", user_id="u1", agent_id="bot"),
                Op.remember("   ", user_id="u1", agent_id="bot"),
            ],
        )
    assert info.value.field == "operations[1].content"
    assert len(await collect(client.list_memories(user_id="u1"))) == 2


async def auth_error(make: Make) -> None:
    client = make(api_key="ml_live_invalid")
    with pytest.raises(AuthenticationError) as info:
        await call(client, "remember", "test", user_id="u1", agent_id="bot")
    err = info.value
    assert (err.status_code, err.code) == (401, "invalid_api_key")
    assert err.message.startswith(UNKNOWN_KEY_MESSAGE + " (sent to http://")
    assert err.request_id.startswith("req_")


SCENARIOS: dict[str, Callable[[Make], Awaitable[None]]] = {
    "remember_and_recall": remember_and_recall,
    "get_update_forget": get_update_forget,
    "list_and_forget_all": list_and_forget_all,
    "usage": usage,
    "batch": batch,
    "auth_error": auth_error,
}
