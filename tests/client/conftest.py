"""Fixtures for the client tests: both client flavours around a scripted transport, recorded
retry sleeps, and a blocked network. The server fixtures (``local_server``, ``api_key``,
``free_key``, ``base_url``) and the cleaned ``MEMLAYER_*`` environment come from
``tests/conftest.py``."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_socket

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient, _client

from ._support import BASE_URL, call


@pytest.fixture
def fake_key() -> str:
    """A well-formed key made up at run time; scripted transports accept any key."""
    return "ml_live_" + secrets.token_hex(16)


@pytest.fixture(params=["sync", "async"])
def flavor(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_client(flavor: str, fake_key: str) -> Callable[..., Any]:
    """Build a client of the test's flavour whose requests go to ``handler``."""

    def make(handler: Callable[[httpx.Request], Any], **kwargs: Any) -> Any:
        kwargs.setdefault("api_key", fake_key)
        kwargs.setdefault("base_url", BASE_URL)
        transport = httpx.MockTransport(handler)
        if flavor == "sync":
            return MemLayerClient(http_client=httpx.Client(transport=transport), **kwargs)
        return AsyncMemLayerClient(http_client=httpx.AsyncClient(transport=transport), **kwargs)

    return make


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the clients' retry sleeps (sync and async) instead of sleeping."""
    delays: list[float] = []

    async def async_sleep(seconds: float) -> None:
        delays.append(seconds)

    monkeypatch.setattr(_client, "time", SimpleNamespace(sleep=delays.append))
    monkeypatch.setattr(_client, "asyncio", SimpleNamespace(sleep=async_sleep))
    return delays


@pytest.fixture
def no_network() -> Iterator[None]:
    """Block every socket but Unix ones (the asyncio event loop wakes itself through one)."""
    pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        yield
    finally:
        pytest_socket.enable_socket()


@pytest.fixture
async def make_live(flavor: str, base_url: str, api_key: str):
    """Clients of the test's flavour on the local server, closed at the end of the test."""
    made: list[Any] = []

    def make(api_key: str = api_key, **kwargs: Any) -> Any:
        cls = MemLayerClient if flavor == "sync" else AsyncMemLayerClient
        client = cls(api_key=api_key, base_url=base_url, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await call(client, "close")
