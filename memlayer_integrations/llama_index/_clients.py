"""What every LlamaIndex adapter needs before it can talk to MemLayer: a bound scope and a
pair of clients.

LlamaIndex calls the sync methods of a component from sync code and the async ones from
async code, so each adapter holds both a :class:`MemLayerClient` and an
:class:`AsyncMemLayerClient`. Callers may pass either, both, or just ``api_key``/``base_url``;
a missing twin is built from the other one's settings. Nothing here sends a request.
"""

from __future__ import annotations

from typing import Any, Optional, cast

from .._client import AsyncMemLayerClient, MemLayerClient
from .._base_client import BaseClient

__all__ = ["MissingScopeError", "ClientPair", "require_scope"]


class MissingScopeError(ValueError):
    """An adapter was built without the ``user_id``/``agent_id`` it must be bound to.

    Raised at construction, never at the first request: memories without a scope could end
    up under the wrong user, so a missing scope fails closed.
    """


def require_scope(owner: str, **scope: Any) -> None:
    """Raise :class:`MissingScopeError` unless every value in ``scope`` is a non-blank str."""
    for name, value in scope.items():
        if not isinstance(value, str) or not value.strip():
            raise MissingScopeError(
                f"{owner} needs {name}=... (a non-empty string): every memory belongs to one "
                f"user and one agent, chosen by the application, got {value!r}"
            )


def _settings(client: BaseClient) -> dict[str, Any]:
    # The twin is built with the same key, URL, timeout, retries and headers.
    return dict(
        api_key=client._api_key,
        base_url=client.base_url,
        timeout=client.timeout,
        max_retries=client.max_retries,
        default_headers=client._default_headers,
    )


class ClientPair:
    """The sync and async clients of one adapter.

    Args:
        client: a :class:`MemLayerClient` to use for sync calls.
        async_client: an :class:`AsyncMemLayerClient` to use for async calls.
        api_key: used to build the clients when neither is given (else ``$MEMLAYER_API_KEY``).
        base_url: likewise (else ``$MEMLAYER_BASE_URL``, then the hosted service).

    Clients passed in belong to the caller and are not closed by :meth:`close`.
    """

    def __init__(
        self,
        client: Optional[MemLayerClient] = None,
        async_client: Optional[AsyncMemLayerClient] = None,
        api_key: Any = None,
        base_url: Optional[str] = None,
    ) -> None:
        if client is not None and not isinstance(client, MemLayerClient):
            raise TypeError(f"client must be a MemLayerClient, not {type(client).__name__}")
        if async_client is not None and not isinstance(async_client, AsyncMemLayerClient):
            raise TypeError(f"async_client must be an AsyncMemLayerClient, not {type(async_client).__name__}")
        if (client is not None or async_client is not None) and api_key is not None:
            raise TypeError("pass either client/async_client or api_key, not both")
        self._sync = client
        self._async = async_client
        self._owned: list[Any] = []
        if client is None and async_client is None:
            self._sync = MemLayerClient(api_key=api_key, base_url=base_url)
            self._async = AsyncMemLayerClient(api_key=api_key, base_url=base_url)
            self._owned = [self._sync, self._async]

    @property
    def base_url(self) -> str:
        # __init__ leaves at least one of the two set.
        return cast(BaseClient, self._sync or self._async).base_url

    @property
    def sync(self) -> MemLayerClient:
        if self._sync is None:
            self._sync = MemLayerClient(**_settings(cast(BaseClient, self._async)))
            self._owned.append(self._sync)
        return self._sync

    @property
    def async_(self) -> AsyncMemLayerClient:
        if self._async is None:
            self._async = AsyncMemLayerClient(**_settings(cast(BaseClient, self._sync)))
            self._owned.append(self._async)
        return self._async

    def close(self) -> None:
        """Close the sync client if this pair built it (the async one needs :meth:`aclose`)."""
        for c in self._owned:
            if isinstance(c, MemLayerClient):
                c.close()

    async def aclose(self) -> None:
        """Close every client this pair built."""
        for c in self._owned:
            if isinstance(c, MemLayerClient):
                c.close()
            else:
                await c.aclose()
