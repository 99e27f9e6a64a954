"""Long-term memory for ``create_agent``: recall at the start of a turn, remember at its end.

How a turn runs (one ``agent.invoke``):

1. ``before_agent`` (once per turn) recalls the memories relevant to the latest user message
   and keeps them in the agent state (a private key, so a run resumed after an interrupt
   reuses them instead of recalling again).
2. ``wrap_model_call`` (every model call of the turn, however many tool rounds) merges them
   into the request's system message: never a second system message, never a memory the
   conversation already holds, within ``max_chars``, each with its memory id.
3. ``after_agent`` (once per turn) stores the turn's messages in one ``remember_many``.

So a turn costs at most two requests. With ``economy=True`` the write of step 3 is queued
and travels with the next turn's recall in one ``/v1/batch`` request: one request per turn.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal, cast

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelCallResult,
    ModelRequest,
    ModelResponse,
    OmitFromSchema,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # Python 3.10
    from typing_extensions import NotRequired

from .. import (
    APIConnectionError,
    AsyncMemLayerClient,
    InternalServerError,
    MemLayerClient,
    Op,
    RateLimitError,
    RecalledMemory,
)
from .._adapter import (
    DEFAULT_RECALL_LIMIT,
    MAX_BATCH_ITEMS,
    MAX_CONTENT_CHARS,
    MEMORY_HEADER,
    ClientPair,
    WriteBuffer,
    clip_query,
    get_logger,
    renamed_attribute,
    render_memories,
    warn_renamed,
)
from .._adapter import room as _room
from .._adapter.extraction import (
    EXTRACTION_PROMPT,
    Extractor,
    Turn,
    acall_extractor,
    call_extractor,
    fact_items,
    parse_facts,
    transcript,
)
from .._adapter.turn_memory import (
    WritePolicy,
    awrite_op,
    check_write_policy,
    worth_remembering,
    write_op,
)
from ._scope import Scope, resolve_scope

__all__ = ["MemLayerMiddleware", "MemLayerState"]

log = get_logger("memlayer_integrations.langchain")

# Errors that say "try again later", never "you may not": only these may be skipped with
# ``fail_open``. Authentication and permission errors always reach the caller.
TRANSIENT_ERRORS = (APIConnectionError, InternalServerError, RateLimitError)

_Private = OmitFromSchema(input=True, output=True)


class MemLayerState(AgentState[Any]):
    """The agent state, plus what this middleware keeps between its hooks of one turn."""

    memlayer_recalled: NotRequired[Annotated[list[dict[str, Any]], _Private]]
    memlayer_turn_start: NotRequired[Annotated[str | None, _Private]]


def _text(message: AnyMessage) -> str:
    return str(message.text).strip()


def _turn_start(messages: Sequence[AnyMessage]) -> int:
    """Index of the first message of the current turn: the trailing run of user messages."""
    i = len(messages)
    while i > 0 and isinstance(messages[i - 1], HumanMessage):
        i -= 1
    return i


def _with_memories(system: SystemMessage | None, block: str) -> SystemMessage:
    """The system message with ``block`` appended: one system message, never two."""
    if system is None:
        return SystemMessage(content=block)
    content = system.content
    if isinstance(content, str):
        merged: Any = f"{content}\n\n{block}" if content else block
    else:
        merged = [*content, {"type": "text", "text": block}]
    return system.model_copy(update={"content": merged})


class MemLayerMiddleware(AgentMiddleware[MemLayerState, Any]):
    """Gives a ``create_agent`` agent long-term memory of each user, across threads.

    Args:
        user_id: whose memories; or read per run from the context
            (``invoke(..., context={"user_id": ...})``) or
            ``config["configurable"]["user_id"]`` (see ``_scope``). Missing everywhere:
            :class:`MemLayerScopeError`. On Python 3.10, async runs (``ainvoke``) cannot
            reach ``configurable`` from the hooks (LangGraph cannot propagate the config to
            asyncio tasks there): pass the scope in ``context=`` or at construction.
        agent_id: the agent the memories belong to (same lookup as ``user_id``).
        client, async_client, api_key, base_url: how to reach MemLayer. Sync hooks use the
            sync client, async hooks the async one.
        remember: which messages of a turn to store: ``"user"`` (default: what the user
            says is what is worth knowing later), ``"assistant"`` or ``"both"``.
        write_policy: which of those are worth a memory: ``"statements"`` (default) leaves
            out questions, greetings and acknowledgements, ``"everything"`` keeps them, or a
            callable ``(text, role) -> bool``. What is stored is stored exactly as said;
            what the assistant said is shown after what the user said.
        k: memories to recall per turn (1-100). ``recall_limit=``, its former name, still
            works and warns.
        max_chars: budget of the memory block added to the system message.
        all_agents: recall from every agent of the user, not only ``agent_id``.
        economy: queue each turn's write and send it with the next turn's recall, in one
            request. Call :meth:`close` (or :meth:`aclose`) at shutdown; what is still queued
            is also flushed at interpreter exit.
        fail_open: on a transient error (connection, timeout, 5xx, 429) go on without
            memories and log a warning instead of failing the turn. Authentication and
            permission errors are raised whatever this says.
        extract: off by default (text is stored exactly as said). A LangChain chat model,
            or a callable ``(turn) -> facts`` where ``turn`` is the turn's
            ``(role, text)`` pairs: each finished turn is turned into zero or more short
            facts, stored in the turn's one write request instead of its messages.
        keep_turn: with ``extract``, store the turn's messages (under ``remember`` and
            ``write_policy``) beside the facts.
        make_room: at the plan's memory limit, forget the oldest memories of the user and
            agent (as many as the turn stores) and store the turn; off, the
            ``MemoryLimitError`` is raised and says how to turn this on.
        header: first line of the memory block.

    Example:
        >>> from langchain.agents import create_agent
        >>> from memlayer_integrations.langchain import MemLayerMiddleware
        >>> memory = MemLayerMiddleware(agent_id="support_bot", api_key=key, base_url=server.url)
        >>> agent = create_agent(model, tools=[], middleware=[memory])
        >>> agent.invoke({"messages": [("user", "I live in Oslo")]},
        ...              {"configurable": {"user_id": "alice"}})
    """

    state_schema = MemLayerState
    recall_limit = renamed_attribute("recall_limit", "k")

    def __init__(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any | None = None,
        base_url: str | None = None,
        remember: Literal["user", "assistant", "both"] = "user",
        write_policy: WritePolicy = "statements",
        k: int = DEFAULT_RECALL_LIMIT,
        max_chars: int = 2000,
        all_agents: bool = False,
        economy: bool = False,
        fail_open: bool = False,
        make_room: bool = False,
        extract: BaseChatModel | Extractor | None = None,
        keep_turn: bool = False,
        header: str = MEMORY_HEADER,
        recall_limit: int | None = None,
    ) -> None:
        super().__init__()
        if recall_limit is not None:
            warn_renamed(type(self).__name__, "recall_limit", "k")
            k = recall_limit
        if remember not in ("user", "assistant", "both"):
            raise ValueError("remember must be 'user', 'assistant' or 'both'")
        if not 1 <= k <= 100:
            raise ValueError("k must be between 1 and 100")
        self.user_id = user_id
        self.agent_id = agent_id
        self.remember = remember
        self.write_policy = check_write_policy(write_policy)
        self.k = k
        self.max_chars = max_chars
        self.all_agents = all_agents
        self.economy = economy
        self.fail_open = fail_open
        self.make_room = make_room
        if extract is not None and not (isinstance(extract, BaseChatModel) or callable(extract)):
            raise TypeError("extract must be a LangChain chat model or a callable (turn) -> facts")
        self.extract = extract
        self.keep_turn = keep_turn
        self.header = header
        self._clients = ClientPair(client, async_client, api_key, base_url)
        # Writes waiting for the next recall (economy mode), or that a fail-open turn could
        # not send: they go with the next recall rather than being lost.
        self._buffer = WriteBuffer(flush=self._send_pending)

    # -- pure helpers ------------------------------------------------------------------

    def _scope(self, runtime: Runtime[Any] | None) -> Scope:
        try:
            config = get_config()
        except RuntimeError:  # outside a graph run, or an async hook on Python 3.10
            config = None
        adapter = "MemLayerMiddleware"
        if config is None and sys.version_info < (3, 11):
            adapter += " (on Python 3.10 an async run cannot read config['configurable'])"
        scope = resolve_scope(
            user_id=self.user_id,
            agent_id=self.agent_id,
            config=config,
            context=getattr(runtime, "context", None),
            adapter=adapter,
        )
        thread = ((config or {}).get("configurable") or {}).get("thread_id")
        if thread is None:  # LangGraph >= 1.1.3 also tells the hooks the thread
            thread = getattr(getattr(runtime, "execution_info", None), "thread_id", None)
        return Scope(scope.user_id, scope.agent_id, str(thread) if thread is not None else None)

    def _recall_op(self, query: str, scope: Scope) -> dict[str, Any]:
        return Op.recall(
            clip_query(query),
            user_id=scope.user_id,
            agent_id=None if self.all_agents else scope.agent_id,
            limit=self.k,
        )

    def _turn(self, state: MemLayerState) -> Turn:
        """The turn's ``(role, text)`` pairs: user messages and assistant replies with text."""
        messages = state["messages"]
        start_id = state.get("memlayer_turn_start")
        start = next((i for i, m in enumerate(messages) if start_id and m.id == start_id), None)
        if start is None:
            # The start message was removed (summarized, say): the last user message on.
            last_human = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
            start = last_human[-1] if last_human else len(messages)
        turn: list[tuple[str, str]] = []
        for message in messages[start:]:
            if isinstance(message, (HumanMessage, AIMessage)) and _text(message):
                turn.append(
                    ("user" if isinstance(message, HumanMessage) else "assistant", _text(message))
                )
        return turn

    def _turn_items(self, state: MemLayerState, facts: list[str] | None) -> list[dict[str, Any]]:
        roles = {"user": ("user",), "assistant": ("assistant",), "both": ("user", "assistant")}[
            self.remember
        ]
        items: list[dict[str, Any]] = []
        if facts is None or self.keep_turn:
            for role, text in self._turn(state):
                if role in roles and worth_remembering(text, role, self.write_policy):
                    items.append({"content": text[:MAX_CONTENT_CHARS], "metadata": {"role": role}})
        return [*items, *fact_items(facts or [], None, role="user")]

    def _extracted(self, state: MemLayerState) -> list[str] | None:
        """The facts of the turn (``None`` without ``extract``), with a sync model call."""
        turn = self._turn(state)
        if self.extract is None or not turn:
            return None
        if isinstance(self.extract, BaseChatModel):
            prompt = [SystemMessage(EXTRACTION_PROMPT), HumanMessage(transcript(turn))]
            return parse_facts(str(self.extract.invoke(prompt).text))
        return call_extractor(self.extract, turn)

    async def _aextracted(self, state: MemLayerState) -> list[str] | None:
        """Async :meth:`_extracted`."""
        turn = self._turn(state)
        if self.extract is None or not turn:
            return None
        if isinstance(self.extract, BaseChatModel):
            prompt = [SystemMessage(EXTRACTION_PROMPT), HumanMessage(transcript(turn))]
            return parse_facts(str((await self.extract.ainvoke(prompt)).text))
        return await acall_extractor(self.extract, turn)

    def _before_update(
        self, state: MemLayerState, recalled: list[RecalledMemory]
    ) -> dict[str, Any]:
        messages = state["messages"]
        start = _turn_start(messages)
        return {
            "memlayer_recalled": [r.model_dump(mode="json") for r in recalled],
            "memlayer_turn_start": messages[start].id if start < len(messages) else None,
        }

    def _query(self, state: MemLayerState) -> str | None:
        humans = [m for m in state["messages"] if isinstance(m, HumanMessage) and _text(m)]
        return _text(humans[-1]) if humans else None

    def _request_with_memories(self, request: ModelRequest) -> ModelRequest:
        state = cast(MemLayerState, request.state)
        recalled = [RecalledMemory.model_validate(r) for r in state.get("memlayer_recalled") or []]
        if not recalled:
            return request
        held = [_text(m) for m in request.messages]
        if request.system_message is not None:
            held.append(_text(request.system_message))
        block = render_memories(
            recalled, exclude=held, max_chars=self.max_chars, header=self.header
        )
        if block is None:
            return request
        return request.override(system_message=_with_memories(request.system_message, block))

    def _fail_open(self, exc: BaseException, what: str) -> bool:
        if self.fail_open and isinstance(exc, TRANSIENT_ERRORS):
            log.warning(
                "MemLayer %s failed (%s); the turn goes on without it", what, type(exc).__name__
            )
            return True
        return False

    def _plan(self, state: MemLayerState, runtime: Runtime[Any]) -> list[dict[str, Any]]:
        """The one request of this turn's start: queued writes (as many as fit), then the recall."""
        scope = self._scope(runtime)
        query = self._query(state)
        if not query:
            return []  # nothing to recall: queued writes wait for the next recall
        return [*self._buffer.take(), self._recall_op(query, scope)]

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        # A batch is all or nothing: what it carried is queued again.
        self._buffer.restore([op for op in batch if op["op"] == "remember_many"])

    # -- sync hooks --------------------------------------------------------------------

    def _room(self) -> dict[str, Any]:
        return {"make_room": self.make_room, "adapter": "MemLayerMiddleware"}

    def _send_pending(self, ops: list[dict[str, Any]]) -> None:
        _room.batch(self._clients.sync, ops, **self._room())

    def before_agent(self, state: MemLayerState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        batch = self._plan(state, runtime)
        recalled: list[RecalledMemory] = []
        if batch:
            try:
                recalled = self._send_sync(batch) or []
            except BaseException as exc:
                self._requeue(batch)
                if not self._fail_open(exc, "recall"):
                    raise
        return self._before_update(state, recalled)

    def _send_sync(self, batch: list[dict[str, Any]]) -> list[RecalledMemory] | None:
        if len(batch) == 1 and batch[0]["op"] == "recall":
            args = {k: v for k, v in batch[0].items() if k not in ("op", "query")}
            return self._clients.sync.recall(batch[0]["query"], **args)
        results = _room.batch(self._clients.sync, batch, **self._room())
        return results[-1] if batch[-1]["op"] == "recall" else None

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelCallResult:
        return handler(self._request_with_memories(request))

    def _writes_to_send(
        self, state: MemLayerState, runtime: Runtime[Any], facts: list[str] | None
    ) -> tuple[Scope, list[dict[str, Any]]] | None:
        """The turn's memories to send now, or ``None`` when there are none or economy mode
        queued them for the next recall."""
        items = self._turn_items(state, facts)
        if not items:
            return None
        scope = self._scope(runtime)
        items = [{**item, "session_id": scope.session_id} for item in items]
        if self.economy:
            self._buffer.add(items, user_id=scope.user_id, agent_id=scope.write_agent_id)
            return None
        return scope, items

    def after_agent(self, state: MemLayerState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        writes = self._writes_to_send(state, runtime, self._extracted(state))
        if writes is None:
            return None
        scope, items = writes
        for i in range(0, len(items), MAX_BATCH_ITEMS):
            try:
                op = Op.remember_many(
                    items[i : i + MAX_BATCH_ITEMS],
                    user_id=scope.user_id,
                    agent_id=scope.write_agent_id,
                )
                write_op(self._clients.sync, op, **self._room())
            except BaseException as exc:
                if not self._fail_open(exc, "write"):
                    raise
                # Only what was not stored waits for the next request.
                self._buffer.add(items[i:], user_id=scope.user_id, agent_id=scope.write_agent_id)
                break
        return None

    # -- async hooks -------------------------------------------------------------------

    async def abefore_agent(
        self, state: MemLayerState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        batch = self._plan(state, runtime)
        recalled: list[RecalledMemory] = []
        if batch:
            try:
                recalled = await self._send_async(batch) or []
            except BaseException as exc:
                self._requeue(batch)
                if not self._fail_open(exc, "recall"):
                    raise
        return self._before_update(state, recalled)

    async def _send_async(self, batch: list[dict[str, Any]]) -> list[RecalledMemory] | None:
        if len(batch) == 1 and batch[0]["op"] == "recall":
            args = {k: v for k, v in batch[0].items() if k not in ("op", "query")}
            return await self._clients.async_.recall(batch[0]["query"], **args)
        results = await _room.abatch(self._clients.async_, batch, **self._room())
        return results[-1] if batch[-1]["op"] == "recall" else None

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelCallResult:
        return await handler(self._request_with_memories(request))

    async def aafter_agent(
        self, state: MemLayerState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        writes = self._writes_to_send(state, runtime, await self._aextracted(state))
        if writes is None:
            return None
        scope, items = writes
        for i in range(0, len(items), MAX_BATCH_ITEMS):
            try:
                op = Op.remember_many(
                    items[i : i + MAX_BATCH_ITEMS],
                    user_id=scope.user_id,
                    agent_id=scope.write_agent_id,
                )
                await awrite_op(self._clients.async_, op, **self._room())
            except BaseException as exc:
                if not self._fail_open(exc, "write"):
                    raise
                self._buffer.add(items[i:], user_id=scope.user_id, agent_id=scope.write_agent_id)
                break
        return None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """How many memories are queued, waiting for the next recall or :meth:`flush`."""
        return len(self._buffer)

    def flush(self) -> None:
        """Send every queued write now (one request per 100 operations)."""
        self._buffer.flush()

    async def aflush(self) -> None:
        """Async :meth:`flush`, with the async client."""
        await self._buffer.aflush(
            lambda ops: _room.abatch(self._clients.async_, ops, **self._room())
        )

    def close(self) -> None:
        """Flush queued writes, then close the clients this middleware built."""
        self.flush()
        self._clients.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self.aflush()
        await self._clients.aclose()
