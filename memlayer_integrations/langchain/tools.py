"""Tools that let the model manage the user's long-term memory itself.

The schemas carry only what the model decides (a text, a query, a memory id). Whose memory
it is comes from the application (construction or run context), never from the model.

What an error does to the run:

* back to the model as the tool's answer (a ``ToolException``, which LangChain turns into an
  error ``ToolMessage``): an unknown or malformed memory id, invalid input, the rate limit
  (429), and, with ``fail_open=True`` (the default), an outage: connection errors, timeouts
  and 5xx. The model reads what went wrong and can go on without its memory.
* raised, ending the run: authentication (401) and permission (403) errors, a missing
  scope, and with ``fail_open=False`` an outage too.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, BaseToolkit, ToolException
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from .. import (
    APIConnectionError,
    AsyncMemLayerClient,
    BadRequestError,
    ConflictError,
    InternalServerError,
    MemLayerClient,
    MemLayerError,
    NotFoundError,
    RateLimitError,
    RecalledMemory,
    UnprocessableEntityError,
)
from .._adapter import (
    DEFAULT_RECALL_LIMIT,
    MAX_CONTENT_CHARS,
    MEMORY_ID_PATTERN,
    MEMORY_ID_RULE,
    TRANSIENT_ERRORS,
    ClientPair,
    check_owner,
    clip_query,
    get_logger,
    renamed_argument,
    renamed_attribute,
    render_memories,
)
from ._scope import Scope, resolve_scope

__all__ = ["ForgetTool", "MemLayerToolkit", "RecallTool", "RememberTool"]

log = get_logger("memlayer_integrations.langchain")


def _model_safe(exc: MemLayerError) -> ToolException:
    """A message the model may read: what went wrong and what to do, never a key or a raw
    response (messages are masked; the request id and status stay on the cause)."""
    if isinstance(exc, NotFoundError):
        text = "No memory with that id exists (it may already have been forgotten)."
    elif isinstance(exc, RateLimitError):
        text = "The memory service is busy right now; continue without it for this step."
    elif isinstance(exc, APIConnectionError):  # timeouts included
        text = (
            "Long-term memory is unreachable right now; answer without it and do not call "
            "the memory tools again in this turn."
        )
    elif isinstance(exc, InternalServerError):
        text = "The memory service failed on its side; continue without it for this step."
    else:
        text = (
            f"The memory service rejected the request: {exc.message}. Fix the input and try again."
        )
    return ToolException(text)


def _check_memory_id(memory_id: str) -> None:
    """Refuse what cannot be a memory id before sending: it costs no request, and the model
    reads the rule instead of a bare "not found"."""
    if not MEMORY_ID_PATTERN.fullmatch(memory_id):
        shown = memory_id if len(memory_id) <= 60 else memory_id[:60] + "…"
        raise ToolException(
            f"{shown!r} is not a memory id: {MEMORY_ID_RULE}. Use an id exactly as recall "
            "shows it in brackets."
        )


# Errors that say the request itself is wrong, or to wait: always the model's to handle.
_RECOVERABLE: tuple[type[MemLayerError], ...] = (
    NotFoundError,
    BadRequestError,
    UnprocessableEntityError,
    ConflictError,
    RateLimitError,
)


class _MemLayerTool(BaseTool):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: str | None = None
    agent_id: str | None = None
    client: MemLayerClient | None = Field(default=None, exclude=True)
    async_client: AsyncMemLayerClient | None = Field(default=None, exclude=True)
    api_key: Any | None = Field(default=None, exclude=True, repr=False)
    base_url: str | None = None
    clients: ClientPair | None = Field(default=None, exclude=True, repr=False)
    # On an outage (connection, timeout, 5xx) answer the model instead of ending the run.
    fail_open: bool = True
    # Recoverable errors are raised as ToolException; this hands their message to the model.
    handle_tool_error: Any = True

    def model_post_init(self, __context: Any) -> None:
        if self.clients is None:
            self.clients = ClientPair(self.client, self.async_client, self.api_key, self.base_url)

    def _pair(self) -> ClientPair:
        if self.clients is None:  # model_post_init always sets it
            raise RuntimeError(f"{type(self).__name__} has no clients")
        return self.clients

    def _recoverable(self) -> tuple[type[MemLayerError], ...]:
        """The errors this tool hands to the model rather than raising."""
        return _RECOVERABLE + TRANSIENT_ERRORS if self.fail_open else _RECOVERABLE

    def _to_model(self, exc: MemLayerError) -> ToolException:
        if isinstance(exc, TRANSIENT_ERRORS):
            # The model is told memory is down; the application's log says where and why.
            log.warning("MemLayer tool %r failed, answered the model instead: %s", self.name, exc)
        return _model_safe(exc)

    def _scope(self, config: RunnableConfig | None, require_agent: bool = True) -> Scope:
        return resolve_scope(
            user_id=self.user_id,
            agent_id=self.agent_id,
            config=config,
            require_agent=require_agent,
            adapter=f"MemLayer tool {self.name!r}",
        )


class _RememberInput(BaseModel):
    content: str = Field(
        description="One self-contained fact to remember, written so it makes sense on its own later, "
        "e.g. 'The user is allergic to peanuts'.",
        min_length=1,
        max_length=MAX_CONTENT_CHARS,
    )


class _RecallInput(BaseModel):
    query: str = Field(
        description="What you want to know, in plain words, e.g. 'food allergies'.", min_length=1
    )


class _ForgetInput(BaseModel):
    memory_id: str = Field(
        description="The id of the memory to forget, exactly as recall shows it in brackets: "
        "'mem_' followed by 32 lowercase hex digits."
    )


def _format(hits: list[RecalledMemory]) -> str:
    # Framed as remembered data, like every memory block put in front of a model.
    text = render_memories(hits, max_chars=1_000_000, header="Memories found (best first):")
    return text or "No relevant memories."


class RememberTool(_MemLayerTool):
    name: str = "remember"
    description: str = (
        "Save a fact about the user to long-term memory so it is available in future conversations. "
        "Use it when the user shares a lasting preference, fact or decision. Save one fact per call."
    )
    args_schema: type[BaseModel] = _RememberInput

    def _run(self, content: str, config: RunnableConfig, run_manager: Any = None) -> str:
        scope = self._scope(config)
        try:
            memory = self._pair().sync.remember(
                content, user_id=scope.user_id, agent_id=scope.write_agent_id
            )
        except self._recoverable() as exc:
            raise self._to_model(exc) from exc
        return f"Remembered [{memory.id}]."

    async def _arun(self, content: str, config: RunnableConfig, run_manager: Any = None) -> str:
        scope = self._scope(config)
        try:
            memory = await self._pair().async_.remember(
                content, user_id=scope.user_id, agent_id=scope.write_agent_id
            )
        except self._recoverable() as exc:
            raise self._to_model(exc) from exc
        return f"Remembered [{memory.id}]."


class RecallTool(_MemLayerTool):
    name: str = "recall"
    description: str = (
        "Search long-term memory for facts about the user from earlier conversations. "
        "Returns the most relevant memories, each with its id in brackets."
    )
    args_schema: type[BaseModel] = _RecallInput
    k: int = Field(default=DEFAULT_RECALL_LIMIT, ge=1, le=100)

    def _run(self, query: str, config: RunnableConfig, run_manager: Any = None) -> str:
        scope = self._scope(config, require_agent=False)
        try:
            hits = self._pair().sync.recall(
                clip_query(query),
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                limit=self.k,
            )
        except self._recoverable() as exc:
            raise self._to_model(exc) from exc
        return _format(hits)

    async def _arun(self, query: str, config: RunnableConfig, run_manager: Any = None) -> str:
        scope = self._scope(config, require_agent=False)
        try:
            hits = await self._pair().async_.recall(
                clip_query(query),
                user_id=scope.user_id,
                agent_id=scope.agent_id,
                limit=self.k,
            )
        except self._recoverable() as exc:
            raise self._to_model(exc) from exc
        return _format(hits)


class ForgetTool(_MemLayerTool):
    name: str = "forget"
    description: str = (
        "Delete one memory that is wrong or that the user asked you to forget. "
        "Pass the memory id shown in brackets by recall."
    )
    args_schema: type[BaseModel] = _ForgetInput

    def _run(self, memory_id: str, config: RunnableConfig, run_manager: Any = None) -> str:
        scope = self._scope(config, require_agent=False)
        _check_memory_id(memory_id)
        try:
            check_owner(
                self._pair().sync.get(memory_id), user_id=scope.user_id, agent_id=scope.agent_id
            )
            self._pair().sync.forget(memory_id)
        except self._recoverable() as exc:
            raise self._to_model(exc) from exc
        return f"Forgot [{memory_id}]."

    async def _arun(self, memory_id: str, config: RunnableConfig, run_manager: Any = None) -> str:
        scope = self._scope(config, require_agent=False)
        _check_memory_id(memory_id)
        try:
            check_owner(
                await self._pair().async_.get(memory_id),
                user_id=scope.user_id,
                agent_id=scope.agent_id,
            )
            await self._pair().async_.forget(memory_id)
        except self._recoverable() as exc:
            raise self._to_model(exc) from exc
        return f"Forgot [{memory_id}]."


class MemLayerToolkit(BaseToolkit):
    """The ``remember``, ``recall`` and ``forget`` tools, bound to one scope or to the run's.

    Args:
        user_id, agent_id: the scope; or per run from the context / ``configurable``.
        k: how many memories ``recall`` returns (``recall_k=``, its former name, still works
            and warns).
        fail_open: on an outage (connection error, timeout, 5xx) the tool answers the model
            that memory is unavailable, and logs a warning, instead of ending the run
            (default ``True``). Authentication and permission errors always end it.
        client, async_client, api_key, base_url: how to reach MemLayer.

    Example:
        >>> from langchain.agents import create_agent
        >>> tools = MemLayerToolkit(agent_id="support_bot", api_key=key, base_url=server.url).get_tools()
        >>> agent = create_agent(model, tools=tools)
        >>> agent.invoke({"messages": [("user", "Remember I'm vegan")]},
        ...              {"configurable": {"user_id": "alice"}})
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: str | None = None
    agent_id: str | None = None
    k: int = Field(default=DEFAULT_RECALL_LIMIT, ge=1, le=100)
    fail_open: bool = True
    client: MemLayerClient | None = Field(default=None, exclude=True)
    async_client: AsyncMemLayerClient | None = Field(default=None, exclude=True)
    api_key: Any | None = Field(default=None, exclude=True, repr=False)
    base_url: str | None = None

    _clients: ClientPair = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, values: Any) -> Any:
        if isinstance(values, dict):
            values = dict(values)
            renamed_argument(values, "recall_k", "k", owner=cls.__name__, stacklevel=6)
        return values

    recall_k = renamed_attribute("recall_k", "k")

    def model_post_init(self, __context: Any) -> None:
        self._clients = ClientPair(self.client, self.async_client, self.api_key, self.base_url)

    def get_tools(self) -> list[BaseTool]:
        common: dict[str, Any] = {
            "user_id": self.user_id,
            "agent_id": self.agent_id,
            "fail_open": self.fail_open,
            "clients": self._clients,
        }
        return [RememberTool(**common), RecallTool(k=self.k, **common), ForgetTool(**common)]
