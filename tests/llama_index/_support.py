"""Helpers for the LlamaIndex adapter tests: clients whose requests are recorded at the
transport, and deterministic LLMs that record what they were shown."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms import MockFunctionCallingLLM, MockLLM
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient

from .._support import logged_clients


class Recorder:
    """Every request that reaches the transport: ``(method, path, json body or None)``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    def record(self, request: httpx.Request) -> None:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))

    def take(self) -> list[tuple[str, str, Any]]:
        seen, self.requests = self.requests, []
        return seen

    @staticmethod
    def ops(requests: Sequence[tuple[str, str, Any]]) -> list[str]:
        """The logical operations sent: batch operations count one by one."""
        names = {
            "/v1/memories/search": "recall",
            "/v1/memories/batch": "remember_many",
            "/v1/memories": "remember",
        }
        out: list[str] = []
        for method, path, body in requests:
            if path == "/v1/batch":
                out.extend(op["op"] for op in body["operations"])
            elif method == "POST" and path in names:
                out.append(names[path])
            else:
                out.append(f"{method} {path}")
        return out


def recorded_clients(
    base_url: str, api_key: str
) -> tuple[MemLayerClient, AsyncMemLayerClient, Recorder]:
    """Real clients of the local server sharing one :class:`Recorder`."""
    recorder = Recorder()
    return (*logged_clients(base_url, api_key, recorder), recorder)


def mock_clients(
    handler: Callable[[httpx.Request], httpx.Response], api_key: str
) -> tuple[MemLayerClient, AsyncMemLayerClient]:
    """Clients whose requests go to ``handler`` (no retries, so failures show at once)."""
    base = "http://memlayer.test"
    return (
        MemLayerClient(
            api_key=api_key,
            base_url=base,
            max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        ),
        AsyncMemLayerClient(
            api_key=api_key,
            base_url=base,
            max_retries=0,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        ),
    )


class FixedRetriever(BaseRetriever):
    """Always the same document, so context engines have context to answer from."""

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text="Handbook: answer politely."), score=1.0)]


class RecordingLLM(MockLLM):
    """A chat LLM that answers ``"text"`` and records every message list it was given
    (``achat`` of a ``CustomLLM`` goes through ``chat``)."""

    def __init__(self) -> None:
        super().__init__(max_tokens=1, is_chat_model=True)
        object.__setattr__(self, "seen", [])

    def _record(self, messages: Sequence[ChatMessage]) -> None:
        self.seen.append([m.model_copy(deep=True) for m in messages])

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        self._record(messages)
        return super().chat(messages, **kwargs)


def tool_rounds_llm(
    rounds: int,
    tool_name: str,
    answer: str = "All done.",
    tool_kwargs: dict[str, Any] | None = None,
) -> MockFunctionCallingLLM:
    """A function-calling LLM that calls ``tool_name`` ``rounds`` times per user message,
    one call per round, then answers. Every input it sees is kept on ``llm.seen``."""
    seen: list[list[ChatMessage]] = []

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        seen.append([m.model_copy(deep=True) for m in messages])
        last_user = max(i for i, m in enumerate(messages) if m.role == MessageRole.USER)
        done = sum(1 for m in messages[last_user:] if m.role == MessageRole.TOOL)
        if done < rounds:
            call = ToolCallBlock(
                tool_call_id=f"call-{len(seen)}",
                tool_name=tool_name,
                tool_kwargs=tool_kwargs or {"x": str(done)},
            )
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=[call])
        return ChatMessage(role=MessageRole.ASSISTANT, content=answer)

    llm = MockFunctionCallingLLM(response_generator=respond)
    object.__setattr__(llm, "seen", seen)
    return llm


def text_of(messages: Sequence[ChatMessage]) -> str:
    return "\n".join(m.content or "" for m in messages)


def roles(messages: Sequence[ChatMessage]) -> list[str]:
    return [m.role.value for m in messages]
