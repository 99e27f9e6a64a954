"""``memlayer mcp`` over stdio, driven by the MCP SDK's client as Claude Desktop or Cursor
would drive it, against the session's local MemLayer server."""

from __future__ import annotations

import subprocess

import pytest

from memlayer_integrations import MemLayerClient
from memlayer_integrations.server import LocalMemLayerServer

from ._support import (
    COMMAND,
    REPO,
    memory_id,
    scope_args,
    server_env,
    stdio_session,
    temp_log,
    text,
)

TOOLS = {"remember", "recall", "forget", "list_memories"}


async def test_the_tools_schemas_hold_only_what_the_model_chooses(
    base_url: str, api_key: str
) -> None:
    async with stdio_session(server_env(api_key, base_url), *scope_args("alice")) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    params = {name: set(tool.inputSchema["properties"]) for name, tool in tools.items()}
    assert params == {
        "remember": {"text", "metadata"},
        "recall": {"query", "limit"},
        "forget": {"memory_id"},
        "list_memories": {"limit", "cursor"},
    }
    for tool in tools.values():
        schema = str(tool.inputSchema).lower()
        assert "user" not in schema and "agent" not in schema, tool.name
        assert tool.description and len(tool.description) > 60, tool.name
    assert tools["forget"].annotations is not None and tools["forget"].annotations.destructiveHint
    assert tools["recall"].annotations is not None and tools["recall"].annotations.readOnlyHint


async def test_remember_recall_list_and_forget(base_url: str, api_key: str) -> None:
    exact = '  Allergic to peanuts 🥜\n["not", "json"]  '
    async with stdio_session(server_env(api_key, base_url), *scope_args("alice")) as session:
        stored = await session.call_tool("remember", {"text": exact, "metadata": {"topic": "food"}})
        assert not stored.isError, text(stored)
        mem_id = memory_id(stored)
        other = memory_id(await session.call_tool("remember", {"text": "Lives in Oslo"}))

        recalled = await session.call_tool("recall", {"query": "peanuts allergy"})
        assert not recalled.isError
        assert text(recalled).startswith(f"- [{mem_id}] {exact}")
        assert recalled.structuredContent is not None
        first = recalled.structuredContent["results"][0]
        assert (first["content"], first["metadata"]) == (exact, {"topic": "food"})

        page = await session.call_tool("list_memories", {"limit": 1})
        assert text(page).startswith(f"- [{mem_id}] ") and "cursor=" in text(page)
        assert page.structuredContent is not None
        cursor = page.structuredContent["next_cursor"]
        rest = await session.call_tool("list_memories", {"limit": 1, "cursor": cursor})
        assert text(rest) == f"- [{other}] Lives in Oslo"

        resource = await session.read_resource("memlayer://memories")  # type: ignore[arg-type]
        listed = "".join(getattr(c, "text", "") for c in resource.contents)
        assert listed.endswith(f"oldest first:\n- [{mem_id}] {exact}\n- [{other}] Lives in Oslo")
        prompt = await session.get_prompt("recall_about", {"topic": "peanuts"})
        assert f"[{mem_id}]" in str(prompt.messages[0].content)

        forgotten = await session.call_tool("forget", {"memory_id": mem_id})
        assert (forgotten.isError, text(forgotten)) == (False, f"Forgot [{mem_id}].")
        assert text(await session.call_tool("recall", {"query": "peanuts"})) == (
            "No relevant memories."
        )
        again = await session.call_tool("forget", {"memory_id": mem_id})
        assert again.isError and "No memory with id" in text(again)

    with MemLayerClient(api_key=api_key, base_url=base_url) as client:
        kept = list(client.list_memories(user_id="alice"))
    assert [(m.content, m.agent_id) for m in kept] == [("Lives in Oslo", "desk")]


