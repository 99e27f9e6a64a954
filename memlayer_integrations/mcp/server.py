"""The MemLayer MCP server: long-term memory tools for any agent that speaks MCP.

Whose memory it is (``user_id``, ``agent_id``) is fixed when the server is built, by whoever
runs it; the tool schemas hold only what the model decides. A model cannot read or delete
another user's memories by naming them, nor by guessing a memory id.

The server is a client of MemLayer like the other adapters: every tool call is one request
(``forget`` two: it checks the memory's scope first) through :class:`AsyncMemLayerClient`,
so nothing blocks the server's event loop, and each call is cut off after ``call_timeout``
seconds, retries included. Failures come back as tool results with ``isError`` (see
``_errors.py``); the server keeps running and keeps listing its tools.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import anyio
from mcp.server.fastmcp import FastMCP
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from .. import (
    AsyncMemLayerClient,
    AuthenticationError,
    MemLayerError,
    Memory,
    Op,
    RecalledMemory,
)
from .._adapter import MAX_QUERY_CHARS, require_scope
from ._errors import auth_failure_text, not_in_scope_text, timeout_text, tool_error_text

__all__ = ["DEFAULT_CALL_TIMEOUT", "MemLayerMCPTools", "create_server"]

#: Seconds one tool call may take, retries included. MCP clients wait on a tool call with
#: the model's turn stalled behind it; a memory that is late is worth less than an answer.
DEFAULT_CALL_TIMEOUT = 20.0
#: How many memories the ``memlayer://memories`` resource shows (one list page).
RESOURCE_MEMORIES = 100

_INSTRUCTIONS = (
    "Long-term memory for one user, kept across conversations. Call recall before answering "
    "anything that may depend on what the user said before; call remember when the user "
    "shares a lasting fact, preference or decision (one fact per call); call forget when a "
    "memory is wrong or the user asks you to forget it."
)

_REMEMBER = (
    "Save one fact about the user to long-term memory so it is available in future "
    "conversations. Use it when the user shares a lasting preference, fact or decision. "
    "Write the fact so it makes sense on its own later, e.g. 'The user is allergic to "
    "peanuts'. The text is stored exactly as given. Returns the new memory's id."
)
_RECALL = (
    "Search long-term memory for what the user said in earlier conversations. Returns the "
    "most relevant memories, best first, one per line as '- [memory_id] text'."
)
_FORGET = (
    "Delete one memory that is wrong or that the user asked you to forget. Pass the id shown "
    "in brackets by recall or list_memories, e.g. 'mem_0f8c...'."
)
_LIST = (
    "List the stored memories, oldest first, one per line as '- [memory_id] text'. When more "
    "remain, the answer ends with a cursor: pass it back as cursor to get the next page."
)


def _line(memory: Memory) -> str:
    return f"- [{memory.id}] {memory.content}"


def _as_dict(memory: Memory) -> dict[str, Any]:
    return {
        "id": memory.id,
        "content": memory.content,
        "metadata": memory.metadata,
        "created_at": memory.created_at.isoformat(),
    }


def _ok(text: str, structured: dict[str, Any]) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structuredContent=structured
    )


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], isError=True)


class _NotInScope(Exception):
    """The memory exists but belongs to another scope: answered like an unknown id."""


class MemLayerMCPTools:
    """The tools' behaviour, apart from MCP's registration: one bound scope, one client.

    Each method returns the ``CallToolResult`` the model sees. :func:`create_server` wires
    them into a FastMCP server; tests and embedders can call them directly.

    Args:
        client: the :class:`AsyncMemLayerClient` to send with (its key and URL decide the
            account); the caller closes it.
        user_id, agent_id: the scope every tool works in.
        call_timeout: seconds one tool call may take, retries included.
    """

    def __init__(
        self,
        client: AsyncMemLayerClient,
        *,
        user_id: str,
        agent_id: str,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        require_scope("the MemLayer MCP server", user_id=user_id, agent_id=agent_id)
        if call_timeout <= 0:
            raise ValueError(f"call_timeout must be positive, got {call_timeout!r}")
        self.client = client
        self.user_id = user_id
        self.agent_id = agent_id
        self.call_timeout = call_timeout
        self._auth_failure: str | None = None

    async def _run(
        self, action: Callable[[], Awaitable[CallToolResult]], memory_id: str | None = None
    ) -> CallToolResult:
        """Run one tool call under the deadline, turning every failure into an error result."""
        if self._auth_failure is not None:
            return _error(self._auth_failure)
        try:
            with anyio.fail_after(self.call_timeout):
                return await action()
        except TimeoutError:
            return _error(timeout_text(self.call_timeout))
        except _NotInScope:
            return _error(not_in_scope_text(memory_id or ""))
        except AuthenticationError as exc:
            # The key is read once, at start: no later call can succeed, so none is sent.
            self._auth_failure = auth_failure_text(exc)
            return _error(self._auth_failure)
        except MemLayerError as exc:
            if memory_id is not None and exc.status_code == 404:
                return _error(not_in_scope_text(memory_id))
            return _error(tool_error_text(exc))

    async def remember(self, text: str, metadata: dict[str, Any] | None = None) -> CallToolResult:
        async def action() -> CallToolResult:
            memory = await self.client.remember(
                text, user_id=self.user_id, agent_id=self.agent_id, metadata=metadata
            )
            return _ok(f"Remembered [{memory.id}].", {"memory": _as_dict(memory)})

        return await self._run(action)

    async def recall(self, query: str, limit: int = 5) -> CallToolResult:
        async def action() -> CallToolResult:
            hits = await self.client.recall(
                query[:MAX_QUERY_CHARS], user_id=self.user_id, agent_id=self.agent_id, limit=limit
            )
            return _ok(_recall_text(hits), {"results": [_hit_dict(h) for h in hits]})

        return await self._run(action)

    async def forget(self, memory_id: str) -> CallToolResult:
        async def action() -> CallToolResult:
            # Ids are account-wide: check the memory is in this scope before deleting it.
            memory = await self.client.get(memory_id)
            if (memory.user_id, memory.agent_id) != (self.user_id, self.agent_id):
                raise _NotInScope
            await self.client.forget(memory_id)
            return _ok(f"Forgot [{memory_id}].", {"forgotten": memory_id})

        return await self._run(action, memory_id=memory_id)

    async def list_memories(self, limit: int = 20, cursor: str | None = None) -> CallToolResult:
        async def action() -> CallToolResult:
            memories, next_cursor = await self.page(limit, cursor)
            lines = [_line(m) for m in memories] or ["No memories stored."]
            if next_cursor:
                lines.append(
                    f"More memories remain: call list_memories with cursor={next_cursor!r}."
                )
            return _ok(
                "\n".join(lines),
                {"memories": [_as_dict(m) for m in memories], "next_cursor": next_cursor},
            )

        return await self._run(action)

    async def page(self, limit: int, cursor: str | None) -> tuple[list[Memory], str | None]:
        """One page of the scope's memories and the cursor of the next (one request)."""
        # A one-operation batch: the list endpoint's page and cursor, which the client's
        # list_memories iterator keeps to itself.
        (result,) = await self.client.batch(
            [Op.list(user_id=self.user_id, agent_id=self.agent_id, limit=limit, cursor=cursor)]
        )
        memories, next_cursor = result
        return list(memories), next_cursor

    async def memories_resource(self) -> str:
        """The text of the ``memlayer://memories`` resource. A failure raises, with the
        message a tool would give: MCP answers a failed resource read with an error."""

        async def action() -> CallToolResult:
            memories, next_cursor = await self.page(RESOURCE_MEMORIES, None)
            head = f"Long-term memories of user {self.user_id!r} with agent {self.agent_id!r}"
            if not memories:
                return _ok(head + ": none stored yet.", {})
            more = " (the first ones; list_memories pages through the rest)" if next_cursor else ""
            lines = "\n".join(_line(m) for m in memories)
            return _ok(f"{head}, oldest first{more}:\n{lines}", {})

        result = await self._run(action)
        if result.isError:
            raise RuntimeError(result_text(result))
        return result_text(result)


