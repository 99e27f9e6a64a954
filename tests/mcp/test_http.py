"""``memlayer mcp --http``: the same tools over streamable HTTP at ``/mcp`` on loopback,
driven by the MCP SDK's client."""

from __future__ import annotations

from ._support import http_server, http_session, memory_id, scope_args, server_env, text


async def test_streamable_http_serves_the_tools_at_mcp(base_url: str, api_key: str) -> None:
    env = server_env(api_key, base_url)
    with (
        http_server(env, *scope_args("alice")) as url,
        http_server(env, *scope_args("bob")) as bob_url,
    ):
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        async with http_session(url) as session:
            tools = (await session.list_tools()).tools
            assert {t.name for t in tools} == {"remember", "recall", "forget", "list_memories"}
            assert all("user" not in str(t.inputSchema).lower() for t in tools)
            mem_id = memory_id(await session.call_tool("remember", {"text": "Drinks oolong"}))
            recalled = await session.call_tool("recall", {"query": "oolong"})
            assert text(recalled) == f"- [{mem_id}] Drinks oolong"

        # Another user, bound by another process, sees nothing and cannot delete it.
        async with http_session(bob_url) as bob:
            assert text(await bob.call_tool("recall", {"query": "oolong"})) == (
                "No relevant memories."
            )
            assert (await bob.call_tool("forget", {"memory_id": mem_id})).isError

        # A second session with the same server: the server outlives each session.
        async with http_session(url) as session:
            forgotten = await session.call_tool("forget", {"memory_id": mem_id})
            assert text(forgotten) == f"Forgot [{mem_id}]."
            assert text(await session.call_tool("list_memories", {})) == "No memories stored."


async def test_a_bad_key_over_http_is_an_error_result(base_url: str) -> None:
    env = server_env("ml_live_" + "0" * 40, base_url)
    with http_server(env, *scope_args("alice")) as url:
        async with http_session(url) as session:
            result = await session.call_tool("recall", {"query": "tea"})
            assert result.isError and "authentication failed" in text(result)
            assert len((await session.list_tools()).tools) == 4