async def test_bad_input_is_an_error_result_the_model_can_act_on(
    base_url: str, api_key: str
) -> None:
    async with stdio_session(server_env(api_key, base_url), *scope_args("alice")) as session:
        empty = await session.call_tool("remember", {"text": ""})
        too_many = await session.call_tool("recall", {"query": "tea", "limit": 0})
        bad_cursor = await session.call_tool("list_memories", {"cursor": "no such cursor"})
        assert (await session.list_tools()).tools  # still serving
    assert empty.isError and "rejected the input" in text(empty)
    assert too_many.isError and "greater than or equal to 1" in text(too_many)
    assert bad_cursor.isError and "cursor" in text(bad_cursor)


async def test_a_second_user_bound_to_another_process_sees_nothing(
    base_url: str, api_key: str
) -> None:
    env = server_env(api_key, base_url)
    async with stdio_session(env, *scope_args("alice")) as alice:
        # An argument the model makes up for the scope is not in the schema and not used.
        stored = await alice.call_tool("remember", {"text": "Prefers tea", "user_id": "bob"})
        mem_id = memory_id(stored)
    # Bob's scope comes from the environment instead of the command line.
    bob_env = {**env, "MEMLAYER_USER_ID": "bob", "MEMLAYER_AGENT_ID": "desk"}
    async with stdio_session(bob_env) as bob:
        assert text(await bob.call_tool("recall", {"query": "tea"})) == "No relevant memories."
        assert text(await bob.call_tool("list_memories", {})) == "No memories stored."
        refused = await bob.call_tool("forget", {"memory_id": mem_id})
        assert refused.isError and "No memory with id" in text(refused)
        bobs = memory_id(await bob.call_tool("remember", {"text": "Prefers coffee"}))
    async with stdio_session(env, *scope_args("alice", agent_id="other-agent")) as other_agent:
        refused = await other_agent.call_tool("forget", {"memory_id": mem_id})
        assert refused.isError
    with MemLayerClient(api_key=api_key, base_url=base_url) as client:
        assert client.get(mem_id).user_id == "alice"
        assert (client.get(bobs).user_id, client.get(bobs).agent_id) == ("bob", "desk")


async def test_a_bad_key_gives_one_clear_error_and_the_server_keeps_answering(
    local_server: LocalMemLayerServer, base_url: str
) -> None:
    revoked = local_server.create_key(plan="unlimited")
    local_server.revoke_key(revoked)
    log = temp_log()
    env = server_env(revoked, base_url)
    async with stdio_session(env, *scope_args("alice"), errlog=log) as session:
        first = await session.call_tool("recall", {"query": "tea"})
        assert {t.name for t in (await session.list_tools()).tools} == {
            "remember",
            "recall",
            "forget",
            "list_memories",
        }
        second = await session.call_tool("remember", {"text": "likes tea"})
    assert first.isError and second.isError
    assert text(first) == text(second)
    assert "authentication failed" in text(first) and "MEMLAYER_API_KEY" in text(first)
    log.seek(0)
    assert revoked not in log.read() + text(first)

    async with stdio_session(server_env(None, base_url), *scope_args("alice")) as session:
        missing = await session.call_tool("recall", {"query": "tea"})
    assert missing.isError and "MEMLAYER_API_KEY" in text(missing)


def test_without_a_scope_the_command_refuses_to_start() -> None:
    done = subprocess.run(
        [*COMMAND, "--user-id", "alice"],
        cwd=REPO,
        env=server_env(None, None),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "--agent-id" in done.stderr and "MEMLAYER_AGENT_ID" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("args", "base_url"),
    [(["--db", "x.db"], None), (["--timeout", "0"], None), ([], "memlayer.online")],
)
def test_bad_options_are_refused(args: list[str], base_url: str | None) -> None:
    done = subprocess.run(
        [*COMMAND, *scope_args("alice"), *args],
        cwd=REPO,
        env=server_env(None, base_url),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert "memlayer mcp:" in done.stderr
