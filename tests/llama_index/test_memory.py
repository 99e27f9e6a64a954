"""MemLayerMemory: the BaseMemory contract (sync and async), injection, caching, economy
mode and serialization."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.memory.memory import InsertMethod

from memlayer_integrations import AuthenticationError, InternalServerError
from memlayer_integrations.llama_index import MemLayerMemory

from ._support import Recorder, mock_clients, roles


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.ASSISTANT, content=text)


def make(clients: tuple, **kwargs) -> MemLayerMemory:
    kwargs.setdefault("user_id", "u1")
    kwargs.setdefault("agent_id", "bot")
    # Mechanics tests: every message is stored, small talk included.
    kwargs.setdefault("write_policy", "everything")
    return MemLayerMemory(client=clients[0], async_client=clients[1], **kwargs)


# -- the contract, sync and async ---------------------------------------------------


def test_sync_contract(clients: tuple, recorder: Recorder) -> None:
    memory = make(clients, session_id="s1")
    memory.put(user("I live in Oslo"))
    memory.put(assistant("Noted, Oslo."))
    assert Recorder.ops(recorder.take()) == ["remember_many"]  # one write per turn
    assert [m.content for m in memory.get_all()] == ["I live in Oslo", "Noted, Oslo."]

    memory.put_messages([user("What is the capital of Norway?"), assistant("Oslo.")])
    stored = list(clients[0].list_memories(user_id="u1", agent_id="bot"))
    assert [(m.content, m.metadata["role"], m.session_id) for m in stored] == [
        ("I live in Oslo", "user", "s1"),
        ("Noted, Oslo.", "assistant", "s1"),
        ("What is the capital of Norway?", "user", "s1"),
        ("Oslo.", "assistant", "s1"),
    ]

    fresh = make(clients)
    fresh.put(user("where do I live"))
    got = fresh.get()
    assert roles(got) == ["user"]
    assert "I live in Oslo" in got[0].content and got[0].content.endswith("where do I live")

    fresh.set([user("hello")])
    assert [m.content for m in fresh.get_all()] == ["hello"]
    fresh.reset()
    assert fresh.get_all() == [] and fresh.get() == []
    assert (
        len(list(clients[0].list_memories(user_id="u1", agent_id="bot"))) == 4
    )  # reset keeps them


async def test_async_contract(clients: tuple, recorder: Recorder) -> None:
    memory = make(clients)
    await memory.aput(user("My dog is called Rex"))
    await memory.aput(assistant("Hi Rex!"))
    assert Recorder.ops(recorder.take()) == ["remember_many"]

    fresh = make(clients)
    await fresh.aput_messages([user("what is my dog called")])
    got = await fresh.aget()
    assert "My dog is called Rex" in got[-1].content
    assert Recorder.ops(recorder.take()) == ["recall"]
    await fresh.aset([user("hi")])
    assert [m.content for m in await fresh.aget_all()] == ["hi"]
    await fresh.areset()
    assert await fresh.aget_all() == []


async def test_async_methods_never_use_the_sync_client(api_key: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the sync client was used from async code")

    answered: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        answered.append(request.url.path)
        if request.url.path == "/v1/memories/search":
            return httpx.Response(200, json={"results": []})
        return httpx.Response(201, json={"memories": []})

    sync, _ = mock_clients(refuse, api_key)
    _, async_ = mock_clients(answer, api_key)
    memory = MemLayerMemory(
        user_id="u1", agent_id="bot", client=sync, async_client=async_, write_policy="everything"
    )
    await memory.aput(user("hi"))
    await memory.aget()
    await memory.aput(assistant("hello"))
    assert answered == ["/v1/memories/search", "/v1/memories/batch"]


def test_construction_sends_nothing_and_needs_scope(api_key: str) -> None:
    seen: list[httpx.Request] = []
    sync, async_ = mock_clients(lambda r: seen.append(r) or httpx.Response(500), api_key)
    MemLayerMemory(user_id="u1", agent_id="bot", client=sync, async_client=async_)
    MemLayerMemory(user_id="u1", agent_id="bot", api_key=api_key, base_url="http://memlayer.test")
    assert seen == []


# -- what reaches the model ---------------------------------------------------------


def test_memories_go_in_front_of_the_latest_user_message_without_duplicates(clients: tuple) -> None:
    clients[0].remember_many(
        ["User likes green tea", "User is vegetarian"], user_id="u1", agent_id="bot"
    )
    memory = make(clients)
    memory.set([user("User likes green tea"), assistant("ok")])
    memory.put(user("what tea does the user like, is the user vegetarian"))
    got = memory.get()
    assert roles(got) == ["user", "assistant", "user"]
    block = got[-1].content
    assert "User is vegetarian" in block
    assert "User likes green tea" not in block  # already in the window
    assert [m.content for m in memory.get_all()][
        -1
    ] == "what tea does the user like, is the user vegetarian"


@pytest.mark.parametrize("has_system", [True, False])
def test_system_insert_merges_or_prepends_one(clients: tuple, has_system: bool) -> None:
    clients[0].remember("User is allergic to nuts", user_id="u1", agent_id="bot")
    memory = make(clients, insert_method=InsertMethod.SYSTEM)
    history = [ChatMessage(role=MessageRole.SYSTEM, content="Be brief.")] if has_system else []
    memory.set([*history, user("any allergies to nuts?")])
    got = memory.get()
    assert roles(got) == ["system", "user"]
    assert "User is allergic to nuts" in got[0].content
    assert got[0].content.startswith("Be brief.") == has_system


def test_get_with_input_recalls_for_the_input(clients: tuple, recorder: Recorder) -> None:
    clients[0].remember("User's cat is named Miso", user_id="u1", agent_id="bot")
    memory = make(clients)
    recorder.take()
    got = memory.get(input="what is my cat named")
    assert roles(got) == ["user"] and "Miso" in got[0].content  # no user message yet: one is added
    assert recorder.take()[0][2]["query"] == "what is my cat named"


def test_recall_is_cached_until_the_next_user_message(clients: tuple, recorder: Recorder) -> None:
    memory = make(clients)
    memory.put(user("hello there"))
    for _ in range(4):
        memory.get()
    memory.get(input="hello there")
    assert Recorder.ops(recorder.take()) == ["recall"]
    memory.put(assistant("hi"))
    memory.get()
    assert Recorder.ops(recorder.take()) == ["remember_many"]  # same user message: cached
    memory.put(user("hello there"))  # same text, new message: recall again
    memory.get()
    assert Recorder.ops(recorder.take()) == ["recall"]


def test_tool_mechanics_are_not_stored(clients: tuple) -> None:
    memory = make(clients)
    call = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[ToolCallBlock(tool_call_id="c1", tool_name="f", tool_kwargs={})],
    )
    memory.put_messages(
        [
            ChatMessage(role=MessageRole.SYSTEM, content="sys"),
            user("question"),
            call,
            ChatMessage(
                role=MessageRole.TOOL,
                content="tool says 42",
                additional_kwargs={"tool_call_id": "c1"},
            ),
            assistant("42"),
        ]
    )
    assert [m.content for m in clients[0].list_memories(user_id="u1", agent_id="bot")] == [
        "question",
        "42",
    ]
    assert len(memory.get_all()) == 5


def test_window_is_bounded_and_starts_with_a_user_message(clients: tuple) -> None:
    memory = make(clients, window_size=3)
    for i in range(3):
        memory.put_messages([user(f"q{i}"), assistant(f"a{i}")])
    assert [m.content for m in memory.get_all()] == ["q2", "a2"]


def tool_round(i: int) -> list[ChatMessage]:
    call = ChatMessage(
        role=MessageRole.ASSISTANT,
        content="",
        additional_kwargs={"tool_calls": [{"id": f"c{i}", "name": "lookup"}]},
    )
    return [call, ChatMessage(role=MessageRole.TOOL, content=f"result {i} " * 20)]


def agent_turn(question: str, answer: str, rounds: int) -> list[ChatMessage]:
    return [user(question), *(m for i in range(rounds) for m in tool_round(i)), assistant(answer)]


def test_a_long_tool_turn_never_erases_the_turn_before(clients: tuple) -> None:
    memory = make(clients, token_limit=50, window_size=5)
    memory.put_messages(agent_turn("first question", "first answer", 1))
    memory.put_messages(agent_turn("second question", "second answer", 9))
    memory.put(user("third question"))
    texts = [m.content for m in memory.get_all()]
    # Over both budgets, yet the last complete turn is whole and the new one is there.
    assert texts[0] == "second question" and texts[-2:] == ["second answer", "third question"]
    assert len(texts) == 1 + 2 * 9 + 1 + 1
    for i in range(3):  # the new turn's own tool rounds
        memory.put_messages(tool_round(i))
    assert memory.get_all()[0].content == "second question"
    memory.put(assistant("third answer"))  # now complete: the turn before may go
    assert memory.get_all()[0].content == "third question"


def test_whole_turns_are_dropped_oldest_first_by_tokens(clients: tuple) -> None:
    tokens = len(memory_tokenizer()("word " * 10))
    memory = make(clients, token_limit=4 * tokens + 5)
    for i in range(5):
        memory.put_messages([user(f"q{i} " + "word " * 9), assistant(f"a{i} " + "word " * 9)])
    window = memory.get_all()
    assert [m.content.split()[0] for m in window] == ["q3", "a3", "q4", "a4"]
    assert all(m.role == MessageRole.USER for m in window[::2])


def test_initial_token_count_is_taken_off_the_budget(clients: tuple) -> None:
    memory = make(clients, token_limit=100)
    for i in range(3):
        memory.put_messages([user(f"q{i} " + "word " * 20), assistant(f"a{i}")])
    assert len(memory.get()) == 6
    got = memory.get(initial_token_count=60)  # recalled memories go in front of q2
    assert len(got) == 2 and "q2 word" in got[0].content and got[1].content == "a2"
    with pytest.raises(ValueError, match="exceeds token limit"):
        memory.get(initial_token_count=101)


def test_the_window_counts_tokens_with_llama_index_tokenizer(clients: tuple) -> None:
    memory = make(clients)
    assert memory.token_limit == 3000 and memory.window_size is None
    assert memory.tokenizer_fn("hello world") == memory_tokenizer()("hello world")
    assert "tokenizer_fn" not in memory.model_dump()


def memory_tokenizer():
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer()


def test_frameworks_editing_returned_messages_do_not_change_the_window(clients: tuple) -> None:
    memory = make(clients)
    memory.put(user("original"))
    memory.get()[-1].blocks[-1].text = "edited"
    assert memory.get_all()[-1].content == "original"


# -- economy mode -------------------------------------------------------------------


def test_economy_one_request_per_turn_and_nothing_lost_on_close(
    clients: tuple, recorder: Recorder
) -> None:
    memory = make(clients, economy=True)
    per_turn = []
    for i in range(5):
        memory.put(user(f"fact number {i} is about topic{i}"))
        memory.get()
        memory.put(assistant(f"answer {i}"))
        per_turn.append(len(recorder.take()))
    assert per_turn == [1, 1, 1, 1, 1]
    assert memory.pending_writes == 1  # the last answer waits for the next recall
    memory.close()
    assert Recorder.ops(recorder.take()) == ["remember_many"]
    contents = [m.content for m in clients[0].list_memories(user_id="u1", agent_id="bot")]
    assert len(contents) == 10 and contents[-1] == "answer 4"


async def test_economy_async_batches_the_write_with_the_recall(
    clients: tuple, recorder: Recorder
) -> None:
    memory = make(clients, economy=True)
    for i in range(3):
        await memory.aput(user(f"turn {i}"))
        await memory.aget()
        await memory.aput(assistant(f"reply {i}"))
    requests = recorder.take()
    assert [r[1] for r in requests] == ["/v1/batch"] * 3
    assert Recorder.ops(requests[1:]) == ["remember_many", "recall"] * 2
    await memory.aclose()
    assert len(list(clients[0].list_memories(user_id="u1", agent_id="bot"))) == 6


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_economy_failure_restores_the_writes(api_key: str, flavor: str) -> None:
    bodies: list[dict] = []
    fail = {"on": True}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if fail["on"]:
            return httpx.Response(
                500, json={"error": {"code": "internal_error", "message": "boom", "field": None}}
            )
        bodies.append(body)
        results = [
            {"memories": []} if op["op"] == "remember_many" else {"results": []}
            for op in body["operations"]
        ]
        return httpx.Response(200, json={"results": results})

    sync, async_ = mock_clients(handler, api_key)
    memory = MemLayerMemory(
        user_id="u1",
        agent_id="bot",
        client=sync,
        async_client=async_,
        economy=True,
        write_policy="everything",
    )
    memory.put_messages([user("one"), assistant("two")])
    memory.put(user("three"))
    with pytest.raises(InternalServerError):
        memory.get() if flavor == "sync" else await memory.aget()
    assert memory.pending_writes == 3
    fail["on"] = False
    memory.get() if flavor == "sync" else await memory.aget()
    assert [i["content"] for i in bodies[0]["operations"][0]["items"]] == ["one", "two", "three"]
    assert memory.pending_writes == 0


def test_failed_turn_write_is_kept_for_the_next_one(api_key: str) -> None:
    calls: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        items = [i["content"] for i in json.loads(request.content)["items"]]
        calls.append(items)
        if len(calls) == 1:
            return httpx.Response(
                503, json={"error": {"code": "internal_error", "message": "x", "field": None}}
            )
        return httpx.Response(201, json={"memories": []})

    sync, async_ = mock_clients(handler, api_key)
    memory = MemLayerMemory(
        user_id="u1", agent_id="bot", client=sync, async_client=async_, write_policy="everything"
    )
    memory.put(user("a"))
    with pytest.raises(InternalServerError):
        memory.put(assistant("b"))
    memory.put_messages([user("c"), assistant("d")])
    assert calls == [["a", "b"], ["a", "b", "c", "d"]]


def test_forget_all_deletes_long_term_memories(clients: tuple) -> None:
    memory = make(clients)
    memory.put_messages([user("x"), assistant("y")])
    memory.put(user("pending"))
    assert memory.forget_all() == 2
    assert memory.pending_writes == 0 and memory.get_all() == []
    assert list(clients[0].list_memories(user_id="u1", agent_id="bot")) == []


# -- errors and serialization -------------------------------------------------------


def test_bad_key_raises_authentication_error(base_url: str) -> None:
    memory = MemLayerMemory(
        user_id="u1", agent_id="bot", api_key="ml_live_" + secrets.token_hex(8), base_url=base_url
    )
    memory.put(user("hi"))
    with pytest.raises(AuthenticationError):
        memory.get()
    with pytest.raises(AuthenticationError):
        MemLayerMemory(user_id="u1", agent_id="bot", api_key="sk-wrong", base_url=base_url).get(
            input="hi"
        )


def test_serializes_without_clients_or_key(
    base_url: str, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemLayerMemory(
        user_id="u1",
        agent_id="bot",
        session_id="s",
        api_key=api_key,
        base_url=base_url,
        economy=True,
    )
    memory.set([user("hello"), assistant("hi")])
    dumped = json.dumps(memory.to_dict())
    assert (
        api_key not in dumped
        and api_key not in memory.model_dump_json()
        and api_key not in repr(memory)
    )
    monkeypatch.setenv("MEMLAYER_API_KEY", api_key)
    restored = MemLayerMemory.from_dict(json.loads(dumped))
    assert (restored.user_id, restored.session_id, restored.economy, restored.base_url) == (
        "u1",
        "s",
        True,
        base_url,
    )
    assert [m.content for m in restored.get_all()] == ["hello", "hi"]
    restored.put(user("where"))
    restored.get()  # builds its client from base_url and the environment
    restored.close()
