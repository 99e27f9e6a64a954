"""The sync and async clients an adapter talks through, built on first use.

Every adapter accepts ``client=``, ``async_client=``, or ``api_key=``/``base_url=``; a
constructor only records them (no I/O). When one flavour is given and the other is needed
(``ainvoke`` on an adapter built with a sync client), the missing one is built with the same
key and base URL, so sync and async calls always reach the same account.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

from .. import AsyncMemLayerClient, MemLayerClient

__all__ = ["ClientPair"]


class ClientPair:
    """Holds (and lazily builds) the two clients of one adapter."""

    def __init__(
        self,
        client: Optional[MemLayerClient] = None,
        async_client: Optional[AsyncMemLayerClient] = None,
        api_key: Optional[Any] = None,
        base_url: Optional[str] = None,
    ) -> None:
        if client is not None and not isinstance(client, MemLayerClient):
            raise TypeError(f"client must be a MemLayerClient, not {type(client).__name__}")
        if async_client is not None and not isinstance(async_client, AsyncMemLayerClient):
            raise TypeError(f"async_client must be an AsyncMemLayerClient, not {type(async_client).__name__}")
        self._client = client
        self._async_client = async_client
        self._api_key = api_key
        self._base_url = base_url
        self._owned: list[Any] = []
        self._lock = threading.Lock()

    def _settings(self) -> dict[str, Any]:
        other = self._client or self._async_client
        if other is not None and self._api_key is None and self._base_url is None:
            # Same account and server as the client we were given.
            return {"api_key": other._api_key, "base_url": other.base_url}
        return {"api_key": self._api_key, "base_url": self._base_url}

    @property
    def sync(self) -> MemLayerClient:
        with self._lock:
            if self._client is None:
                self._client = MemLayerClient(**self._settings())
                self._owned.append(self._client)
            return self._client

    @property
    def async_(self) -> AsyncMemLayerClient:
        with self._lock:
            if self._async_client is None:
                self._async_client = AsyncMemLayerClient(**self._settings())
                self._owned.append(self._async_client)
            return self._async_client

    def close(self) -> None:
        """Close the clients this pair built (never those it was given)."""
        for c in self._owned:
            if isinstance(c, MemLayerClient):
                c.close()

    async def aclose(self) -> None:
        for c in self._owned:
            if isinstance(c, MemLayerClient):
                c.close()
            else:
                await c.aclose()
