"""What every framework adapter needs before it talks to MemLayer: a bound scope and a
pair of clients.

Frameworks call an adapter's sync methods from sync code and its async methods from async
code, so each adapter holds a :class:`MemLayerClient` and an :class:`AsyncMemLayerClient`.
Callers pass either, both, or just ``api_key``/``base_url``; a missing twin is built with
the other one's key, URL, timeout, retries and headers, so sync and async calls always reach
the same account. Nothing here sends a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator
from typing import Any

from .._client import AsyncMemLayerClient, MemLayerClient
from .._exceptions import MemLayerError, MemLayerScopeError

__all__ = ["ClientPair", "require_scope"]


def require_scope(owner: str, **scope: Any) -> None:
    """Raise :class:`MemLayerScopeError` unless every value in ``scope`` is a non-blank str.

    Memories without a scope could end up under the wrong user, so a missing scope fails
    closed, at construction rather than at the first request.
    """
    for name, value in scope.items():
        if not isinstance(value, str) or not value.strip():
            raise MemLayerScopeError(
                f"{owner} needs {name}=... (a non-empty string): every memory belongs to one "
                f"user and one agent, chosen by the application; got {value!r}"
            )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _close_at_loop_exit(client: AsyncMemLayerClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


def _close_with_running_loop(client: AsyncMemLayerClient) -> AsyncGenerator[None, None]:
    """Have the running event loop close ``client`` when it shuts down; keep what it returns.

    httpx keeps an async client's connections in the loop that opened them. When a
    framework runs async code from a sync method with ``asyncio.run``, that loop is closed
    right after, and a client left open there would hold its sockets until the garbage
    collector found them (a ``ResourceWarning`` each). ``asyncio.run`` finalizes the loop's
    async generators before closing it, so a generator started in that loop and suspended at
    its ``yield`` gets to ``await client.aclose()`` on the way out. The loop holds its
    generators weakly: the caller keeps the one returned. Dropped while its loop still runs,
    it is finalized (and the client closed) in that loop; dropped after, it does nothing.
    """
    closer = _close_at_loop_exit(client)
    # Runs it to its ``yield`` (StopIteration); the loop's first-iteration hook registers it.
    with contextlib.suppress(StopIteration):
        closer.asend(None).send(None)
    return closer


class ClientPair:
    """The sync and async clients of one adapter.

    Args:
        client: a :class:`MemLayerClient` for sync calls.
        async_client: an :class:`AsyncMemLayerClient` for async calls.
        api_key: used to build the clients when neither is given (else ``$MEMLAYER_API_KEY``).
        base_url: likewise (else ``$MEMLAYER_BASE_URL``, then the hosted service).

    Clients passed in belong to the caller and are never closed here.
    """

    def __init__(
        self,
        client: MemLayerClient | None = None,
        async_client: AsyncMemLayerClient | None = None,
        api_key: Any = None,
        base_url: str | None = None,
    ) -> None:
        if client is not None and not isinstance(client, MemLayerClient):
            raise TypeError(f"client must be a MemLayerClient, not {type(client).__name__}")
        if async_client is not None and not isinstance(async_client, AsyncMemLayerClient):
            raise TypeError(
                f"async_client must be an AsyncMemLayerClient, not {type(async_client).__name__}"
            )
        if (client is not None or async_client is not None) and (
            api_key is not None or base_url is not None
        ):
            raise TypeError("pass either client/async_client or api_key/base_url, not both")
        self._sync = client
        self._async = async_client
        self._owned: list[MemLayerClient | AsyncMemLayerClient] = []
        self._lock = threading.Lock()
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._loop_closer: AsyncGenerator[None, None] | None = None
        self._closed = False
        if client is None and async_client is None:
            # Building a client sends nothing; it only resolves the key and URL.
            self._sync = MemLayerClient(api_key=api_key, base_url=base_url)
            self._owned.append(self._sync)

    @property
    def base_url(self) -> str:
        """The URL both clients talk to."""
        given = self._sync if self._sync is not None else self._async
        assert given is not None  # __init__ always leaves one set
        return given.base_url

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` was called."""
        return self._closed

    def check_open(self, owner: str = "this MemLayer adapter") -> None:
        """Raise :class:`MemLayerError` naming ``owner`` if it was closed.

        Adapters call this before accepting work, so that nothing is queued that could only
        fail later (at interpreter exit, with no one to tell).
        """
        if self._closed:
            raise MemLayerError(
                f"{owner} is closed (close() or aclose() was called) and sends nothing any "
                f"more; build a new {owner.split()[-1]} to go on"
            )

    @property
    def sync(self) -> MemLayerClient:
        self.check_open()
        with self._lock:
            if self._sync is None:
                assert self._async is not None
                self._sync = MemLayerClient(**self._async._settings())
                self._owned.append(self._sync)
            return self._sync

    @property
    def async_(self) -> AsyncMemLayerClient:
        self.check_open()
        with self._lock:
            loop = _running_loop()
            if (
                self._async is not None
                and self._async in self._owned
                and loop is not self._async_loop
            ):
                # httpx pools connections per event loop: a client built inside one
                # ``asyncio.run`` cannot be used from the next (frameworks' sync methods run
                # async code that way), so a client this pair built is rebuilt for the new loop.
                # The old loop closes the old one (``_close_with_running_loop``).
                self._owned.remove(self._async)
                self._async = None
                self._loop_closer = None
            if self._async is None:
                source = self._sync if self._sync is not None else None
                assert source is not None
                self._async = AsyncMemLayerClient(**source._settings())
                self._owned.append(self._async)
                self._async_loop = loop
                if loop is not None:
                    self._loop_closer = _close_with_running_loop(self._async)
            return self._async

    def close(self) -> None:
        """Close the sync client if this pair built it (the async one needs :meth:`aclose`)."""
        self._closed = True
        for c in self._owned:
            if isinstance(c, MemLayerClient):
                c.close()

    async def aclose(self) -> None:
        """Close every client this pair built."""
        self._closed = True
        for c in self._owned:
            if isinstance(c, MemLayerClient):
                c.close()
            else:
                await c.aclose()
