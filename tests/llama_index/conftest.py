"""Clients of the session's local server whose requests are recorded at the transport."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._support import Recorder, recorded_clients


@pytest.fixture
def clients(base_url: str, api_key: str) -> Iterator[tuple]:
    sync, async_, recorder = recorded_clients(base_url, api_key)
    yield sync, async_, recorder
    sync.close()


@pytest.fixture
def recorder(clients: tuple) -> Recorder:
    return clients[2]
