"""MemLayerChatStore: the BaseChatStore contract, sync and async, on the local server."""

from __future__ import annotations

import inspect
import secrets

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.memory import ChatMemoryBuffer

from memlayer_integrations import AuthenticationError
from memlayer_integrations.llama_index import MemLayerChatStore, MemLayerMemory

from ._support import RecordingLLM, recorded_clients

MESSAGES = [
    ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
    ChatMessage(
        role=MessageRole.USER,
        blocks=[TextBlock(text="look"), ImageBlock(url="https://example.com/cat.png")],
    ),
    ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[
            ToolCallBlock(tool_call_id="c1", tool_name="describe", tool_kwargs={"what": "cat"})
        ],
        additional_kwargs={"trace": {"step": 1, "tags": ["a", "b"]}},
    ),
    ChatMessage(role=MessageRole.TOOL, content="a cat", additional_kwargs={"tool_call_id": "c1"}),
    ChatMessage(role=MessageRole.ASSISTANT, content="A cat."),
]


def store_for(clients: tuple, user_id: str = "u1") -> MemLayerChatStore:
    return MemLayerChatStore(
        user_id=user_id, agent_id="bot", client=clients[0], async_client=clients[1]
    )


async def call(store: MemLayerChatStore, flavor: str, name: str, *args):
    """Call the sync method ``name`` or its async twin."""
    twins = {"add_message": "async_add_message"}
    if flavor == "sync":
        return getattr(store, name)(*args)
    result = getattr(store, twins.get(name, "a" + name))(*args)
    assert inspect.isawaitable(result)
    return await result


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_contract(clients: tuple, flavor: str) -> None:
    store = store_for(clients)
    assert await call(store, flavor, "get_messages", "s1") == []
    assert await call(store, flavor, "delete_messages", "s1") is None
    assert await call(store, flavor, "delete_last_message", "s1") is None

    await call(store, flavor, "set_messages", "s1", MESSAGES[:3])
    for message in MESSAGES[3:]:
        await call(store, flavor, "add_message", "s1", message)
    await call(
        store, flavor, "add_message", "s2", ChatMessage(role="user", content="other session")
    )
    assert await call(store, flavor, "get_messages", "s1") == MESSAGES  # order and every field
    assert await call(store, flavor, "get_keys") == ["s1", "s2"]

    assert await call(store, flavor, "delete_message", "s1", 1) == MESSAGES[1]
    assert await call(store, flavor, "delete_message", "s1", 10) is None
    assert await call(store, flavor, "delete_last_message", "s1") == MESSAGES[4]
    assert await call(store, flavor, "get_messages", "s1") == [
        MESSAGES[0],
        MESSAGES[2],
        MESSAGES[3],
    ]

    await call(store, flavor, "set_messages", "s1", [MESSAGES[4]])
    assert await call(store, flavor, "get_messages", "s1") == [MESSAGES[4]]
    assert await call(store, flavor, "delete_messages", "s1") == [MESSAGES[4]]
    assert await call(store, flavor, "get_keys") == ["s2"]
    assert await call(store_for(clients, "u2"), flavor, "get_keys") == []  # another user


def test_ignores_other_memories_of_the_session(clients: tuple) -> None:
    MemLayerMemory(user_id="u1", agent_id="bot", session_id="s1", client=clients[0]).put_messages(
        [ChatMessage(role="user", content="hi"), ChatMessage(role="assistant", content="hello")]
    )
    store = store_for(clients)
    assert store.get_messages("s1") == [] and store.get_keys() == []


def test_as_chat_memory_buffer_backend_across_engines(clients: tuple) -> None:
    def engine() -> SimpleChatEngine:
        memory = ChatMemoryBuffer.from_defaults(
            chat_store=store_for(clients), chat_store_key="conv-1"
        )
        return SimpleChatEngine.from_defaults(llm=RecordingLLM(), memory=memory)

    engine().chat("first message")
    assert [m.content for m in engine().chat_history] == ["first message", "text"]