def result_text(result: CallToolResult) -> str:
    """The text of a tool result: what the model reads."""
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


def _hit_dict(hit: RecalledMemory) -> dict[str, Any]:
    return {**_as_dict(hit.memory), "score": hit.score}


def _recall_text(hits: list[RecalledMemory]) -> str:
    if not hits:
        return "No relevant memories."
    return "\n".join(_line(h.memory) for h in hits)


def create_server(
    client: AsyncMemLayerClient,
    *,
    user_id: str,
    agent_id: str,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING",
) -> FastMCP[Any]:
    """A FastMCP server with MemLayer's memory tools, bound to one user and agent.

    Args:
        client: the :class:`AsyncMemLayerClient` the tools send with; its key and URL decide
            the account. It stays yours: close it once the server has stopped (the server
            outlives each MCP session, so it cannot close the client itself).
        user_id, agent_id: the scope, chosen by whoever runs the server, never by the model.
        call_timeout: seconds one tool call may take, retries included.
        host, port: where ``run(transport="streamable-http")`` listens (the MCP endpoint
            is ``/mcp``); a loopback host also turns on the SDK's DNS-rebinding protection.
        log_level: the SDK configures logging (to stderr) at this level.

    Building the server sends nothing; a bad key shows up as the tools' error result.

    Example:
        >>> client = AsyncMemLayerClient(api_key=key, base_url=server.url)
        >>> mcp_server = create_server(client, user_id="alice", agent_id="desktop")
        >>> [tool.name for tool in asyncio.run(mcp_server.list_tools())]
        ['remember', 'recall', 'forget', 'list_memories']
    """
    if not isinstance(client, AsyncMemLayerClient):
        raise TypeError(f"client must be an AsyncMemLayerClient, not {type(client).__name__}")
    tools = MemLayerMCPTools(client, user_id=user_id, agent_id=agent_id, call_timeout=call_timeout)
    server: FastMCP[Any] = FastMCP(
        "memlayer",
        instructions=_INSTRUCTIONS,
        host=host,
        port=port,
        log_level=log_level,
    )
    _register(server, tools)
    return server


