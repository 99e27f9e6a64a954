"""LlamaIndex's MCP adapter (llama-index-tools-mcp) turns ``memlayer mcp --http`` into
FunctionTools an agent can call, as the README shows."""

from __future__ import annotations

from llama_index.tools.mcp import BasicMCPClient, McpToolSpec  # type: ignore[import-untyped]

from ._support import http_server, scope_args, server_env


async def test_llama_index_function_tools_over_streamable_http(base_url: str, api_key: str) -> None:
    with http_server(server_env(api_key, base_url), *scope_args("alice")) as url:
        tools = await McpToolSpec(client=BasicMCPClient(url, timeout=30)).to_tool_list_async()
        by_name = {tool.metadata.name: tool for tool in tools}
        assert set(by_name) == {"remember", "recall", "forget", "list_memories"}
        await by_name["remember"].acall(text="Runs marathons")
        output = await by_name["recall"].acall(query="marathons")
    assert "] Runs marathons" in str(output.content)
