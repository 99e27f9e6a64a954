"""Pure helpers on LlamaIndex chat messages, shared by the memory adapters (no I/O here).

They decide what a message means for long-term memory: its text, whether it ends a turn,
what is stored from it, and where the recalled memories go in the messages handed to the
model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.memory.memory import InsertMethod

from .._adapter import clip_query

__all__ = [
    "SOURCE",
    "ends_turn",
    "has_tool_calls",
    "inject_memories",
    "memory_item",
    "message_text",
    "query_from",
    "trim_window",
]

#: ``metadata["source"]`` of memories written from LlamaIndex conversations.
SOURCE = "llama_index"

_STORED_ROLES = (MessageRole.USER, MessageRole.ASSISTANT)


def message_text(message: ChatMessage) -> str:
    """The text blocks of ``message``, joined as LlamaIndex's agents join them."""
    return "\n".join(b.text for b in message.blocks if isinstance(b, TextBlock))


def has_tool_calls(message: ChatMessage) -> bool:
    """Whether ``message`` asks for tool calls (as blocks or, older style, in kwargs)."""
    return any(isinstance(b, ToolCallBlock) for b in message.blocks) or bool(
        message.additional_kwargs.get("tool_calls")
    )


def ends_turn(message: ChatMessage) -> bool:
    """An assistant answer that calls no tool: the turn is over and can be stored."""
    return message.role == MessageRole.ASSISTANT and not has_tool_calls(message)


def memory_item(message: ChatMessage, session_id: str | None) -> dict[str, Any] | None:
    """What is stored from ``message``, or ``None`` for what long-term memory leaves out.

    User messages and assistant answers with text are kept; system prompts, tool results
    and tool-call requests are the mechanics of one turn, not facts worth recalling later.
    """
    if message.role not in _STORED_ROLES or has_tool_calls(message):
        return None
    text = message_text(message)
    if not text.strip():
        return None
    item: dict[str, Any] = {
        "content": text,
        "metadata": {"role": message.role.value, "source": SOURCE},
    }
    if session_id is not None:
        item["session_id"] = session_id
    return item


def query_from(
    messages: Sequence[ChatMessage], input: str | ChatMessage | None = None
) -> str | None:
    """The recall query: ``input`` if given, else the latest user message; ``None`` if blank.

    Cut to the contract's 4,096 characters; a search query that long has long stopped
    gaining precision.
    """
    if isinstance(input, ChatMessage):
        text: str | None = message_text(input)
    elif isinstance(input, str):
        text = input
    else:
        text = next(
            (message_text(m) for m in reversed(messages) if m.role == MessageRole.USER), None
        )
    if text is None or not text.strip():
        return None
    return clip_query(text)


def trim_window(messages: list[ChatMessage], size: int) -> list[ChatMessage]:
    """The last ``size`` messages, starting at a user message; system messages stay.

    A window that began with a tool result or an assistant reply would break the message
    order providers require, so such leading messages go too.
    """
    system = [m for m in messages if m.role == MessageRole.SYSTEM]
    rest = [m for m in messages if m.role != MessageRole.SYSTEM]
    if len(rest) > size:
        rest = rest[len(rest) - size :]
        while rest and rest[0].role != MessageRole.USER:
            rest.pop(0)
    return [*system, *rest]


def inject_memories(
    messages: Sequence[ChatMessage], block: str | None, method: InsertMethod
) -> list[ChatMessage]:
    """Copies of ``messages`` with the memory ``block`` placed according to ``method``.

    * ``InsertMethod.USER``: in front of the text of the latest user message, or as a user
      message at the end when there is none. Chat engines and agents put their own system
      prompt *before* the memory's messages without merging, so this is the placement that
      never yields a second system message.
    * ``InsertMethod.SYSTEM``: appended to the first system message, or as a system message
      at the start when there is none.

    Messages are copied, so the caller (or a framework that edits messages in place) never
    changes the window itself.
    """
    result = [m.model_copy(deep=True) for m in messages]
    if not block:
        return result
    if method == InsertMethod.SYSTEM:
        idx = next((i for i, m in enumerate(result) if m.role == MessageRole.SYSTEM), None)
        if idx is None:
            result.insert(0, ChatMessage(role=MessageRole.SYSTEM, content=block))
        else:
            result[idx].blocks = [*result[idx].blocks, TextBlock(text="\n\n" + block)]
        return result
    idx = next(
        (i for i in range(len(result) - 1, -1, -1) if result[i].role == MessageRole.USER), None
    )
    if idx is None:
        result.append(ChatMessage(role=MessageRole.USER, content=block))
    else:
        result[idx].blocks = [TextBlock(text=block + "\n"), *result[idx].blocks]
    return result