def _register(server: FastMCP[Any], tools: MemLayerMCPTools) -> None:
    """The tools, resource and prompt, with schemas that hold only the model's choices."""
    writes = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)
    reads = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
    deletes = ToolAnnotations(readOnlyHint=False, destructiveHint=True, openWorldHint=False)

    @server.tool(name="remember", description=_REMEMBER, annotations=writes)
    async def remember(
        text: Annotated[str, Field(description="The fact to remember, stored exactly as given.")],
        metadata: Annotated[
            dict[str, Any] | None,
            Field(description="Optional JSON object stored with the fact, e.g. {'topic': 'food'}."),
        ] = None,
    ) -> CallToolResult:
        return await tools.remember(text, metadata)

    @server.tool(name="recall", description=_RECALL, annotations=reads)
    async def recall(
        query: Annotated[
            str, Field(description="What you want to know, in plain words, e.g. 'food allergies'.")
        ],
        limit: Annotated[int, Field(ge=1, le=100, description="How many memories at most.")] = 5,
    ) -> CallToolResult:
        return await tools.recall(query, limit)

    @server.tool(name="forget", description=_FORGET, annotations=deletes)
    async def forget(
        memory_id: Annotated[str, Field(description="The id of the memory to delete.")],
    ) -> CallToolResult:
        return await tools.forget(memory_id)

    @server.tool(name="list_memories", description=_LIST, annotations=reads)
    async def list_memories(
        limit: Annotated[int, Field(ge=1, le=100, description="How many memories at most.")] = 20,
        cursor: Annotated[
            str | None, Field(description="The cursor a previous list_memories call returned.")
        ] = None,
    ) -> CallToolResult:
        return await tools.list_memories(limit, cursor)

    @server.resource(
        "memlayer://memories",
        name="memories",
        description="The memories stored for this user and agent, oldest first.",
        mime_type="text/plain",
    )
    async def memories() -> str:
        return await tools.memories_resource()

    @server.prompt(
        name="recall_about",
        description="Start a message with what long-term memory holds about a topic.",
    )
    async def recall_about(topic: str) -> str:
        result = await tools.recall(topic, 10)
        text = result_text(result)
        if result.isError:
            raise RuntimeError(text)
        return f"What I remember about {topic}:\n{text}\n\nUse this when answering."
