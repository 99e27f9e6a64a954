from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from memlayer_integrations.server import LocalMemLayerServer


@pytest.fixture(scope="session")
def local_server(backend_server: LocalMemLayerServer) -> LocalMemLayerServer:
    """The session server, on SQLite and on PostgreSQL (``tests/_backends.py``)."""
    return backend_server


@pytest.fixture
def http(base_url: str, api_key: str) -> Iterator[httpx.Client]:
    """Raw HTTP to the session server, authenticated as a fresh unlimited account."""
    with httpx.Client(base_url=base_url + "/v1", headers={"X-API-Key": api_key}) as client:
        yield client


@pytest.fixture
def anon(base_url: str) -> Iterator[httpx.Client]:
    """Raw HTTP without a key."""
    with httpx.Client(base_url=base_url + "/v1") as client:
        yield client
