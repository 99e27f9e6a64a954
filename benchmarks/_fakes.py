"""Deterministic stand-ins for a chat model, so that only memory requests are measured.

Each model calls the dummy tool ``lookup`` a fixed number of times in a turn (a "tool
round" is one model call that asks for a tool plus the tool's answer), then answers in
plain text. A turn starts at the latest user message, so the count restarts every turn.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

__all__ = ["lookup_function", "lookup_tool", "scripted_chat_model", "scripted_function_llm"]

ANSWER_PREFIX = "Noted"


def lookup(topic: str) -> str:
    """Look up a topic in the product catalogue."""
    return f"nothing new about {topic}"


# -- LangChain ----------------------------------------------------------------------------


def lookup_tool() -> Any:
    from langchain_core.tools import tool

    return tool(lookup)


def scripted_chat_model(tool_rounds: int) -> Any:
    """A LangChain chat model that calls ``lookup`` ``tool_rounds`` times per turn."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class ScriptedToolModel(BaseChatModel):
        rounds: int = 0

        @property
        def _llm_type(self) -> str:
            return "scripted-tool-model"

        def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:
            return self  # the script already knows its one tool

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: Any = None,
            **kwargs: Any,
        ) -> ChatResult:
            done, question = 0, ""
            for m in reversed(messages):
                if isinstance(m, HumanMessage):
                    question = str(m.text)
                    break
                if isinstance(m, ToolMessage):
                    done += 1
            if done < self.rounds:
                call = {
                    "name": "lookup",
                    "args": {"topic": f"round {done + 1}"},
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                }
                message = AIMessage(content="", tool_calls=[call])
            else:
                message = AIMessage(content=f"{ANSWER_PREFIX}: {question[:60]}")
            return ChatResult(generations=[ChatGeneration(message=message)])

    return ScriptedToolModel(rounds=tool_rounds)


# -- LlamaIndex ---------------------------------------------------------------------------


def lookup_function() -> Any:
    from llama_index.core.tools import FunctionTool

    return FunctionTool.from_defaults(fn=lookup)


def scripted_function_llm(tool_rounds: int) -> Any:
    """A LlamaIndex function-calling LLM that calls ``lookup`` ``tool_rounds`` times per turn."""
    from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
    from llama_index.core.llms.mock import MockFunctionCallingLLM

    def respond(messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        done, question = 0, ""
        for m in reversed(messages):
            if m.role == MessageRole.USER:
                question = m.content or ""
                break
            if m.role == MessageRole.TOOL:
                done += 1
        if done < tool_rounds and kwargs.get("tools"):
            block = ToolCallBlock(
                tool_call_id=f"call_{uuid.uuid4().hex[:12]}",
                tool_name="lookup",
                tool_kwargs={"topic": f"round {done + 1}"},
            )
            return ChatMessage(role=MessageRole.ASSISTANT, blocks=[block])
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"{ANSWER_PREFIX}: {question[:60]}")

    return MockFunctionCallingLLM(response_generator=respond, is_chat_model=True)
