"""``MemLayerToolSpec``: ``remember``, ``recall`` and ``forget`` tools for LlamaIndex agents.

The tools act on the memories of the user and agent the spec was built for; the model only
ever chooses *what* to remember, recall or forget, never *whose* memories (no ``user_id``
or ``agent_id`` in any tool schema).

Errors, and what the model sees:

* An outage (connection error, timeout, 5xx) or the rate limit (429): with ``fail_open=True``
  (the default) the tool itself answers with an error ``ToolOutput`` (``is_error``, the
  exception on ``.exception``) telling the model to go on without its memory, and logs a
  warning that names the URL. With ``fail_open=False`` the tool raises.
* A memory id that breaks the contract's rule: ``forget`` raises ``ValueError`` naming the
  rule, before sending anything.
* Anything else raises the client's error (:class:`AuthenticationError`,
  :class:`NotFoundError`, ...).

LlamaIndex's workflow agents catch what a tool raises and hand the model an error
``ToolOutput`` whose text is ``str(error)``: the error's message, status, code and request
id, never the key (keys are masked in every message) nor the raw response body. So an
agent run is not stopped by a tool error, not even a bad key; the original exception stays
on ``ToolOutput.exception``, and :func:`stop_on_denied` awaits a run but stops it, raising
the error, as soon as a tool fails on authentication or permission::

    result = await stop_on_denied(agent.run("What do you remember about me?"))
"""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import FunctionTool, ToolOutput
from llama_index.core.tools.tool_spec.base import BaseToolSpec

from .. import (
    AsyncMemLayerClient,
    AuthenticationError,
    MemLayerClient,
    MemLayerError,
    Memory,
    PermissionDeniedError,
    RecalledMemory,
)
from .._adapter import (
    DEFAULT_RECALL_LIMIT,
    MEMORY_ID_PATTERN,
    MEMORY_ID_RULE,
    TRANSIENT_ERRORS,
    ClientPair,
    check_owner,
    clip_query,
    get_logger,
    renamed_attribute,
    render_memories,
    require_scope,
    warn_renamed,
)

__all__ = ["MemLayerToolSpec", "stop_on_denied"]

log = get_logger("memlayer_integrations.llama_index")

_SOURCE = {"source": "llama_index.tool"}

_UNAVAILABLE = (
    "Long-term memory is unavailable right now ({error}); answer without it and do not call "
    "the memory tools again in this turn."
)


async def stop_on_denied(handler: Any) -> Any:
    """Await a workflow agent's run, stopping it at the first tool call that failed on
    authentication or permission (:class:`AuthenticationError`, :class:`PermissionDeniedError`,
    :class:`MemoryLimitError` included), and raise that error.

    Workflow agents hand every tool error to the model, so without this a revoked key or a
    suspended account lets the agent carry on without its memory. This consumes the run's
    event stream; an application that streams events itself checks
    ``event.tool_output.exception`` the same way.

    Args:
        handler: what ``agent.run(...)`` returns.

    Returns:
        The run's result, as ``await handler`` gives it.

    Example:
        >>> async def ask(agent):
        ...     return await stop_on_denied(agent.run("What do you remember about me?"))
    """
    # Imported here: the agent package is large, and only this function needs it.
    from llama_index.core.agent.workflow import ToolCallResult

    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            error = event.tool_output.exception
            if isinstance(error, (AuthenticationError, PermissionDeniedError)):
                await handler.cancel_run()
                raise error
    return await handler


