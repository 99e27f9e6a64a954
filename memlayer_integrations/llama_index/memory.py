"""``MemLayerMemory``: a LlamaIndex ``BaseMemory`` with a short window and long-term recall.

What it costs, per turn (one user message and its answer):

* one recall, however many times the engine or agent asks for the messages: LlamaIndex's
  agents call ``aget`` before and after every tool round, so results are cached until the
  next user message arrives;
* one ``remember_many`` with the turn's messages, sent when the final answer is put.

That is two requests per turn. With ``economy=True`` the turn's write waits and travels with
the next turn's recall in one ``/v1/batch`` request: one request per turn. Writes still
waiting are sent by :meth:`MemLayerMemory.close` (and at interpreter exit), and a request
that fails puts them back, so nothing is lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_serializer
from llama_index.core.llms import LLM
from llama_index.core.memory.chat_memory_buffer import DEFAULT_TOKEN_LIMIT
from llama_index.core.memory.memory import InsertMethod
from llama_index.core.memory.types import BaseMemory
from llama_index.core.utils import get_tokenizer

from .. import AsyncMemLayerClient, MemLayerClient, RecalledMemory
from .._adapter import (
    DEFAULT_RECALL_LIMIT,
    ClientPair,
    WriteBuffer,
    arecall_carrying,
    asend_pending,
    check_write_policy,
    recall_carrying,
    renamed_argument,
    renamed_attribute,
    render_memories,
    require_scope,
    send_pending,
)
from .._adapter.extraction import (
    EXTRACTION_PROMPT,
    Turn,
    acall_extractor,
    call_extractor,
    fact_items,
    parse_facts,
    transcript,
)
from ._messages import (
    ends_turn,
    inject_memories,
    last_turn,
    memory_item,
    message_text,
    query_from,
    trim_window,
)

__all__ = ["MemLayerMemory"]


class _TurnState:
    """The window's lock, the user-turn counter and the current turn's recall results.

    A plain object, not pydantic private attributes: ``get`` runs on every model call of an
    agent, and each private attribute read of a pydantic model goes through ``__getattr__``.
    """

    __slots__ = ("cache", "generation", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0  # counts user messages: the cache is valid within one
        self.cache: tuple[int, str, list[RecalledMemory]] | None = (
            None  # (generation, query, results)
        )

    def new_generation(self) -> None:
        """A new user message: the cached recall no longer applies (call with ``lock`` held)."""
        self.generation += 1
        self.cache = None


class MemLayerMemory(BaseMemory):
    """Chat memory for LlamaIndex chat engines and agents, backed by MemLayer.

    It keeps the newest whole turns that fit in ``token_limit`` tokens in process and, on
    every read, adds the
    long-term memories recalled for the current input (left out when the window already
    holds them). Messages put into it are stored as long-term memories of ``user_id`` and
    ``agent_id``, one request per turn.

    Works as the ``memory=`` of ``SimpleChatEngine``, ``ContextChatEngine``,
    ``CondensePlusContextChatEngine``, ``FunctionAgent``, ``ReActAgent`` and ``AgentWorkflow``.

    Args:
        user_id: whose memories these are (required).
        agent_id: which agent's memories (required).
        session_id: stored with every memory written, to tell conversations apart.
        token_limit: the window's budget in tokens, counted with ``tokenizer_fn``
            (LlamaIndex's ``get_tokenizer()`` by default, as ``ChatMemoryBuffer``). Whole
            turns are dropped, oldest first; the last complete turn and the turn in progress
            are always kept, however many tool rounds they hold. A chat engine's
            ``initial_token_count`` is taken off the budget on read, as in ``ChatMemoryBuffer``.
        window_size: an optional cap on the window's messages, applied the same way (whole
            turns; system messages stay).
        k: how many memories to recall per user message. ``recall_limit=``, its former
            name, still works and warns.
        max_memory_chars: budget for the block of recalled memories.
        insert_method: ``InsertMethod.USER`` (default) puts the memories in front of the
            latest user message: engines and agents add their own system prompt in front of
            the memory's messages without merging, so a memory system message would be a
            second one. ``InsertMethod.SYSTEM`` merges them into the window's system message,
            or prepends one if there is none; use it when the memory's messages are the whole
            prompt.
        economy: send each turn's write with the next turn's recall (one request per turn).
        remember: whose messages are stored: ``"both"`` (default), ``"user"`` or
            ``"assistant"``.
        write_policy: which of them are worth a memory: ``"statements"`` (default) leaves
            out questions, greetings and acknowledgements, ``"everything"`` keeps them, or a
            callable ``(text, role) -> bool``. Stored text is exactly what was said; recalled
            assistant messages are shown after the user's.
        extract: off by default (text is stored exactly as said). A LlamaIndex ``LLM``, or a
            callable ``(turn) -> facts`` where ``turn`` is the turn's ``(role, text)``
            pairs: each finished turn becomes zero or more short facts, stored in the turn's
            one write request instead of its messages.
        keep_turn: with ``extract``, store the turn's messages (under ``remember`` and
            ``write_policy``) beside the facts.
        make_room: at the plan's memory limit, forget the oldest memories of the user and
            agent (as many as are being stored) and store; off, the ``MemoryLimitError`` is
            raised and says how to turn this on.
        client, async_client: clients to use; else built from ``api_key`` and ``base_url``
            (or ``$MEMLAYER_API_KEY`` and ``$MEMLAYER_BASE_URL``).

    Constructing it sends nothing. It serializes (``to_dict``, ``model_dump``) without its
    clients or key, so a workflow ``Context`` holding it can be saved; a restored copy
    builds its clients from ``base_url`` and ``$MEMLAYER_API_KEY``, or pass them to
    ``MemLayerMemory.from_dict(data, client=..., async_client=...)``.

    Example:
        >>> from llama_index.core.chat_engine import SimpleChatEngine
        >>> from memlayer_integrations.llama_index import MemLayerMemory
        >>> memory = MemLayerMemory(user_id="user_123", agent_id="support_bot",
        ...                         api_key=key, base_url=server.url)
        >>> engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
        >>> engine.chat("I moved to Oslo last month").response
        >>> memory.close()  # sends anything still waiting
    """

    user_id: str
    agent_id: str
    session_id: str | None = None
    token_limit: int = Field(default=DEFAULT_TOKEN_LIMIT, ge=1)
    window_size: int | None = Field(default=None, ge=1)
    tokenizer_fn: Callable[[str], list[Any]] = Field(default_factory=get_tokenizer, exclude=True)
    k: int = Field(default=DEFAULT_RECALL_LIMIT, ge=1, le=100)
    recall_limit = renamed_attribute("recall_limit", "k")
    max_memory_chars: int = Field(default=2000, ge=100)
    insert_method: InsertMethod = InsertMethod.USER
    economy: bool = False
    make_room: bool = False
    extract: Any = Field(default=None, exclude=True)
    keep_turn: bool = False
    remember: Literal["user", "assistant", "both"] = "both"
    write_policy: Any = Field(default="statements", exclude=True)
    base_url: str | None = None
    chat_history: list[ChatMessage] = Field(
        default_factory=list, description="The in-process window."
    )

    _clients: ClientPair = PrivateAttr()
    _buffer: WriteBuffer = PrivateAttr()
    _turn: _TurnState = PrivateAttr(default_factory=_TurnState)

    def __init__(
        self,
        *,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any = None,
        **data: Any,
    ) -> None:
        renamed_argument(data, "recall_limit", "k", owner=type(self).__name__)
        require_scope(
            type(self).__name__, user_id=data.get("user_id"), agent_id=data.get("agent_id")
        )
        super().__init__(**data)
        self.write_policy = check_write_policy(self.write_policy)
        if self.extract is not None and not (
            isinstance(self.extract, LLM) or callable(self.extract)
        ):
            raise TypeError("extract must be a LlamaIndex LLM or a callable (turn) -> facts")
        clients = ClientPair(client, async_client, api_key, self.base_url)
        self.base_url = clients.base_url
        self._clients = clients
        # The exit hook flushes with the sync client: at exit there is no event loop left.
        self._buffer = WriteBuffer(flush=lambda ops: clients.sync.batch(ops))
        self.chat_history = self._trim(list(self.chat_history))

    @classmethod
    def class_name(cls) -> str:
        return "MemLayerMemory"

    @classmethod
    def from_defaults(cls, **kwargs: Any) -> MemLayerMemory:
        """Same as the constructor (LlamaIndex's factory name)."""
        return cls(**kwargs)

    @field_serializer("chat_history")
    def _dump_history(self, messages: list[ChatMessage]) -> list[dict[str, Any]]:
        # JSON mode, so bytes in image blocks survive a JSON round trip.
        return [m.model_dump(mode="json") for m in messages]

    @field_serializer("insert_method")
    def _dump_insert_method(self, method: InsertMethod) -> str:
        return method.value

    # -- reading ---------------------------------------------------------------------

    def get(self, input: str | ChatMessage | None = None, **kwargs: Any) -> list[ChatMessage]:
        """The window, with the memories recalled for ``input`` (else the latest user message).

        ``initial_token_count`` (what a chat engine's own prompt costs) is taken off
        ``token_limit`` for this read; other keyword arguments are ignored.
        """
        window, generation, query, recalled = self._snapshot(input, kwargs)
        if recalled is None:
            recalled = self._recall(query, generation) if query else []
        return self._compose(window, recalled, input)

    async def aget(
        self, input: str | ChatMessage | None = None, **kwargs: Any
    ) -> list[ChatMessage]:
        """Async :meth:`get`."""
        window, generation, query, recalled = self._snapshot(input, kwargs)
        if recalled is None:
            recalled = await self._arecall(query, generation) if query else []
        return self._compose(window, recalled, input)

    def get_all(self) -> list[ChatMessage]:
        """The window as it is, without recalled memories."""
        with self._turn.lock:
            return [m.model_copy(deep=True) for m in self.chat_history]

    async def aget_all(self) -> list[ChatMessage]:
        """Async :meth:`get_all` (no I/O)."""
        return self.get_all()

    # -- writing ---------------------------------------------------------------------

    def put(self, message: ChatMessage) -> None:
        """Add ``message`` to the window; it is stored when its turn ends."""
        self.put_messages([message])

    async def aput(self, message: ChatMessage) -> None:
        """Async :meth:`put`."""
        await self.aput_messages([message])

    def put_messages(self, messages: list[ChatMessage]) -> None:
        """Add ``messages``; a final assistant answer among them sends the turn (one request)."""
        send, turn = self._accept(messages)
        if turn:
            self._queue_facts(self._extracted(turn))
        if send:
            self._write_pending()

    async def aput_messages(self, messages: list[ChatMessage]) -> None:
        """Async :meth:`put_messages`."""
        send, turn = self._accept(messages)
        if turn:
            self._queue_facts(await self._aextracted(turn))
        if send:
            await self._awrite_pending()

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace the window with ``messages``. Nothing is stored or deleted on the server:
        a history handed in this way is taken as already known."""
        with self._turn.lock:
            self.chat_history = self._trim([m.model_copy(deep=True) for m in messages])
            self._turn.new_generation()

    async def aset(self, messages: list[ChatMessage]) -> None:
        """Async :meth:`set` (no I/O)."""
        self.set(messages)

    def reset(self) -> None:
        """Start a new conversation: clear the local window only.

        Long-term memories stay on the server, and writes not yet sent are still sent (at
        the end of the next turn, by :meth:`close` or at exit). To delete the long-term
        memories, call :meth:`forget_all`.
        """
        with self._turn.lock:
            self.chat_history = []
            self._turn.new_generation()

    async def areset(self) -> None:
        """Async :meth:`reset` (no I/O)."""
        self.reset()

    def forget_all(self) -> int:
        """Delete every long-term memory of this user and agent, drop unsent writes and clear
        the window. Returns how many memories were deleted."""
        ops = self._buffer.take()
        try:
            deleted = self._clients.sync.forget_all(user_id=self.user_id, agent_id=self.agent_id)
        except BaseException:
            self._buffer.restore(ops)
            raise
        self.reset()
        return deleted

    async def aforget_all(self) -> int:
        """Async :meth:`forget_all`."""
        ops = self._buffer.take()
        try:
            deleted = await self._clients.async_.forget_all(
                user_id=self.user_id, agent_id=self.agent_id
            )
        except BaseException:
            self._buffer.restore(ops)
            raise
        self.reset()
        return deleted

    @property
    def pending_writes(self) -> int:
        """How many messages wait to be stored (economy mode, or a turn not yet answered)."""
        return len(self._buffer)

    def flush(self) -> None:
        """Send every waiting write now."""
        self._write_pending()

    async def aflush(self) -> None:
        """Async :meth:`flush`."""
        await self._awrite_pending()

    def close(self) -> None:
        """Send every waiting write, then close the clients this memory built."""
        self._write_pending()
        self._clients.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._awrite_pending()
        await self._clients.aclose()

    def __enter__(self) -> MemLayerMemory:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def __aenter__(self) -> MemLayerMemory:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    # -- pure steps shared by the sync and async paths --------------------------------

    def _count_tokens(self, text: str) -> int:
        return len(self.tokenizer_fn(text))

    def _trim(
        self, messages: list[ChatMessage], token_limit: int | None = None
    ) -> list[ChatMessage]:
        limit = self.token_limit if token_limit is None else token_limit
        return trim_window(messages, self.window_size, limit, self._count_tokens)

    def _snapshot(
        self, input: str | ChatMessage | None, kwargs: dict[str, Any]
    ) -> tuple[list[ChatMessage], int, str | None, list[RecalledMemory] | None]:
        """The window, the user turn, the query, and this turn's recall for it if cached."""
        initial = kwargs.get("initial_token_count") or 0
        if initial > self.token_limit:
            raise ValueError("Initial token count exceeds token limit")
        turn = self._turn
        with turn.lock:
            window = list(self.chat_history)
            if initial:
                window = self._trim(window, self.token_limit - initial)
            query = query_from(window, input)
            cache = turn.cache
            cached = (
                cache[2] if cache is not None and cache[:2] == (turn.generation, query) else None
            )
            return window, turn.generation, query, cached

    def _store_cache(self, query: str, generation: int, recalled: list[RecalledMemory]) -> None:
        turn = self._turn
        with turn.lock:
            if generation == turn.generation:
                turn.cache = (generation, query, recalled)

    def _roles(self) -> tuple[str, ...]:
        return ("user", "assistant") if self.remember == "both" else (self.remember,)

    def _scope(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "limit": self.k}

    def _compose(
        self,
        window: Sequence[ChatMessage],
        recalled: list[RecalledMemory],
        input: str | ChatMessage | None,
    ) -> list[ChatMessage]:
        seen = [message_text(m) for m in window]
        if input is not None:
            seen.append(input if isinstance(input, str) else message_text(input))
        block = render_memories(recalled, exclude=seen, max_chars=self.max_memory_chars)
        return inject_memories(window, block, self.insert_method)

    def _accept(self, messages: Sequence[ChatMessage]) -> tuple[bool, Turn | None]:
        """Add to the window and queue what is stored. Returns whether the turn should be
        sent now, and the finished turn when there is one to extract facts from."""
        items: list[dict[str, Any]] = []
        ended = False
        raw = self.extract is None or self.keep_turn
        with self._turn.lock:
            for message in messages:
                self.chat_history.append(message.model_copy(deep=True))
                if message.role == MessageRole.USER:
                    self._turn.new_generation()
                item = memory_item(message, self.session_id, self.write_policy, self._roles())
                if item is not None and raw:
                    items.append(item)
                ended = ended or ends_turn(message)
            turn = last_turn(self.chat_history) if ended and self.extract is not None else None
            self.chat_history = self._trim(self.chat_history)
        if items:
            self._buffer.add(items, user_id=self.user_id, agent_id=self.agent_id)
        # In economy mode the turn waits for the next recall instead.
        return ended and not self.economy, turn

    def _queue_facts(self, facts: list[str]) -> None:
        items = fact_items(facts, self.session_id, role="user")
        if items:
            self._buffer.add(items, user_id=self.user_id, agent_id=self.agent_id)

    def _prompt(self, turn: Turn) -> list[ChatMessage]:
        return [
            ChatMessage(role=MessageRole.SYSTEM, content=EXTRACTION_PROMPT),
            ChatMessage(role=MessageRole.USER, content=transcript(turn)),
        ]

    def _extracted(self, turn: Turn) -> list[str]:
        """The facts of a finished turn, from the ``extract`` LLM or callable (sync)."""
        if isinstance(self.extract, LLM):
            return parse_facts(self.extract.chat(self._prompt(turn)).message.content or "")
        return call_extractor(self.extract, turn)

    async def _aextracted(self, turn: Turn) -> list[str]:
        """Async :meth:`_extracted`."""
        if isinstance(self.extract, LLM):
            answer = await self.extract.achat(self._prompt(turn))
            return parse_facts(answer.message.content or "")
        return await acall_extractor(self.extract, turn)

    # -- I/O, twice ------------------------------------------------------------------

    def _recall(self, query: str, generation: int) -> list[RecalledMemory]:
        recalled = recall_carrying(
            self._clients.sync,
            self._buffer,
            query,
            carry=self.economy,
            make_room=self.make_room,
            adapter="MemLayerMemory",
            **self._scope(),
        )
        self._store_cache(query, generation, recalled)
        return recalled

    async def _arecall(self, query: str, generation: int) -> list[RecalledMemory]:
        recalled = await arecall_carrying(
            self._clients.async_,
            self._buffer,
            query,
            carry=self.economy,
            make_room=self.make_room,
            adapter="MemLayerMemory",
            **self._scope(),
        )
        self._store_cache(query, generation, recalled)
        return recalled

    def _write_pending(self) -> None:
        send_pending(
            self._clients.sync, self._buffer, make_room=self.make_room, adapter="MemLayerMemory"
        )

    async def _awrite_pending(self) -> None:
        await asend_pending(
            self._clients.async_, self._buffer, make_room=self.make_room, adapter="MemLayerMemory"
        )
