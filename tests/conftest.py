"""Fixtures shared by the whole suite: one local server per session, a fresh key per test,
and clients whose requests are logged for the adapter tests.

Every test gets its own account (a new key), so tests never see each other's memories and
can run in any order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memlayer_integrations import AsyncMemLayerClient, MemLayerClient
from memlayer_integrations._constants import API_KEY_ENV, BASE_URL_ENV
from memlayer_integrations.server import DEFAULT_PLANS, LocalMemLayerServer, Plan

from ._support import RequestLog, logged_clients

pytest_plugins = ["tests._backends"]

#: The built-in plans plus a small one, so quota and limit tests need few requests.
TEST_PLANS = {**DEFAULT_PLANS, "tiny": Plan(memories=5, requests_per_day=10)}


@pytest.fixture(autouse=True)
def _no_memlayer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own MEMLAYER_* settings must never reach a test."""
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    monkeypatch.delenv("MEMLAYER_EMBEDDER", raising=False)


@pytest.fixture(scope="session")
def local_server():
    """A LocalMemLayerServer on a temporary database, for the whole session."""
    with LocalMemLayerServer(plans=TEST_PLANS) as server:
        yield server


@pytest.fixture
def base_url(local_server: LocalMemLayerServer) -> str:
    return local_server.url


@pytest.fixture
def api_key(local_server: LocalMemLayerServer) -> str:
    """A key of a fresh account on the unlimited plan."""
    return local_server.create_key(plan="unlimited", name="test")


@pytest.fixture
def free_key(local_server: LocalMemLayerServer) -> str:
    """A key of a fresh account on the free plan (500 memories, 100 requests a day)."""
    return local_server.create_key(plan="free", name="test-free")


@pytest.fixture
def clients(
    base_url: str, api_key: str, request_log: RequestLog
) -> Iterator[tuple[MemLayerClient, AsyncMemLayerClient, RequestLog]]:
    """A sync and an async client of a fresh account that log every request they send into
    ``request_log``, a fixture each adapter test package defines with the log it reads."""
    sync, async_ = logged_clients(base_url, api_key, request_log)
    yield sync, async_, request_log
    sync.close()
