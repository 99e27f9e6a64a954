"""Pure helpers on LlamaIndex chat messages, shared by the memory adapters (no I/O here).

They decide what a message means for long-term memory: its text, whether it ends a turn,
what is stored from it, and where the recalled memories go in the messages handed to the
model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.memory.memory import InsertMethod

from .._adapter import clip_query
from .._adapter.turn_memory import WritePolicy, worth_remembering

__all__ = [
    "SOURCE",
    "ends_turn",
    "has_tool_calls",
    "inject_memories",
    "last_turn",
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


def memory_item(
    message: ChatMessage,
    session_id: str | None,
    policy: WritePolicy = "statements",
    roles: Sequence[str] = ("user", "assistant"),
) -> dict[str, Any] | None:
    """What is stored from ``message``, or ``None`` for what long-term memory leaves out.

    User messages and assistant answers (of ``roles``) that the write ``policy`` finds worth
    remembering are kept; system prompts, tool results and tool-call requests are the
    mechanics of one turn, not facts worth recalling later.
    """
    if message.role not in _STORED_ROLES or has_tool_calls(message):
        return None
    if message.role.value not in roles:
        return None
    text = message_text(message)
    if not worth_remembering(text, message.role.value, policy):
        return None
    item: dict[str, Any] = {
        "content": text,
        "metadata": {"role": message.role.value, "source": SOURCE},
    }
    if session_id is not None:
        item["session_id"] = session_id
    return item


def last_turn(messages: Sequence[ChatMessage]) -> list[tuple[str, str]]:
    """The ``(role, text)`` pairs of the last turn (from the latest user message on): user
    messages and assistant replies with text, without tool mechanics."""
    start = next(
        (i for i in range(len(messages) - 1, -1, -1) if messages[i].role == MessageRole.USER), 0
    )
    return [
        (m.role.value, message_text(m))
        for m in messages[start:]
        if m.role in _STORED_ROLES and not has_tool_calls(m) and message_text(m).strip()
    ]


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


def _turns(messages: list[ChatMessage]) -> list[list[ChatMessage]]:
    """``messages`` cut before each user message: one list per turn (the first may be a
    fragment that starts with something else)."""
    turns: list[list[ChatMessage]] = []
    for m in messages:
        if m.role == MessageRole.USER or not turns:
            turns.append([])
        turns[-1].append(m)
    return turns


def _kept_whole(turns: list[list[ChatMessage]]) -> int:
    """How many of the newest turns are never dropped: the last complete turn (a user
    message through the answer that called no tool) and the one in progress after it."""
    if not turns:
        return 0
    done = ends_turn(turns[-1][-1])
    if done or len(turns) == 1 or turns[-2][0].role != MessageRole.USER:
        return 1
    return 2


def trim_window(
    messages: list[ChatMessage],
    size: int | None,
    token_limit: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> list[ChatMessage]:
    """The newest whole turns that fit in ``size`` messages and ``token_limit`` tokens;
    system messages stay.

    A turn (a user message and everything up to the next one: tool calls, tool results,
    the answer) is kept or dropped whole, so the window always starts with a user message,
    as providers require, and never holds half a turn. The last complete turn and the turn
    in progress are kept whatever they cost: an agent turn with many tool rounds must not
    erase the question and answer before it. Tokens are counted on each message's text
    with ``count_tokens`` (LlamaIndex's tokenizer, as its ``ChatMemoryBuffer`` does).
    """
    system = [m for m in messages if m.role == MessageRole.SYSTEM]
    turns = _turns([m for m in messages if m.role != MessageRole.SYSTEM])
    keep = _kept_whole(turns)
    cost = count_tokens or (lambda text: 0)
    used_messages = used_tokens = 0
    start = len(turns)
    for i in range(len(turns) - 1, -1, -1):
        turn = turns[i]
        n = len(turn)
        t = sum(cost(message_text(m)) for m in turn) if token_limit is not None else 0
        fits = (size is None or used_messages + n <= size) and (
            token_limit is None or used_tokens + t <= token_limit
        )
        if i < len(turns) - keep and not fits:
            break
        used_messages += n
        used_tokens += t
        start = i
    return [*system, *(m for turn in turns[start:] for m in turn)]


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
