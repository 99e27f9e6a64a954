"""Running ``memlayer mcp`` as its users do: a subprocess driven by the MCP SDK's own client.

The subprocess is ``python -m memlayer_integrations.cli`` of the interpreter running the
tests, so it runs this checkout's code. Every wait is bounded: the SDK session has a read
timeout, and the HTTP server's start is awaited with a deadline.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from memlayer_integrations._constants import API_KEY_ENV, BASE_URL_ENV
from memlayer_integrations.mcp.server import result_text

#: The command line that starts the server, before ``mcp``'s own options.
COMMAND = [sys.executable, "-m", "memlayer_integrations.cli", "mcp"]
REPO = Path(__file__).resolve().parents[2]
#: How long one MCP request may wait for its answer.
READ_TIMEOUT = timedelta(seconds=30)
START_TIMEOUT = 60.0


def server_env(api_key: str | None, base_url: str | None) -> dict[str, str]:
    """The environment of a server process: this one's, with only the given MemLayer settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLAYER_")}
    if api_key is not None:
        env[API_KEY_ENV] = api_key
    if base_url is not None:
        env[BASE_URL_ENV] = base_url
    return env


def scope_args(user_id: str, agent_id: str = "desk") -> list[str]:
    return ["--user-id", user_id, "--agent-id", agent_id]


def stdio_params(env: dict[str, str], *args: str) -> StdioServerParameters:
    return StdioServerParameters(command=COMMAND[0], args=[*COMMAND[1:], *args], env=env, cwd=REPO)


@asynccontextmanager
async def stdio_session(
    env: dict[str, str], *args: str, errlog: Any = None
) -> AsyncIterator[ClientSession]:
    """An initialized SDK session with ``memlayer mcp ARGS`` over stdio."""
    log = errlog if errlog is not None else sys.stderr
    async with (
        stdio_client(stdio_params(env, *args), errlog=log) as (read, write),
        ClientSession(read, write, read_timeout_seconds=READ_TIMEOUT) as session,
    ):
        await session.initialize()
        yield session


@contextmanager
def http_server(env: dict[str, str], *args: str) -> Iterator[str]:
    """``memlayer mcp --http --port 0 ARGS`` in a subprocess; yields its ``.../mcp`` URL."""
    proc = subprocess.Popen(
        [*COMMAND, "--http", "--port", "0", *args],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr

    def drain() -> None:  # keeps reading, so a chatty server never blocks on a full pipe
        for line in stderr:
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        seen: list[str] = []
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"memlayer mcp --http did not start: {seen}") from None
            seen.append(line)
            found = re.search(r"http://\S+/mcp", line)
            if found:
                break
        yield found.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@asynccontextmanager
async def http_session(url: str) -> AsyncIterator[ClientSession]:
    """An initialized SDK session with the streamable HTTP server at ``url``."""
    async with (
        streamable_http_client(url) as (read, write, _),
        ClientSession(read, write, read_timeout_seconds=READ_TIMEOUT) as session,
    ):
        await session.initialize()
        yield session


#: The text of a tool result: what the model reads.
text = result_text


def memory_id(result: CallToolResult) -> str:
    """The id in ``remember``'s answer ``Remembered [mem_...].``."""
    found = re.search(r"\[(mem_[0-9a-f]+)\]", text(result))
    assert found, text(result)
    return found.group(1)


def temp_log() -> Any:
    """A file for a server's stderr, to read back what it logged."""
    return tempfile.TemporaryFile("w+", encoding="utf-8")
