"""Clients for the adapter tests: real requests to the session's local server, counted at
the transport."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._support import Counter, counted_clients


@pytest.fixture
def clients(base_url: str, api_key: str) -> Iterator[tuple]:
    sync, async_, counter = counted_clients(base_url, api_key)
    yield sync, async_, counter
    sync.close()


@pytest.fixture
def counter(clients: tuple) -> Counter:
    return clients[2]