class _MemoryTool(FunctionTool):
    """A ``FunctionTool`` that, failing open, answers an outage with an error ``ToolOutput``.

    Built from the tool :meth:`BaseToolSpec.to_tool_list` makes, so schemas and names are
    LlamaIndex's own.
    """

    def __init__(self, tool: FunctionTool, fail_open: bool) -> None:
        super().__init__(fn=tool.fn, async_fn=tool.async_fn, metadata=tool.metadata)
        self.fail_open = fail_open

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        try:
            return super().call(*args, **kwargs)
        except TRANSIENT_ERRORS as exc:
            if not self.fail_open:
                raise
            return self._unavailable(exc, args, kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        try:
            return await super().acall(*args, **kwargs)
        except TRANSIENT_ERRORS as exc:
            if not self.fail_open:
                raise
            return self._unavailable(exc, args, kwargs)

    def _unavailable(
        self, exc: MemLayerError, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> ToolOutput:
        name = self.metadata.get_name()
        log.warning("MemLayer tool %r failed, answered the model instead: %s", name, exc)
        return ToolOutput(
            content=_UNAVAILABLE.format(error=type(exc).__name__),
            tool_name=name,
            raw_input={"args": args, "kwargs": kwargs},
            raw_output=None,
            is_error=True,
            exception=exc,
        )


class MemLayerToolSpec(BaseToolSpec):
    """Long-term memory tools for an agent, bound to one user and agent.

    Args:
        user_id: whose memories the tools act on (required; never a tool argument).
        agent_id: which agent's memories (required; never a tool argument).
        session_id: stored with every memory the agent saves.
        k: how many memories ``recall`` returns. ``recall_limit=``, its former name, still
            works and warns.
        max_memory_chars: budget for ``recall``'s answer.
        fail_open: tools from :meth:`to_tool_list` answer an outage (connection error,
            timeout, 5xx, 429) with an error ``ToolOutput`` instead of raising (default
            ``True``). Authentication and permission errors are always raised.
        client, async_client, api_key, base_url: how to reach MemLayer (see
            :class:`~memlayer_integrations.llama_index.MemLayerMemory`).

    Example:
        >>> from llama_index.core.agent.workflow import FunctionAgent
        >>> tools = MemLayerToolSpec(user_id="user_123", agent_id="support_bot",
        ...                          api_key=key, base_url=server.url).to_tool_list()
        >>> agent = FunctionAgent(tools=tools, llm=llm)
    """

    # BaseToolSpec declares this as a plain class attribute; read, never mutated.
    spec_functions = [("remember", "aremember"), ("recall", "arecall"), ("forget", "aforget")]  # noqa: RUF012

    recall_limit = renamed_attribute("recall_limit", "k")

    def __init__(
        self,
        user_id: str,
        agent_id: str,
        *,
        session_id: str | None = None,
        k: int = DEFAULT_RECALL_LIMIT,
        max_memory_chars: int = 2000,
        fail_open: bool = True,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any = None,
        base_url: str | None = None,
        recall_limit: int | None = None,
    ) -> None:
        require_scope(type(self).__name__, user_id=user_id, agent_id=agent_id)
        if recall_limit is not None:
            warn_renamed(type(self).__name__, "recall_limit", "k")
            k = recall_limit
        self.user_id = user_id
        self.agent_id = agent_id
        self.session_id = session_id
        self.k = k
        self.max_memory_chars = max_memory_chars
        self.fail_open = fail_open
        self._clients = ClientPair(client, async_client, api_key, base_url)

    def to_tool_list(
        self,
        spec_functions: list[Any] | None = None,
        func_to_metadata_mapping: dict[str, Any] | None = None,
    ) -> list[FunctionTool]:
        """LlamaIndex's tools for this spec, which fail open as ``fail_open`` says."""
        tools = super().to_tool_list(spec_functions, func_to_metadata_mapping)
        return [_MemoryTool(tool, self.fail_open) for tool in tools]

    # -- answers for the model (pure) ------------------------------------------------

    @staticmethod
    def _remembered(memory: Memory) -> str:
        return f"Remembered (memory id {memory.id})."

    def _recalled(self, hits: list[RecalledMemory]) -> str:
        text = render_memories(
            hits, max_chars=self.max_memory_chars, header="Memories found (best first):"
        )
        return text or "No memories found for that query."

    @staticmethod
    def _check_id(memory_id: str) -> None:
        # Checked before sending: a mistyped id costs no request, and the model reads the rule.
        if not isinstance(memory_id, str) or not MEMORY_ID_PATTERN.fullmatch(memory_id):
            shown = memory_id if len(str(memory_id)) <= 60 else str(memory_id)[:60] + "…"
            raise ValueError(
                f"{shown!r} is not a memory id: {MEMORY_ID_RULE}. Use an id exactly as recall "
                "shows it in brackets."
            )

    # -- tools (docstrings are what the model reads) --------------------------------

    def remember(self, content: str) -> str:
        """Save one lasting fact about the user to long-term memory, to use in later conversations.

        Save facts and preferences the user states (name, plans, likes, decisions), one fact
        per call, as a short sentence that makes sense on its own. Do not save small talk,
        guesses, or secrets such as passwords.

        Args:
            content (str): the fact, e.g. "User prefers email to phone calls".
        """
        memory = self._clients.sync.remember(
            content,
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            metadata=_SOURCE,
        )
        return self._remembered(memory)

    async def aremember(self, content: str) -> str:
        """Async :meth:`remember`."""
        memory = await self._clients.async_.remember(
            content,
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            metadata=_SOURCE,
        )
        return self._remembered(memory)

    def recall(self, query: str) -> str:
        """Search long-term memory for what is known about the user, best matches first.

        Use it before answering questions about the user's past, preferences or earlier
        conversations. Each result starts with its memory id in brackets.

        Args:
            query (str): what to look for, in plain words, e.g. "user's home city".
        """
        hits = self._clients.sync.recall(
            clip_query(query), user_id=self.user_id, agent_id=self.agent_id, limit=self.k
        )
        return self._recalled(hits)

    async def arecall(self, query: str) -> str:
        """Async :meth:`recall`."""
        hits = await self._clients.async_.recall(
            clip_query(query), user_id=self.user_id, agent_id=self.agent_id, limit=self.k
        )
        return self._recalled(hits)

    def forget(self, memory_id: str) -> str:
        """Delete one memory that is wrong or that the user asked you to forget.

        Find its id with the recall tool first.

        Args:
            memory_id (str): the id shown in brackets by recall: "mem_" and 32 lowercase hex digits, e.g. "mem_0f8c2d1e9a7b4c3d8e6f5a4b3c2d1e0f".
        """
        self._check_id(memory_id)
        # Ids are account-wide: a model must not delete another user's memory by its id.
        check_owner(self._clients.sync.get(memory_id), user_id=self.user_id, agent_id=self.agent_id)
        self._clients.sync.forget(memory_id)
        return f"Forgot memory {memory_id}."

    async def aforget(self, memory_id: str) -> str:
        """Async :meth:`forget`."""
        self._check_id(memory_id)
        memory = await self._clients.async_.get(memory_id)
        check_owner(memory, user_id=self.user_id, agent_id=self.agent_id)
        await self._clients.async_.forget(memory_id)
        return f"Forgot memory {memory_id}."

    def close(self) -> None:
        """Close the sync client if this spec built it."""
        self._clients.close()

    async def aclose(self) -> None:
        """Close every client this spec built."""
        await self._clients.aclose()
