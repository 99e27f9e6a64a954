"""Helpers for the LangChain adapter tests: clients whose requests are counted at the
transport, and a scripted chat model that records what it was shown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient


class Counter:
    """Records every request that reaches the transport, as ``"METHOD /path"``."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def record(self, request: httpx.Request) -> None:
        self.requests.append(f"{request.method} {request.url.path}")

    def take(self) -> list[str]:
        seen, self.requests = self.requests, []
        return seen


class _CountingTransport(httpx.HTTPTransport):
    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.counter.record(request)
        return super().handle_request(request)


class _AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.counter.record(request)
        return await super().handle_async_request(request)


def counted_clients(base_url: str, api_key: str, **kwargs: Any) -> tuple[MemLayerClient, AsyncMemLayerClient, Counter]:
    counter = Counter()
    sync = MemLayerClient(
        api_key=api_key, base_url=base_url, http_client=httpx.Client(transport=_CountingTransport(counter)), **kwargs
    )
    async_ = AsyncMemLayerClient(
        api_key=api_key,
        base_url=base_url,
        http_client=httpx.AsyncClient(transport=_AsyncCountingTransport(counter)),
        **kwargs,
    )
    return sync, async_, counter


def mock_clients(
    handler: Callable[[httpx.Request], httpx.Response], api_key: str, **kwargs: Any
) -> tuple[MemLayerClient, AsyncMemLayerClient]:
    kwargs.setdefault("max_retries", 0)
    base = "http://memlayer.test"
    return (
        MemLayerClient(api_key=api_key, base_url=base, http_client=httpx.Client(transport=httpx.MockTransport(handler)), **kwargs),
        AsyncMemLayerClient(
            api_key=api_key, base_url=base, http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)), **kwargs
        ),
    )


class ScriptedChatModel(BaseChatModel):
    """Answers with the given messages in turn (the last one repeats) and records every
    prompt it receives. ``bind_tools`` returns the model itself, so it works in create_agent."""

    responses: list[AIMessage]
    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> "ScriptedChatModel":
        return self

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.prompts.append(list(messages))
        index = min(len(self.prompts), len(self.responses)) - 1
        return ChatResult(generations=[ChatGeneration(message=self.responses[index].model_copy())])

    def system_texts(self, call: int = -1) -> list[str]:
        return [str(m.text) for m in self.prompts[call] if m.type == "system"]