def test_serializes_without_key(clients: tuple, api_key: str) -> None:
    store = MemLayerChatStore(
        user_id="u1", agent_id="bot", api_key=api_key, base_url=clients[0].base_url
    )
    assert api_key not in store.model_dump_json() and api_key not in repr(store)
    assert MemLayerChatStore.from_dict(store.to_dict()).base_url == clients[0].base_url


async def test_authentication_error_propagates_from_chat(base_url: str) -> None:
    bad = recorded_clients(base_url, "ml_live_" + secrets.token_hex(12))
    memory = ChatMemoryBuffer.from_defaults(chat_store=store_for(bad), chat_store_key="k")
    engine = SimpleChatEngine.from_defaults(llm=RecordingLLM(), memory=memory)
    with pytest.raises(AuthenticationError):
        engine.chat("hi")
    with pytest.raises(AuthenticationError):
        await engine.achat("hi")


LONG = [
    ChatMessage(role=MessageRole.USER, content="Summarise the report"),
    ChatMessage(role=MessageRole.TOOL, content="x" * 100_000, additional_kwargs={"id": "t"}),
    ChatMessage(role=MessageRole.ASSISTANT, content="word é❄ " * 3_000),
    ChatMessage(role=MessageRole.ASSISTANT, content=" \n" * 60_000),
    ChatMessage(role=MessageRole.USER, content="yes"),
    ChatMessage(role=MessageRole.USER, content="yes"),
]


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_long_and_repeated_messages_round_trip_exactly(clients: tuple, flavor: str) -> None:
    store = store_for(clients)
    for message in LONG:
        await call(store, flavor, "add_message", "s1", message)
    assert await call(store, flavor, "get_messages", "s1") == LONG
    assert await call(store, flavor, "delete_message", "s1", 1) == LONG[1]
    assert await call(store, flavor, "get_messages", "s1") == [LONG[0], *LONG[2:]]
    await call(store, flavor, "set_messages", "s1", LONG[:3])
    assert await call(store, flavor, "get_messages", "s1") == LONG[:3]
    assert await call(store, flavor, "delete_messages", "s1") == LONG[:3]
    assert list(clients[0].list_memories(user_id="u1", agent_id="bot")) == []


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_messages_stored_under_the_old_type_marker_still_load(
    clients: tuple, flavor: str
) -> None:
    # Before the shared marker, the store wrote {"type": "llama_index.chat_message"}.
    clients[0].remember_many(
        [
            {
                "content": m.content or "[message]",
                "metadata": {
                    "type": "llama_index.chat_message",
                    "message": m.model_dump(mode="json"),
                },
                "deduplicate": False,
            }
            for m in MESSAGES[:2]
        ],
        user_id="u1",
        agent_id="bot",
        session_id="old",
    )
    store = store_for(clients)
    await call(store, flavor, "add_message", "old", MESSAGES[4])
    assert await call(store, flavor, "get_messages", "old") == [*MESSAGES[:2], MESSAGES[4]]
    assert await call(store, flavor, "get_keys") == ["old"]
    assert await call(store, flavor, "delete_last_message", "old") == MESSAGES[4]
    assert await call(store, flavor, "delete_messages", "old") == MESSAGES[:2]
    assert list(clients[0].list_memories(user_id="u1", agent_id="bot")) == []


def test_new_messages_carry_the_shared_marker_and_a_langchain_history_s_are_not_read(
    clients: tuple,
) -> None:
    store = store_for(clients)
    store.add_message("s1", MESSAGES[4])
    clients[0].remember(
        "human: hi",
        user_id="u1",
        agent_id="bot",
        session_id="s1",
        metadata={"memlayer_kind": "chat_message", "message": {"type": "human", "data": {}}},
    )
    assert store.get_messages("s1") == [MESSAGES[4]]
    mine = next(iter(clients[0].list_memories(user_id="u1", agent_id="bot")))
    assert {k: mine.metadata[k] for k in ("memlayer_kind", "memlayer_format")} == {
        "memlayer_kind": "chat_message",
        "memlayer_format": "llama_index",
    }
