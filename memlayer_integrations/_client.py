"""The MemLayer clients: :class:`MemLayerClient` (sync) and :class:`AsyncMemLayerClient`.

Both take the same arguments and offer the same operations; every operation is defined once
(``_operations.py``, ``_base_client.py``) and only sent here, with ``httpx.Client`` or
``httpx.AsyncClient``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from . import _constants as C
from . import _transports
from ._base_client import NOT_GIVEN, BaseClient, Call, T, TimeoutTypes, log
from ._exceptions import MemLayerError
from ._models import Memory, MemoryList, RecalledMemory, Scope, Usage
from ._operations import MemoryItem
from ._progress import Progress, ProgressArg

__all__ = ["AsyncMemLayerClient", "MemLayerClient"]


class MemLayerClient(BaseClient):
    """Synchronous client for the MemLayer API.

    Args:
        api_key: an ``ml_live_...`` key; defaults to ``$MEMLAYER_API_KEY``. A missing or
            malformed key raises :class:`AuthenticationError` at the first call, before
            anything is sent.
        base_url: defaults to ``$MEMLAYER_BASE_URL``, then ``https://memlayer.online``.
        timeout: seconds (or an ``httpx.Timeout``) per attempt; each method also takes
            ``timeout=`` for one call.
        max_retries: retries after connection errors, timeouts, 408, 429 and 5xx.
        http_client: your own ``httpx.Client`` (proxies, transports); it is not closed by
            :meth:`close`. Without it the client makes its own, whose transport
            ``_transports`` picks: no socket for an embedded server's ``in_process_url``, a
            lean HTTP/1.1 transport for ``http://`` on a loopback host with no proxy,
            httpx's own for everything else.
        default_headers: extra headers sent with every request.

    Constructing a client sends nothing.

    Example:
        >>> from memlayer_integrations import MemLayerClient, AuthenticationError
        >>> with MemLayerClient(base_url=server.url, api_key=key) as client:
        ...     client.remember("User is on the Pro plan", user_id="user_123", agent_id="billing_bot")
        ...     hits = client.recall("which plan?", user_id="user_123")
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        timeout: TimeoutTypes = C.DEFAULT_TIMEOUT,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, default_headers)
        self._owns_http = http_client is None
        # Our own transport, when this client's own httpx client has one (see _send_once).
        self._transport: httpx.BaseTransport | None = None
        if http_client is None:
            # Embedded server: no socket; local http://: a lean transport (_transports).
            self._transport = _transports.sync_transport(self.base_url)
            http_client = httpx.Client(transport=self._transport)
        self._http = http_client

    # -- sending ---------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        if self._http.is_closed:
            raise self._closed_error()
        attempt = 0
        while True:
            request = self._build_request(self._http, call)
            log.debug("%s %s (attempt %d)", call.method, call.path, attempt + 1)
            try:
                response = self._send_once(request)
            except httpx.RequestError as exc:
                outcome: T | MemLayerError = self._request_error(exc, call)
            else:
                outcome = self._process_response(call, response)
            if not isinstance(outcome, MemLayerError):
                return outcome
            delay = self._retry_delay(outcome, attempt)
            if delay is None:
                raise outcome
            log.info(
                "retrying %s %s in %.2fs after %s",
                call.method,
                call.path,
                delay,
                type(outcome).__name__,
            )
            time.sleep(delay)
            attempt += 1

    def _send_once(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read its whole answer.

        Through our own transport (``_transports``: an embedded server, a local
        ``http://``), the request goes straight to it: our own ``httpx.Client`` has no auth,
        redirects, event hooks or proxies to apply, and the API sets no cookies, yet
        ``Client.send`` would still cost about a tenth of a millisecond per request (a
        local request's whole cost is a few tenths). Everything else goes through
        ``Client.send``. (httpx's own ``INFO`` line per request is therefore not logged for
        a local server.)
        """
        if self._transport is None:
            response = self._http.send(request)
        else:
            try:
                response = self._transport.handle_request(request)
            except httpx.RequestError as exc:
                exc.request = request  # as Client.send does: the error names its request
                raise
            response.request = request
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        return response

    def close(self) -> None:
        """Close the underlying HTTP connections (unless you passed ``http_client``)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> MemLayerClient:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- operations ------------------------------------------------------------------

    def remember(
        self,
        content: str,
        *,
        user_id: str,
        agent_id: str,
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        key: str | None = None,
        ttl: float | None = None,
        expires_at: datetime | str | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> Memory:
        """Store one memory. With ``key``, replace the memory of that key in this scope;
        without one, a memory of this scope with exactly this content is refreshed instead of
        a second one being added.

        ``ttl`` (seconds) or ``expires_at`` (an aware datetime or ISO 8601 string) makes the
        memory expire: it is never returned after that.

        Retries are safe: a retried call carries the same idempotency key and is stored once.
        """
        return self._send(
            self._remember(
                content, user_id, agent_id, metadata, session_id, key, ttl, expires_at, timeout
            )
        )

    def remember_many(
        self,
        items: Sequence[MemoryItem],
        *,
        user_id: str,
        agent_id: str,
        session_id: str | None = None,
        progress: ProgressArg = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> list[Memory]:
        """Store many memories, returned in ``items`` order.

        Up to 100 items go in one request, all or nothing. More go in ``/batch`` requests
        of up to 1,000 items (fewer if the 1 MiB body limit needs), each all or nothing; if one fails, the memories of the requests before it stay stored, and
        ``progress`` has been told how many. ``progress=True`` shows a bar on stderr,
        a callable gets ``(done, total)`` after each request; by default nothing is shown.
        """
        calls = self._remember_many(items, user_id, agent_id, session_id, timeout)
        stored = MemoryList()
        with Progress(progress, sum(n for n, _ in calls), "remember_many") as bar:
            for count, call in calls:
                memories: list[Memory] = self._send(call)
                stored.extend(memories)
                bar.advance(count)
        return stored

    def recall(
        self,
        query: str,
        *,
        user_id: str,
        agent_id: str | None = None,
        limit: int = C.DEFAULT_RECALL_LIMIT,
        filters: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        offset: int = 0,
        explain: bool = False,
        agent_prefix: str | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> list[RecalledMemory]:
        """Memories relevant to ``query``, best first. ``agent_id=None`` searches all agents.

        ``agent_prefix`` searches an agent and the agents below it (``"a"``: ``a`` and
        ``a.b``, not ``ab``). ``explain=True`` asks the server why each came back: each
        result then has ``why``, a dict with ``matched_words`` and ``neighbour_of`` (see the
        wire contract).
        """
        return self._send(
            self._recall(
                query,
                user_id,
                agent_id,
                limit,
                filters,
                session_id,
                offset,
                explain,
                agent_prefix,
                timeout,
            )
        )

    def get(self, memory_id: str, *, timeout: TimeoutTypes = NOT_GIVEN) -> Memory:
        """One memory by id; :class:`NotFoundError` if it does not exist."""
        return self._send(self._get(memory_id, timeout))

    def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> Memory:
        """Change a memory's content, its metadata (replaced whole) or both."""
        return self._send(self._update(memory_id, content, metadata, timeout))

    def forget(self, memory_id: str, *, timeout: TimeoutTypes = NOT_GIVEN) -> None:
        """Delete one memory; :class:`NotFoundError` if it does not exist."""
        return self._send(self._forget(memory_id, timeout))

    def forget_all(
        self,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        keys: Sequence[str] | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> int:
        """Delete every memory of a user (narrowed by agent, session or keys); returns how many."""
        return self._send(self._forget_all(user_id, agent_id, session_id, keys, timeout))

    def list_memories(
        self,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        keys: Sequence[str] | None = None,
        agent_prefix: str | None = None,
        page_size: int = C.DEFAULT_PAGE_SIZE,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> Iterator[Memory]:
        """Every matching memory in creation order, fetching pages as you iterate."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page, cursor = self._send(
                self._list_page(
                    user_id,
                    agent_id,
                    session_id,
                    filters,
                    keys,
                    agent_prefix,
                    page_size,
                    cursor,
                    timeout,
                )
            )
            yield from page
            cursor = self._next_cursor(cursor, seen)
            if cursor is None:
                return

    def list_scopes(
        self,
        *,
        user_id: str | None = None,
        agent_prefix: str | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> list[Scope]:
        """The (user, agent) pairs that hold memories, optionally for one user, and for one
        agent and the agents below it (``agent_prefix="a"``: ``a``, ``a.b``, not ``ab``)."""
        return self._send(self._list_scopes(user_id, agent_prefix, timeout))

    def usage(self, *, timeout: TimeoutTypes = NOT_GIVEN) -> Usage:
        """Plan, memories stored and allowed, requests made and allowed today."""
        return self._send(self._usage(timeout))

    def batch(
        self, operations: Sequence[Mapping[str, Any]], *, timeout: TimeoutTypes = NOT_GIVEN
    ) -> list[Any]:
        """Run operations built with :class:`Op` in one request, in order, all or nothing."""
        return self._send(self._batch(operations, timeout))


class AsyncMemLayerClient(BaseClient):
    """Asynchronous client for the MemLayer API: the arguments and operations of
    :class:`MemLayerClient`, awaitable.

    Example:
        >>> async with AsyncMemLayerClient(base_url=server.url, api_key=key) as client:
        ...     await client.remember("User is on the Pro plan", user_id="user_123", agent_id="billing_bot")
        ...     async for memory in client.list_memories(user_id="user_123"):
        ...         print(memory.content)
    """

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        *,
        base_url: str | None = None,
        timeout: TimeoutTypes = C.DEFAULT_TIMEOUT,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, default_headers)
        self._owns_http = http_client is None
        self._transport: httpx.AsyncBaseTransport | None = None
        if http_client is None:
            self._transport = _transports.async_transport(self.base_url)
            http_client = httpx.AsyncClient(transport=self._transport)
        self._http = http_client

    async def _send(self, call: Call[T]) -> T:
        if self._http.is_closed:
            raise self._closed_error()
        attempt = 0
        while True:
            request = self._build_request(self._http, call)
            log.debug("%s %s (attempt %d)", call.method, call.path, attempt + 1)
            try:
                response = await self._send_once(request)
            except httpx.RequestError as exc:
                outcome: T | MemLayerError = self._request_error(exc, call)
            else:
                outcome = self._process_response(call, response)
            if not isinstance(outcome, MemLayerError):
                return outcome
            delay = self._retry_delay(outcome, attempt)
            if delay is None:
                raise outcome
            log.info(
                "retrying %s %s in %.2fs after %s",
                call.method,
                call.path,
                delay,
                type(outcome).__name__,
            )
            await asyncio.sleep(delay)
            attempt += 1

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        """The async twin of :meth:`MemLayerClient._send_once`."""
        if self._transport is None:
            response = await self._http.send(request)
        else:
            try:
                response = await self._transport.handle_async_request(request)
            except httpx.RequestError as exc:
                exc.request = request
                raise
            response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response

    async def aclose(self) -> None:
        """Close the underlying HTTP connections (unless you passed ``http_client``)."""
        if self._owns_http:
            await self._http.aclose()

    async def close(self) -> None:
        """Alias of :meth:`aclose`."""
        await self.aclose()

    async def __aenter__(self) -> AsyncMemLayerClient:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def remember(
        self,
        content: str,
        *,
        user_id: str,
        agent_id: str,
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        key: str | None = None,
        ttl: float | None = None,
        expires_at: datetime | str | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> Memory:
        """See :meth:`MemLayerClient.remember`."""
        return await self._send(
            self._remember(
                content, user_id, agent_id, metadata, session_id, key, ttl, expires_at, timeout
            )
        )

    async def remember_many(
        self,
        items: Sequence[MemoryItem],
        *,
        user_id: str,
        agent_id: str,
        session_id: str | None = None,
        progress: ProgressArg = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> list[Memory]:
        """See :meth:`MemLayerClient.remember_many`."""
        calls = self._remember_many(items, user_id, agent_id, session_id, timeout)
        stored = MemoryList()
        with Progress(progress, sum(n for n, _ in calls), "remember_many") as bar:
            for count, call in calls:
                memories: list[Memory] = await self._send(call)
                stored.extend(memories)
                bar.advance(count)
        return stored

    async def recall(
        self,
        query: str,
        *,
        user_id: str,
        agent_id: str | None = None,
        limit: int = C.DEFAULT_RECALL_LIMIT,
        filters: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        offset: int = 0,
        explain: bool = False,
        agent_prefix: str | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> list[RecalledMemory]:
        """See :meth:`MemLayerClient.recall`."""
        return await self._send(
            self._recall(
                query,
                user_id,
                agent_id,
                limit,
                filters,
                session_id,
                offset,
                explain,
                agent_prefix,
                timeout,
            )
        )

    async def get(self, memory_id: str, *, timeout: TimeoutTypes = NOT_GIVEN) -> Memory:
        """See :meth:`MemLayerClient.get`."""
        return await self._send(self._get(memory_id, timeout))

    async def update(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> Memory:
        """See :meth:`MemLayerClient.update`."""
        return await self._send(self._update(memory_id, content, metadata, timeout))

    async def forget(self, memory_id: str, *, timeout: TimeoutTypes = NOT_GIVEN) -> None:
        """See :meth:`MemLayerClient.forget`."""
        return await self._send(self._forget(memory_id, timeout))

    async def forget_all(
        self,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        keys: Sequence[str] | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> int:
        """See :meth:`MemLayerClient.forget_all`."""
        return await self._send(self._forget_all(user_id, agent_id, session_id, keys, timeout))

    async def list_memories(
        self,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        keys: Sequence[str] | None = None,
        agent_prefix: str | None = None,
        page_size: int = C.DEFAULT_PAGE_SIZE,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> AsyncIterator[Memory]:
        """See :meth:`MemLayerClient.list_memories`; iterate with ``async for``."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page, cursor = await self._send(
                self._list_page(
                    user_id,
                    agent_id,
                    session_id,
                    filters,
                    keys,
                    agent_prefix,
                    page_size,
                    cursor,
                    timeout,
                )
            )
            for memory in page:
                yield memory
            cursor = self._next_cursor(cursor, seen)
            if cursor is None:
                return

    async def list_scopes(
        self,
        *,
        user_id: str | None = None,
        agent_prefix: str | None = None,
        timeout: TimeoutTypes = NOT_GIVEN,
    ) -> list[Scope]:
        """See :meth:`MemLayerClient.list_scopes`."""
        return await self._send(self._list_scopes(user_id, agent_prefix, timeout))

    async def usage(self, *, timeout: TimeoutTypes = NOT_GIVEN) -> Usage:
        """See :meth:`MemLayerClient.usage`."""
        return await self._send(self._usage(timeout))

    async def batch(
        self, operations: Sequence[Mapping[str, Any]], *, timeout: TimeoutTypes = NOT_GIVEN
    ) -> list[Any]:
        """See :meth:`MemLayerClient.batch`."""
        return await self._send(self._batch(operations, timeout))
