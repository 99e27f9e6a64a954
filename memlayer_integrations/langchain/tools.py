"""Tools that let the model manage the user's long-term memory itself.

The schemas carry only what the model decides (a text, a query, a memory id). Whose memory
it is comes from the application (construction or run context), never from the model.
Errors the model can act on (unknown id, invalid input, rate limit) come back to it as the
tool's answer; authentication and permission errors stop the run.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, BaseToolkit, ToolException
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from .. import (
    AsyncMemLayerClient,
    BadRequestError,
    ConflictError,
    MemLayerClient,
    NotFoundError,
    RateLimitError,
    RecalledMemory,
    UnprocessableEntityError,
)
from .._adapter import (
    DEFAULT_RECALL_LIMIT,
    MAX_CONTENT_CHARS,
    ClientPair,
    check_owner,
    clip_query,
    renamed_argument,
    renamed_attribute,
    render_memories,
)
from ._scope import Scope, resolve_scope

__all__ = ["ForgetTool", "MemLayerToolkit", "RecallTool", "RememberTool"]


def _model_safe(exc: Exception) -> ToolException:
    """A message the model may read: what went wrong, never a key or a raw response."""
    if isinstance(exc, NotFoundError):
        text = "No memory with that id exists (it may already have been forgotten)."
    elif isinstance(exc, RateLimitError):
        text = "The memory service is busy right now; continue without it for this step."
    else:
        name = getattr(exc, "field", None)
        field = f" (field: {name})" if name else ""
        text = f"The memory service rejected the request as invalid{field}. Check the input and try again."
    return ToolException(text)


_RECOVERABLE = (
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
    # Recoverable errors are raised as ToolException; this hands their message to the model.
    handle_tool_error: Any = True

    def model_post_init(self, __context: Any) -> None:
        if self.clients is None:
            self.clients = ClientPair(self.client, self.async_client, self.api_key, self.base_url)

    def _pair(self) -> ClientPair:
        if self.clients is None:  # model_post_init always sets it
            raise RuntimeError(f"{type(self).__name__} has no clients")
        return self.clients

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
        description="The id of the memory to forget, as shown in brackets, e.g. 'mem_0f8c...'."
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
        except _RECOVERABLE as exc:
            raise _model_safe(exc) from exc
        return f"Remembered [{memory.id}]."

    async def _arun(self, content: str, config: RunnableConfig, run_manager: Any = None) -> str:
        scope = self._scope(config)
        try:
            memory = await self._pair().async_.remember(
                content, user_id=scope.user_id, agent_id=scope.write_agent_id
            )
        except _RECOVERABLE as exc:
            raise _model_safe(exc) from exc
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
        except _RECOVERABLE as exc:
            raise _model_safe(exc) from exc
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
        except _RECOVERABLE as exc:
            raise _model_safe(exc) from exc
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
        try:
            check_owner(
                self._pair().sync.get(memory_id), user_id=scope.user_id, agent_id=scope.agent_id
            )
            self._pair().sync.forget(memory_id)
        except _RECOVERABLE as exc:
            raise _model_safe(exc) from exc
        return f"Forgot [{memory_id}]."

    async def _arun(self, memory_id: str, config: RunnableConfig, run_manager: Any = None) -> str:
        scope = self._scope(config, require_agent=False)
        try:
            check_owner(
                await self._pair().async_.get(memory_id),
                user_id=scope.user_id,
                agent_id=scope.agent_id,
            )
            await self._pair().async_.forget(memory_id)
        except _RECOVERABLE as exc:
            raise _model_safe(exc) from exc
        return f"Forgot [{memory_id}]."


class MemLayerToolkit(BaseToolkit):
    """The ``remember``, ``recall`` and ``forget`` tools, bound to one scope or to the run's.

    Args:
        user_id, agent_id: the scope; or per run from the context / ``configurable``.
        k: how many memories ``recall`` returns (``recall_k=``, its former name, still works
            and warns).
        client, async_client, api_key, base_url: how to reach MemLayer.

    Example:
        >>> tools = MemLayerToolkit(agent_id="support_bot", api_key=key, base_url=server.url).get_tools()
        >>> agent = create_agent(model, tools=tools)
        >>> agent.invoke({"messages": [("user", "Remember I'm vegan")]},
        ...              {"configurable": {"user_id": "alice"}})
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    user_id: str | None = None
    agent_id: str | None = None
    k: int = Field(default=DEFAULT_RECALL_LIMIT, ge=1, le=100)
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
        user_id, agent_id, pair = self.user_id, self.agent_id, self._clients
        return [
            RememberTool(user_id=user_id, agent_id=agent_id, clients=pair),
            RecallTool(user_id=user_id, agent_id=agent_id, clients=pair, k=self.k),
            ForgetTool(user_id=user_id, agent_id=agent_id, clients=pair),
        ]
