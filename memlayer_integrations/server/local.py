"""``LocalMemLayerServer``: the MemLayer server inside your own Python process.

It runs uvicorn on ``127.0.0.1`` on a free port, in a background thread with its own event
loop, so it works the same from plain scripts, from ``async`` code and from a Jupyter
notebook (whose event loop is already running): nothing waits on the caller's loop.

Clients of the same process need no socket: a client built with ``base_url=
server.in_process_url`` hands its requests to the app on that loop (``in_process.py``),
through the same middleware and checks; ``server.url`` is the real HTTP server.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from .. import _in_process
from . import keys as keys_module
from .app import create_app
from .in_process import AsyncInProcessTransport, InProcessTransport, _AppLoop
from .protocol import guarded_protocol
from .settings import Plan, ServerSettings
from .store import iso

__all__ = ["LocalMemLayerServer"]

_START_TIMEOUT = 30.0


class _Server(uvicorn.Server):
    """uvicorn's server, remembering the event loop it serves on (for in-process clients)."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)


class LocalMemLayerServer:
    """A MemLayer server on loopback for the life of a ``with`` block (or ``start``/``stop``).

    Args:
        db_path: the SQLite file to use, or a ``postgresql://USER@HOST:PORT/DB`` URL (the
            ``postgres`` extra). By default a temporary SQLite database is created and
            deleted again by :meth:`stop`.
        plans: plan name -> :class:`Plan` for :meth:`create_key` (default: ``free`` and
            ``unlimited``).
        embedder: recall by meaning too: a spec such as ``"minilm"`` or an ``Embedder``
            (see ``ServerSettings.embedder``; default ``$MEMLAYER_EMBEDDER``).
        settings: full :class:`ServerSettings`, instead of ``db_path``, ``plans`` and
            ``embedder``.

    Example:
        >>> from memlayer_integrations import MemLayerClient
        >>> from memlayer_integrations.server import LocalMemLayerServer
        >>> with LocalMemLayerServer() as server:
        ...     key = server.create_key(plan="unlimited", name="demo")
        ...     with MemLayerClient(api_key=key, base_url=server.in_process_url) as client:
        ...         client.remember("likes tea", user_id="u1", agent_id="bot")

    ``base_url=server.in_process_url`` reaches the server without a socket (any adapter
    taking ``base_url`` too); ``server.url`` is the same server over HTTP.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        plans: dict[str, Plan] | None = None,
        embedder: Any = None,
        settings: ServerSettings | None = None,
    ) -> None:
        if settings is not None and (
            db_path is not None or plans is not None or embedder is not None
        ):
            raise TypeError("pass either settings or db_path/plans/embedder, not both")
        self._embedder = embedder
        self._given_settings = settings
        self._db_path = db_path
        self._plans = plans
        self._tmpdir: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._app: Any = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:<port>``) to give a client."""
        if self._port is None:
            raise RuntimeError("the server is not running; call start() or use it in a with block")
        return f"http://127.0.0.1:{self._port}"

    @property
    def in_process_url(self) -> str:
        """The base URL of this server for clients of this process, reached without a
        socket (``http://in-process-<port>.memlayer.invalid``; ``.invalid`` never resolves,
        so after :meth:`stop` such a client fails to connect)."""
        return f"http://in-process-{self.url.rsplit(':', 1)[1]}.memlayer.invalid"

    @property
    def settings(self) -> ServerSettings:
        if self._app is None:
            raise RuntimeError("the server is not running")
        settings: ServerSettings = self._app.state.settings
        return settings

    def start(self) -> LocalMemLayerServer:
        """Start serving; returns once the server accepts connections."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        settings = self._given_settings
        if settings is None:
            if self._db_path is None:
                self._tmpdir = tempfile.mkdtemp(prefix="memlayer-")
                db_path: str | Path = Path(self._tmpdir) / "memlayer.db"
            else:
                db_path = self._db_path
            options: dict[str, Any] = {"db_path": db_path}
            if self._plans is not None:
                options["plans"] = dict(self._plans)
            if self._embedder is not None:
                options["embedder"] = self._embedder
            settings = ServerSettings(**options)
        self._app = create_app(settings)
        self._app.state.db.open()  # fail here, in the caller's thread, on a bad path or schema
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say they are
        # TCP, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        # log_config=None: an embedded server leaves the host application's logging alone.
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            http=guarded_protocol(settings),
        )
        server = _Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="memlayer-server", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(5)
                sock.close()
                self._cleanup()
                raise RuntimeError("the local MemLayer server did not start")
            time.sleep(0.005)
        self._server, self._thread, self._sock = server, thread, sock
        if server.loop is not None:
            app_loop = _AppLoop(self._app, server.loop, thread)
            _in_process.register(
                self.in_process_url,
                _in_process.InProcessServer(
                    lambda: InProcessTransport(app_loop), lambda: AsyncInProcessTransport(app_loop)
                ),
            )
        return self

    def stop(self) -> None:
        """Stop serving and, for a temporary database, delete it. Safe to call twice."""
        if self._server is None:
            return
        _in_process.unregister(self.in_process_url)
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self._sock.close()
        self._server = self._thread = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._app is not None:
            self._app.state.db.close()
        self._app = None
        self._port = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> LocalMemLayerServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    async def __aenter__(self) -> LocalMemLayerServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: Any) -> None:
        await asyncio.to_thread(self.stop)

    # -- keys ------------------------------------------------------------------------

    def _db(self) -> Any:
        if self._app is None:
            raise RuntimeError("the server is not running; call start() or use it in a with block")
        return self._app.state.db

    def create_key(self, plan: str = "unlimited", name: str | None = None) -> str:
        """Create an account on ``plan`` and return its ``ml_live_`` key (shown only here)."""
        plans = self.settings.plans
        if plan not in plans:
            raise ValueError(f"unknown plan {plan!r}; plans: {', '.join(sorted(plans))}")
        with self._db().write() as conn:
            key, _ = keys_module.create_key(
                conn, plan_name=plan, plan=plans[plan], name=name, now=iso(self.settings.clock())
            )
        return key

    def revoke_key(self, key: str) -> None:
        """Revoke ``key`` (or a ``key_...`` id): it gets 401 from now on."""
        with self._db().write() as conn:
            keys_module.revoke_key(conn, key, now=iso(self.settings.clock()))

    def suspend_key(self, key: str) -> None:
        """Suspend the account of ``key``: its requests get 403 until :meth:`unsuspend_key`."""
        with self._db().write() as conn:
            keys_module.set_suspended(conn, key, True)

    def unsuspend_key(self, key: str) -> None:
        with self._db().write() as conn:
            keys_module.set_suspended(conn, key, False)
