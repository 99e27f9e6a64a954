"""MemLayerChatMessageHistory: exact round-trip of every message type, order, no length cap,
one request per add, and a clear that touches only the history's own messages."""

from __future__ import annotations

import warnings

import pytest
from langchain_core._api import LangChainDeprecationWarning
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)

from memlayer_integrations.langchain import MemLayerChatMessageHistory, MemLayerScopeError

URL = "http://127.0.0.1:9"  # never reached: building a history sends nothing

MESSAGES = [
    SystemMessage("Be brief."),
    HumanMessage("What is the weather in Oslo?", id="h1"),
    AIMessage(
        content="",
        tool_calls=[
            {
                "name": "weather",
                "args": {"city": "Oslo", "units": ["c"]},
                "id": "call_1",
                "type": "tool_call",
            }
        ],
        additional_kwargs={"x": {"y": 1}},
        response_metadata={"model": "fake"},
    ),
    ToolMessage("3 °C, snow ❄", tool_call_id="call_1", name="weather", status="success"),
    AIMessage([{"type": "text", "text": "It is 3 °C and snowing."}]),
]


def _history(clients: tuple, session: str = "s1", **kw) -> MemLayerChatMessageHistory:
    sync, async_, _ = clients
    return MemLayerChatMessageHistory(
        user_id="alice", agent_id="chat", session_id=session, client=sync, async_client=async_, **kw
    )


def test_every_message_type_round_trips_exactly(clients: tuple, counter) -> None:
    history = _history(clients)
    counter.take()
    history.add_messages(MESSAGES)
    assert counter.take() == ["POST /v1/memories/batch"]
    assert history.messages == MESSAGES
    assert _history(clients, "s2").messages == []


async def test_async_round_trip_and_clear(clients: tuple) -> None:
    history = _history(clients)
    await history.aadd_messages(MESSAGES[:2])
    await history.aadd_messages(MESSAGES[2:])
    assert await history.aget_messages() == MESSAGES
    await history.aclear()
    assert await history.aget_messages() == []


def test_no_cap_on_length_and_clear_keeps_other_memories(clients: tuple) -> None:
    sync = clients[0]
    history = _history(clients, page_size=7)
    many = [HumanMessage(f"message {i}") for i in range(130)]
    history.add_messages(many)
    assert history.messages == many
    sync.remember("not a chat message", user_id="alice", agent_id="chat", session_id="s1")
    history.clear()
    assert history.messages == []
    assert [m.content for m in sync.list_memories(user_id="alice", agent_id="chat")] == [
        "not a chat message"
    ]


def test_long_messages_round_trip_exactly_with_their_turn_in_one_request(
    clients: tuple, counter
) -> None:
    history = _history(clients)
    turn = [
        HumanMessage("Summarise the report", id="h2"),
        AIMessage("word " * 4_000 + "é❄ " * 3_000, id="a2"),  # 29,000 characters
        ToolMessage("x" * 100_000, tool_call_id="call_9"),
        AIMessage("  \n" * 40_000),  # only white space, 120,000 characters
    ]
    counter.take()
    history.add_messages(turn)
    assert counter.take() == ["POST /v1/memories/batch"]  # one request: whole or not at all
    assert history.messages == turn
    history.add_messages([HumanMessage("yes"), HumanMessage("yes")])
    assert [m.content for m in history.messages[-2:]] == ["yes", "yes"]  # never deduplicated
    history.clear()
    assert history.messages == []
    assert list(clients[0].list_memories(user_id="alice", agent_id="chat")) == []


def test_a_message_too_large_for_one_request_fails_before_anything_is_sent(
    clients: tuple, counter
) -> None:
    history = _history(clients)
    counter.take()
    with pytest.raises(ValueError, match="one request"):
        history.add_messages([HumanMessage("kept?"), AIMessage("€" * 400_000)])
    assert counter.take() == []
    assert history.messages == []


def test_200000_characters_round_trip(clients: tuple) -> None:
    history = _history(clients)
    long = [AIMessage("ø" * 200_000)]
    history.add_messages(long)
    assert history.messages == long


def test_building_one_says_it_is_legacy_where_langchain_deprecates_its_base() -> None:
    deprecated = getattr(BaseChatMessageHistory, "__deprecated__", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MemLayerChatMessageHistory(
            user_id="alice", agent_id="chat", session_id="s1", api_key="ml_live_0", base_url=URL
        )
    legacy = [w for w in caught if issubclass(w.category, LangChainDeprecationWarning)]
    if deprecated:  # langchain-core >= 1.6.4
        assert len(legacy) == 1 and "BaseChatMessageHistory" in str(legacy[0].message)
        assert legacy[0].filename == __file__  # points at the caller, not at this package
    else:
        assert legacy == []


def test_a_missing_scope_is_a_scope_error() -> None:
    with pytest.raises(MemLayerScopeError, match="session_id"):
        MemLayerChatMessageHistory(
            user_id="alice", agent_id="chat", session_id="", api_key="ml_live_0", base_url=URL
        )


def test_messages_stored_under_the_old_marker_still_load_and_clear(clients: tuple) -> None:
    # Before the shared marker, the history wrote {"memlayer_kind": "chat_message"} alone.
    sync = clients[0]
    old = [HumanMessage("I live in Oslo"), AIMessage("Noted.")]
    sync.remember_many(
        [
            {
                "content": f"{m.type}: {m.text}",
                "metadata": {"memlayer_kind": "chat_message", "message": message_to_dict(m)},
                "deduplicate": False,
            }
            for m in old
        ],
        user_id="alice",
        agent_id="chat",
        session_id="s1",
    )
    history = _history(clients)
    history.add_messages([HumanMessage("And you?")])
    assert history.messages == [*old, HumanMessage("And you?")]
    history.clear()
    assert history.messages == []
    assert list(sync.list_memories(user_id="alice", agent_id="chat")) == []


def test_a_llama_index_chat_store_s_messages_of_the_same_session_are_not_read(
    clients: tuple,
) -> None:
    # Both families write the same marker; the format keeps their serializations apart.
    sync = clients[0]
    sync.remember_many(
        [
            {
                "content": "hi",
                "metadata": {
                    "memlayer_kind": "chat_message",
                    "memlayer_format": "llama_index",
                    "message": {"role": "user", "blocks": [{"block_type": "text", "text": "hi"}]},
                },
            }
        ],
        user_id="alice",
        agent_id="chat",
        session_id="s1",
    )
    history = _history(clients)
    history.add_messages(MESSAGES[:1])
    assert history.messages == MESSAGES[:1]
    history.clear()
    assert [m.content for m in sync.list_memories(user_id="alice", agent_id="chat")] == ["hi"]
