"""``memlayer mcp``: run the MemLayer MCP server over stdio or streamable HTTP.

The scope comes from ``--user-id`` / ``--agent-id`` (else ``$MEMLAYER_USER_ID`` /
``$MEMLAYER_AGENT_ID``) and a missing one stops the command before anything starts: a
server without a scope would have to let the model choose whose memories to touch. The key
comes only from ``$MEMLAYER_API_KEY`` and the URL from ``$MEMLAYER_BASE_URL``, as for every
client; with ``--embedded`` a local server runs inside this process on ``--db`` instead.

Over stdio, stdout carries the protocol alone: everything this command says goes to stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import anyio

from .. import AsyncMemLayerClient
from .._adapter import API_KEY_ENV, BASE_URL_ENV
from .server import DEFAULT_CALL_TIMEOUT, create_server

__all__ = [
    "AGENT_ID_ENV",
    "EMBEDDED_KEY_NAME",
    "USER_ID_ENV",
    "McpOptions",
    "embedded_backend",
    "run",
]

USER_ID_ENV = "MEMLAYER_USER_ID"
AGENT_ID_ENV = "MEMLAYER_AGENT_ID"
#: The name of the keys ``--embedded`` gives itself; their account holds the memories.
EMBEDDED_KEY_NAME = "memlayer mcp --embedded"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: One retry after a network blip or a 5xx: a model waits on every tool call, so a second
#: failure goes back to it as an error result instead.
_MAX_RETRIES = 1
# How often the main thread looks for a stop signal while stdio is served (seconds).
_SIGNAL_POLL = 0.1


@dataclass(frozen=True)
class McpOptions:
    """What ``memlayer mcp`` was asked to do (built from the command line by ``cli.py``)."""

    user_id: str | None
    agent_id: str | None
    http: bool = False
    host: str = "127.0.0.1"
    port: int = 8765
    embedded_db: str | Path | None = None
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    log_level: str = "warning"


def _scope(options: McpOptions) -> tuple[str, str] | str:
    """``(user_id, agent_id)``, or the message that says which is missing."""
    user_id = options.user_id or os.environ.get(USER_ID_ENV, "")
    agent_id = options.agent_id or os.environ.get(AGENT_ID_ENV, "")
    missing = [
        f"{flag} (or ${env})"
        for value, flag, env in (
            (user_id, "--user-id", USER_ID_ENV),
            (agent_id, "--agent-id", AGENT_ID_ENV),
        )
        if not value.strip()
    ]
    if missing:
        return (
            f"memlayer mcp: set {' and '.join(missing)}: the server's memories belong to one user "
            "and one agent, chosen by whoever runs it, never by the model"
        )
    return user_id, agent_id


@contextlib.contextmanager
def embedded_backend(db_path: str | Path) -> Iterator[tuple[str, str]]:
    """A local MemLayer server on ``db_path`` for the life of the block: ``(url, key)``.

    With ``$MEMLAYER_API_KEY`` set, that key is used (it must be a key of this database).
    Otherwise this run gets a key of its own to one lasting account, the account of the keys
    named :data:`EMBEDDED_KEY_NAME` (created on the first run, on the unlimited plan: the
    database is yours), so memories outlive the process; the key is revoked at the end and
    is never shown.
    """
    from ..server import LocalMemLayerServer

    given = os.environ.get(API_KEY_ENV)
    key_id = None
    if given:
        key = given
    else:
        key, key_id = _embedded_key(db_path)
    try:
        with LocalMemLayerServer(db_path) as server:
            yield server.in_process_url, key  # the tools' clients live in this process
    finally:
        if key_id is not None:
            _revoke(db_path, key_id)


def _now() -> str:
    from ..server.store import iso

    return iso(datetime.now(timezone.utc))


def _embedded_key(db_path: str | Path) -> tuple[str, str]:
    from ..server import DEFAULT_PLANS, keys
    from ..server.backend import open_backend

    db = open_backend(db_path)
    db.open()
    try:
        with db.write() as conn:
            owners = [k.account_id for k in keys.list_keys(conn) if k.name == EMBEDDED_KEY_NAME]
            if owners:
                return keys.add_key(conn, account_id=owners[0], name=EMBEDDED_KEY_NAME, now=_now())
            return keys.create_key(
                conn,
                plan_name="unlimited",
                plan=DEFAULT_PLANS["unlimited"],
                name=EMBEDDED_KEY_NAME,
                now=_now(),
            )
    finally:
        db.close()


def _revoke(db_path: str | Path, key_id: str) -> None:
    from ..server import keys
    from ..server.backend import open_backend

    db = open_backend(db_path)
    db.open()
    try:
        with db.write() as conn:
            keys.revoke_key(conn, key_id, now=_now())
    finally:
        db.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listening now, before the URL is printed: a client that connects while uvicorn is still
    # starting waits in the backlog instead of being refused.
    sock.listen(128)
    return sock


async def _serve(
    options: McpOptions,
    scope: tuple[str, str],
    client: AsyncMemLayerClient,
    sock: socket.socket | None,
) -> None:
    user_id, agent_id = scope
    server = create_server(
        client,
        user_id=user_id,
        agent_id=agent_id,
        call_timeout=options.call_timeout,
        host=options.host,
        port=options.port,
        log_level=options.log_level.upper(),  # type: ignore[arg-type]  # argparse checks it
    )
    try:
        if sock is None:
            await server.run_stdio_async()
            return
        import uvicorn

        port = sock.getsockname()[1]
        host = f"[{options.host}]" if ":" in options.host else options.host
        config = uvicorn.Config(server.streamable_http_app(), log_level=options.log_level)
        if options.host not in _LOOPBACK:
            print(
                f"memlayer mcp: warning: {options.host} is reachable from other machines, and "
                f"this endpoint has no authentication: whoever reaches it uses {user_id!r}'s memories",
                file=sys.stderr,
            )
        print(
            f"MemLayer MCP server for user {user_id!r}, agent {agent_id!r} on http://{host}:{port}/mcp",
            file=sys.stderr,
            flush=True,
        )
        await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        await client.aclose()


def run(options: McpOptions) -> int:
    """Run the server until its client goes away (stdio), SIGTERM or Ctrl-C; the exit status."""
    scope = _scope(options)
    if isinstance(scope, str):
        print(scope, file=sys.stderr)
        return 2
    if options.call_timeout <= 0:
        print("memlayer mcp: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    client = None
    if options.embedded_db is None:
        try:
            client = AsyncMemLayerClient(max_retries=_MAX_RETRIES)
        except ValueError as exc:  # a malformed $MEMLAYER_BASE_URL
            print(f"memlayer mcp: {exc} (from ${BASE_URL_ENV})", file=sys.stderr)
            return 2
    sock = None
    if options.http:
        try:
            sock = _listening_socket(options.host, options.port)
        except OSError as exc:
            print(
                f"memlayer mcp: cannot listen on {options.host}:{options.port}: {exc.strerror}",
                file=sys.stderr,
            )
            return 1
    if not os.environ.get(API_KEY_ENV) and options.embedded_db is None:
        # Start anyway: MCP clients show a tool's error to the user, not a server's exit.
        print(
            f"memlayer mcp: {API_KEY_ENV} is not set; every tool call will say so",
            file=sys.stderr,
        )
    if sock is not None:
        # uvicorn turns SIGINT and SIGTERM into a graceful shutdown of its own, then raises
        # the signal again: make that SIGTERM unwind like Ctrl-C, so that --embedded still
        # revokes its key and closes its database.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            if options.embedded_db is not None:
                with embedded_backend(options.embedded_db) as (url, key):
                    local = AsyncMemLayerClient(api_key=key, base_url=url, max_retries=_MAX_RETRIES)
                    anyio.run(_serve, options, scope, local, sock)
            elif client is not None:
                anyio.run(_serve, options, scope, client, sock)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            sock.close()
        return 0
    signalled = False
    if options.embedded_db is not None:
        with embedded_backend(options.embedded_db) as (url, key):
            local = AsyncMemLayerClient(api_key=key, base_url=url, max_retries=_MAX_RETRIES)
            signalled = _serve_until_signal(options, scope, local)
    elif client is not None:
        signalled = _serve_until_signal(options, scope, client)
    if signalled:
        # Everything is closed (--embedded revoked its key above). The thread serving stdio
        # may still be blocked reading stdin, which ends only when stdin does; a stopped
        # server should not wait for it.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(ValueError, OSError):  # the SDK may have closed it
                stream.flush()
        os._exit(0)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _serve_until_signal(
    options: McpOptions, scope: tuple[str, str], client: AsyncMemLayerClient
) -> bool:
    """Serve stdio until the client closes stdin (False) or SIGTERM/SIGINT arrives (True).

    MCP clients stop a stdio server by closing its stdin, then with SIGTERM. The SDK reads
    stdin in a worker thread that cannot be cancelled, so an event loop stopped by a signal
    would wait for that read forever. The loop therefore runs in a daemon thread, and this
    (main) thread only waits: a signal returns here at once, so the caller can still revoke
    an embedded key and close its database whatever the loop was doing.
    """
    failures: list[BaseException] = []
    signals: list[int] = []

    def serve() -> None:
        try:
            anyio.run(_serve, options, scope, client, None)
        except BaseException as exc:  # handed to the main thread below
            failures.append(exc)

    def note(signum: int, frame: object) -> None:
        signals.append(signum)  # no locks here: the main thread polls for it

    stops = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, note) for signum in stops}
    try:
        thread = threading.Thread(target=serve, name="memlayer-mcp-stdio", daemon=True)
        thread.start()
        while thread.is_alive() and not signals:
            thread.join(_SIGNAL_POLL)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if signals:
        return True
    if failures:
        raise failures[0]
    return False
