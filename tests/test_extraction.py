"""Optional fact extraction in the middleware and MemLayerMemory, with scripted models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient
from memlayer_integrations._adapter.extraction import EXTRACTION_PROMPT, parse_facts
from memlayer_integrations.langchain import MemLayerMiddleware
from memlayer_integrations.llama_index import MemLayerMemory
from tests.langchain._support import ScriptedChatModel

FACTS = "- I live in Oslo\n- My cat is called Whiskers\n"
SAID = "Hi! I moved to Oslo last year, with Whiskers, my cat. Do you know Oslo?"


@pytest.fixture
def client(base_url: str, api_key: str):
    with MemLayerClient(api_key=api_key, base_url=base_url) as sync:
        yield sync


def stored(client: MemLayerClient) -> list[tuple[str, dict]]:
    return [(m.content, m.metadata) for m in client.list_memories(user_id="alice", agent_id="bot")]


def ask(memory: MemLayerMiddleware, text: str = SAID) -> None:
    agent = create_agent(
        ScriptedChatModel(responses=[AIMessage("Oslo is lovely.")]), tools=[], middleware=[memory]
    )
    agent.invoke({"messages": [HumanMessage(text)]}, {"configurable": {"user_id": "alice"}})


async def aask(memory: MemLayerMiddleware, text: str = SAID) -> None:
    agent = create_agent(
        ScriptedChatModel(responses=[AIMessage("Oslo is lovely.")]), tools=[], middleware=[memory]
    )
    # context=, not configurable: on Python 3.10 an async run's hooks cannot read the config.
    await agent.ainvoke({"messages": [HumanMessage(text)]}, context={"user_id": "alice"})


def test_parse_facts_reads_lines_and_drops_none() -> None:
    assert parse_facts("1. I live in Oslo\n\n* I like tea\nNONE\n- I like tea") == [
        "I live in Oslo",
        "I like tea",
    ]
    assert parse_facts("NONE.") == []


def test_without_extract_text_is_stored_exactly(client) -> None:
    ask(MemLayerMiddleware(agent_id="bot", client=client))
    assert stored(client) == [(SAID, {"role": "user"})]


def test_middleware_stores_the_models_facts_in_the_turns_one_write(client) -> None:
    model = ScriptedChatModel(responses=[AIMessage(FACTS)])
    ask(MemLayerMiddleware(agent_id="bot", client=client, extract=model))
    assert stored(client) == [
        ("I live in Oslo", {"source": "extracted", "role": "user"}),
        ("My cat is called Whiskers", {"source": "extracted", "role": "user"}),
    ]
    [prompt] = model.prompts
    assert prompt[0].text == EXTRACTION_PROMPT
    assert prompt[1].text == f"user: {SAID}\nassistant: Oslo is lovely."


def test_keep_turn_stores_the_message_beside_the_facts(client) -> None:
    model = ScriptedChatModel(responses=[AIMessage(FACTS)])
    ask(MemLayerMiddleware(agent_id="bot", client=client, extract=model, keep_turn=True))
    assert [c for c, _ in stored(client)] == [SAID, "I live in Oslo", "My cat is called Whiskers"]


async def test_async_middleware_with_a_callable_and_nothing_to_remember(
    base_url: str, api_key: str
) -> None:
    seen = []

    async def extract(turn: Sequence[tuple[str, str]]) -> list[str]:
        seen.append(list(turn))
        return [] if "weather" in turn[0][1] else ["I like tea"]

    async with AsyncMemLayerClient(api_key=api_key, base_url=base_url) as aclient:
        with MemLayerClient(api_key=api_key, base_url=base_url) as sync:
            memory = MemLayerMiddleware(
                agent_id="bot", client=sync, async_client=aclient, extract=extract
            )
            await aask(memory, "How is the weather?")
            await aask(memory, "Tea, always tea.")
            assert [c for c, _ in stored(sync)] == ["I like tea"]
    assert seen[1] == [("user", "Tea, always tea."), ("assistant", "Oslo is lovely.")]


def test_an_async_extractor_in_a_sync_run_is_a_type_error(client) -> None:
    async def extract(turn: Any) -> list[str]:
        return []

    with pytest.raises(TypeError, match="async"):
        ask(MemLayerMiddleware(agent_id="bot", client=client, extract=extract))


def test_a_bad_extract_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="extract"):
        MemLayerMiddleware(agent_id="bot", api_key="ml_live_x", extract="gpt-4")  # type: ignore[arg-type]


class FactsLLM(CustomLLM):
    """Answers every chat with ``FACTS`` and keeps the prompts."""

    prompts: list[list[ChatMessage]] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_chat_model=True)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self.prompts.append(list(messages))
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=FACTS))

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=FACTS)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        yield CompletionResponse(text=FACTS, delta=FACTS)


def turn() -> list[ChatMessage]:
    return [
        ChatMessage(role=MessageRole.USER, content=SAID),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            content="",
            additional_kwargs={"tool_calls": [{"id": "c1", "name": "lookup"}]},
        ),
        ChatMessage(role=MessageRole.TOOL, content="Oslo: 700,000 people"),
        ChatMessage(role=MessageRole.ASSISTANT, content="Oslo is lovely."),
    ]


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_memory_stores_the_llms_facts(base_url: str, api_key: str, flavor: str) -> None:
    llm = FactsLLM()
    memory = MemLayerMemory(
        user_id="alice",
        agent_id="bot",
        session_id="s1",
        extract=llm,
        api_key=api_key,
        base_url=base_url,
    )
    if flavor == "sync":
        memory.put_messages(turn())
    else:
        await memory.aput_messages(turn())
    with MemLayerClient(api_key=api_key, base_url=base_url) as sync:
        assert [(c, m["source"]) for c, m in stored(sync)] == [
            ("I live in Oslo", "extracted"),
            ("My cat is called Whiskers", "extracted"),
        ]
    [prompt] = llm.prompts
    assert prompt[1].content == f"user: {SAID}\nassistant: Oslo is lovely."  # no tool mechanics
    assert "extract" not in memory.model_dump()
    await memory.aclose()


def test_memory_with_a_callable_and_keep_turn(base_url: str, api_key: str) -> None:
    memory = MemLayerMemory(
        user_id="alice",
        agent_id="bot",
        extract=lambda t: ["I live in Oslo"],
        keep_turn=True,
        api_key=api_key,
        base_url=base_url,
    )
    memory.put_messages(turn())
    with MemLayerClient(api_key=api_key, base_url=base_url) as sync:
        assert [c for c, _ in stored(sync)] == [SAID, "Oslo is lovely.", "I live in Oslo"]
    memory.close()
