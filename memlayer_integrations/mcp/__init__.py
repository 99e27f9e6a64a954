"""A Model Context Protocol server for MemLayer: long-term memory for any MCP client.

Install with ``pip install 'memlayer-integrations[mcp]'`` and run ``memlayer mcp`` (stdio)
or ``memlayer mcp --http`` (streamable HTTP at ``/mcp``). Claude Desktop, Claude Code,
Cursor, and LangChain or LlamaIndex agents through their MCP adapters then get the
``remember``, ``recall``, ``forget`` and ``list_memories`` tools, bound to the user and
agent that whoever runs the server chose. The top-level package never imports this module.

* :func:`create_server`: the FastMCP server, to run or to mount in your own app.
* :class:`MemLayerMCPTools`: what the tools do, without MCP's registration.
"""

from __future__ import annotations

try:
    import mcp.server.fastmcp  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by .ci/check_core_import.py
    raise ImportError(
        "memlayer_integrations.mcp needs the MCP SDK: pip install 'memlayer-integrations[mcp]'"
    ) from exc

from .server import DEFAULT_CALL_TIMEOUT, MemLayerMCPTools, create_server

__all__ = ["DEFAULT_CALL_TIMEOUT", "MemLayerMCPTools", "create_server"]
