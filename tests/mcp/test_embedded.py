"""``memlayer mcp --embedded --db PATH``: a zero-setup start on a local server inside the
MCP server's own process, whose memories outlive the process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from memlayer_integrations import MemLayerClient
from memlayer_integrations.mcp.command import EMBEDDED_KEY_NAME
from memlayer_integrations.server import LocalMemLayerServer, keys
from memlayer_integrations.server.db import Database

from ._support import COMMAND, REPO, memory_id, scope_args, server_env, stdio_session, text


def _keys(db_path: Path) -> list[keys.KeyInfo]:
    db = Database(db_path)
    db.open()
    try:
        with db.read() as conn:
            return keys.list_keys(conn)
    finally:
        db.close()


async def test_embedded_memories_outlive_the_process_and_its_keys(tmp_path: Path) -> None:
    db_path = tmp_path / "memlayer.db"
    args = ["--embedded", "--db", str(db_path), *scope_args("alice")]
    # No key and a URL that answers nothing: embedded mode needs neither.
    env = server_env(None, "http://127.0.0.1:9")
    async with stdio_session(env, *args) as session:
        mem_id = memory_id(await session.call_tool("remember", {"text": "Walks to work"}))
    async with stdio_session(env, *args) as session:
        recalled = await session.call_tool("recall", {"query": "walks"})
    assert text(recalled) == f"- [{mem_id}] Walks to work"

    made = _keys(db_path)
    assert len(made) == 2 and {k.name for k in made} == {EMBEDDED_KEY_NAME}
    assert len({k.account_id for k in made}) == 1  # one lasting account
    assert all(k.revoked for k in made)  # each run's key ends with the run


async def test_embedded_uses_the_given_key_of_that_database(tmp_path: Path) -> None:
    db_path = tmp_path / "memlayer.db"
    with LocalMemLayerServer(db_path) as server:
        key = server.create_key(plan="free", name="mine")
    env = server_env(key, None)
    async with stdio_session(env, "--embedded", "--db", str(db_path), *scope_args("bo")) as s:
        mem_id = memory_id(await s.call_tool("remember", {"text": "Plays chess"}))
    with LocalMemLayerServer(db_path) as server, MemLayerClient(key, base_url=server.url) as c:
        assert c.get(mem_id).content == "Plays chess"
    assert [k.name for k in _keys(db_path)] == ["mine"]


def test_sigterm_still_revokes_the_runs_key(tmp_path: Path) -> None:
    db_path = tmp_path / "memlayer.db"
    proc = subprocess.Popen(
        [*COMMAND, "--embedded", "--db", str(db_path), *scope_args("alice")],
        cwd=REPO,
        env=server_env(None, None),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # Once the server answers initialize, the run's key exists and the server is up.
        hello = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        }
        proc.stdin.write(json.dumps(hello) + "\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 1
        proc.terminate()  # stdin stays open: only SIGTERM stops it
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert [k.revoked for k in _keys(db_path)] == [True]
