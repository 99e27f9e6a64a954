"""Helpers for the LangChain adapter tests: the request counter the ``clients`` fixture logs
into, clients of a scripted transport, and a scripted chat model that records what it was
shown."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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


def mock_clients(
    handler: Callable[[httpx.Request], httpx.Response], api_key: str, **kwargs: Any
) -> tuple[MemLayerClient, AsyncMemLayerClient]:
    kwargs.setdefault("max_retries", 0)
    base = "http://memlayer.test"
    return (
        MemLayerClient(
            api_key=api_key,
            base_url=base,
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
            **kwargs,
        ),
        AsyncMemLayerClient(
            api_key=api_key,
            base_url=base,
            http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
            **kwargs,
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

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.prompts.append(list(messages))
        index = min(len(self.prompts), len(self.responses)) - 1
        return ChatResult(generations=[ChatGeneration(message=self.responses[index].model_copy())])

    def system_texts(self, call: int = -1) -> list[str]:
        return [str(m.text) for m in self.prompts[call] if m.type == "system"]
